"""Environments in locks, ``build --lock``, ``export`` and ``import``, as real users on the rig.

alice makes environment sci (tests/channels/envs.nix, a fresh nonce, the local backend),
locks it, builds the lock again (nothing new), is refused a lock whose drv differs,
exports a signed bundle; the output is deleted; bob imports the bundle and loads the
environment, and no builder runs again.
"""

from __future__ import annotations

import json
import subprocess

from builds_helpers import counter_lines, new_counter
from test_envs import NUMPY, REQUESTS, env_builds, load, setup_env_user
from test_repro import give_key, is_valid, narinfo, one_line_error, store_hash


def env_list(session) -> list[str]:
    return [g["module"] for g in json.loads(session.nixmod("env", "list", "--json", check=True).stdout)]


def test_lock_build_export_and_import_carry_environments(alice, bob, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    made = alice.nixmod("env", "create", "sci", NUMPY, REQUESTS, "--wait", "--json", timeout=300)
    assert made.returncode == 0, made.stderr
    [build] = json.loads(made.stdout)["builds"]
    out, drv = build["out"], build["drv"]
    assert build["state"] == "built" and env_builds(counter).count(f"nixmod-env {nonce}") == 1

    # the lock: an environments list beside packages, SPEC's fields
    locked = alice.nixmod("lock", "-o", "lock.json")
    assert locked.returncode == 0, locked.stderr
    assert "locked 0 package(s) and 1 environment(s)" in locked.stderr
    lock = json.loads((alice.home / "lock.json").read_text())
    assert lock["packages"] == []
    [env] = lock["environments"]
    assert {k: env[k] for k in ("name", "channel", "drv", "outputs")} == {
        "name": "sci", "channel": "envtest", "drv": drv, "outputs": {"out": out}}
    assert [(p["attr"], p["version"]) for p in env["packages"]] == [(NUMPY, "2.1.0"),
                                                                  (REQUESTS, "2.32.3")]
    assert env["nar_hash"] == {"out": store_hash(out)}
    assert "envtest" in lock["channels"]
    named = json.loads(alice.nixmod("lock", "nixenv/sci", check=True).stdout)
    assert named["environments"] == lock["environments"]

    # building the lock again: the newest generation holds it, no new generation
    again = alice.nixmod("build", "--lock", "lock.json", "--wait")
    assert again.returncode == 0, again.stderr
    assert "nixenv/sci: up to date" in again.stderr and env_list(alice) == ["nixenv/sci/1"]

    # a lock whose drv is not what the members evaluate to: exit 2, named, nothing submitted
    other = "/nix/store/" + "a" * 32 + "-nixmod-env.drv"
    alice.write("moved.json", json.dumps({**lock, "environments": [{**env, "drv": other}]}))
    alice.nixmod("env", "remove", "sci", check=True)
    moved = alice.nixmod("build", "--lock", "moved.json")
    assert moved.returncode == 2, moved.stderr
    line = one_line_error(moved)
    assert f"environment sci: locked {other}, evaluated {drv}" in line and "nothing was submitted" in line
    assert env_list(alice) == []

    # the lock brings it back: generation 1 again, the same store path, no builder
    back = alice.nixmod("build", "--lock", "lock.json", "--wait", "--json")
    assert back.returncode == 0, back.stderr
    assert env_list(alice) == ["nixenv/sci/1"]
    assert json.loads(back.stdout)[0]["out"] == out

    # export, then the environment goes and root deletes its output
    key = give_key(alice)
    exported = alice.nixmod("export", "lock.json", "bundle", "--key", str(key))
    assert exported.returncode == 0, exported.stderr
    bundle = alice.home / "bundle"
    assert "Sig: nixmod-rig-1:" in narinfo(bundle, out).read_text()
    alice.nixmod("env", "remove", "sci", check=True)
    deleted = subprocess.run(["nix-store", "--delete", out], capture_output=True, text=True)
    assert deleted.returncode == 0, deleted.stderr
    assert not is_valid(out)

    # bob imports it: the module, the GC root, the imports work; no builder ran
    setup_env_user(bob, test_channels, backend="local", nonce=nonce, counter=counter)
    imported = bob.nixmod("import", str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == ["nixenv/sci/1"]
    assert is_valid(out) and store_hash(out) == env["nar_hash"]["out"]
    root = bob.home / ".local/state/nixmod/gcroots/.environments/sci/1/result"
    assert root.is_symlink() and str(root.readlink()) == out
    ran = load(bob, "nixenv/sci", "python3 -c 'import numpy_demo, requests_demo; print(\"both\")'")
    assert ran.stdout.strip() == "both", (ran.stdout, ran.stderr)
    assert env_builds(counter).count(f"nixmod-env {nonce}") == 1, counter_lines(counter)
    shown = json.loads(bob.nixmod("env", "show", "sci", "--json", check=True).stdout)
    assert [p["attr"] for p in shown[0]["packages"]] == [NUMPY, REQUESTS]
    # verify: the generation rebuilt with --check, compared
    verified = bob.nixmod("verify", "nixenv/sci/1", "--json")
    assert verified.returncode == 0, verified.stderr
    assert [(r["module"], r["output"], r["result"]) for r in json.loads(verified.stdout)] == [
        ("nixenv/sci/1", "out", "reproducible")]
    # importing again adds no generation
    assert bob.nixmod("import", str(bundle), check=True).stdout.strip() == ""
