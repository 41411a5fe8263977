"""The job step's entry point: ``python -I -m nixmod.builds.step --manifest M --index I [--hashes H]``.

SLURM's batch script (``slurm_job.sh``) and the local workers run it; a
PBS job runs ``pbs.job_main``, which restores the submitter's environment
first. It does not go through the CLI: no verb parser and no config load
of its own (the job step reads the config the manifest names), and it
imports only the build code (the package's names load on first use).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from nixmod.builds.job import run_job
from nixmod.builds.registry import BACKENDS
from nixmod.errors import NixmodError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, as every nixmod error (argparse would add its usage)."""
        print(f"nixmod: job step: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m nixmod.builds.step",
                                     description="nixmod's job step (run by a scheduler, not by people)")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--hashes")   # a SLURM job's comment hash list (see builds/slurm_job.sh)
    args = parser.parse_args(argv)
    try:
        return run_job(Path(args.manifest), args.index, args.hashes, backends=BACKENDS)
    except NixmodError as exc:
        print(f"nixmod: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
