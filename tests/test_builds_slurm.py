"""Builds on the real SLURM partition, as real users, through the real nix-daemon.

Each test gets fresh derivations (a nonce read at evaluation time), and the
test channel's builder appends a line to a counter file: the number of lines
is the number of times a builder really ran.
"""

from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from builds_helpers import (cancel_as_the_tui_does, counter_lines, new_counter, records,
                            setup_builds, status, wait_for_state)
from rig import NIXMOD


def test_two_users_same_package_same_moment_builds_once(alice, bob, test_channels):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=4)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda u: u.nixmod("build", "slowpkg", "--wait", "--json"),
                             (alice, bob)))
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    got = [records(proc)[0] for proc in runs]
    assert {r["state"] for r in got} <= {"built", "reused"}
    assert got[0]["out"] == got[1]["out"]
    assert counter_lines(counter) == [f"slowpkg 3.1 {nonce}"]
    # each user has a module of their own, loadable with Lmod
    for user, record in zip((alice, bob), got):
        assert record["module"] == "nix/slowpkg/3.1"
        shown = user.bash("module use ~/.local/share/nixmod/modules && module load nix/slowpkg "
                          "&& slowpkg", check=True)
        assert "slowpkg 3.1" in shown.stdout


def test_second_user_joins_the_job_in_flight(alice, bob, test_channels, nodes):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=6)
    first = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert first["state"] == "queued" and first["job"]
    second = records(bob.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert second["job"] == first["job"] and second["joined"] is True
    done = wait_for_state(bob, second["id"], {"built", "failed", "cancelled"})
    assert done["state"] == "built" and done["module"] == "nix/slowpkg/3.1"
    mine = wait_for_state(alice, first["id"], {"built", "failed"})
    assert mine["state"] == "built"
    # the job step says where it ran: SLURM's name for the build node, not the
    # host name (both of the rig's nodes run on this one host)
    assert mine["node"] == nodes.build != socket.gethostname()
    assert len(counter_lines(counter)) == 1


def _running_count(user: str, arrays: set[str] | str) -> tuple[int, int]:
    """(running, in the queue at all) tasks of some job arrays, from one squeue call.

    Other tests may run nixmod jobs as the same user at the same time, so
    only our own arrays count. Lane L's jobs are named ``nixmod-build-L``.
    """
    arrays = {arrays} if isinstance(arrays, str) else arrays
    out = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%F %T %j"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    states = [line.split()[1] for line in out
              if line.split()[0] in arrays and line.split()[2].startswith("nixmod-build")]
    return states.count("RUNNING"), len(states)


def _most_running(user: str, arrays: set[str], timeout: float = 180) -> int:
    most, seen_any = 0, True
    deadline = time.monotonic() + timeout
    while seen_any and time.monotonic() < deadline:
        running, seen = _running_count(user, arrays)
        most, seen_any = max(most, running), seen > 0
        time.sleep(0.2)
    return most


def test_six_builds_limit_two_one_sbatch_per_lane_never_more_than_two_running(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=3,
                 max_concurrent=2)
    names = [f"pkg{i}" for i in range(1, 7)]
    submitted = records(alice.nixmod("build", *names, "--json", check=True))
    arrays = {r["job"].split("_")[0] for r in submitted}
    assert len(arrays) == 2, "six packages over two lanes must be two sbatch calls (one per lane)"
    assert _most_running(alice.user, arrays) == 2
    final = status(alice, *[r["id"] for r in submitted])
    assert [r["state"] for r in final] == ["built"] * 6
    assert len(counter_lines(counter)) == 6


def test_separate_submissions_run_side_by_side_within_the_limit(alice, test_channels):
    """A second `nixmod build` takes a free lane instead of waiting for the whole first
    submission (the old afterany chain); a third still waits: the limit holds across them."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=8,
                 max_concurrent=2)
    jobs = []
    for name in ("pkg13", "pkg14", "pkg15"):
        jobs.append(records(alice.nixmod("build", name, "--json", check=True))[0])
    arrays = {r["job"].split("_")[0] for r in jobs}
    assert len(arrays) == 3, "one package, one sbatch"
    # the first two run at once (a lane each), never all three
    assert wait_for_state(alice, jobs[1]["id"], {"running", "built"})["state"] == "running"
    assert status(alice, jobs[0]["id"])[0]["state"] == "running"
    assert _most_running(alice.user, arrays) == 2
    final = status(alice, *[r["id"] for r in jobs])
    assert [r["state"] for r in final] == ["built"] * 3


def test_sbatch_failure_keeps_the_request_pending_and_retry_submits_it(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 partition="no-such-partition")
    failed = alice.nixmod("build", "pkg7")
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("nixmod:")]
    assert len(errors) == 1 and "sbatch failed" in errors[0] and "--retry" in errors[0]
    assert "Traceback" not in failed.stderr
    pending = status(alice)
    assert [(r["name"], r["state"], r["job"]) for r in pending] == [("pkg7", "pending", None)]

    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    retried = alice.nixmod("build", "--retry", "--wait", "--json")
    assert retried.returncode == 0, retried.stderr
    assert [(r["id"], r["state"]) for r in records(retried)] == [(pending[0]["id"], "built")]
    assert len(counter_lines(counter)) == 1


def test_a_refused_submission_still_gives_json_the_records_to_retry(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 partition="no-such-partition")
    refused = alice.nixmod("build", "pkg8", "--json")
    assert refused.returncode == 1 and "sbatch failed" in refused.stderr
    assert [(r["name"], r["state"], r["job"]) for r in records(refused)] == [("pkg8", "pending", None)]


def test_failing_builder_is_failed_with_the_log_tail(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=0)
    proc = alice.nixmod("build", "failing", "--wait", "--json")
    assert proc.returncode == 1
    record = records(proc)[0]
    assert record["state"] == "failed" and record["module"] is None
    assert "missing frobnicator" in record["error"]
    log = alice.nixmod("logs", str(record["id"]), check=True).stdout
    assert "missing frobnicator" in log


def test_scancel_from_outside_is_cancelled(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=60)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    alice.run("scancel", record["job"], check=True)
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"})
    assert done["state"] == "cancelled"
    assert alice.run("nix-store", "--check-validity", record["out"]).returncode != 0


def test_nixmod_cancel_stops_a_queued_build(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=60,
                 max_concurrent=1)
    first, second = records(alice.nixmod("build", "pkg8", "pkg9", "--json", check=True))
    cancelled = records(alice.nixmod("cancel", str(first["id"]), str(second["id"]), "--json",
                                     check=True))
    assert [r["state"] for r in cancelled] == ["cancelled", "cancelled"]
    time.sleep(1)
    assert _running_count(alice.user, {first["job"].split("_")[0],
                                       second["job"].split("_")[0]}) == (0, 0)
    assert [r["state"] for r in status(alice)] == ["cancelled", "cancelled"]


def test_a_build_that_reaches_its_time_limit_is_failed_with_that_reason(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=300)
    # SLURM's "minutes:seconds": a 5 s limit (slurmctld enforces it within about a minute)
    alice.write_config(alice.config_path.read_text().replace('time = "00:10:00"', 'time = "0:05"'))
    submitted = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    done = wait_for_state(alice, submitted["id"], {"built", "failed", "cancelled"}, timeout=240)
    assert done["state"] == "failed", done
    assert "time limit" in done["error"] and "[build.slurm].time" in done["error"]


def test_two_retries_at_the_same_moment_submit_once(alice, test_channels):
    """A script retrying pending builds from two shells at once: one sbatch, one record each."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 partition="no-such-partition")
    assert alice.nixmod("build", "pkg10", "pkg11").returncode == 1      # kept pending
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: alice.nixmod("build", "--retry", "--json"), range(4)))
    assert all(proc.returncode == 0 for proc in runs), [proc.stderr for proc in runs]
    jobs = {r["job"] for proc in runs for r in records(proc)}
    # each record submitted once (one job each, one lane each), never once per retry
    assert len(jobs) == 2, f"submitted more than once: {jobs}"
    final = status(alice)
    assert [(r["name"], r["job"] in jobs) for r in final] == [("pkg10", True), ("pkg11", True)]
    done = [wait_for_state(alice, r["id"], {"built", "failed", "cancelled"})["state"] for r in final]
    assert done == ["built", "built"] and len(counter_lines(counter)) == 2


def test_watch_and_follow_end_on_a_build_that_was_never_submitted(alice, test_channels):
    """A failed sbatch leaves the request pending; nothing will move it but --retry, so
    `status --watch` and `logs --follow` must say so and end, not wait forever."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 partition="no-such-partition")
    assert alice.nixmod("build", "pkg12").returncode == 1
    record = status(alice)[0]
    assert record["state"] == "pending"
    watched = alice.nixmod("status", "--watch", "--json", timeout=30)
    assert watched.returncode == 0, watched.stderr
    assert [r["state"] for r in records(watched)] == ["pending"]
    assert f"'nixmod build --retry {record['id']}'" in watched.stderr
    followed = alice.nixmod("logs", str(record["id"]), "--follow", timeout=30)
    assert followed.returncode == 0 and "Traceback" not in followed.stderr
    waited = alice.nixmod("build", "--retry", "--wait", timeout=30)   # sbatch fails again
    assert waited.returncode == 1 and "kept as pending" in waited.stderr


def _point_record_at(session, record_id: int, job: str) -> None:
    """Give a record another job id in the user's own state db: what a controller that
    lost its state and numbers jobs from 1 again does to the records that name its jobs."""
    script = ("import sqlite3, sys\n"
              "db = sqlite3.connect(sys.argv[1])\n"
              "db.execute('UPDATE builds SET job = ? WHERE id = ?', (sys.argv[2], int(sys.argv[3])))\n"
              "db.commit()\n")
    session.run(f"{NIXMOD.parent}/python", "-I", "-c", script,
                str(session.home / ".local/state/nixmod/builds.db"), job, str(record_id), check=True)


def test_a_job_id_that_names_another_build_is_not_followed_or_cancelled(alice, test_channels):
    """A record whose job id has come to name a task building something else (here alice's
    own other build, the worst case: she may scancel it) does not follow that task, and no
    cancel stops it: not `nixmod cancel` (which looks first) nor the TUI's (which acts on
    the records last shown)."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 max_concurrent=1)
    # a job in alice's only lane keeps her builds pending (singleton)
    blocker = alice.run("sbatch", "--parsable", "-p", "nixbuild", "--job-name", "nixmod-build-0",
                        "--wrap", "sleep 300", check=True).stdout.strip().split(";")[0]
    built = {name: records(alice.nixmod("build", name, "--json", check=True))[0]
             for name in ("pkg4", "pkg5", "pkg6")}
    other = built["pkg5"]["job"]
    try:
        for name in ("pkg4", "pkg6"):
            alice.run("scancel", built[name]["job"].split("_")[0], check=True)
            _point_record_at(alice, built[name]["id"], other)
        cancel_as_the_tui_does(alice, built["pkg4"]["id"])
        looked = alice.nixmod("cancel", str(built["pkg6"]["id"]))
        assert looked.returncode == 0, looked.stderr
        assert f"build {built['pkg6']['id']} had already ended (failed)" in looked.stderr
        queue = alice.run("squeue", "-h", "-r", "-u", alice.user, "-o", "%i",
                          check=True).stdout.split()
        assert other in queue, "a cancel stopped a task that was not the build"
        shown = {r["name"]: r for r in status(alice)}
        assert shown["pkg4"]["state"] == "cancelled"
        assert shown["pkg6"]["state"] == "failed" and "vanished" in shown["pkg6"]["error"], \
            shown["pkg6"]
        assert shown["pkg5"]["state"] == "queued" and shown["pkg5"]["job"] == other
    finally:
        alice.run("scancel", blocker, other.split("_")[0])
