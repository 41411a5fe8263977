"""Gentle on the scheduler (SPEC; issue 21): few, narrow questions, and a job's end seen at once.

The scheduler calls are counted without faking anything: the user's PATH
starts with a directory whose ``squeue``/``scontrol``/``sbatch``/``scancel``
append their arguments to a file and exec the real tool, so every call
counted is a real call to the real slurmctld. Calls made inside a job (the
job step) are not the waiting nixmod's and are not counted.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from builds_helpers import new_counter, records, setup_builds, wait_for_state
from rig import BASE_PATH, VENV, UserSession, kill_hard

SLURM_TOOLS = ("squeue", "scontrol", "sbatch", "scancel", "sinfo")


def count_scheduler_calls(session: UserSession) -> Path:
    """Put counting wrappers of SLURM's client tools first on ``session``'s PATH; the count file."""
    calls = session.write("scheduler-calls.txt", "")
    for tool in SLURM_TOOLS:
        real = shutil.which(tool)
        assert real, f"{tool} not on root's PATH"
        wrapper = session.write(f"wrap/{tool}", (
            "#!/bin/sh\n"
            f'[ -n "$SLURM_JOB_ID" ] || printf "%s\\n" "{tool} $*" >> "{calls}"\n'
            f'exec {real} "$@"\n'))
        session.run("chmod", "755", str(wrapper), check=True)
    session.extra_env["PATH"] = f"{session.home}/wrap:{VENV}/bin:{BASE_PATH}"
    return calls


def called(calls: Path) -> list[str]:
    return [line for line in calls.read_text().splitlines() if line.strip()]


def narrow(call: str) -> bool:
    """Does this squeue call carry a filter (own jobs, job ids, the build partition)?"""
    words = call.split()
    return any(w in ("--me", "-j", "--jobs") or w.startswith(("--partition", "--jobs="))
               for w in words[1:])


def test_a_waited_build_asks_a_few_filtered_questions_and_shows_its_end_within_seconds(
        alice, test_channels):
    """A 40 s build under --wait, with a status --watch of the same user beside it: together
    at most 5 scheduler calls (the default poll_seconds, 30), every squeue filtered, and both
    end within 3 s of the job's exit record."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=40,
                 poll_seconds=None)
    calls = count_scheduler_calls(alice)
    jobs_dir = alice.home / ".local/state/nixmod/jobs"

    def timed(*args: str) -> tuple[object, float]:
        proc = alice.nixmod(*args, timeout=240)
        return proc, time.time()

    with ThreadPoolExecutor(2) as pool:
        waited = pool.submit(timed, "build", "slowpkg", "--wait", "--json")
        deadline = time.monotonic() + 120
        while not list(jobs_dir.glob("manifest-*.json")):
            assert time.monotonic() < deadline and not waited.done(), "nothing was submitted"
            time.sleep(0.2)
        watched = pool.submit(timed, "status", "--watch", "--json")
        (build, build_end), (watch, watch_end) = waited.result(), watched.result()
    assert build.returncode == 0, build.stderr
    assert watch.returncode == 0, watch.stderr
    record = records(build)[0]
    assert record["state"] == "built" and record["module"] == "nix/slowpkg/3.1"
    assert [r["state"] for r in records(watch)] == ["built"]

    exit_record = jobs_dir / f"{record['id']}.exit"
    ended = exit_record.stat().st_mtime
    assert build_end - ended < 3, f"--wait returned {build_end - ended:.1f} s after the job's end"
    assert watch_end - ended < 3, f"--watch returned {watch_end - ended:.1f} s after the job's end"

    made = called(calls)
    assert len(made) <= 5, f"{len(made)} scheduler calls:\n" + "\n".join(made)
    assert [c for c in made if c.startswith("sbatch")], made
    squeues = [c for c in made if c.startswith("squeue")]
    assert squeues and all(narrow(c) for c in squeues), squeues


def test_a_job_killed_without_its_exit_record_shows_within_poll_seconds(alice, test_channels):
    """What the job cannot report itself (killed outright: no exit record) still shows,
    at the next shared poll rather than at once."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=90,
                 poll_seconds=3)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    with ThreadPoolExecutor(1) as pool:
        waited = pool.submit(alice.nixmod, "status", "--watch", "--json", str(record["id"]),
                             timeout=120)
        time.sleep(4)
        assert not waited.done(), waited.result().stderr
        # the job step, killed outright as a dying node would leave it: no exit record
        manifest = next((alice.home / ".local/state/nixmod/jobs").glob("manifest-*.json"))
        pids = subprocess.run(["pgrep", "-u", alice.user, "-f", "--", f"--manifest {manifest}"],
                              capture_output=True, text=True).stdout.split()
        assert pids, "the job step is not running"
        kill_hard(pids, "the job step")
        killed = time.monotonic()
        watch = waited.result()
        seen = time.monotonic() - killed
    ended = records(watch)[0]
    # SLURM's own word on how it ended (no exit record to say it)
    assert ended["state"] == "failed" and ended["error"], ended
    assert not (alice.home / f".local/state/nixmod/jobs/{record['id']}.exit").exists()
    # poll_seconds, then SLURM's own word on how it ended, with room for a busy rig
    assert seen < 3 + 10, f"the kill showed after {seen:.1f} s"
