"""Batch jobs on the rig's nodes, shared by the compute-node tests (test_cluster, test_envs)."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from pathlib import Path

from rig import LMOD_INIT, UserSession

MODULES = ".local/share/nixmod/modules"


def job_info(job: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (one-line form; values have no spaces we need).

    Waits out a controller restart (a fault test on the same rig may cause one).
    """
    deadline = time.monotonic() + 90
    while True:
        proc = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
        if proc.returncode == 0:
            return dict(field.split("=", 1) for field in proc.stdout.split() if "=" in field)
        assert time.monotonic() < deadline, f"scontrol show job {job}: {proc.stderr.strip()}"
        time.sleep(1)


def run_batch_job(session: UserSession, script: str, *sbatch_args: str,
                  timeout: float = 300) -> tuple[str, str, str]:
    """Run ``script`` as a batch job to its end (``sbatch --wait``): (job id, stdout, stderr)."""
    tag = uuid.uuid4().hex[:8]
    path = session.write(f"job-{tag}.sh", "#!/bin/bash\n" + script)
    out, err = session.home / f"job-{tag}.out", session.home / f"job-{tag}.err"
    proc = session.run("sbatch", "--parsable", "--wait", "-o", str(out), "-e", str(err),
                       "--cpus-per-task", "1", "--mem", "50M", *sbatch_args, str(path),
                       timeout=timeout)
    job = proc.stdout.strip().split(";")[0]
    assert job, f"sbatch printed no job id: {proc.stderr}"
    return job, out.read_text() if out.exists() else "", err.read_text() if err.exists() else ""


def lmod_job(site_lua: Path, body: str) -> str:
    """A job script's start as a site has it: Lmod, the nixmod hook, the user's modules."""
    return (f"source {LMOD_INIT}\nexport LMOD_PACKAGE_PATH={shlex.quote(str(site_lua))}\n"
            f"module use $HOME/{MODULES}\n{body}")
