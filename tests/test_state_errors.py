"""Issue 15.8 on the real rig: a state dir or build database that cannot be used is one
clear line, said before any evaluation, and the advice never throws the user's records
away; a builds.db truncated to 0 bytes or damaged is refused as damage (issue 24.6)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from builds_helpers import counter_lines, new_counter, records, setup_builds, status
from rig import UserSession, small_tmpfs


def _configure(alice: UserSession, test_channels, state_dir=None) -> None:
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=0)
    if state_dir is not None:
        alice.write_config(alice.config_path.read_text().replace(
            "[build]\n", f'[build]\nstate_dir = "{state_dir}"\n'))


def _one_line(proc, code: int, *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    # one line, and nothing before it: the check comes before the catalog and evaluation
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "move it" not in lines[0] and "start a new one" not in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_read_only_builds_db_is_one_line_before_evaluation(alice, test_channels):
    _configure(alice, test_channels)
    alice.nixmod("status", check=True)
    db = alice.home / ".local/state/nixmod/builds.db"
    alice.run("chmod", "444", str(db), check=True)
    for args in (["build", "pkg1", "--wait"], ["status", "--json"], ["build", "--retry"]):
        proc = alice.nixmod(*args)
        _one_line(proc, 2, f"build database {db} is not writable by you (mode 444)",
                  f"chmod u+w {db}")
        assert proc.stdout == ""
    alice.run("chmod", "644", str(db), check=True)
    assert status(alice) == []


def test_an_unwritable_state_dir_keeps_its_records(alice, test_channels):
    _configure(alice, test_channels)
    first = records(alice.nixmod("build", "pkg1", "--wait", "--json", check=True))[0]
    state = alice.home / ".local/state/nixmod"
    alice.run("chmod", "500", str(state), check=True)
    for args in (["build", "pkg2"], ["status"]):
        _one_line(alice.nixmod(*args), 2, f"state dir {state} is not writable by you (mode 500)",
                  "your build records are there", f"chmod u+w {state}")
    alice.run("chmod", "700", str(state), check=True)
    assert [(r["id"], r["state"]) for r in status(alice)] == [(first["id"], "built")]


def test_a_full_disk_is_said_before_anything_and_keeps_the_records(alice, test_channels):
    """A real full file system: a small tmpfs (mounted by the suite) for the state dir."""
    with small_tmpfs(alice.user) as mount:
        state = mount / "state"
        _configure(alice, test_channels, state_dir=state)
        first = records(alice.nixmod("build", "pkg1", "--wait", "--json", check=True))[0]
        alice.run("dd", "if=/dev/zero", f"of={mount}/fill", "bs=64k")   # until ENOSPC
        for args in (["build", "pkg2", "--wait"], ["status"]):
            _one_line(alice.nixmod(*args), 1, f"the file system of state dir {state} is full",
                      "free some space there", "your build records are kept")
        alice.run("rm", f"{mount}/fill", check=True)
        assert [(r["id"], r["state"]) for r in status(alice)] == [(first["id"], "built")]


def test_a_truncated_builds_db_is_damage_not_an_empty_history(alice, test_channels):
    """Issue 24.6: a builds.db of 0 bytes is refused as damaged by every verb, and doctor
    says so, until the user moves it aside; it is never read as "no builds yet"."""
    _configure(alice, test_channels)
    alice.nixmod("build", "pkg1", "--wait", check=True)
    state = alice.home / ".local/state/nixmod"
    db = state / "builds.db"
    alice.run("truncate", "-s", "0", str(db), check=True)
    advice = f"keep it (sqlite3 {db} .recover may save the records) and move it aside"
    for args in (["status"], ["status", "--json"], ["build", "pkg2"]):
        proc = alice.nixmod(*args)
        assert proc.returncode == 1 and proc.stdout == "", (args, proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines() == [
            f"nixmod: build database {db} is damaged (0 bytes: truncated?); {advice} to start "
            "a new one (modules already written are kept)"], proc.stderr
    assert db.stat().st_size == 0 and sorted(p.name for p in state.glob("builds.db*")) == \
        ["builds.db"]                                    # nothing set aside or made behind it
    doctor = alice.nixmod("doctor")
    assert doctor.returncode == 1
    assert f"[FAIL] build database: {db} is damaged (0 bytes: truncated?) -> {advice}" \
        in doctor.stdout, doctor.stdout
    alice.run("mv", str(db), f"{db}.damaged", check=True)
    assert status(alice) == []
    reused = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    assert reused["state"] == "reused" and reused["module"] == "nix/pkg1/1.0"


def test_doctor_checks_the_build_database_page_by_page(alice, test_channels):
    """Issue 24.6: random bytes, and a database whose header is fine but whose table pages
    are not, are [FAIL] with the advice status gives; a whole one, or none yet, is ok."""
    _configure(alice, test_channels)
    db = alice.home / ".local/state/nixmod/builds.db"
    fresh = alice.nixmod("doctor")
    assert f"[ ok ] build database: {db} (none yet: the first build makes it)" in fresh.stdout
    alice.nixmod("build", "pkg1", "--wait", check=True)
    whole = alice.nixmod("doctor")
    assert f"[ ok ] build database: {db} (integrity check passed)" in whole.stdout, whole.stdout
    good = db.read_bytes()
    advice = f"-> keep it (sqlite3 {db} .recover may save the records) and move it aside"

    alice.run("dd", "if=/dev/urandom", f"of={db}", "bs=4096", "count=4", check=True)
    proc = alice.nixmod("doctor")
    assert proc.returncode == 1, proc.stdout
    assert f"[FAIL] build database: {db} is damaged (file is not a database) {advice}" \
        in proc.stdout, proc.stdout
    assert alice.nixmod("status").returncode == 1

    # a whole header, every page after the first overwritten: status may not meet it yet
    alice.write(".local/state/nixmod/builds.db", "")
    alice.run("python3", "-c", "import sys; open(sys.argv[1], 'wb').write(bytes.fromhex("
              f"sys.argv[2]) + b'\\xa5' * {len(good) - 4096})", str(db), good[:4096].hex(),
              check=True)
    proc = alice.nixmod("doctor")
    assert proc.returncode == 1, proc.stdout
    line = next(line for line in proc.stdout.splitlines() if "build database" in line)
    assert line.startswith(f"[FAIL] build database: {db} is damaged (") and advice in line, line


def test_a_disk_that_fills_during_a_local_build_says_no_space_left(alice, test_channels):
    """Issue 24.6: the state dir's file system (a small tmpfs) fills while one build runs and
    another waits for the lane. The waiting one cannot write its log nor its record: it
    ends failed saying "no space left on device", not "vanished"; the running one, whose
    output is valid, is built; both show once there is room again, and --retry builds."""
    with small_tmpfs(alice.user) as mount:
        state = mount / "state"
        nonce, counter = new_counter()
        setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter,
                     sleep=8, max_concurrent=1)
        alice.write_config(alice.config_path.read_text().replace(
            "[build]\n", f'[build]\nstate_dir = "{state}"\n'))
        submitted = records(alice.nixmod("build", "slowpkg", "pkg2", "--json", check=True))
        deadline = time.monotonic() + 60
        while not any(r["state"] == "running" for r in status(alice)):   # one has the lane
            assert time.monotonic() < deadline, status(alice)
            time.sleep(0.2)
        running, waiting = sorted(status(alice), key=lambda r: r["state"] != "running")
        assert waiting["state"] == "queued" and len(submitted) == 2, waiting
        # another writer fills the file system and takes any page freed
        fill = ("import os, sys, time\n"
                "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
                "while True:\n"
                "    try:\n"
                "        os.write(fd, bytes(4096))\n"
                "    except OSError:\n"
                "        time.sleep(0.02)\n")
        filler = subprocess.Popen(["runuser", "-u", alice.user, "--", "python3", "-c", fill,
                                   f"{mount}/fill"], start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while alice.run("pgrep", "-u", alice.user, "-f", "nixmod.builds.step").returncode == 0:
                assert time.monotonic() < deadline, "the job steps did not end"
                time.sleep(0.5)
        finally:
            os.killpg(filler.pid, signal.SIGKILL)   # runuser and the writer: its own session
            filler.wait()
        alice.run("rm", f"{mount}/fill", check=True)
        shown = {r["id"]: r for r in status(alice)}
        assert shown[running["id"]]["state"] == "built", shown[running["id"]]
        failed = shown[waiting["id"]]
        assert failed["state"] == "failed", (failed, counter_lines(counter))
        assert failed["error"] == (
            f"no space left on device in state dir {state}: the build's log and record could "
            "not be written; free some space there and run 'nixmod build --retry'"), failed
        retried = alice.nixmod("build", "--retry", "--wait", "--json")
        assert retried.returncode == 0, retried.stderr
        assert status(alice, waiting["id"])[0]["state"] == "built"


def test_a_builds_db_from_before_joined_at_keeps_its_records(alice, test_channels):
    """Issue 24: records gained ``joined_at`` (when a request joined another user's job). A
    builds.db written before it has no such column; opening it adds the column and keeps
    every record."""
    _configure(alice, test_channels)
    first = records(alice.nixmod("build", "pkg1", "--wait", "--json", check=True))[0]
    db = alice.home / ".local/state/nixmod/builds.db"
    drop = ("import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1])\n"
            "db.execute('ALTER TABLE builds DROP COLUMN joined_at')\n"
            "db.commit()\n"
            "print(sorted(r[1] for r in db.execute('PRAGMA table_info(builds)')))\n")
    before = alice.run("/usr/bin/python3", "-c", drop, str(db), check=True).stdout
    assert "joined_at" not in before and "'node'" in before
    shown = status(alice)
    assert [(r["id"], r["state"], r["joined_at"]) for r in shown] == [(first["id"], "built", None)]
    again = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    assert again["state"] == "reused" and again["joined_at"] is None
