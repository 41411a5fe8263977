"""``[[environment]]`` in a site stack on the real rig: staff (first test user) build it on
SLURM with the stack's packages, another user loads it; a second build submits nothing;
other packages make the next generation, the earlier one stays loadable; an environment
the file drops is removed. The channel is tests/channels/envs.nix (the demo's nixpkgs
shape) with a nonce and a counter of builder runs, as test_envs.py's.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from builds_helpers import counter_lines, new_counter, slurm_table, user_config
from rig import ALICE, BUILD_PARTITION, UserSession, new_session

NUMPY, REQUESTS = "python3Packages.numpy-demo", "python3Packages.requests-demo"
STACK = """\
[stack]
name = "site-envs"
modules_root = "{root}"

[[package]]
name = "hello"

[[environment]]
name = "sci"
packages = [{packages}]
default = true
"""


def stack_text(root: Path, *packages: str, extra: str = "") -> str:
    return STACK.format(root=root, packages=", ".join(f'"{p}"' for p in packages)) + extra


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.strip(), f"exit {proc.returncode}; stderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


@dataclass
class BuiltStack:
    alice: UserSession
    stack_file: Path
    root: Path
    nonce: str
    counter: Path
    first: dict


def env_builds(built: BuiltStack) -> int:
    return counter_lines(built.counter).count(f"nixmod-env {built.nonce}")


@pytest.fixture(scope="module")
def built(test_channels) -> BuiltStack:
    """One stack build (hello and environment sci of numpy and requests) with --wait on SLURM."""
    alice = new_session(ALICE, "stackenvs")
    nonce, counter = new_counter()
    alice.extra_env.update({"NIXMOD_TEST_NONCE": nonce, "NIXMOD_TEST_COUNTER": str(counter)})
    alice.write_config(user_config({"envtest": test_channels / "envs.nix"}, "slurm",
                                   after=slurm_table(BUILD_PARTITION)))
    root = alice.home / "site" / "modules"
    stack_file = alice.write("stack.toml", stack_text(root, NUMPY, REQUESTS))
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return BuiltStack(alice, stack_file, root, nonce, counter, _json(proc))


def test_stack_build_builds_the_environment_with_the_packages_in_one_submission(built, bob):
    [env] = built.first["environments"]
    assert (env["name"], env["version"], env["kind"]) == ("sci", "1", "environment")
    assert env["state"] == "built" and env["module"] == "nixenv/sci/1" and env["default"] is True
    assert [p["state"] for p in built.first["packages"]] == ["built"]
    # one submission: one job array per lane used (max_concurrent = 2 lanes), the two builds
    # in them, as a stack of two packages would be
    assert len(built.first["arrays"]) == 2 and env["job"].split("_")[0] in built.first["arrays"]
    assert built.first["packages"][0]["job"].split("_")[0] in built.first["arrays"]
    assert env_builds(built) == 1
    assert 'module_version("nixenv/sci/1", "default")' in (built.root / "nixenv/sci/.modulerc.lua").read_text()
    roots = sorted((built.root.parent / "gcroots/site-envs/.environments/sci/1").glob("result*"))
    assert roots and all(r.resolve().is_dir() for r in roots)
    # another user loads the stack's environment and imports both packages
    proc = bob.bash(f"module use {built.root}\nmodule load nixenv/sci || exit 3\n"
                    "python3 -c 'import numpy_demo, requests_demo; print(\"both\")'")
    assert proc.stdout.strip() == "both", (proc.stdout, proc.stderr)


def test_a_second_build_submits_nothing_and_status_covers_the_environment(built):
    proc = built.alice.nixmod("stack", "build", str(built.stack_file), "--json")
    result = _json(proc)
    assert result["arrays"] == [] and result["submitted"] == 0, result
    [env] = result["environments"]
    assert (env["action"], env["version"], env["module"]) == ("up to date", "1", "nixenv/sci/1")
    assert "nothing to submit" in proc.stderr and env_builds(built) == 1

    status = built.alice.nixmod("stack", "status", str(built.stack_file))
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("nixenv/sci"))
    assert row.split()[:4] == ["nixenv/sci", "1", "(default)", "envtest"] and "built" in row, row
    rows = _json(built.alice.nixmod("stack", "status", str(built.stack_file), "--json"))
    [env_row] = [r for r in rows if r["kind"] == "environment"]
    assert env_row["state"] == "built" and env_row["out"].startswith("/nix/store/")
    checked = _json(built.alice.nixmod("stack", "check", str(built.stack_file), "--json"))
    assert [e["name"] for e in checked["environments"]] == ["sci"]

    # the stack's lock carries the environment; building the stack from it submits nothing
    locked = built.alice.nixmod("lock", "--stack", str(built.stack_file), "-o", "stack.lock")
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((built.alice.home / "stack.lock").read_text())
    [env_lock] = lock["environments"]
    assert env_lock["name"] == "sci" and env_lock["outputs"]["out"] == env_row["out"]
    assert [p["attr"] for p in env_lock["packages"]] == [NUMPY, REQUESTS]
    relocked = _json(built.alice.nixmod("stack", "build", str(built.stack_file), "--lock",
                                        "stack.lock", "--json"))
    assert relocked["submitted"] == 0 and relocked["environments"][0]["action"] == "up to date"
    # a lock whose environment evaluates to another drv: exit 2, named, nothing submitted
    env_lock["drv"] = "/nix/store/" + "a" * 32 + "-nixmod-env.drv"
    built.alice.write("moved.lock", json.dumps(lock))
    moved = built.alice.nixmod("stack", "build", str(built.stack_file), "--lock", "moved.lock")
    assert moved.returncode == 2 and "environment sci: locked /nix/store/aaaa" in moved.stderr, \
        moved.stderr


def test_other_packages_make_the_next_generation_and_a_dropped_environment_goes(built, bob):
    built.alice.write("stack.toml", stack_text(built.root, NUMPY, "hello"))
    result = _json(built.alice.nixmod("stack", "build", str(built.stack_file), "--wait", "--json",
                                      timeout=600))
    [env] = result["environments"]
    assert (env["version"], env["state"], env["module"]) == ("2", "built", "nixenv/sci/2"), env
    imports = ("python3 -c 'import requests_demo' 2>/dev/null && echo requests || echo 'no requests'")
    newest = bob.bash(f"module use {built.root}\nmodule load nixenv/sci || exit 3\n{imports}")
    assert newest.stdout.strip() == "no requests", (newest.stdout, newest.stderr)
    oldest = bob.bash(f"module use {built.root}\nmodule load nixenv/sci/1 || exit 3\n{imports}")
    assert oldest.stdout.strip() == "requests", (oldest.stdout, oldest.stderr)

    # the environment leaves the file: all its generations go, the package stays
    built.alice.write("stack.toml", STACK.format(root=built.root, packages="").split("[[environment]]")[0])
    proc = built.alice.nixmod("stack", "build", str(built.stack_file))
    assert proc.returncode == 0, proc.stderr
    assert "nixenv/sci/1: removed" in proc.stderr and "nixenv/sci/2: removed" in proc.stderr
    assert not list((built.root / "nixenv").glob("sci/*.lua"))
    assert (built.root / "nix/hello").is_dir()
