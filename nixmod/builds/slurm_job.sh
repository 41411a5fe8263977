#!/bin/sh
# nixmod's SLURM batch script (a file of the installed package: nobody but its
# installer can change it, and `squeue`/`scontrol` show its path as the job's
# Command, which is how another user's nixmod knows that a job runs nixmod's
# own job step before it joins it).
#
# Arguments: PYTHON MANIFEST HASHES. HASHES is the job's comment without its
# "nixmod:" prefix; the job step builds only the drv whose hash is at its
# array index, so the comment others join on is what the job really builds.
# -I: never import from the working directory or PYTHON* variables.
[ "$#" -eq 3 ] || { echo "nixmod: batch script needs PYTHON MANIFEST HASHES" >&2; exit 2; }
exec "$1" -I -m nixmod.builds.step --manifest "$2" --hashes "$3" --index "$SLURM_ARRAY_TASK_ID"
