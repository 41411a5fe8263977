"""Builds on a real OpenPBS server (tests/cluster/pbs.sh), as real users, through the nix-daemon.

The PBS rig runs in its own network namespace; users submit from the root
namespace with the client tools in /opt/pbs/bin (nixmod finds them through
/etc/pbs.conf's PBS_EXEC, as a site's users would without PBS on PATH).
Each test gets fresh derivations (a nonce), and the test channel's builder
appends a line to a counter file: the number of lines is the number of
times a builder really ran.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from builds_helpers import (cancel_as_the_tui_does, counter_lines, new_counter, records,
                            setup_builds, stack_channels, status, user_config, wait_for_state)
from rig import NIXMOD, REPO, UserSession, kill_hard, run_userside
from tui_view import svg_text

PBS_BIN = Path("/opt/pbs/bin")
QUEUE = "nixbuild"


@pytest.fixture(scope="module", autouse=True)
def pbs_server() -> None:
    """The real PBS server: started by tests/cluster/pbs.sh if it does not answer."""
    def answers() -> bool:
        return (PBS_BIN / "qstat").exists() and subprocess.run(
            [str(PBS_BIN / "qstat"), "-B"], capture_output=True, timeout=30).returncode == 0

    if not answers():
        proc = subprocess.run(["bash", str(REPO / "tests/cluster/pbs.sh"), "up"],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not answers():
            pytest.fail("PBS could not start: " + proc.stderr[-3000:], pytrace=False)


def pbs_table(queue: str = QUEUE, walltime: str = "00:10:00", extra: str = "") -> str:
    """``[build.pbs]`` for the rig's server; ``extra`` lines end it."""
    return (f'[build.pbs]\nqueue = "{queue}"\nwalltime = "{walltime}"\nncpus = 1\n'
            f'mem = "200mb"\n{extra}\n')


def setup_pbs(session: UserSession, channels: Path, *, nonce: str, counter: Path,
              sleep: float = 2, max_concurrent: int = 2, walltime: str = "00:10:00",
              queue: str = QUEUE, extra: str = "") -> None:
    setup_builds(session, channels, backend="pbs", nonce=nonce, counter=counter, sleep=sleep,
                 max_concurrent=max_concurrent, scheduler=pbs_table(queue, walltime, extra))


def qstat(*args: str) -> dict:
    """``qstat -f -F json ARGS`` as root: the jobs PBS itself reports.

    One job operand per call: OpenPBS 23.06's JSON output shows only the first.
    """
    proc = subprocess.run([str(PBS_BIN / "qstat"), "-f", "-F", "json", *args],
                          capture_output=True, text=True, timeout=60)
    if not proc.stdout.strip():
        return {}
    return json.loads(proc.stdout, strict=False).get("Jobs", {})


def finished_job(job_id: str, timeout: float = 60) -> dict:
    """The job as PBS's history has it once PBS itself is done with it (state F)."""
    deadline = time.monotonic() + timeout
    while True:
        job = qstat("-x", job_id).get(job_id, {})
        if job.get("job_state") == "F" or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def test_build_on_pbs_and_module_load(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1)
    proc = alice.nixmod("build", "slowpkg", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    record = records(proc)[0]
    assert record["state"] == "built" and record["backend"] == "pbs"
    assert record["job"].split(".")[0].isdigit(), record["job"]    # a plain job: one package
    assert record["module"] == "nix/slowpkg/3.1" and record["node"]
    # PBS ran it: its history has the job, owned by alice, in the build queue, exit 0
    job = finished_job(record["job"])
    assert job["Job_Owner"].split("@")[0] == alice.user and job["queue"] == QUEUE
    assert job["Exit_status"] == 0
    shown = alice.bash("module use ~/.local/share/nixmod/modules && module load nix/slowpkg "
                       "&& slowpkg", check=True)
    assert "slowpkg 3.1" in shown.stdout
    assert counter_lines(counter) == [f"slowpkg 3.1 {nonce}"]
    # status and logs know the PBS job
    listed = alice.nixmod("status", check=True).stdout
    assert record["job"] in listed and "built" in listed
    assert "building slowpkg 3.1" in alice.nixmod("logs", str(record["id"]), check=True).stdout


def test_two_users_one_derivation_one_builder_run(alice, bob, test_channels):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_pbs(user, test_channels, nonce=nonce, counter=counter, sleep=6)
    first = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert first["state"] == "queued" and first["job"]
    second = records(bob.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert second["job"] == first["job"] and second["joined"] is True
    done = wait_for_state(bob, second["id"], {"built", "failed", "cancelled"}, timeout=180)
    assert done["state"] == "built" and done["module"] == "nix/slowpkg/3.1"
    mine = wait_for_state(alice, first["id"], {"built", "failed", "cancelled"}, timeout=60)
    assert mine["state"] == "built"
    assert counter_lines(counter) == [f"slowpkg 3.1 {nonce}"]
    shown = bob.bash("module use ~/.local/share/nixmod/modules && module load nix/slowpkg "
                     "&& slowpkg", check=True)
    assert "slowpkg 3.1" in shown.stdout


def test_five_packages_limit_two_one_qsub_never_more_than_two_running(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=3, max_concurrent=2)
    names = [f"pkg{i}" for i in range(1, 6)]
    submitted = records(alice.nixmod("build", *names, "--json", check=True))
    parents = {r["job"].split("[")[0] for r in submitted}
    assert len(parents) == 1, f"five packages must be one qsub (one job array): {submitted}"
    parent = parents.pop() + "[]." + submitted[0]["job"].split(".", 1)[1]
    assert [r["job"] for r in submitted] == [parent.replace("[]", f"[{i}]") for i in range(5)]
    most, running_seen, deadline = 0, set(), time.monotonic() + 240
    while time.monotonic() < deadline:
        jobs = qstat("-t", "-x", parent)
        subjobs = {jid: j["job_state"] for jid, j in jobs.items() if "[]" not in jid}
        running = [jid for jid, state in subjobs.items() if state == "R"]
        running_seen.update(running)
        most = max(most, len(running))
        if subjobs and all(state in ("F", "X") for state in subjobs.values()):
            break
        time.sleep(0.2)
    assert most == 2, f"at most {most} subjobs ran at once"
    assert len(running_seen) == 5
    final = status(alice, *[r["id"] for r in submitted])
    assert [r["state"] for r in final] == ["built"] * 5
    assert len(counter_lines(counter)) == 5


def test_the_limit_holds_across_two_commands(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=4, max_concurrent=1)
    first = records(alice.nixmod("build", "pkg6", "--json", check=True))[0]
    second = records(alice.nixmod("build", "pkg7", "--json", check=True))[0]
    assert first["job"] != second["job"]
    # PBS holds the second until the first has ended
    job = qstat("-x", second["job"]).get(second["job"], {})
    after = re.findall(r"afterany:([^,]+)", job.get("depend", ""))
    assert after and first["job"] in [i.split("@")[0] for i in after[0].split(":")], job
    both = [wait_for_state(alice, r["id"], {"built", "failed", "cancelled"}, timeout=180)
            for r in (first, second)]
    assert [r["state"] for r in both] == ["built", "built"]
    # and so it started only after the first had ended: after the first's start plus the
    # time it ran (not its obittime, which PBS sets once end-of-job hooks are done, a
    # second or more after it released the jobs waiting for it); 1 s for PBS's rounding
    earlier, later = finished_job(first["job"]), finished_job(second["job"])
    ran = sum(int(part) * 60 ** i for i, part in
              enumerate(reversed(earlier["resources_used"]["walltime"].split(":"))))
    assert ran >= 4, earlier["resources_used"]
    assert _epoch(later["stime"]) >= _epoch(earlier["stime"]) + ran - 1, (earlier, later)


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))


@pytest.fixture
def slow_exit():
    """Keep chosen jobs exiting (state E) for 8 s: call with a job id.

    The rig's PBS has an ``execjob_end`` hook (tests/cluster/pbs_slow_exit_hook.py)
    that sleeps for the job ids marked here, as a busy node's cleanup does;
    every other job passes straight through.
    """
    marks = Path("/run/nixmod-tests-slow-exit")
    assert marks.is_dir(), f"{marks} is missing: tests/cluster/pbs.sh up makes it"
    marked: list[Path] = []

    def mark(job_id: str) -> None:
        marked.append(marks / job_id)
        marked[-1].touch()

    yield mark
    for path in marked:
        path.unlink(missing_ok=True)


def test_a_job_still_exiting_does_not_hold_the_next_build_for_ever(alice, test_channels,
                                                                   slow_exit):
    """The user's next build, submitted while their last job is exiting, still runs.

    OpenPBS 23.06 never releases a dependency registered on a job in state E:
    on the rig, every such job stayed held (Hold_Types s) after the other had
    finished. Nobody polls here: the user has logged off after submitting.
    """
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1)
    first = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    slow_exit(first["job"])
    deadline = time.monotonic() + 120
    while qstat(first["job"]).get(first["job"], {}).get("job_state") != "E":
        assert time.monotonic() < deadline, "the first job never reached its slow exit"
        time.sleep(0.2)
    second = records(alice.nixmod("build", "pkg2", "--json", check=True))[0]
    ended = finished_job(second["job"], timeout=90)
    assert ended.get("Exit_status") == 0, ended
    assert [r["state"] for r in status(alice, first["id"], second["id"])] == ["built", "built"]


def test_qdel_from_outside_is_cancelled(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=120)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"}, timeout=120)["state"] == "running"
    alice.run(str(PBS_BIN / "qdel"), record["job"], check=True)
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, timeout=120)
    assert done["state"] == "cancelled", done
    assert "qdel" in done["error"]
    assert alice.run("nix-store", "--check-validity", record["out"]).returncode != 0


def test_qdel_of_a_queued_job_is_cancelled(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=60, max_concurrent=1)
    first, second = records(alice.nixmod("build", "pkg8", "pkg9", "--json", check=True))
    assert wait_for_state(alice, first["id"], {"running"}, timeout=120)["state"] == "running"
    alice.run(str(PBS_BIN / "qdel"), second["job"], check=True)   # still queued behind the first
    done = wait_for_state(alice, second["id"], {"built", "failed", "cancelled"}, timeout=60)
    assert done["state"] == "cancelled" and "before it ran" in done["error"], done
    cancelled = records(alice.nixmod("cancel", str(first["id"]), "--json", check=True))
    assert cancelled[0]["state"] == "cancelled"
    assert len(counter_lines(counter)) <= 1


def test_failing_build_is_failed_with_the_log_tail(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=0)
    proc = alice.nixmod("build", "failing", "--wait", "--json")
    assert proc.returncode == 1
    record = records(proc)[0]
    assert record["state"] == "failed" and record["module"] is None
    assert "missing frobnicator" in record["error"]
    assert "missing frobnicator" in alice.nixmod("logs", str(record["id"]), check=True).stdout


def test_walltime_exceeded_is_failed_with_that_reason(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=300, walltime="00:00:05")
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, timeout=180)
    assert done["state"] == "failed", done
    assert "walltime" in done["error"] and "[build.pbs].walltime" in done["error"]


def test_retry_after_a_refused_qsub(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1, queue="no-such-queue")
    failed = alice.nixmod("build", "pkg10")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("nixmod:")]
    assert len(errors) == 1 and "qsub failed" in errors[0] and "--retry" in errors[0]
    assert [(r["name"], r["state"]) for r in status(alice)] == [("pkg10", "pending")]
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1)
    retried = alice.nixmod("build", "--retry", "--wait", "--json")
    assert retried.returncode == 0, retried.stderr
    assert [r["state"] for r in records(retried)] == ["built"]
    assert len(counter_lines(counter)) == 1


def test_look_alike_jobs_that_cannot_build_are_not_joined(alice, bob, test_channels):
    """bob queues two jobs that name alice's drv: one exactly like nixmod's job step but held,
    one not held but running something else. alice builds it herself, waiting on neither."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_pbs(user, test_channels, nonce=nonce, counter=counter, sleep=1)
    drv = bob.run("nix-instantiate", str(test_channels / "builds.nix"), "-A", "pkg11",
                  check=True).stdout.strip()
    drv_hash = Path(drv).name.split("-")[0]
    job_code = _job_code(alice)
    common = [str(PBS_BIN / "qsub"), "-N", "nixmod-build", "-q", QUEUE, "-o", "/dev/null",
              "-v", f"NIXMOD_DRVS=nixmod:{drv_hash}"]
    held = bob.run(*common, "-h", "--", f"{NIXMOD.parent}/python", "-I", "-c", job_code,
                   str(bob.home / "manifest.json"), check=True).stdout.strip()
    other = bob.run(*common, "--", "/bin/sleep", "300", check=True).stdout.strip()
    try:
        proc = alice.nixmod("build", "pkg11", "--wait", "--json", timeout=240)
        assert proc.returncode == 0, proc.stderr
        record = records(proc)[0]
        assert record["joined"] is False and record["job"] not in (held, other)
        assert record["state"] == "built"
        assert len(counter_lines(counter)) == 1
    finally:
        bob.run(str(PBS_BIN / "qdel"), held, other)


def _job_code(session: UserSession) -> str:
    """What nixmod's own PBS job runs (``python -I -c JOB_CODE MANIFEST``): a copy of it."""
    return run_userside(session, "installed", "pbs-job-code", check=True).stdout.strip()


def _forged_build(bob: UserSession, drv_hash: str, manifest: Path, *qsub_args: str) -> str:
    """bob's copy of nixmod's own job for ``drv_hash``: name, queue, NIXMOD_DRVS, executable
    and arguments as nixmod's, with ``qsub_args`` of bob's choosing. Its job id."""
    return bob.run(str(PBS_BIN / "qsub"), "-N", "nixmod-build", "-q", QUEUE, "-o", "/dev/null",
                   "-v", f"NIXMOD_DRVS=nixmod:{drv_hash}", *qsub_args, "--",
                   f"{NIXMOD.parent}/python", "-I", "-c", _job_code(bob), str(manifest),
                   check=True).stdout.strip()


def _hanging_manifest(bob: UserSession) -> Path:
    """A manifest whose job step hangs: its environment file is a FIFO nobody writes, so
    a copy of nixmod's job given it really runs nixmod's job step, and waits there."""
    manifest = bob.home / f"manifest-{uuid.uuid4().hex[:8]}.json"
    bob.run("mkfifo", str(manifest.with_suffix(".env.json")), check=True)
    return manifest


def test_copies_of_nixmods_job_that_would_wait_for_ever_are_not_joined(alice, bob,
                                                                       test_channels):
    """Issue 24 item 2: bob copies nixmod's PBS job exactly for the drv alice is about to
    build, with a start in 2030 (state W), a cpu request no node has (ncpus=64), or a
    walltime longer than alice's. alice joins none of them and builds it herself."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_pbs(user, test_channels, nonce=nonce, counter=counter, sleep=1)
    drv = bob.run("nix-instantiate", str(test_channels / "builds.nix"), "-A", "pkg12",
                  check=True).stdout.strip()
    drv_hash = Path(drv).name.split("-")[0]
    manifest = bob.home / "manifest.json"
    fakes: list[str] = []
    try:
        fakes.append(_forged_build(bob, drv_hash, manifest, "-l", "walltime=00:05:00", "-a",
                                   "203001010000"))
        fakes.append(_forged_build(bob, drv_hash, manifest, "-l", "walltime=00:05:00", "-l",
                                   "select=1:ncpus=64"))
        # runs nixmod's job step (which hangs): its walltime is its only fault
        fakes.append(_forged_build(bob, drv_hash, _hanging_manifest(bob), "-l",
                                   "walltime=01:00:00"))
        assert qstat(fakes[0])[fakes[0]]["job_state"] == "W"
        proc = alice.nixmod("build", "pkg12", "--wait", "--json", timeout=240)
        assert proc.returncode == 0, proc.stderr
        record = records(proc)[0]
        assert record["joined"] is False and record["job"] not in fakes, record
        assert record["state"] == "built"
        assert "joining" not in proc.stderr, proc.stderr
        assert counter_lines(counter) == [f"pkg12 1.0 {nonce}"]
    finally:
        if fakes:
            bob.run(str(PBS_BIN / "qdel"), *fakes)


def test_a_joined_pbs_job_that_gets_held_is_left_and_built_once(alice, bob, test_channels):
    """Issue 24 item 2: alice joins bob's real build, queued behind his other one; bob then
    qholds it. At her next look alice builds it herself, once."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_pbs(user, test_channels, nonce=nonce, counter=counter, sleep=20)
    busy = records(bob.nixmod("build", "pkg13", "--json", check=True))[0]
    theirs = records(bob.nixmod("build", "slowpkg", "--json", check=True))[0]
    try:
        joined = alice.nixmod("build", "slowpkg", "--json", check=True)
        mine = records(joined)[0]
        assert mine["joined"] is True and mine["job"] == theirs["job"], joined.stderr
        bob.run(str(PBS_BIN / "qhold"), theirs["job"], check=True)
        done = wait_for_state(alice, mine["id"], {"built", "failed", "cancelled"}, timeout=180)
        assert done["state"] == "built" and done["joined"] is False, done
        assert done["job"] != theirs["job"] and done["module"] == "nix/slowpkg/3.1"
        assert qstat(theirs["job"])[theirs["job"]]["job_state"] == "H"   # never ran
        assert counter_lines(counter).count(f"slowpkg 3.1 {nonce}") == 1
    finally:
        bob.run(str(PBS_BIN / "qdel"), busy["job"], theirs["job"])


def test_a_joined_pbs_job_is_followed_at_most_the_walltime(alice, bob, test_channels):
    """Issue 24 item 2: a copy of nixmod's job with alice's own walltime (1 min), queued
    behind another such copy of bob's that runs and hangs for its whole walltime, then
    hangs itself: joined, but alice follows it for about one walltime, not two."""
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1, walltime="00:01:00")
    setup_pbs(bob, test_channels, nonce=nonce, counter=counter, sleep=1)
    hashes = [Path(bob.run("nix-instantiate", str(test_channels / "builds.nix"), "-A", attr,
                           check=True).stdout.strip()).name.split("-")[0]
              for attr in ("pkg14", "pkg15")]
    forged: list[str] = []
    try:
        forged.append(_forged_build(bob, hashes[0], _hanging_manifest(bob), "-l",
                                    "walltime=00:01:00"))
        forged.append(_forged_build(bob, hashes[1], _hanging_manifest(bob), "-l",
                                    "walltime=00:01:00", "-W", f"depend=afterany:{forged[0]}"))
        second = forged[1]
        started = time.monotonic()
        proc = alice.nixmod("build", "pkg15", "--wait", "--json", timeout=300)
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert f"joining job {second} of {bob.user}" in proc.stderr, proc.stderr
        record = records(proc)[0]
        assert record["state"] == "built" and record["joined"] is False, record
        assert f"not following job {second} any more (followed job" in proc.stderr
        assert "longer than the build time limit ([build.pbs].walltime 00:01:00)" in proc.stderr
        # one walltime of following plus her own short build; two would be 120 s and more
        assert 55 < took < 100, took
        assert counter_lines(counter) == [f"pkg15 1.0 {nonce}"]
    finally:
        if forged:
            bob.run(str(PBS_BIN / "qdel"), *forged)


def test_a_stack_on_pbs_is_one_submission(alice, test_channels):
    alice.extra_env["NIXMOD_TEST_NONCE"] = uuid.uuid4().hex[:12]
    alice.write_config(user_config(stack_channels(test_channels), "pbs", after=pbs_table()))
    root = alice.home / "site" / "modules"
    stack = alice.write("stack.toml", f"""\
[stack]
name = "pbs-site"
modules_root = "{root}"

[[package]]
name = "hello"
version = "2.10"

[[package]]
name = "ripgrep"

[[package]]
name = "samtools"
channel = "stacks-old"
""")
    proc = alice.nixmod("stack", "build", str(stack), "--wait", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["arrays"]) == 1, result["arrays"]
    array = result["arrays"][0]
    assert "[]" in array
    assert {re.sub(r"\[\d+\]", "[]", p["job"]) for p in result["packages"]} == {array}
    assert {p["state"] for p in result["packages"]} == {"built"}
    assert "submitted 3 build(s) to pbs" in proc.stderr
    # PBS agrees: one array, three subjobs, owned by alice
    jobs = qstat("-x", "-t", array)
    assert len([jid for jid in jobs if "[]" not in jid]) == 3
    shown = alice.bash(f"module use {root} && module load nix/ripgrep && rg --version", check=True)
    assert shown.returncode == 0


def test_extra_args_may_not_take_over_nixmods_qsub_options(alice, test_channels):
    nonce, counter = new_counter()
    for bad, word in ((['-N', 'x'], "-N"), (['-Wdepend=afterok:1'], "depend"),
                      (['-l', 'walltime=99:00:00'], "walltime"), (['run.sh'], "run.sh"),
                      (['-V'], "-V")):
        setup_pbs(alice, test_channels, nonce=nonce, counter=counter,
                  extra=f"extra_args = {json.dumps(bad)}")
        proc = alice.nixmod("build", "pkg12")
        assert proc.returncode == 2, (bad, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "build.pbs.extra_args" in lines[0] and word in lines[0], lines
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=0,
              extra='extra_args = ["-l", "place=free", "-p", "10"]')
    proc = alice.nixmod("build", "pkg12", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    job = records(proc)[0]["job"]
    assert finished_job(job)["Priority"] == 10


def test_doctor_checks_the_pbs_server_and_queue(alice, test_channels):
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter)
    proc = alice.nixmod("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["pbs"]["status"] == "ok" and checks["pbs"]["required"] is True
    assert "nixbuild" in checks["pbs"]["detail"]
    assert "pbs joining" not in checks and "pbs history" not in checks
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, queue="no-such-queue")
    proc = alice.nixmod("doctor")
    assert proc.returncode == 1, proc.stdout   # a required check failed
    line = next(line for line in proc.stdout.splitlines() if " pbs:" in line)
    assert line.startswith("[FAIL]") and "no-such-queue" in line and "[build.pbs] queue" in line


def test_the_tui_builds_screen_follows_a_pbs_build(alice, test_channels):
    """A real user submits from the TUI; the Builds screen shows the PBS job id and `built`."""
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=2)
    proc = run_userside(alice, "tui_build", "slowpkg", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shown["backend"] == "pbs" and shown["job"].split(".")[0].isdigit()
    screen = svg_text(shown["screenshot"])
    assert shown["job"] in screen and "built" in screen, screen
    assert counter_lines(counter) == [f"slowpkg 3.1 {nonce}"]


def _kill_pbs() -> None:
    """SIGKILL to every process in the rig's PBS network namespace (server, datastore,
    scheduler, comm, mom): to PBS, a power cut or a machine restored from a snapshot."""
    pids = subprocess.run(["ip", "netns", "pids", "pbsnet"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert pids, "PBS should be running in netns pbsnet before it is killed"
    kill_hard(pids, "PBS processes")


def _restart_pbs_losing_its_counter() -> None:
    """Kill PBS and start it with pbs.sh, twice: the second kill comes after up's qmgr
    settings and before any job, so PBS starts again at job number 0 (pbs.sh says why)."""
    for _ in range(2):
        _kill_pbs()
        up = subprocess.run(["bash", str(REPO / "tests/cluster/pbs.sh"), "up"],
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stderr


def test_a_pbs_killed_without_shutdown_builds_again_after_up(alice, test_channels):
    """OpenPBS 23.06 can come back from a kill at job number 0 with its history still holding
    those ids (pbs.sh says why), and every qsub then fails "Job with requested ID already
    exists": how a CI run on a machine restored after the rig's last up.sh failed. The
    second kill below comes right after up.sh, before any job: that case. pbs.sh up starts
    PBS without the jobs from before, and a user's build goes through."""
    before = subprocess.run(["runuser", "-u", alice.user, "--", str(PBS_BIN / "qsub"), "-N",
                             "nixmod-before-kill", "-q", QUEUE, "-o", "/dev/null", "--",
                             "/bin/true"], capture_output=True, text=True, timeout=60)
    assert before.returncode == 0, before.stderr
    finished_job(before.stdout.strip())
    _restart_pbs_losing_its_counter()
    listed = subprocess.run([str(PBS_BIN / "qselect"), "-x", "-N", "nixmod-before-kill"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.split() == []

    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=0.5)
    proc = alice.nixmod("build", "pkg3", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["name"], r["state"]) for r in records(proc)] == [("pkg3", "built")]
    assert counter_lines(counter) == [f"pkg3 1.0 {nonce}"]


def test_a_job_number_pbs_hands_out_again_is_not_taken_for_the_build(alice, test_channels):
    """After a restart that lost its counter, PBS gives builds' job numbers to other jobs
    (here alice's own plain jobs: the worst case, she may qdel them). A record does not
    follow such a job as if it were its build, and no cancel deletes it: not `nixmod
    cancel` (which looks first) nor the TUI's (which acts on the records last shown)."""
    _restart_pbs_losing_its_counter()
    manager = ["ip", "netns", "exec", "pbsnet", str(PBS_BIN / "qmgr"), "-c"]
    # the builds stay queued: a running job step would outlive the killed mom and finish
    subprocess.run([*manager, "set server scheduling = False"], check=True, timeout=60)
    nonce, counter = new_counter()
    setup_pbs(alice, test_channels, nonce=nonce, counter=counter, sleep=1)
    first = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    second = records(alice.nixmod("build", "pkg2", "--json", check=True))[0]
    _restart_pbs_losing_its_counter()    # scheduling is on again: pbs.sh sets it
    others = [alice.run(str(PBS_BIN / "qsub"), "-N", "not-a-build", "-q", QUEUE, "-o", "/dev/null",
                        "--", "/bin/sleep", "300", check=True).stdout.strip() for _ in range(2)]
    try:
        assert others == [first["job"], second["job"]], "PBS should hand the numbers out again"
        cancel_as_the_tui_does(alice, second["id"])
        looked = alice.nixmod("cancel", str(first["id"]))
        assert looked.returncode == 0, looked.stderr
        assert f"build {first['id']} had already ended (failed); nothing to cancel" in looked.stderr
        for other in others:
            assert qstat(other).get(other, {}).get("job_state") in ("Q", "R"), \
                f"a cancel deleted {other}, which was not a build"
        shown = {r["id"]: r for r in status(alice)}
        assert shown[second["id"]]["state"] == "cancelled"
        assert shown[first["id"]]["state"] == "failed", shown[first["id"]]
        assert "vanished" in shown[first["id"]]["error"]
        assert counter_lines(counter) == []
    finally:
        alice.run(str(PBS_BIN / "qdel"), *others)
