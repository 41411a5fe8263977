"""Shared fixtures: the real cluster, real unprivileged users, real nixmod.

The suite runs as root (it starts daemons), but everything a user would do
runs as a real unprivileged user through ``runuser``, with the nixmod that a
site installs: the venv under /opt/nixmod made with Debian's python3.

If a real part cannot start, the session fails with the reason: there is no
skip that hides a missing daemon.

Tests that need the rig carry ``pytest.mark.rig``: a test that asks for a
real user, a node, the test channels, the real dumps or the installed demo
gets it here (``pytest_collection_modifyitems``), and modules that talk to
the daemons some other way set ``pytestmark = pytest.mark.rig``. Only rig
tests start the rig; the rest (pure Python: config parsing, versions,
search ranking, Lua escaping, the TUI's model) run anywhere, as any user:
``pytest -m "not rig"``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


def _daemon_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _rig_problems() -> list[str]:
    """What is not up, one line each (empty when the rig is ready)."""
    problems = []
    if not _daemon_answers(NIX_SOCKET):
        problems.append(f"no nix-daemon answers on {NIX_SOCKET}")
    munge = subprocess.run(["sh", "-c", "munge -n </dev/null | unmunge >/dev/null"],
                           capture_output=True, timeout=30)
    if munge.returncode != 0:
        problems.append("munge does not work (munge -n | unmunge)")
    try:
        states = _node_states()
        nodes = rig_nodes()
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as error:
        problems.append(f"SLURM: {error}")
    else:
        for node in (nodes.build, nodes.compute_only):
            state = states[COMPUTE_PARTITION][node]
            if state.endswith(("*", "~")) or state.startswith(("down", "drain", "fail", "unk")):
                problems.append(f"SLURM node {node} is {state}")
    # a bind mount shares its device with / (os.path.ismount cannot tell): ask findmnt
    mounted = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", "--mountpoint", str(STORE_COPY)],
                             capture_output=True, text=True)
    if mounted.returncode != 0 or "ro" not in mounted.stdout.strip().split(","):
        problems.append(f"{STORE_COPY} is not a read-only mount of the store")
    if not _rsyslogd_runs():
        problems.append(f"the rig's rsyslogd ({RSYSLOG_PIDFILE}) does not run")
    for user in TEST_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            problems.append(f"test user {user} missing")
    if not NIXMOD.exists():
        problems.append(f"{NIXMOD} missing")
    return problems


#: the rig's rsyslogd, which files the usage records (tests/cluster/rsyslog.sh, lib.sh)
RSYSLOG_PIDFILE = Path("/run/nixmod-rig-rsyslogd.pid")


def _rsyslogd_runs() -> bool:
    try:
        pid = RSYSLOG_PIDFILE.read_text().strip()
        return Path(f"/proc/{pid}/comm").read_text().strip() == "rsyslogd"
    except OSError:
        return False


def _rig_was_up() -> bool:
    """Whether up.sh has started this rig's daemons on this boot (their pid files in /run)."""
    return Path("/run/nix-daemon.pid").exists() or any(Path("/run").glob("slurmd-*.pid"))


@pytest.fixture(scope="session")
def nodes(cluster: None) -> RigNodes:
    """The build node and the compute-only node."""
    return rig_nodes()


#: fixtures that only work on the rig: a test using one (directly or not) is a rig test
RIG_FIXTURES = frozenset({"cluster", "nodes", "alice", "bob", "test_channels", "real_dumps", "demo_dir"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if RIG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.rig)


@pytest.fixture(autouse=True)
def _rig_for_rig_tests(request: pytest.FixtureRequest) -> None:
    """Bring the rig up (once a session) before a rig test; pure tests never wait for it."""
    if request.node.get_closest_marker("rig") is not None:
        request.getfixturevalue("cluster")


@pytest.fixture(scope="session")
def cluster() -> None:
    """The real rig: started by tests/cluster/up.sh if anything is down."""
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root (it starts nix-daemon, munge, SLURM); use `make test`")
    problems = _rig_problems()
    # A rig that is up but has a daemon down for a moment (a fault test on the
    # same rig stops and restarts one) is given a minute to come back before
    # up.sh steps in; a machine with no rig daemon at all gets up.sh at once.
    deadline = time.monotonic() + 60
    while problems and _rig_was_up() and time.monotonic() < deadline:
        time.sleep(2)
        problems = _rig_problems()
    if problems:
        proc = subprocess.run(["bash", str(REPO / "tests/cluster/up.sh")], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail("test cluster could not start: " + "; ".join(problems) + "\n" + proc.stderr[-3000:],
                        pytrace=False)
        problems = _rig_problems()
        if problems:
            pytest.fail("test cluster still not up after up.sh: " + "; ".join(problems), pytrace=False)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    SCRATCH.chmod(0o1777)


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


def _new_session(user: str, label: str) -> UserSession:
    home = SCRATCH / f"{label[:40]}-{user}-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    shutil.chown(home, user=user, group=user)
    home.chmod(0o755)
    return UserSession(user=user, home=home)


@pytest.fixture
def alice(request, cluster: None) -> UserSession:
    return _new_session(ALICE, request.node.name)


@pytest.fixture
def bob(request, cluster: None) -> UserSession:
    return _new_session(BOB, request.node.name)


@pytest.fixture(scope="session")
def test_channels(cluster: None) -> Path:
    """tests/channels copied where every user can read it (the checkout may be under /root)."""
    target = SCRATCH / f"channels-{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO / "tests" / "channels", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.fixture(scope="session")
def real_dumps(cluster: None) -> Path:
    """The five real dumps, copied where test users can read them (shared/ may sit under /root)."""
    source = shared_data_dir()
    dumps = sorted(source.glob("*.json.gz"))
    if not dumps:
        pytest.fail(f"no real nixpkgs dumps under {source} (set NIXMOD_TEST_DATA)", pytrace=False)
    target = SCRATCH / "real-dumps"
    target.mkdir(exist_ok=True)
    target.chmod(0o755)
    for dump in dumps:
        copy = target / dump.name
        if not copy.exists() or copy.stat().st_size != dump.stat().st_size:
            shutil.copyfile(dump, copy)
        copy.chmod(0o644)
    return target


@pytest.fixture(scope="session")
def demo_dir(cluster: None) -> Path:
    """The demo channels as the installed nixmod ships them."""
    # -I and cwd=/ so that the installed nixmod answers, not the checkout in the cwd
    # (which test users may not be able to read)
    out = subprocess.run([str(VENV / "bin/python"), "-I", "-c",
                          "from nixmod.config import DEMO_DIR; print(DEMO_DIR)"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    return Path(out)
