"""Fault injection on the real rig: stop a daemon by its pid file, bring it back as it was.

Daemons are found by their pid files (SlurmctldPidFile / SlurmdPidFile from
``scontrol show config``, ``%n`` replaced by the node name) or, for the
nix-daemon, by the owner of its listening socket: never by name, since
several slurmds (and other helpers' processes) run on this machine. Each is
restarted with the argv, environment and working directory it had, read
from /proc before it was stopped, and the helpers wait until it serves again.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NIX_SOCKET = Path("/nix/var/nix/daemon-socket/socket")


@dataclass
class Daemon:
    """How a daemon was started: enough to start it again the same way."""

    pid: int
    argv: list[str]
    env: dict[str, str]
    cwd: str
    #: an open handle on its mount namespace when that is not ours (kept alive for the restart)
    mount_ns: int | None = None

    @classmethod
    def of(cls, pid: int, makes_own_namespace: bool = False) -> "Daemon":
        """``makes_own_namespace``: the daemon unshares its mount namespace itself when it
        starts (nix-daemon does), so it is started again from ours, as the rig starts it."""
        proc = Path(f"/proc/{pid}")
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env = dict(item.decode().split("=", 1) for item in (proc / "environ").read_bytes()
                   .split(b"\0") if b"=" in item)
        mount_ns = None
        if not makes_own_namespace and \
                os.readlink(proc / "ns/mnt") != os.readlink("/proc/self/ns/mnt"):
            mount_ns = os.open(proc / "ns/mnt", os.O_RDONLY)
        return cls(pid=pid, argv=argv, env=env, cwd=os.readlink(proc / "cwd"), mount_ns=mount_ns)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        os.kill(self.pid, sig)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{self.pid}").exists() and _state(self.pid) != "Z":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.argv[0]} (pid {self.pid}) did not exit")
            time.sleep(0.1)

    def start(self, *, detach: bool = False) -> None:
        """Start it again; ``detach`` for a daemon that does not fork itself (nix-daemon).

        In the mount namespace it ran in, when that was not ours (nsenter on
        the handle taken before it stopped).
        """
        argv, fds = self.argv, ()
        if self.mount_ns is not None:
            argv = ["nsenter", f"--mount=/proc/self/fd/{self.mount_ns}", "--", *argv]
            fds = (self.mount_ns,)
        if detach:
            with open("/var/log/nix-daemon.log", "ab") as log:
                subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log, start_new_session=True, pass_fds=fds)
        else:
            subprocess.run(argv, env=self.env, cwd=self.cwd, check=True, timeout=60,
                           stdin=subprocess.DEVNULL, pass_fds=fds)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def slurm_config() -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                         check=True).stdout
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^(\w+)\s+= (.*)$", out, re.MULTILINE)}


def build_nodes(partition: str = "nixbuild") -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-p", partition, "-o", "%N"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(set(out.split()))


def _pid_file(template: str, node: str = "") -> int:
    path = template.replace("%n", node).replace("%h", socket.gethostname())
    return int(Path(path).read_text().split()[0])


def slurmd(node: str) -> Daemon:
    return Daemon.of(_pid_file(slurm_config()["SlurmdPidFile"], node))


def slurmctld() -> Daemon:
    return Daemon.of(_pid_file(slurm_config()["SlurmctldPidFile"]))


def controller_answers() -> bool:
    return subprocess.run(["squeue", "-h", "-u", "root"], capture_output=True).returncode == 0


def wait_controller(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not controller_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("slurmctld does not answer")
        time.sleep(0.5)


def node_state(node: str) -> str:
    proc = subprocess.run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"], capture_output=True,
                          text=True)
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else ""


def wait_node_usable(node: str, timeout: float = 180) -> None:
    """Until the node takes jobs again (resumed if SLURM left it down after the fault)."""
    deadline = time.monotonic() + timeout
    while True:
        state = node_state(node).rstrip("*~#$@+")
        if state in ("idle", "mixed", "allocated"):
            return
        if state.startswith(("down", "drain")):
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"],
                           capture_output=True)
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {node} is {state!r}, not back")
        time.sleep(1)


NIX_PID_FILE = Path("/run/nix-daemon.pid")   # the rig writes it (nix-daemon writes none)


def nix_daemon() -> Daemon:
    """The listening nix-daemon: the owner of the socket whose parent is not a nix-daemon."""
    out = subprocess.run(["ss", "-xlpn"], capture_output=True, text=True, check=True).stdout
    pids = {int(p) for line in out.splitlines() if str(NIX_SOCKET) in line
            for p in re.findall(r"pid=(\d+)", line)}
    masters = [p for p in pids
               if int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) not in pids]
    if len(masters) != 1:
        raise RuntimeError(f"cannot tell the nix-daemon listening on {NIX_SOCKET}: {pids}")
    return Daemon.of(masters[0], makes_own_namespace=True)


def restart_nix_daemon(pause: float = 0) -> None:
    """Stop the listening daemon (its build workers are left alone), start it the same way.

    The rig's pid file, if there is one, is kept pointing at the new daemon.
    """
    daemon = nix_daemon()
    mode = NIX_SOCKET.stat()
    daemon.stop()
    time.sleep(pause)
    NIX_SOCKET.unlink(missing_ok=True)
    daemon.start(detach=True)
    deadline = time.monotonic() + 30
    while not NIX_SOCKET.is_socket():
        if time.monotonic() > deadline:
            raise RuntimeError("nix-daemon did not come back")
        time.sleep(0.1)
    os.chown(NIX_SOCKET, mode.st_uid, mode.st_gid)
    NIX_SOCKET.chmod(stat.S_IMODE(mode.st_mode))
    if NIX_PID_FILE.exists():
        for _ in range(50):
            try:
                NIX_PID_FILE.write_text(f"{nix_daemon().pid}\n")
                break
            except RuntimeError:   # the socket's owner not settled yet
                time.sleep(0.1)
