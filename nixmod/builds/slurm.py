"""The SLURM backend: one job array per submission, throttled, findable by anyone.

* One ``sbatch`` for N packages: ``--array=0-(N-1)%max_concurrent`` runs at
  most ``max_concurrent`` tasks of the array at once.
* The throttle holds across separate submissions too: a new array depends
  (``afterany``) on the user's nixmod arrays still in the queue, so two
  arrays never run side by side. No daemon of ours has to stay alive.
* The job name is ``nixmod-build`` and the comment lists the drv hashes in
  task order (``nixmod:<hash>,<hash>,...``). Comments are visible to every
  user, so any user's nixmod finds an in-flight build of a drv and joins it.
* The batch script holds no catalog text: it execs the interpreter that is
  running now with a manifest path and ``$SLURM_ARRAY_TASK_ID``, all quoted.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from nixmod import nix
from nixmod.builds.state import BuildRecord, BuildStore
from nixmod.config import Config, current_user
from nixmod.errors import OperationFailed, UserError

NAME = "slurm"
JOB_NAME = "nixmod-build"
COMMENT_PREFIX = "nixmod:"
#: squeue states in which the job is still on its way to running
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED",
          "CONFIGURING"}
#: states in which it runs (COMPLETING: the step ended, SLURM is cleaning up)
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED", "RESIZING"}
#: how a job that left the queue ended, when its own exit record is missing
ENDED = {
    "CANCELLED": ("cancelled", "the job was cancelled (scancel)"),
    "TIMEOUT": ("failed", "the job reached its time limit ([build.slurm].time)"),
    "NODE_FAIL": ("failed", "the build node failed"),
    "BOOT_FAIL": ("failed", "the build node failed to boot"),
    "OUT_OF_MEMORY": ("failed", "the job ran out of memory ([build.slurm].mem)"),
    "PREEMPTED": ("failed", "the job was preempted"),
    "DEADLINE": ("failed", "the job missed its deadline"),
    "FAILED": ("failed", "the job failed before recording how"),
    "COMPLETED": ("failed", "the job completed but the output is not valid"),
}
VANISHED = ("failed", "job vanished without an exit record (node died or killed)")
#: seconds a query (squeue, scontrol) may take: a healthy slurmctld answers in
#: milliseconds, an unreachable one makes the tools retry for 9-18 s
QUERY_TIMEOUT = 5.0
#: seconds an action (sbatch, scancel) may take before we give up and say so
ACTION_TIMEOUT = 20.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"'{name}' not found on PATH; the slurm backend needs the SLURM client "
                        "tools (or set [build] backend = \"local\")")
    return path


def _run(args: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client tool, bounded; one that does not answer in time is an OperationFailed."""
    timeout = ACTION_TIMEOUT if args[0] in ("sbatch", "scancel") else QUERY_TIMEOUT
    try:
        return subprocess.run([_tool(args[0]), *args[1:]], capture_output=True, text=True,
                              input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{args[0]} did not answer within {timeout:.0f} s; is slurmctld "
                              "up? ('scontrol ping' says; [build] backend = \"local\" needs "
                              "no SLURM)") from None


def _queue(user: str | None = None) -> list[tuple[str, str, str, str]]:
    """(job, state, user, comment) of every nixmod build task in the queue (one squeue call)."""
    args = ["squeue", "-h", "-r", "-n", JOB_NAME, "-o", "%i|%T|%u|%k"]
    if user:
        args += ["-u", user]
    proc = _run(args)
    if proc.returncode != 0:
        raise OperationFailed(f"squeue failed: {nix.last_lines(proc.stderr, 2)}")
    rows = []
    for line in proc.stdout.splitlines():
        parts = line.split("|", 3)
        if len(parts) == 4:
            rows.append((parts[0], parts[1], parts[2], parts[3]))
    return rows


def queued_drv_hashes() -> dict[str, tuple[str, str]]:
    """drv hash -> (job id ``ARRAY_TASK``, owner) for every user's nixmod build in the queue.

    Without SLURM (a laptop with the local backend) there is nothing to join.
    """
    if shutil.which("squeue") is None:
        return {}
    try:
        rows = _queue()
    except OperationFailed:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for job, state, owner, comment in rows:
        if not comment.startswith(COMMENT_PREFIX) or state not in QUEUED | RUNNING:
            continue
        hashes = comment[len(COMMENT_PREFIX):].split(",")
        array, _, task = job.partition("_")
        if task.isdigit() and int(task) < len(hashes):
            found.setdefault(hashes[int(task)], (job, owner))
    return found


def _sbatch_args(config: Config, store: BuildStore, records: list[BuildRecord],
                 depend_on: list[str]) -> list[str]:
    slurm = config.build.slurm
    args = ["sbatch", "--parsable", "--job-name", JOB_NAME, "--partition", slurm.partition,
            "--time", slurm.time, "--cpus-per-task", str(slurm.cpus_per_task), "--mem", slurm.mem,
            "--array", f"0-{len(records) - 1}%{config.build.max_concurrent}",
            "--comment", COMMENT_PREFIX + ",".join(nix.store_hash(r.drv) for r in records),
            "--output", str(store.logs_dir / "slurm-%A_%a.out"), "--chdir", str(store.state_dir)]
    if slurm.account:
        args += ["--account", slurm.account]
    if slurm.qos:
        args += ["--qos", slurm.qos]
    if depend_on:
        args += ["--dependency", "afterany:" + ":".join(depend_on)]
    return args + list(slurm.extra_args)


def batch_script(manifest: Path) -> str:
    """The whole batch script: exec the job step; every word quoted, nothing else."""
    from nixmod.builds import job_argv

    command = " ".join(shlex.quote(word) for word in job_argv(manifest))
    return f'#!/bin/sh\nexec {command} --index "$SLURM_ARRAY_TASK_ID"\n'


def submit(config: Config, store: BuildStore, records: list[BuildRecord], manifest: Path) -> None:
    """One sbatch for all ``records``, after this user's nixmod arrays still in the queue."""
    script = batch_script(manifest)
    for attempt in range(2):
        depend_on = sorted({job.split("_")[0] for job, _s, _u, _c in _queue(current_user())})
        proc = _run(_sbatch_args(config, store, records, depend_on), input=script)
        # an array we depend on may end between squeue and sbatch: look again once
        if proc.returncode == 0 or "dependency" not in proc.stderr.lower() or attempt:
            break
    if proc.returncode != 0:
        raise OperationFailed(f"sbatch failed: {nix.last_lines(proc.stderr, 1)}")
    array = proc.stdout.strip().split(";")[0]
    if not array.isdigit():
        raise OperationFailed(f"sbatch printed no job id: {proc.stdout.strip()!r}")
    for index, record in enumerate(records):
        store.update(record, state="queued", job=f"{array}_{index}")


def poll(store: BuildStore, records: list[BuildRecord]) -> dict[int, str | None]:
    """queued/running for jobs still in the queue (any owner), None for those gone."""
    live = {}
    for job, state, _owner, _comment in _queue():
        if state in QUEUED:
            live[job] = "queued"
        elif state in RUNNING:
            live[job] = "running"
    return {r.id: live.get(r.job or "") for r in records}


def _scontrol_state(job: str) -> str | None:
    """JobState from ``scontrol show job`` while SLURM still remembers the job (MinJobAge)."""
    try:
        proc = _run(["scontrol", "-o", "show", "job", job])
    except OperationFailed:
        return None   # no answer is no witness: the caller falls back to "vanished"
    match = re.search(r"\bJobState=(\S+)", proc.stdout) if proc.returncode == 0 else None
    return match.group(1) if match else None


def ended(record: BuildRecord) -> tuple[str, str]:
    """How a job that left the queue without an exit record ended, as far as SLURM knows."""
    state = _scontrol_state(record.job or "")
    return ENDED.get(state or "", VANISHED)


def cancel(record: BuildRecord) -> None:
    proc = _run(["scancel", record.job or ""])
    if proc.returncode != 0 and "already completing or completed" not in proc.stderr:
        raise OperationFailed(f"scancel {record.job} failed: {nix.last_lines(proc.stderr, 1)}")


def current_job_id() -> str | None:
    """``ARRAY_TASK`` of the job step running now, from SLURM's environment."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else None


def stop_reason(record: BuildRecord) -> tuple[str, str]:
    """Told to stop: at (or past) the job's start + time limit it is the time limit, else a cancel.

    When SLURM sends SIGTERM for the time limit the job still shows as
    RUNNING (TIMEOUT comes later), so the clock is the witness. ``EndTime``
    is not: ``scancel`` sets it to the moment of the cancel (the job shows
    COMPLETING), which would make every cancel look like a timeout.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if job and _reached_time_limit(job):
        return ENDED["TIMEOUT"]
    return ENDED["CANCELLED"]


def _reached_time_limit(job: str) -> bool:
    try:
        proc = _run(["scontrol", "-o", "show", "job", job])
    except OperationFailed:
        return False
    if proc.returncode != 0:
        return False
    if re.search(r"\bJobState=TIMEOUT\b", proc.stdout):
        return True
    start = re.search(r"\bStartTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", proc.stdout)
    limit = re.search(r"\bTimeLimit=(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)\b", proc.stdout)
    if not start or not limit:
        return False   # UNLIMITED, or nothing to go by: a stop we did not expect is a cancel
    days, hours, minutes, seconds = (int(part or 0) for part in limit.groups())
    deadline = time.mktime(time.strptime(start.group(1), "%Y-%m-%dT%H:%M:%S")) \
        + ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return time.time() >= deadline - 1
