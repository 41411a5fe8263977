"""Site stacks on the real rig: staff (nmalice) check and build a stack on SLURM,
another user (nmbob) loads what it published.

The stack mirrors the demo packages over two channels (tests/channels/stacks-*.nix),
with a fresh nonce per module so every derivation really builds, and `broken`,
whose builder always fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from builds_helpers import slurm_table, stack_channels, user_config
from rig import ALICE, UserSession, new_session

STACK = """\
[stack]
name = "site-test"
modules_root = "{root}"

[[package]]
name = "hello"
version = "2.10"
default = true

[[package]]
name = "hello"

[[package]]
name = "ripgrep"

[[package]]
name = "samtools"
channel = "stacks-old"

[[package]]
name = "broken"
"""


def _configure(session: UserSession, channels: Path) -> None:
    session.extra_env["NIXMOD_TEST_NONCE"] = uuid.uuid4().hex[:12]
    session.write_config(user_config(stack_channels(channels), "slurm", after=slurm_table()))


def _json(proc: subprocess.CompletedProcess[str]):
    assert proc.stdout.strip(), f"no JSON on stdout (exit {proc.returncode}); stderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def _arrays_in_slurm(session: UserSession) -> set[str]:
    """Job arrays SLURM itself remembers (MinJobAge) whose work dir is this user's state dir:
    an independent count of the sbatch calls nixmod made for this session."""
    state_dir = session.home / ".local/state/nixmod"
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, encoding="utf-8",
                         errors="replace").stdout   # other users' jobs may hold any bytes
    arrays = set()
    for line in out.splitlines():
        workdir = re.search(r"\bWorkDir=(\S+)", line)
        if workdir and Path(workdir.group(1)) == state_dir:
            arrays.add(re.search(r"\bArrayJobId=(\d+)", line).group(1))
    return arrays


@dataclass
class BuiltStack:
    alice: UserSession
    stack_file: Path
    root: Path
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def built(test_channels) -> BuiltStack:
    """One stack build with --wait, shared by the tests that look at its outcome."""
    alice = new_session(ALICE, "stacks")
    _configure(alice, test_channels)
    root = alice.home / "site" / "modules"
    stack_file = alice.write("stack.toml", STACK.format(root=root))
    first = alice.nixmod("stack", "build", str(stack_file), "--wait", "--json", timeout=600)
    return BuiltStack(alice=alice, stack_file=stack_file, root=root, first=first)


def _by_name(result: dict) -> dict[tuple[str, str], dict]:
    return {(p["name"], p["version"]): p for p in result["packages"]}


def test_stack_builds_in_one_sbatch_and_reports_the_failure(built):
    assert built.first.returncode == 1, built.first.stderr   # broken failed: operation failed
    result = _json(built.first)
    packages = _by_name(result)
    assert set(packages) == {("hello", "2.10"), ("hello", "2.12.1"), ("ripgrep", "14.1.0"),
                             ("samtools", "1.17"), ("broken", "1.1")}
    for key, package in packages.items():
        if key[0] != "broken":
            assert package["state"] == "built" and package["module"] == f"nix/{key[0]}/{key[1]}"
    assert packages[("broken", "1.1")]["state"] == "failed"
    assert "frobnicator" in packages[("broken", "1.1")]["error"]
    assert result["ok"] is False and result["removed"] == []
    # one sbatch per lane used (the default max_concurrent = 2 lanes): nixmod says so, and
    # SLURM agrees
    assert len(result["arrays"]) == 2
    assert _arrays_in_slurm(built.alice) == set(result["arrays"])
    assert {p["job"].split("_")[0] for p in result["packages"]} == set(result["arrays"])
    assert "submitted 5 build(s) to slurm" in built.first.stderr


def test_failure_is_reported_clearly_in_text(built):
    proc = built.alice.nixmod("stack", "build", str(built.stack_file))
    assert proc.returncode == 1
    assert re.search(r"^broken\s+1\.1\s+stacks-new\s+failed", proc.stdout, re.M), proc.stdout
    assert "FAILED broken 1.1" in proc.stdout and "frobnicator" in proc.stdout
    assert "broken 1.1: failed earlier" in proc.stderr and "--retry" in proc.stderr


def test_another_user_loads_the_published_modules_with_defaults(built, bob):
    script = f"""
module use {built.root}
module load nix/hello && hello
module unload nix/hello
module load nix/hello/2.12.1 && hello
module load nix/ripgrep && rg
module avail 2>&1
"""
    proc = bob.bash(script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["hello 2.10", "hello 2.12.1", "rg 14.1.0"]   # 2.10 is the stack's default
    assert "nix/broken" not in proc.stdout + proc.stderr
    modulefile = built.root / "nix/hello/2.10.lua"
    assert bob.run("cat", str(modulefile)).returncode == 0


def test_gc_roots_of_the_stack_live_in_one_place(built):
    gcroots = built.root.parent / "gcroots" / "site-test"
    roots = sorted(gcroots.glob("*/*/result"))   # <NAME>/<version>/result: names cannot collide
    names = [f"{p.parent.parent.name}-{p.parent.name}" for p in roots]
    assert names == ["hello-2.10", "hello-2.12.1", "ripgrep-14.1.0", "samtools-1.17"]
    assert all(p.resolve().is_dir() and str(p.resolve()).startswith("/nix/store/") for p in roots)


def test_second_build_submits_nothing_and_says_so(built):
    before = _arrays_in_slurm(built.alice)
    proc = built.alice.nixmod("stack", "build", str(built.stack_file), "--json")
    result = _json(proc)
    assert result["arrays"] == [] and result["submitted"] == 0
    assert "nothing to submit" in proc.stderr
    assert {p["action"] for p in result["packages"]} == {"up to date", "failed earlier"}
    assert _arrays_in_slurm(built.alice) == before


def test_status_shows_every_package(built):
    proc = built.alice.nixmod("stack", "status", str(built.stack_file))
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "CHANNEL", "STATE", "JOB", "MODULE", "STORE", "PATH"]
    rows = lines[:5]
    assert lines[5].startswith("FAILED broken 1.1") and "frobnicator" in proc.stdout
    hello = next(r for r in rows if r.startswith("hello") and "2.10" in r)
    assert "(default)" in hello and "nix/hello/2.10" in hello and "/nix/store/" in hello
    rows_json = _json(built.alice.nixmod("stack", "status", str(built.stack_file), "--json"))
    states = {(r["name"], r["version"]): r["state"] for r in rows_json}
    assert states[("broken", "1.1")] == "failed" and states[("samtools", "1.17")] == "built"
    assert all(r["job"] for r in rows_json)


def test_removing_a_package_from_the_file_removes_its_module(built, bob, test_channels):
    """On its own copy of the stack (own HOME and tree), so the shared ``built`` stays as built.

    The copy uses the same nonce, so its drvs are the ones ``built`` made: every package is
    reused, nothing is submitted. ``broken`` is left out, so every build here succeeds.
    """
    alice = new_session(ALICE, "stacks-removal")
    _configure(alice, test_channels)
    alice.extra_env["NIXMOD_TEST_NONCE"] = built.alice.extra_env["NIXMOD_TEST_NONCE"]
    root = alice.home / "site" / "modules"
    full = STACK.format(root=root).replace('[[package]]\nname = "broken"\n', "")
    stack_file = alice.write("stack.toml", full)
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert {p["action"] for p in _json(proc)["packages"]} == {"reuse"}, proc.stdout
    assert (root / "nix/samtools/1.17.lua").exists()

    text = full.replace('[[package]]\nname = "samtools"\nchannel = "stacks-old"\n\n', "")
    alice.write("stack.toml", text)
    proc = alice.nixmod("stack", "build", str(stack_file))
    assert proc.returncode == 0, proc.stderr
    assert "nix/samtools/1.17: removed (no longer in stack.toml)" in proc.stderr
    assert "1 module(s) removed" in proc.stdout
    assert not (root / "nix/samtools/1.17.lua").exists()
    assert not (root.parent / "gcroots/site-test/samtools").exists()
    avail = bob.bash(f"module use {root}; module -t avail 2>&1").stdout
    assert "nix/samtools" not in avail and "nix/hello/2.10" in avail

    # no package marked default any more: the newest version is what loads again
    alice.write("stack.toml", text.replace("default = true\n", ""))
    proc = alice.nixmod("stack", "build", str(stack_file))
    assert proc.returncode == 0, proc.stderr
    assert "hello: no default any more" in proc.stderr
    loaded = bob.bash(f"module use {root}; module load nix/hello; hello").stdout
    assert loaded.strip().startswith("hello 2.12.1"), loaded

    # the shared stack was not touched
    assert (built.root / "nix/samtools/1.17.lua").exists()


# -- stack check: every problem at once, nothing written -----------------------------------

BAD_STACK = """\
[stack]
name = "site-bad"
modules_root = "{root}"
colour = "blue"

[[package]]
name = "hello"
default = true

[[package]]
name = "hello"
version = "2.10"
default = true

[[package]]
name = "helo"

[[package]]
name = "samtools"
versoin = "1.17"

[[package]]
name = "samtools"
version = "1.18"

[[package]]
name = "ripgrep"
channel = "stacks-older"

[[package]]
version = "1.0"
"""


def test_check_reports_every_problem_with_its_line_and_fix(alice, test_channels):
    _configure(alice, test_channels)
    root = alice.home / "site" / "modules"
    stack_file = alice.write("bad.toml", BAD_STACK.format(root=root))
    proc = alice.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert f"{stack_file}:4: unknown key 'colour' in [stack]" in proc.stdout
    assert f"{stack_file}:13: two defaults for hello (the other at line 8)" in proc.stdout
    assert f"{stack_file}:16: unknown package 'helo'; did you mean: hello" in proc.stdout
    assert f"{stack_file}:20: unknown key 'versoin' in [[package]]; fix: remove it or rename it " \
           "(did you mean 'version'?)" in proc.stdout
    assert f"{stack_file}:24: samtools has no version '1.18'" in proc.stdout
    assert "fix: use version = '1.19'" in proc.stdout
    assert re.search(rf"{stack_file}:28: .*unknown channel 'stacks-older'.*did you mean 'stacks-old'",
                     proc.stdout)
    assert f"{stack_file}:30: [[package]] #7 has no name" in proc.stdout
    assert all("fix: " in line for line in lines) and len(lines) == 7, proc.stdout
    assert "Traceback" not in proc.stderr
    assert not root.exists()          # checking writes nothing

    report = _json(alice.nixmod("stack", "check", str(stack_file), "--json"))
    assert report["ok"] is False and len(report["problems"]) == 7
    assert {p["line"] for p in report["problems"]} == {4, 13, 16, 20, 24, 28, 30}
    assert all(p["fix"] and p["file"] == str(stack_file) for p in report["problems"])

    proc = alice.nixmod("stack", "build", str(stack_file))
    assert proc.returncode == 2 and "7 problems" in proc.stderr and "nothing was done" in proc.stderr
    assert not root.exists()


def test_check_names_an_unwritable_modules_root_and_malformed_toml(alice, test_channels):
    _configure(alice, test_channels)
    stack_file = alice.write("root.toml", '[stack]\nname = "s"\nmodules_root = "/root/site"\n\n'
                                          '[[package]]\nname = "hello"\n')
    proc = alice.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 2
    assert f"{stack_file}:3: modules_root /root/site is not writable" in proc.stdout
    assert "fix: set modules_root to a directory you can write" in proc.stdout

    broken_toml = alice.write("broken.toml", '[stack]\nname = "s"\n[[package]]\nname = hello\n')
    proc = alice.nixmod("stack", "check", str(broken_toml))
    assert proc.returncode == 2 and f"{broken_toml}:4: malformed TOML" in proc.stdout


def test_check_accepts_a_good_stack(alice, test_channels):
    _configure(alice, test_channels)
    root = alice.home / "site" / "modules"
    stack_file = alice.write("stack.toml", STACK.format(root=root))
    proc = alice.nixmod("stack", "check", str(stack_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: stack site-test, 5 packages" in proc.stdout
    report = _json(alice.nixmod("stack", "check", str(stack_file), "--json"))
    assert report["ok"] and report["stack"]["gcroot_dir"] == str(root.parent / "gcroots/site-test")
    resolved = {(p["name"], p["version"], p["channel"], p["default"]) for p in report["packages"]}
    assert ("hello", "2.10", "stacks-old", True) in resolved
    assert ("hello", "2.12.1", "stacks-new", False) in resolved


# -- the same stack built twice at the same moment -----------------------------------------

SMALL_STACK = """\
[stack]
name = "site-twice"
modules_root = "{root}"

[[package]]
name = "hello"
default = true

[[package]]
name = "ripgrep"
"""


def test_builds_of_one_stack_at_the_same_moment_submit_once(alice, test_channels):
    """A staff member (or cron jobs) start the same stack build several times at once: one
    submits, the others join its jobs instead of submitting every package again, and all
    leave the same, complete published tree."""
    _configure(alice, test_channels)
    root = alice.home / "site" / "modules"
    stack_file = alice.write("stack.toml", SMALL_STACK.format(root=root))
    alice.nixmod("stack", "check", str(stack_file), check=True)   # the catalog is cached
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: alice.nixmod("stack", "build", str(stack_file), "--wait",
                                                    "--json", timeout=300), range(4)))
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    results = [_json(proc) for proc in runs]
    arrays = [array for result in results for array in result["arrays"]]
    # one run submits (one sbatch per lane used, two packages over the default two lanes)
    assert len([result for result in results if result["arrays"]]) == 1, arrays
    assert len(arrays) == 2, f"{len(arrays)} sbatch calls for one stack: {arrays}"
    assert _arrays_in_slurm(alice) == set(arrays)
    for result in results:
        if not result["arrays"]:
            assert {p["action"] for p in result["packages"]} <= {"join", "in flight"}
        assert {(p["name"], p["state"]) for p in result["packages"]} == {("hello", "built"),
                                                                        ("ripgrep", "built")}
    loaded = alice.bash(f"module use {root}; module load nix/hello nix/ripgrep; hello; rg")
    assert loaded.stdout.split("\n")[:2] == ["hello 2.12.1", "rg 14.1.0"], loaded.stderr


def test_a_stack_without_modules_root_leaves_the_staff_members_own_modules_alone(alice,
                                                                                 test_channels):
    """SPEC: modules_root is optional ([modules].root then). The staff member's own
    `nixmod build` modules in that tree are not the stack's: a stack build must not
    remove them as 'no longer in the file'; the stack's own leftovers it still removes."""
    _configure(alice, test_channels)
    alice.write_config(alice.config_path.read_text().replace('backend = "slurm"',
                                                             'backend = "local"'))
    alice.nixmod("build", "samtools", "--wait", check=True)
    stack_file = alice.write("mine.toml", '[stack]\nname = "mine"\n\n[[package]]\nname = "hello"\n')
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait")
    assert proc.returncode == 0, proc.stderr
    assert "removed" not in proc.stderr + proc.stdout
    own = alice.home / ".local/share/nixmod/modules/nix"
    assert (own / "samtools/1.19.lua").is_file() and (own / "hello/2.12.1.lua").is_file()

    alice.write("mine.toml", '[stack]\nname = "mine"\n\n[[package]]\nname = "ripgrep"\n')
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait")
    assert "nix/hello/2.12.1: removed (no longer in mine.toml)" in proc.stderr
    assert not (own / "hello/2.12.1.lua").exists() and (own / "samtools/1.19.lua").is_file()
