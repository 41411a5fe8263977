"""The build node between builds and compute jobs, measured on the two-node rig.

    /opt/nixmod/venv/bin/python tests/bench/bench_cluster.py      (as root; rig up)

Plain batch jobs as an unprivileged test user (the first of NIXMOD_TEST_USERS),
three rounds each, medians printed:

* preemption: a compute job holds the whole build node; a job is submitted to
  nixbuild. Seconds from its sbatch until it runs, and whether the compute
  job was requeued (PreemptType=preempt/partition_prio, PreemptMode=REQUEUE).
* priority: a compute job (whole build node, submitted first) and a build,
  both held, released together: which started first, and by how much
  (PriorityTier).
* idle build node: the compute-only node is full; seconds until the next
  compute job runs, and on which node.

Other users' builds on the rig delay the jobs that need the whole build node,
so the times have no target; the behaviour does (tests/bench/targets.py, exit 1
on MISSED, as tests/test_cluster.py asserts it): the compute job requeued, the
build first, the next compute job on the build node, in every round.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Targets  # noqa: E402  (a script beside its helper)

USER = os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(",")[0]


def sinfo_nodes() -> tuple[str, str]:
    """(build node, compute-only node) from sinfo."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%P %N"], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    parts: dict[str, set[str]] = {}
    for line in filter(None, out):
        partition, node = line.split()
        parts.setdefault(partition.rstrip("*"), set()).add(node)
    build = sorted(parts["nixbuild"])[0]
    return build, sorted(parts["compute"] - parts["nixbuild"])[0]


def sbatch(*args: str) -> str:
    proc = subprocess.run(["runuser", "-u", USER, "--", "sbatch", "--parsable", "-o", "/dev/null",
                           "--mem", "50M", "--time", "10", *args], capture_output=True, text=True, check=True,
                          cwd="/tmp")
    return proc.stdout.strip().split(";")[0]


def info(job: str) -> dict[str, str]:
    """``scontrol show job``; waits out a controller restart (up to a minute)."""
    for _ in range(120):
        proc = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
        if proc.returncode == 0:
            return dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)
        time.sleep(0.5)
    raise RuntimeError(f"scontrol show job {job}: {proc.stderr.strip()}")


def wait_state(job: str, states: set[str], timeout: float = 600) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        got = info(job)
        if got["JobState"] in states or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def cancel(*jobs: str) -> None:
    """scancel, waiting out a controller restart: a left-over job would hold the build node."""
    for _ in range(120):
        if subprocess.run(["scancel", *jobs], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def preemption(build: str) -> tuple[float, bool]:
    hog = sbatch("-p", "compute", "-w", build, "--exclusive", "--wrap", "sleep 600")
    try:
        wait_state(hog, {"RUNNING"})
        started = time.monotonic()
        job = sbatch("-p", "nixbuild", "--cpus-per-task", "1", "--wrap", "sleep 1")
        wait_state(job, {"RUNNING", "COMPLETING", "COMPLETED"})
        took = time.monotonic() - started
        return took, int(info(hog)["Restarts"]) > 0
    finally:
        cancel(hog)


def priority(build: str) -> tuple[str, float]:
    compute = sbatch("--hold", "-p", "compute", "-w", build, "--exclusive", "--wrap", "sleep 1")
    job = sbatch("--hold", "-p", "nixbuild", "--cpus-per-task", "1", "--wrap", "sleep 3")
    try:
        subprocess.run(["scontrol", "release", f"{compute},{job}"], check=True)
        c = wait_state(compute, {"COMPLETED", "FAILED", "CANCELLED"})
        b = info(job)
        lead = (stamp(c["StartTime"]) - stamp(b["StartTime"])).total_seconds()
        return ("build" if lead >= 0 else "compute"), abs(lead)
    finally:
        cancel(compute, job)


def idle_build_node(compute_only: str) -> tuple[float, str]:
    filler = sbatch("-p", "compute", "-w", compute_only, "--exclusive", "--wrap", "sleep 600")
    try:
        wait_state(filler, {"RUNNING"})
        started = time.monotonic()
        job = sbatch("-p", "compute", "--cpus-per-task", "1", "--wrap", "sleep 600")
        got = wait_state(job, {"RUNNING"})
        cancel(job)
        return time.monotonic() - started, got["NodeList"]
    finally:
        cancel(filler)


def main() -> int:
    targets = Targets("bench_cluster")
    build, compute_only = sinfo_nodes()
    print(f"nodes: build {build}, compute-only {compute_only}; user {USER}")
    rounds = [preemption(build) for _ in range(3)]
    print(f"preemption: build running {statistics.median(r[0] for r in rounds):.2f} s after its "
          f"sbatch (median of 3); compute job requeued in {sum(r[1] for r in rounds)}/3")
    order = [priority(build) for _ in range(3)]
    print(f"priority:   first to start {[o[0] for o in order]}, "
          f"lead {statistics.median(o[1] for o in order):.0f} s (median; SLURM's 1 s clock)")
    idle = [idle_build_node(compute_only) for _ in range(3)]
    print(f"idle build node: next compute job running after "
          f"{statistics.median(i[0] for i in idle):.2f} s (median) on {sorted({i[1] for i in idle})}")
    targets.check("rounds: compute job requeued by the build", sum(r[1] for r in rounds), 3,
                  unit="", at_most=False)
    targets.check("rounds: build started before the compute job", [o[0] for o in order].count("build"),
                  3, unit="", at_most=False)
    targets.check("rounds: next compute job on the idle build node",
                  sum(1 for i in idle if i[1] == build), 3, unit="", at_most=False)
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main())
