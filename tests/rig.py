"""The rig's facts and its real users, shared by conftest.py's fixtures and the tests.

A helper module (tests import it, never ``conftest``): where the venv, the
scratch space and the test users are, the rig's shape (partitions, nodes,
the store export), and ``UserSession``, a real unprivileged user with a
fresh HOME who runs nixmod the way a site's user does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("NIXMOD_VENV", "/opt/nixmod/venv"))
NIXMOD = VENV / "bin" / "nixmod"
#: the two real users; NIXMOD_TEST_USERS="a,b" picks others (so that two
#: checkouts can run their suites on one rig without sharing a user's queue)
TEST_USERS = tuple(os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(","))[:2]
ALICE, BOB = TEST_USERS
#: world-readable scratch space: per-test homes, copies of test channels
SCRATCH = Path(os.environ.get("NIXMOD_TEST_SCRATCH", "/tmp/nixmod-tests"))
LMOD_INIT = "/usr/share/lmod/lmod/init/bash"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def shared_data_dir() -> Path:
    """The real nixpkgs dumps: ../shared/data/nixpkgs beside the checkout (as CI lays it)."""
    explicit = os.environ.get("NIXMOD_TEST_DATA")
    candidates = [Path(explicit)] if explicit else [REPO.parent / "shared/data/nixpkgs",
                                                    Path("/work/shared/data/nixpkgs")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


#: the rig's shape (tests/cluster/up.sh): two partitions, two nodes, a store export
BUILD_PARTITION = "nixbuild"
COMPUTE_PARTITION = "compute"
NIX_SOCKET = Path("/nix/var/nix/daemon-socket/socket")
#: where compute-only nodes see the store (read-only), standing in for an NFS/CVMFS export
STORE_COPY = Path("/srv/nixstore")


@dataclass(frozen=True)
class RigNodes:
    """The rig's two SLURM nodes, as ``sinfo`` names them."""

    build: str          #: in nixbuild and compute: sees /nix and the nix-daemon
    compute_only: str   #: in compute only: no /nix, no daemon, the store at STORE_COPY


def _node_states() -> dict[str, dict[str, str]]:
    """partition -> {node: state} from ``sinfo`` (raises if the controller does not answer)."""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%P %N %t"], capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"sinfo failed: {proc.stderr.strip()[-200:]}")
    states: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        partition, node, state = line.split()
        states.setdefault(partition.rstrip("*"), {})[node] = state
    return states


def rig_nodes() -> RigNodes:
    """The build node and the compute-only node of the running rig."""
    states = _node_states()
    build = sorted(states.get(BUILD_PARTITION, {}))
    compute_only = sorted(set(states.get(COMPUTE_PARTITION, {})) - set(build))
    if not build or not compute_only:
        raise RuntimeError(f"the rig needs a node in {BUILD_PARTITION} and one only in "
                           f"{COMPUTE_PARTITION}; sinfo shows {states}")
    return RigNodes(build=build[0], compute_only=compute_only[0])


@dataclass
class UserSession:
    """A real unprivileged user with a fresh, private HOME for one test.

    HOME (and so every XDG default: config, cache, state, modules) points at
    a new directory, so tests never see each other's state.
    """

    user: str
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.home / ".config" / "nixmod" / "config.toml"

    def env(self) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "PATH": f"{VENV}/bin:{BASE_PATH}",
            "LANG": "C.UTF-8",
            "NIX_REMOTE": "daemon",
            "TMPDIR": "/tmp",
        }
        env.update(self.extra_env)
        return env

    def write(self, relative: str, text: str) -> Path:
        """Write a file inside this user's HOME, owned by the user."""
        path = self.home / relative
        self.run("mkdir", "-p", str(path.parent), check=True)
        self.run("sh", "-c", 'cat > "$1"', "sh", str(path), input=text, check=True)
        return path

    def write_config(self, text: str) -> Path:
        return self.write(".config/nixmod/config.toml", text)

    def run(self, *argv: str, check: bool = False, timeout: float = 300,
            input: str | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = self.env() | (env or {})
        cmd = ["runuser", "-u", self.user, "--", "env", "-i",
               *(f"{k}={v}" for k, v in full_env.items()), *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              input=input, cwd=str(cwd or self.home))
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} as {self.user} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        return proc

    def nixmod(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(str(NIXMOD), *args, **kw)

    def bash(self, script: str, **kw) -> subprocess.CompletedProcess[str]:
        """A login-like bash with Lmod initialised (``module`` works)."""
        return self.run("bash", "-c", f"source {LMOD_INIT}\n{script}", **kw)


def kill_hard(pids: list[str], what: str) -> None:
    """SIGKILL ``pids`` (a power cut, as far as they can tell) and wait until they are gone
    from /proc, not just dead: a start script takes a zombie's pid for a daemon that runs."""
    subprocess.run(["kill", "-9", *pids], check=True)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"killed {what} were not reaped in 30 s"
        time.sleep(0.2)


def new_session(user: str, label: str) -> UserSession:
    """A fresh HOME for ``user`` under SCRATCH, owned by the user (``label``: the test)."""
    home = SCRATCH / f"{label[:40]}-{user}-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    shutil.chown(home, user=user, group=user)
    home.chmod(0o755)
    return UserSession(user=user, home=home)


_USERSIDE: dict[str, Path] = {}


def userside_script(name: str) -> Path:
    """tests/userside/NAME.py, copied once a session where every test user can read it."""
    if name not in _USERSIDE:
        target = SCRATCH / f"userside-{uuid.uuid4().hex[:8]}"
        target.mkdir(parents=True)
        target.chmod(0o755)
        copy = target / f"{name}.py"
        shutil.copyfile(REPO / "tests" / "userside" / f"{name}.py", copy)
        copy.chmod(0o644)
        _USERSIDE[name] = copy
    return _USERSIDE[name]


def run_userside(session: UserSession, name: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the user-side script ``name`` as ``session``'s user with the installed nixmod."""
    return session.run(str(VENV / "bin/python"), "-I", str(userside_script(name)), *args, **kw)


@contextmanager
def small_tmpfs(owner: str, size: str = "4m") -> Iterator[Path]:
    """A real, small file system (a tmpfs the suite mounts) owned by ``owner``, to fill up.

    Full-disk behaviour is only honest on a real full disk; it is unmounted
    (lazily: a user's process may still hold a file there) however the test ends.
    """
    mount = SCRATCH / f"full-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount)],
                   check=True)
    try:
        subprocess.run(["chown", f"{owner}:{owner}", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
