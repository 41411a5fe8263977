"""The local backend (the embedded default): detached workers, lane-lock throttle, cancel."""

from __future__ import annotations

import json
import time

from builds_helpers import (counter_lines, new_counter, records, setup_builds, status,
                            wait_for_state)


def test_local_build_then_reuse_module_and_gc_root(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=1)
    built = records(alice.nixmod("build", "pkg1", "--wait", "--json", check=True))[0]
    assert built["state"] == "built" and built["module"] == "nix/pkg1/1.0"
    root = alice.home / ".local/state/nixmod/gcroots/pkg1/1.0/result"
    assert root.is_symlink() and str(root.readlink()) == built["out"]

    again = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    assert again["state"] == "reused" and again["job"] is None
    assert again["module"] == "nix/pkg1/1.0"
    assert len(counter_lines(counter)) == 1

    log = json.loads(alice.nixmod("logs", str(built["id"]), "--json", check=True).stdout)
    assert log["id"] == built["id"] and "building pkg1 1.0" in log["text"]
    ended = alice.nixmod("cancel", str(built["id"]), check=True)
    assert f"build {built['id']} had already ended (built); nothing to cancel" in ended.stderr
    assert status(alice, built["id"])[0]["state"] == "built"
    shown = alice.bash("module use ~/.local/share/nixmod/modules && module load nix/pkg1 && pkg1",
                       check=True)
    assert "pkg1 1.0" in shown.stdout


def test_local_throttle_runs_two_of_four_at_a_time(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=2,
                 max_concurrent=2)
    submitted = records(alice.nixmod("build", "pkg2", "pkg3", "pkg4", "pkg5", "--json",
                                     check=True))
    most = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [r["state"] for r in status(alice)]
        most = max(most, states.count("running"))
        if all(s in ("built", "failed", "cancelled") for s in states):
            break
        time.sleep(0.2)
    assert most == 2
    assert [r["state"] for r in status(alice, *[r["id"] for r in submitted])] == ["built"] * 4


def test_local_cancel_kills_the_worker(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=60)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    cancelled = records(alice.nixmod("cancel", str(record["id"]), "--json", check=True))[0]
    assert cancelled["state"] == "cancelled"
    pid = int(record["job"].split(":")[1])
    deadline = time.monotonic() + 20
    while alice.run("kill", "-0", str(pid)).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alice.run("kill", "-0", str(pid)).returncode != 0, "the worker is still alive"
    assert status(alice, record["id"])[0]["state"] == "cancelled"


def test_demo_broken_package_fails_with_its_log_tail(alice):
    proc = alice.nixmod("--demo", "build", "broken", "--wait", "--json")
    assert proc.returncode == 1
    record = json.loads(proc.stdout)[0]
    assert record["state"] == "failed" and "missing frobnicator" in record["error"]
    assert "missing frobnicator" in alice.nixmod("--demo", "logs", str(record["id"]),
                                                 check=True).stdout


def test_bad_ids_are_one_line_user_errors(alice):
    for args in (["status", "abc"], ["logs", "42"], ["cancel", "7"], ["build"]):
        proc = alice.nixmod(*args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_worker_killed_without_exit_record_does_not_stay_running(alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=60)
    record = records(alice.nixmod("build", "slowpkg", "--json", check=True))[0]
    assert wait_for_state(alice, record["id"], {"running"})["state"] == "running"
    pid = record["job"].split(":")[1]
    alice.run("kill", "-s", "KILL", "--", f"-{pid}", check=True)   # whole session, no last word
    done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, timeout=30)
    assert done["state"] == "failed" and "vanished" in done["error"]


def test_unusable_state_dir_or_damaged_database_is_one_line(alice, test_channels):
    """A state_dir the user cannot write is a config error (exit 2, naming the key); a
    damaged builds.db is one line naming the file (exit 1); never a traceback."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    config = alice.config_path.read_text()
    alice.write_config(config.replace("[build]\n", '[build]\nstate_dir = "/root/nixmod-state"\n'))
    for args in (["status"], ["build", "pkg1"], ["cancel", "1"]):
        proc = alice.nixmod(*args, "--json")
        assert proc.returncode == 2 and proc.stdout == "", (args, proc.stderr)
        error = proc.stderr.strip().splitlines()[-1]
        assert "/root/nixmod-state" in error and "[build] state_dir" in error, proc.stderr
        assert "Traceback" not in proc.stderr

    damaged = alice.home / "damaged"
    alice.write("damaged/builds.db", "this is not an SQLite database\n")
    alice.write_config(config.replace("[build]\n", f'[build]\nstate_dir = "{damaged}"\n'))
    proc = alice.nixmod("status")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"nixmod: build database {damaged}/builds.db is damaged (file is not a database); keep "
        f"it (sqlite3 {damaged}/builds.db .recover may save the records) and move it aside to "
        "start a new one (modules already written are kept)"]
