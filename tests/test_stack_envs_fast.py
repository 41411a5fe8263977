"""``[[environment]]`` in a stack file, checked without Nix: the fast tier's user on the demo dumps.

``stack check`` reads the file, resolves every package SPEC of every
environment against the saved catalog and names each mistake with its line
and its fix, as it does for ``[[package]]``. Building stacks with
environments on the rig is test_stacks_envs.py's.
"""

from __future__ import annotations

import json

from dump_channels import DUMPS, DumpHome

GOOD = """\
[stack]
name = "site-env"
modules_root = "{root}"

[[package]]
name = "hello"

[[environment]]
name = "sci"
packages = ["python3Packages.numpy-demo", "python3Packages.requests-demo", "jq-demo"]
default = true

[[environment]]
name = "old"
channel = "demo-2024"
packages = ["python3Packages.numpy-demo"]
"""

BAD = """\
[stack]
name = "site-env"
modules_root = "{root}"

[[environment]]
name = "sci"
packages = ["python3Packages.numpy-demo", "python3Packages.nmupy-demo"]
colour = "blue"

[[environment]]
name = "sci"
packages = ["hello"]

[[environment]]
packages = ["hello"]

[[environment]]
name = "strs"
packages = "python3Packages.numpy-demo"

[[environment]]
name = "old"
channel = "demo-2023"
packages = ["hello"]

[[environment]]
name = "../up"
packages = ["hello"]

[[environment]]
name = "none"
"""


def test_a_stack_with_environments_checks_ok_and_lists_them(dump_home: DumpHome) -> None:
    stack_file = dump_home.base / "stack.toml"
    stack_file.write_text(GOOD.format(root=dump_home.base / "site"))
    proc = dump_home.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: stack site-env, 1 packages, 2 environments" in proc.stdout
    report = json.loads(dump_home.nixmod("stack", "check", str(stack_file), "--json").stdout)
    envs = {e["name"]: e for e in report["environments"]}
    assert envs["sci"]["default"] is True and envs["sci"]["line"] == 8
    assert envs["sci"]["channel"] == "demo-2025"
    assert envs["sci"]["interpreter"] == "python3" and envs["old"]["interpreter"] == "python3"
    assert [p["name"] for p in envs["sci"]["packages"]] == [   # sorted by attribute, as planned
        "jq-demo", "python3Packages.numpy-demo", "python3Packages.requests-demo"]
    assert envs["old"]["channel"] == "demo-2024" and envs["old"]["default"] is False


def test_every_environment_mistake_is_named_with_its_line_and_fix(dump_home: DumpHome) -> None:
    stack_file = dump_home.base / "bad.toml"
    root = dump_home.base / "site"
    stack_file.write_text(BAD.format(root=root))
    proc = dump_home.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{stack_file}:7: environment sci: unknown package 'python3Packages.nmupy-demo'" in out
    assert f"{stack_file}:8: unknown key 'colour' in [[environment]]" in out
    assert f"{stack_file}:10: environment sci is listed twice (first at line 5)" in out
    assert f"{stack_file}:14: [[environment]] #3 has no name" in out
    assert f"{stack_file}:19: environment.packages must be a list of strings" in out
    assert f"{stack_file}:23: environment old: unknown channel 'demo-2023'" in out
    assert "did you mean 'demo-202" in out
    assert f"{stack_file}:27: environment name '../up' is not a plain name" in out
    assert f"{stack_file}:30: environment none has no packages" in out
    lines = out.splitlines()
    assert len(lines) == 8 and all("; fix: " in line for line in lines), out
    assert "Traceback" not in proc.stderr
    assert not root.exists()


MIXED = """\
[stack]
name = "site-mixed"
modules_root = "{root}"

[[environment]]
name = "ok"
packages = ["python313Packages.numpy", "python313Packages.scipy", "jq"]

[[environment]]
name = "mixed"
packages = ["python313Packages.numpy",
            "python314Packages.scipy"]
"""


def test_an_environment_of_two_interpreters_is_refused_naming_both(dump_home: DumpHome) -> None:
    """On real nixpkgs names: the planner's refusal, at the environment's packages line."""
    dump_home.write_config(("nixpkgs-26.11", DUMPS / "nixpkgs-26.11-envs.json"))
    stack_file = dump_home.base / "mixed.toml"
    stack_file.write_text(MIXED.format(root=dump_home.base / "site"))
    proc = dump_home.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{stack_file}:11: environment mixed: python313Packages.numpy "
                                  "and python314Packages.scipy need two interpreters"), proc.stdout
    assert len(proc.stdout.splitlines()) == 1, proc.stdout
