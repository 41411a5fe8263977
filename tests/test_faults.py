"""Faults on the real rig (issue 11 item 5, issue 15 items 5-7): records tell the truth.

These stop real daemons (by their pid files, see faults.py) and bring them
back as they were; outages are kept short. They disturb other jobs on the
rig while they run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import faults
from builds_helpers import counter_lines, new_counter, records, setup_builds, status, wait_for_state


def _job_step_pids(user: str) -> list[int]:
    """Pids of the user's ``python -m nixmod.builds.step`` processes (the job steps) running now."""
    out = subprocess.run(["pgrep", "-u", user, "-f", "--", "-m nixmod.builds.step"],
                         capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    assert pids, "no job step found"
    return pids


def _realising(drv: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"nix-store --realise {drv}"], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _valid(session, path: str) -> bool:
    return session.run("nix-store", "--check-validity", path).returncode == 0


def test_kill_9_of_the_job_step_takes_its_build_with_it(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=40)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    deadline = time.monotonic() + 30
    while not _realising(record["drv"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _realising(record["drv"]), "the job step never started nix-store"
    for pid in _job_step_pids(alice.user):
        os.kill(pid, signal.SIGKILL)
    # the build (40 s) would still be going: its nix-store must be gone with the step
    deadline = time.monotonic() + 10
    while _realising(record["drv"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _realising(record["drv"]) == [], "nix-store kept building after its job step died"
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, timeout=60)
    assert done["state"] in ("failed", "built"), done
    time.sleep(45)   # longer than the build would take, had it gone on
    # the daemon may finish a build whose client died: then the record says so, with its module
    final = status(alice, record["id"])[0]
    if _valid(alice, record["out"]):
        assert final["state"] == "built" and final["module"] == "nix/slowpkg/3.1", final
        shown = alice.bash("module use ~/.local/share/nixmod/modules && module load nix/slowpkg "
                           "&& slowpkg", check=True)
        assert "slowpkg 3.1" in shown.stdout
    else:
        assert final["state"] == "failed", final


def test_status_finishes_a_record_whose_output_is_valid(alice, test_channels):
    """Whatever the job says (here: still queued, and held), a valid output is built."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 max_concurrent=1)
    # a job in alice's only lane keeps nixmod's job pending (singleton), so that the
    # hold lands on a job that has not started (an idle node starts one within ms)
    blocker = alice.run("sbatch", "--parsable", "-p", "nixbuild", "--job-name", "nixmod-build-0",
                        "--wrap", "sleep 300", check=True).stdout.strip().split(";")[0]
    held = records(alice.nixmod("build", "pkg5", "--json", check=True))[0]
    alice.run("scontrol", "hold", held["job"].split("_")[0], check=True)
    try:
        pending = alice.run("squeue", "-h", "-j", held["job"].split("_")[0], "-o", "%T",
                            check=True).stdout.split()
        assert pending == ["PENDING"], pending
        drv, out = held["drv"], held["out"]
        subprocess.run(["nix-store", "--realise", drv], capture_output=True, check=True,
                       env={"PATH": "/usr/bin:/bin", "NIX_REMOTE": "daemon"}, timeout=120)
        done = status(alice, held["id"])[0]
        assert done["state"] == "built" and done["module"] == "nix/pkg5/1.0", done
        assert _valid(alice, out)
        # its own job, now redundant, left the queue (it would only hold the lane)
        queue = alice.run("squeue", "-h", "-u", alice.user, "-o", "%F", check=True).stdout.split()
        assert held["job"].split("_")[0] not in queue
    finally:
        alice.run("scancel", held["job"].split("_")[0], blocker)


def test_slurmctld_restart_loses_nothing_and_wait_goes_on(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=8,
                 max_concurrent=1)
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(target=lambda: result.setdefault("wait", alice.nixmod(
        "build", "pkg1", "pkg2", "pkg3", "--wait", "--json", timeout=600)))
    waiter.start()
    try:
        deadline = time.monotonic() + 60
        while not [r for r in (status(alice) or []) if r["state"] == "running"]:
            assert time.monotonic() < deadline, "no build started"
            time.sleep(0.5)
        before = status(alice)
        assert {r["state"] for r in before} == {"running", "queued"}, before
        ctld = faults.slurmctld()
        ctld.stop()
        try:
            during = alice.nixmod("status", "--json")
            table = alice.nixmod("status")
            time.sleep(10)
        finally:
            ctld.start()
            faults.wait_controller()
        # the last-known states, with a warning, and an honest exit code
        assert during.returncode == 1
        assert [(r["id"], r["state"]) for r in records(during)] == \
            [(r["id"], r["state"]) for r in before]
        assert "warning" in during.stderr and "last known" in during.stderr
        assert table.returncode == 1 and "pkg1" in table.stdout and "Traceback" not in table.stderr
    finally:
        waiter.join(600)
    waited = result["wait"]
    assert waited.returncode == 0, waited.stderr
    assert [r["state"] for r in records(waited)] == ["built"] * 3
    assert "did not answer" in waited.stderr and "answers again" in waited.stderr
    assert len(counter_lines(counter)) == 3


def test_nix_daemon_restart_during_a_build_ends_clearly(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=10)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    time.sleep(2)
    faults.restart_nix_daemon(pause=2)
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, timeout=180)
    assert done["state"] in ("built", "failed"), done
    if done["state"] == "failed":
        assert done["error"], done
    else:
        assert done["module"] == "nix/slowpkg/3.1"
    # and the daemon serves the next build
    again = alice.nixmod("build", "pkg4", "--wait", "--json", timeout=300)
    assert again.returncode == 0, again.stderr


def test_build_node_slurmd_killed_fails_the_build_with_the_reason_and_retry_builds(
        alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=90)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    running = wait_for_state(alice, record["id"], {"running"})
    assert running["state"] == "running"
    node = running["node"]
    assert node in faults.build_nodes() or len(faults.build_nodes()) == 1, (node, faults.build_nodes())
    node = node if node in faults.build_nodes() else faults.build_nodes()[0]
    timeout = int(faults.slurm_config()["SlurmdTimeout"].split()[0])
    slurmd = faults.slurmd(node)
    slurmd.stop(signal.SIGKILL)
    try:
        if timeout > 30:
            # a long SlurmdTimeout: do what an admin does on seeing the node dead
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=DOWN",
                            "Reason=nixmod fault test: slurmd killed"], check=True)
        done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"},
                              timeout=min(timeout, 30) + 120)
    finally:
        slurmd.start()
        faults.wait_node_usable(node)
    assert done["state"] == "failed", done
    assert "node failure" in done["error"], done
    # not requeued: the job left the queue for good
    queue = subprocess.run(["squeue", "-h", "-j", record["job"].split("_")[0]],
                           capture_output=True, text=True).stdout
    assert queue.strip() == ""
    retried = alice.nixmod("build", "--retry", str(record["id"]), "--wait", "--json", timeout=400)
    assert retried.returncode == 0, retried.stderr
    assert records(retried)[0]["state"] in ("built", "reused")
