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
tests start the rig; the rest, the fast tier, run anywhere, as any user:
``pytest -m "not rig"`` (the TUI, the catalog and the CLI on the saved
package lists in tests/dumps through ``dump_home``; config parsing,
versions, Lua escaping, the TUI's model). Shared code lives in helper
modules (``rig.py``, ``dump_channels.py``, ``tui_view.py``, ...), which tests
import; nothing imports this file.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dump_channels import DumpHome
from rig import (ALICE, BOB, COMPUTE_PARTITION, NIX_SOCKET, NIXMOD, REPO, SCRATCH, STORE_COPY,
                 TEST_USERS, VENV, RigNodes, UserSession, _node_states, new_session, rig_nodes,
                 shared_data_dir)


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


@pytest.fixture
def alice(request, cluster: None) -> UserSession:
    return new_session(ALICE, request.node.name)


@pytest.fixture
def bob(request, cluster: None) -> UserSession:
    return new_session(BOB, request.node.name)


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
    out = subprocess.run([str(VENV / "bin/python"), "-I", str(REPO / "tests/userside/installed.py"), "demo-dir"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    return Path(out)


@pytest.fixture
def dump_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DumpHome:
    """The fast tier's user: HOME, XDG dirs, state and modules in tmp_path, the demo
    catalog as saved lists (tests/dumps). This process's environment is that user's too
    (the in-process TUI and Catalog read it), for the test's duration only."""
    home = DumpHome(tmp_path)
    for name, value in home.env().items():
        monkeypatch.setenv(name, value)
    for name in ("NIXMOD_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    home.write_config()
    return home
