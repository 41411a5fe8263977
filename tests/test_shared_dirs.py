"""Issue 15.2 on the real rig: another user (bob) must not run code as alice through the
directories nixmod writes, when alice's config points into a shared sticky directory
(as /tmp or /scratch are). Each attack is the one the probe used; the test shows it no
longer works: nixmod refuses with one line (exit 2), writes nothing into bob's tree, and
`doctor` names the directory.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from builds_helpers import new_counter, records, setup_builds
from rig import BOB, SCRATCH, UserSession

#: what bob plants as `nixmod/__init__.py`: proof of running, as whoever imports it
PLANTED = """import os
open(os.path.join({shared!r}, "pwned-%d" % os.getuid()), "w").write("ran\\n")
"""


@pytest.fixture
def shared() -> Path:
    """A shared sticky directory like /tmp/x: anyone may create names in it."""
    path = SCRATCH / f"shared-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    path.chmod(0o1777)
    return path


def _use(alice: UserSession, test_channels: Path, extra: str) -> None:
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=0)
    alice.write_config(alice.config_path.read_text() + extra)


def _refused(proc, *words: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr (no progress, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _doctor_fails_on(alice: UserSession, name: str, *words: str) -> None:
    proc = alice.nixmod("doctor")
    assert proc.returncode == 1, proc.stdout
    line = next((l for l in proc.stdout.splitlines() if l.startswith(f"[FAIL] {name}:")), None)
    assert line is not None, proc.stdout
    for word in words:
        assert word in line, line


def test_a_shims_symlink_planted_by_another_user_is_not_followed(alice, bob, shared,
                                                                 test_channels):
    """(a) `[modules] root = "<shared>/amods"`; bob made `<shared>/amods.shims` a symlink
    into his own world-writable tree, to swap alice's shims afterwards."""
    trap = bob.home / "trap"
    bob.run("mkdir", "-m", "777", str(trap), check=True)
    bob.run("ln", "-s", str(trap), str(shared / "amods.shims"), check=True)
    _use(alice, test_channels, f'\n[modules]\nroot = "{shared}/amods"\n')

    proc = alice.nixmod("build", "pkg1", "--wait")
    _refused(proc, f"{shared}/amods.shims", f"symlink made by {BOB}")
    assert list(trap.iterdir()) == []
    assert not (shared / "amods" / "nix").exists()
    _doctor_fails_on(alice, "shims dir", f"{shared}/amods.shims", f"symlink made by {BOB}")

    # bob's modules root itself, pre-created for alice: refused the same way
    alice.write_config(alice.config_path.read_text().replace("amods", "bmods"))
    bob.run("mkdir", "-m", "777", str(shared / "bmods"), check=True)
    _refused(alice.nixmod("build", "pkg1"), f"{shared}/bmods", f"belongs to {BOB}")


def test_a_state_dir_planted_by_another_user_is_refused_before_anything_runs(alice, bob, shared,
                                                                              test_channels):
    """(b) bob pre-created alice's state dir, world-writable, with a `nixmod/__init__.py`
    that the job step (`python -m nixmod` in the state dir) imported as alice."""
    state = shared / "astate"
    bob.run("mkdir", "-m", "777", str(state), str(state / "nixmod"), check=True)
    bob.write("plant.py", PLANTED.format(shared=str(shared)))
    bob.run("cp", str(bob.home / "plant.py"), str(state / "nixmod/__init__.py"), check=True)
    bob.run("chmod", "-R", "a+rwX", str(state), check=True)
    _use(alice, test_channels, "")
    alice.write_config(alice.config_path.read_text().replace(
        "[build]\n", f'[build]\nstate_dir = "{state}"\n'))

    for args in (["build", "pkg1", "--wait"], ["status"], ["build", "--retry"]):
        _refused(alice.nixmod(*args), f"state dir {state}", f"belongs to {BOB}")
    assert not list(shared.glob("pwned-*"))
    assert not (state / "builds.db").exists()
    _doctor_fails_on(alice, "state dir", str(state), f"belongs to {BOB}")

    # a symlink bob planted where alice's state dir would be: not followed either
    alice.write_config(alice.config_path.read_text().replace(str(state), f"{shared}/alink"))
    bob.run("ln", "-s", str(state), str(shared / "alink"), check=True)
    _refused(alice.nixmod("status"), f"{shared}/alink", f"symlink made by {BOB}")


def test_a_stack_refuses_an_lmod_cache_planted_by_another_user(alice, bob, shared, test_channels):
    """Lmod executes the spider cache: `<modules_root>.lmodcache` planted by bob is refused
    by `stack check` (with its line and fix) and by `stack build`."""
    bob.run("mkdir", "-m", "777", str(bob.home / "cache"), check=True)
    bob.run("ln", "-s", str(bob.home / "cache"), str(shared / "site.lmodcache"), check=True)
    _use(alice, test_channels, "")
    stack = alice.write("stack.toml", f'[stack]\nname = "lab"\nmodules_root = "{shared}/site"\n\n'
                                      '[[package]]\nname = "pkg1"\n')
    check = alice.nixmod("stack", "check", str(stack))
    assert check.returncode == 2
    assert f"stack.toml:3: Lmod spider cache {shared}/site.lmodcache is not safe" in check.stdout
    assert f"symlink made by {BOB}" in check.stdout
    built = alice.nixmod("stack", "build", str(stack), "--wait")
    assert built.returncode == 2 and "Traceback" not in built.stderr
    assert list((bob.home / "cache").iterdir()) == []


@pytest.mark.parametrize("backend", ["local", "slurm"])
def test_the_job_step_never_imports_from_its_working_directory(alice, test_channels, backend):
    """The job step runs in the state dir (`sbatch --chdir`, the local worker's cwd). A
    `nixmod/` package found there must not run: the job imports the installed nixmod
    (`python -I`). Planted here in alice's own state dir, as a stale copy would be."""
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend=backend, nonce=nonce, counter=counter, sleep=0)
    state = alice.home / ".local/state/nixmod"
    marker = alice.home / "imported-from-state-dir"
    alice.write(".local/state/nixmod/nixmod/__init__.py",
                f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n")
    alice.run("chmod", "700", str(state), check=True)
    built = records(alice.nixmod("build", "pkg1", "--wait", "--json", timeout=300))[0]
    assert built["state"] == "built", built
    assert not marker.exists()


def test_own_state_dir_through_own_symlink_is_fine_but_not_when_others_can_write(alice,
                                                                                test_channels):
    real = alice.home / "real-state"
    alice.run("mkdir", "-m", "700", str(real), check=True)
    alice.run("ln", "-s", str(real), str(alice.home / "state-link"), check=True)
    _use(alice, test_channels, "")
    alice.write_config(alice.config_path.read_text().replace(
        "[build]\n", f'[build]\nstate_dir = "{alice.home}/state-link"\n'))
    assert alice.nixmod("status", "--json", check=True).stdout.strip() == "[]"
    for mode in ("777", "1777"):
        alice.run("chmod", mode, str(real), check=True)
        _refused(alice.nixmod("status"), str(real), "writable by other users")
    alice.run("chmod", "700", str(real), check=True)
    assert json.loads(alice.nixmod("status", "--json", check=True).stdout) == []
