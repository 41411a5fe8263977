"""GC roots on the real rig: names that cannot collide, old roots migrated, and a stack
that takes away only its own roots.

"Does the collector keep it?" is asked of the daemon as the user, two ways that delete
nothing else: ``nix-store --gc --print-dead`` (exactly what a ``nix-store --gc`` would
delete now) and ``nix-store --delete PATH`` (the collector restricted to PATH: refused
while PATH is alive). A full ``--gc`` is not run: the rig's store is shared with other
suites whose freshly instantiated derivations are not rooted yet.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from rig import UserSession

GX_CONFIG = """
[[channels]]
name = "gctest"
path = "{channel}"

[build]
backend = "local"
"""


def _configure(session: UserSession, channels: Path) -> None:
    session.extra_env["NIXMOD_TEST_NONCE"] = uuid.uuid4().hex[:12]
    session.write_config(GX_CONFIG.format(channel=channels / "gcroots.nix"))


def _dead(session: UserSession) -> set[str]:
    """What `nix-store --gc` would delete right now."""
    proc = session.run("nix-store", "--gc", "--print-dead", check=True)
    return set(proc.stdout.split())


def _kept_by_collector(session: UserSession, path: str) -> bool:
    """The collector refuses to delete ``path`` (it is alive) and it stays valid."""
    deleted = session.run("nix-store", "--delete", path)
    valid = session.run("nix-store", "--check-validity", path).returncode == 0
    return deleted.returncode != 0 and "still alive" in deleted.stderr and valid


def _build_both(alice: UserSession) -> dict[str, dict]:
    proc = alice.nixmod("build", "gx@1-2", "gx-1@2", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    built = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {r["state"] for r in built.values()} == {"built"}
    assert built["gx"]["out"] != built["gx-1"]["out"]
    return built


def _both_modules_work(alice: UserSession) -> None:
    shown = alice.bash("module use ~/.local/share/nixmod/modules && "
                       "module load nix/gx/1-2 && gx && module load nix/gx-1/2 && gx1")
    assert shown.stdout.splitlines() == ["gx 1-2", "gx-1 2"], shown.stderr


def test_roots_of_gx_1_2_and_gx_1_at_2_do_not_collide(alice, test_channels):
    _configure(alice, test_channels)
    built = _build_both(alice)
    gcroots = alice.home / ".local/state/nixmod/gcroots"
    for name, version in (("gx", "1-2"), ("gx-1", "2")):
        link = gcroots / name / version / "result"
        assert link.is_symlink() and str(link.readlink()) == built[name]["out"]

    dead = _dead(alice)
    assert built["gx"]["out"] not in dead and built["gx-1"]["out"] not in dead
    assert _kept_by_collector(alice, built["gx"]["out"])
    assert _kept_by_collector(alice, built["gx-1"]["out"])
    listed = json.loads(alice.nixmod("modules", "list", "--json", check=True).stdout)
    assert {(m["module"], m["valid"]) for m in listed} == {("nix/gx/1-2", True),
                                                          ("nix/gx-1/2", True)}
    _both_modules_work(alice)


def test_roots_of_the_old_flat_layout_are_migrated_when_nixmod_starts(alice, test_channels):
    """A state dir from before: the one collided root `gcroots/gx-1-2` (gx-1's output, gx's
    lost) and a root no build explains. The next nixmod moves gx-1's root, roots gx's
    still-valid output again, and keeps the unexplained root under .legacy/."""
    _configure(alice, test_channels)
    built = _build_both(alice)
    gcroots = alice.home / ".local/state/nixmod/gcroots"
    alice.run("rm", "-r", str(gcroots / "gx"), str(gcroots / "gx-1"), check=True)
    alice.run("nix-store", "--realise", built["gx-1"]["out"], "--add-root",
              str(gcroots / "gx-1-2"), "--indirect", check=True)
    alice.write("orphan.txt", f"kept by an old root {uuid.uuid4()}\n")
    orphan = alice.run("nix-store", "--add", str(alice.home / "orphan.txt"),
                       check=True).stdout.strip()
    alice.run("nix-store", "--realise", orphan, "--add-root", str(gcroots / "orphan-9"),
              "--indirect", check=True)
    assert built["gx"]["out"] in _dead(alice)   # what the old layout did to gx

    proc = alice.nixmod("status")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in gcroots.iterdir()) == [".legacy", "gx", "gx-1"]
    assert str((gcroots / "gx/1-2/result").readlink()) == built["gx"]["out"]
    assert str((gcroots / "gx-1/2/result").readlink()) == built["gx-1"]["out"]
    assert str((gcroots / ".legacy/orphan-9").readlink()) == orphan
    dead = _dead(alice)
    assert not {built["gx"]["out"], built["gx-1"]["out"], orphan} & dead
    assert _kept_by_collector(alice, built["gx"]["out"])
    _both_modules_work(alice)
    again = alice.nixmod("status")   # nothing left to move: quiet
    assert again.returncode == 0 and again.stderr == ""


STACKS_CONFIG = """
[[channels]]
name = "stacks-old"
path = "{channels}/stacks-old.nix"

[[channels]]
name = "stacks-new"
path = "{channels}/stacks-new.nix"

[build]
backend = "local"
"""


def test_a_stack_dropping_a_package_keeps_the_staff_members_own_root(alice, test_channels):
    """Issue 10.15: staff built hello personally, and the stack published the same hello.
    When hello leaves the stack, the stack's module and root go; the personal module's
    root stays, and the collector keeps its store path."""
    alice.extra_env["NIXMOD_TEST_NONCE"] = uuid.uuid4().hex[:12]
    alice.write_config(STACKS_CONFIG.format(channels=test_channels))
    personal = json.loads(alice.nixmod("build", "hello", "--wait", "--json", check=True).stdout)[0]
    assert personal["state"] == "built"
    own_root = alice.home / ".local/state/nixmod/gcroots/hello/2.12.1/result"
    assert own_root.is_symlink()

    site = alice.home / "site" / "modules"
    stack_file = alice.write("stack.toml", f'[stack]\nname = "lab"\nmodules_root = "{site}"\n\n'
                                           '[[package]]\nname = "hello"\n')
    alice.nixmod("stack", "build", str(stack_file), "--wait", check=True)
    assert (site / "nix/hello/2.12.1.lua").is_file()
    assert (site.parent / "gcroots/lab/hello/2.12.1/result").is_symlink()

    alice.write("stack.toml", f'[stack]\nname = "lab"\nmodules_root = "{site}"\n\n'
                              '[[package]]\nname = "ripgrep"\n')
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait")
    assert proc.returncode == 0, proc.stderr
    assert "nix/hello/2.12.1: removed (no longer in stack.toml)" in proc.stderr
    assert not (site / "nix/hello/2.12.1.lua").exists()
    assert not (site.parent / "gcroots/lab/hello").exists()

    assert own_root.is_symlink() and str(own_root.readlink()) == personal["out"]
    assert personal["out"] not in _dead(alice)
    assert _kept_by_collector(alice, personal["out"])
    shown = alice.bash("module use ~/.local/share/nixmod/modules && module load nix/hello && hello")
    assert shown.stdout.strip() == "hello 2.12.1", shown.stderr
