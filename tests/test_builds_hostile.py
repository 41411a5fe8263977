"""Other users' jobs are hostile input: joining is safe only when SLURM shows a real build.

Issue 15 items 1, 3 and the SLURM parts of 9, on the real rig as real
users: bob submits jobs that claim (in their comment) to build the drv alice
wants, and alice's nixmod must not follow them; a job that was real when
alice joined it and stops being so, or ends without the output, makes
alice's nixmod build the drv itself, once.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from builds_helpers import (counter_lines, new_counter, records, setup_builds, slurm_table,
                            status, wait_for_state)
from rig import REPO, VENV, run_userside

PARTITION = "nixbuild"


def _drv_hash(session, channels: Path, attr: str) -> str:
    """The hash of the drv ``attr`` evaluates to for this session (its nonce)."""
    drv = session.run("nix-instantiate", str(channels / "builds.nix"), "-A", attr,
                      check=True).stdout.strip()
    return Path(drv).name.split("-", 1)[0]


def _job_script() -> str:
    """The installed nixmod's batch script (what a genuine build job's Command starts with)."""
    return subprocess.run([str(VENV / "bin/python"), "-I", str(REPO / "tests/userside/installed.py"),
                           "slurm-job-script"], capture_output=True, text=True, check=True, cwd="/").stdout.strip()


def _sbatch(session, *args: str) -> str:
    proc = session.run("sbatch", "--parsable", "-o", "/dev/null", *args, check=True)
    return proc.stdout.strip().split(";")[0]


def _ours(session) -> list[str]:
    """Ids (array ids) of the session user's jobs still in the queue."""
    out = session.run("squeue", "-h", "-u", session.user, "-o", "%F", check=True).stdout
    return out.split()


def test_fake_jobs_claiming_the_drv_are_not_joined(alice, bob, test_channels):
    """bob's held / foreign-script / other-partition jobs with the right comment block nobody."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    target = _drv_hash(bob, test_channels, "pkg16")
    comment = f"nixmod:{target}"
    # the interpreter a genuine job names: the one the installed `nixmod` runs with
    script, python = _job_script(), (VENV / "bin/nixmod").read_text().splitlines()[0][2:].strip()
    fakes = [
        # the attack: held, name and comment right
        _sbatch(bob, "--hold", "-J", "nixmod-build", "--comment", comment, "-p", PARTITION,
                "--array=0", "--wrap", "sleep 600"),
        # not held, on the build partition, a lane's name, but not nixmod's job step
        _sbatch(bob, "-J", "nixmod-build-0", "--comment", comment, "-p", PARTITION,
                "--array=0", "--wrap", "sleep 600"),
        # nixmod's own batch script and arguments, but held
        _sbatch(bob, "--hold", "-J", "nixmod-build-1", "--comment", comment, "-p", PARTITION,
                "--array=0", "-t", "5", script, python, "/dev/null", target),
        # waiting for a start time that never comes
        _sbatch(bob, "--begin=now+1day", "-J", "nixmod-build-0", "--comment", comment, "-p",
                PARTITION, "--array=0", "-t", "5", script, python, "/dev/null", target),
        # another partition
        _sbatch(bob, "--hold", "-J", "nixmod-build-0", "--comment", comment, "-p", "compute",
                "--array=0", "-t", "5", script, python, "/dev/null", target),
    ]
    # everything right, but no time limit: it could keep a joiner waiting forever
    fakes.append(_sbatch(bob, f"--dependency=afterok:{fakes[0]}", "-J", "nixmod-build-1",
                         "--comment", comment, "-p", PARTITION, "--array=0", script, python,
                         "/dev/null", target))
    try:
        planned = alice.nixmod("build", "pkg16", "--wait", "--json", timeout=240)
        assert planned.returncode == 0, planned.stderr
        record = records(planned)[0]
        assert record["joined"] is False and record["state"] == "built", record
        assert record["job"].split("_")[0] not in fakes
        assert "joining" not in planned.stderr
        assert counter_lines(counter) == [f"pkg16 1.0 {nonce}"]
    finally:
        bob.run("scancel", *fakes)


def test_a_joined_job_that_gets_held_is_left_and_built_once(alice, bob, test_channels):
    """alice joins bob's real (pending) build; bob then holds it: alice builds it herself."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter,
                     sleep=30, max_concurrent=1)
    # bob's one lane is busy with pkg17, so his slowpkg job waits (singleton dependency)
    busy = records(bob.nixmod("build", "pkg17", "--json", check=True))[0]
    theirs = records(bob.nixmod("build", "slowpkg", "--json", check=True))[0]
    try:
        joined = alice.nixmod("build", "slowpkg", "--json", check=True)
        mine = records(joined)[0]
        assert mine["joined"] is True and mine["job"] == theirs["job"], mine
        assert f"joining job {theirs['job']} of {bob.user}" in joined.stderr
        # asking again: alice's own joined record is found, and it still names bob as the owner
        again = alice.nixmod("build", "slowpkg", "--json", check=True)
        assert f"joining job {theirs['job']} of {bob.user}" in again.stderr, again.stderr
        alice.nixmod("cancel", str(records(again)[0]["id"]), check=True)

        bob.run("scontrol", "hold", theirs["job"].split("_")[0], check=True)
        done = wait_for_state(alice, mine["id"], {"built", "failed", "cancelled"}, timeout=240)
        assert done["state"] == "built" and done["joined"] is False, done
        assert done["job"] != theirs["job"]
        assert done["module"] == "nix/slowpkg/3.1"
        assert counter_lines(counter).count(f"slowpkg 3.1 {nonce}") == 1
    finally:
        bob.run("scancel", busy["job"].split("_")[0], theirs["job"].split("_")[0])


def test_a_joined_job_that_ends_without_the_output_makes_the_joiner_build_it(alice, bob,
                                                                             test_channels):
    """bob cancels the build alice joined: alice's record builds it, it does not fail."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=20)
    theirs = records(bob.nixmod("build", "slowpkg", "--json", check=True))[0]
    mine = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert mine["joined"] is True and mine["job"] == theirs["job"]
    assert wait_for_state(bob, theirs["id"], {"running"})["state"] == "running"
    bob.nixmod("cancel", str(theirs["id"]), check=True)
    waited = alice.nixmod("status", "--watch", "--json", str(mine["id"]), timeout=240)
    assert waited.returncode == 0, waited.stderr
    done = records(waited)[0]
    assert done["state"] == "built" and done["joined"] is False, done
    assert "building it itself" in waited.stderr
    assert status(bob, theirs["id"])[0]["state"] == "cancelled"


def test_a_joined_record_follows_the_output_not_the_job(alice, bob, test_channels):
    """The output becomes valid while the joined job is still queued: alice's record is built."""
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter,
                     sleep=40, max_concurrent=1)
    busy = records(bob.nixmod("build", "pkg18", "--json", check=True))[0]
    theirs = records(bob.nixmod("build", "pkg19", "--json", check=True))[0]
    try:
        mine = records(alice.nixmod("build", "pkg19", "--json", check=True))[0]
        assert mine["joined"] is True and mine["state"] == "queued"
        # somebody realises the drv outside SLURM (here: carol at the daemon, as root)
        drv = alice.run("nix-instantiate", str(test_channels / "builds.nix"), "-A", "pkg19",
                        check=True).stdout.strip()
        subprocess.run(["nix-store", "--realise", drv], capture_output=True, check=True,
                       env={"PATH": "/usr/bin:/bin", "NIX_REMOTE": "daemon"}, timeout=120)
        assert theirs["job"].split("_")[0] in _ours(bob)   # bob's job has not run
        done = status(alice, mine["id"])[0]
        assert done["state"] == "built" and done["module"] == "nix/pkg19/1.0", done
    finally:
        bob.run("scancel", busy["job"].split("_")[0], theirs["job"].split("_")[0])


def test_a_joined_job_is_followed_at_most_the_time_limit(alice, bob, test_channels):
    """Issue 24 item 5: bob's copy of nixmod's job, with alice's own time limit (1 min),
    waits behind a 100 s blocker of his, then runs nixmod's batch script and hangs. alice
    joins it and follows it for about one time limit (pending counts), not three."""
    nonce, counter = new_counter()
    one_minute = slurm_table().replace('time = "00:10:00"', 'time = "00:01:00"')
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1,
                 scheduler=one_minute)
    setup_builds(bob, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    target = _drv_hash(bob, test_channels, "pkg20")
    script, python = _job_script(), (VENV / "bin/nixmod").read_text().splitlines()[0][2:].strip()
    # the batch script's job step hangs reading a manifest that is a FIFO nobody writes
    manifest = bob.home / "hanging-manifest.json"
    bob.run("rm", "-f", str(manifest), check=True)
    bob.run("mkfifo", str(manifest), check=True)
    # the blocker runs on the compute-only node: it takes no cpu from the build partition
    blocker = _sbatch(bob, "-p", "compute", "-w", "cn01", "-t", "5", "--wrap", "sleep 100")
    decoy = _sbatch(bob, f"--dependency=afterany:{blocker}", "-J", "nixmod-build-0",
                    "--comment", f"nixmod:{target}", "-p", PARTITION, "--array=0", "-t", "1",
                    script, python, str(manifest), target)
    try:
        started = time.monotonic()
        proc = alice.nixmod("build", "pkg20", "--wait", "--json", timeout=400)
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert f"joining job {decoy}_0 of {bob.user}" in proc.stderr, proc.stderr
        record = records(proc)[0]
        assert record["state"] == "built" and record["joined"] is False, record
        assert f"not following job {decoy}_0 any more (followed job" in proc.stderr
        assert "longer than the build time limit ([build.slurm].time 00:01:00)" in proc.stderr
        # one time limit of following plus her own short build; 100 s pending + 60 s running
        # is what it was
        assert 55 < took < 95, took
        assert counter_lines(counter) == [f"pkg20 1.0 {nonce}"]
    finally:
        bob.run("scancel", blocker, decoy)


# -- extra_args (15.3) ------------------------------------------------------------------------

def test_extra_args_cannot_take_over_nixmods_own_options_by_abbreviation(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    base = alice.config_path.read_text()
    for args, named in ((["--wra=sleep 600"], "--wrap"), (["--outp=/tmp/x"], "--output"),
                        (["--comm=nixmod:x"], "--comment"), (["--job-nam=x"], "--job-name"),
                        (["--depend", "afterok:1"], "--dependency"), (["-vJx"], "--job-name"),
                        (["--parti=compute"], "--partition"), (["--req"], "--requeue")):
        alice.write_config(base + f"extra_args = {json.dumps(args)}\n")
        proc = alice.nixmod("build", "pkg20")
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and "extra_args" in lines[0], (args, lines)
    assert _ours(alice) == []
    # options that are not nixmod's pass through to sbatch
    alice.write_config(base + 'extra_args = ["--nice=10", "--exclusive=user", "-s"]\n')
    built = alice.nixmod("build", "pkg20", "--wait", "--json", timeout=240)
    assert built.returncode == 0, built.stderr
    assert records(built)[0]["state"] == "built"


def test_the_extra_args_rule_is_sbatchs_own_abbreviation_rule(alice):
    """Against the installed sbatch's own option list: a word sbatch reads as one of nixmod's
    options is refused, one it reads as another option is not."""
    help_text = subprocess.run(["sbatch", "--help"], capture_output=True, text=True).stdout
    options = sorted({word.split("=")[0].split("[")[0].rstrip(",")
                      for word in help_text.split() if word.startswith("--") and len(word) > 3})
    ours = {"--job-name", "--comment", "--array", "--output", "--error", "--dependency",
            "--chdir", "--parsable", "--wrap", "--partition", "--requeue", "--no-requeue",
            "--hold"}
    assert ours <= set(options), ours - set(options)
    # every prefix sbatch resolves to exactly one option (getopt_long's rule)
    words = {}
    for option in options:
        for end in range(3, len(option) + 1):
            prefix = option[:end]
            matches = [o for o in options if o.startswith(prefix)]
            if prefix in options:
                matches = [prefix]
            if len(matches) == 1:
                words[prefix] = matches[0]
    proc = run_userside(alice, "sbatch_options", input="\n".join(words), check=True)
    verdict = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    for word, option in words.items():
        refused = verdict[word] != "-"
        assert refused == (option in ours), (word, option, verdict[word])
