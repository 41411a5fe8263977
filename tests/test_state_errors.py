"""Issue 15.8 on the real rig: a state dir or build database that cannot be used is one
clear line, said before any evaluation, and the advice never throws the user's records
away; a builds.db truncated to 0 bytes is said once and kept beside the new one."""

from __future__ import annotations

import subprocess
import uuid

from builds_helpers import new_counter, records, setup_builds, status
from conftest import SCRATCH, UserSession


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
    mount = SCRATCH / f"full-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
                   check=True)
    try:
        subprocess.run(["chown", f"{alice.user}:{alice.user}", str(mount)], check=True)
        state = mount / "state"
        _configure(alice, test_channels, state_dir=state)
        first = records(alice.nixmod("build", "pkg1", "--wait", "--json", check=True))[0]
        alice.run("dd", "if=/dev/zero", f"of={mount}/fill", "bs=64k")   # until ENOSPC
        for args in (["build", "pkg2", "--wait"], ["status"]):
            _one_line(alice.nixmod(*args), 1, f"the file system of state dir {state} is full",
                      "free some space there", "your build records are kept")
        alice.run("rm", f"{mount}/fill", check=True)
        assert [(r["id"], r["state"]) for r in status(alice)] == [(first["id"], "built")]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_truncated_builds_db_is_said_once_and_kept_beside_the_new_one(alice, test_channels):
    _configure(alice, test_channels)
    alice.nixmod("build", "pkg1", "--wait", check=True)
    state = alice.home / ".local/state/nixmod"
    alice.run("truncate", "-s", "0", str(state / "builds.db"), check=True)

    proc = alice.nixmod("status", "--json")
    assert proc.returncode == 0 and records(proc) == [], proc.stderr
    kept = sorted(state.glob("builds.db.damaged-*"))
    assert len(kept) == 1 and kept[0].stat().st_size == 0
    assert proc.stderr.strip().splitlines() == [
        f"nixmod: warning: build database {state}/builds.db was empty (0 bytes: truncated?); "
        f"kept it as {kept[0]} and started a new one, so earlier builds are not listed (their "
        "modules are kept)"]
    again = alice.nixmod("status")
    assert again.returncode == 0 and again.stderr == ""
    assert sorted(state.glob("builds.db.damaged-*")) == kept
    reused = records(alice.nixmod("build", "pkg1", "--json", check=True))[0]
    assert reused["state"] == "reused" and reused["module"] == "nix/pkg1/1.0"


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
