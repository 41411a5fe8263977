"""Thin, typed calls to the Nix command-line tools.

Everything runs as the invoking user. A user who is not root talks to the
shared nix-daemon (``NIX_REMOTE=daemon``), which builds as its own build
users: nixmod never needs privileges. No substituter is assumed reachable
(cluster nodes are often offline), so we never wait on one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:  # startup: the catalog imports this module; a warm search runs no Nix tool
    import subprocess

from nixmod import outside

from nixmod.errors import OperationFailed, UserError

DAEMON_SOCKET = Path("/nix/var/nix/daemon-socket/socket")
#: extra options for every command: never ask a binary cache that is not there
OFFLINE_OPTIONS = ["--option", "substituters", ""]


def nix_env_vars(base: dict[str, str] | None = None, *, site_config: bool = False
                 ) -> dict[str, str]:
    """The environment for Nix commands: talk to the daemon unless told otherwise.

    ``site_config``: Nix reads the system's nix.conf only, as the daemon
    does, not the user's own (``~/.config/nix/nix.conf``, ``NIX_CONFIG``).
    A key a user trusts for themselves must not pass a check that stands
    for the daemon's: the daemon would refuse the same paths half-way.
    """
    env = dict(os.environ if base is None else base)
    if "NIX_REMOTE" not in env and os.geteuid() != 0 and DAEMON_SOCKET.exists():
        env["NIX_REMOTE"] = "daemon"
    if site_config:
        env.pop("NIX_CONFIG", None)
        env["NIX_USER_CONF_FILES"] = ""
    return env


def require(tool: str) -> str:
    """The tool's full path, or a UserError that says how to get it."""
    import shutil  # startup: loaded by the first Nix tool nixmod runs

    path = shutil.which(tool)
    if path is None:
        raise UserError(
            f"'{tool}' not found on PATH; install Nix (Debian: apt install nix-bin) "
            "or load the site's nix module"
        )
    return path


def run(args: Sequence[str], *, timeout: float | None = None, check: bool = True,
        input: str | None = None, site_config: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a Nix tool; on failure raise OperationFailed carrying Nix's own message.

    ``site_config``: as ``nix_env_vars`` (the system's nix.conf only).
    """
    cmd = [require(args[0]), *args[1:]]
    # read tolerantly: a builder's log lines and store path names are anybody's bytes
    proc = outside.run(cmd, env=nix_env_vars(site_config=site_config), timeout=timeout,
                       input=input)
    if check and proc.returncode != 0:
        raise OperationFailed(f"{args[0]} failed: {last_lines(proc.stderr)}")
    return proc


def last_lines(text: str, count: int = 6) -> str:
    """The tail of a Nix error, where the useful sentence is, on few lines."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) if lines else "(no output)"


def version() -> str:
    """``nix-env --version`` -> '2.8.0'."""
    out = run(["nix-env", "--version"]).stdout
    match = re.search(r"(\d+(?:\.\d+)+)", out)
    return match.group(1) if match else out.strip()


def channel_expression(path: Path | None, url: str = "", sha256: str = "") -> list[str]:
    """The arguments that name a channel for nix-instantiate (a file, or ``-E``).

    A url channel is pinned by its sha256 through ``builtins.fetchTarball``,
    so two users naming the same url always get the same package set.
    """
    if path is not None:
        return [str(path)]
    return ["-E", tarball_expression(url, sha256) + " {}"]


def tarball_expression(url: str, sha256: str) -> str:
    """The Nix function a url channel names: its tarball, pinned by ``sha256``.

    The one place this text is written: ``channel_expression`` applies it to
    ``{}`` for nix-instantiate; the catalog saves it in a file for ``nix-env -f``
    (which applies it itself).
    """
    return (f"import (builtins.fetchTarball {{ url = {nix_string(url)}; "
            f"sha256 = {nix_string(sha256)}; }})")


def nix_string(value: str) -> str:
    """A Nix string literal that evaluates to exactly ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def attr_path_arg(attr: str) -> str:
    """An ``-A`` argument for a dotted attribute path; odd parts are quoted."""
    parts = attr.split(".")
    return ".".join(p if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_'-]*", p) else nix_string(p)
                    for p in parts)


def list_packages_to_file(source: Path, out: Path, progress: Callable[[str], None] | None = None,
                          label: str = "", tick: float = 5.0) -> None:
    """``nix-env -f SOURCE -qaP --json --meta`` written straight to ``out``.

    A real nixpkgs prints ~230 MB over a minute or more: it goes to a file
    (not a pipe held in memory), and every ``tick`` seconds ``progress``
    hears how long it has run and how much has arrived, so a user knows it
    is alive. Nix's own message becomes the OperationFailed text.
    """
    import subprocess  # startup: loaded when a channel is evaluated, not on every search
    import tempfile

    cmd = [require("nix-env"), "-f", str(source), "-qaP", "--json", "--meta", *OFFLINE_OPTIONS]
    started = time.monotonic()
    with out.open("wb") as sink, tempfile.TemporaryFile("w+b") as errors:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=errors, env=nix_env_vars())
        while True:
            try:
                proc.wait(timeout=tick)
                break
            except subprocess.TimeoutExpired:
                if progress:
                    size = out.stat().st_size / 1e6
                    progress(f"{label}: evaluating with nix-env, {time.monotonic() - started:.0f} s, "
                             f"{size:.1f} MB listed so far")
        errors.seek(0)
        message = outside.decode(errors.read())
    if proc.returncode != 0:
        raise OperationFailed(f"nix-env -qaP failed: {last_lines(message)}")


@dataclass(frozen=True)
class Instantiated:
    """What nix-instantiate tells about one attribute: its drv and its outputs."""

    drv: str
    outputs: dict[str, str]


def instantiate(path: Path | None, attr: str, url: str = "", sha256: str = "") -> Instantiated:
    """Instantiate ``attr`` of a channel: a .drv in the store and its output paths.

    ``nix-instantiate`` writes the drv through the daemon (so the build job,
    on any node, can realise it without evaluating again); the output paths
    come from ``nix-store --query --outputs`` (Nix 2.8 has no stable JSON for this).
    """
    proc = run(["nix-instantiate", *channel_expression(path, url, sha256), "-A",
                attr_path_arg(attr), *OFFLINE_OPTIONS])
    drvs = [line for line in proc.stdout.split() if line.endswith(".drv")]
    if not drvs:
        raise OperationFailed(f"nix-instantiate gave no derivation for {attr}")
    drv = drvs[0]
    return Instantiated(drv=drv, outputs=derivation_outputs(drv))


def instantiate_expression(path: Path | None, function: str, url: str = "",
                           sha256: str = "") -> Instantiated:
    """Instantiate ``function`` (Nix text ``pkgs: …``) applied to a channel's package set.

    An environment (``nixmod.envplan``) is such a function: the channel is
    imported here exactly as ``channel_expression`` names it for
    ``instantiate``, so the drv depends on the channel and the function's
    text only, never on who asks or from where.
    """
    channel = (f"import {nix_string(str(Path(path).absolute()))} {{}}" if path is not None
               else f"{tarball_expression(url, sha256)} {{}}")
    proc = run(["nix-instantiate", "-E", f"({function.strip()}) ({channel})", *OFFLINE_OPTIONS])
    drvs = [line for line in proc.stdout.split() if line.endswith(".drv")]
    if not drvs:
        raise OperationFailed("nix-instantiate gave no derivation for the environment")
    return Instantiated(drv=drvs[0], outputs=derivation_outputs(drvs[0]))


def derivation_outputs(drv: str) -> dict[str, str]:
    """Output name -> store path, read from the drv itself (it is ATerm text)."""
    text = outside.read_text(Path(drv))   # a drv's strings are bytes: any catalog's
    head = text[len("Derive(["):text.find("],[")] if text.startswith("Derive([") else ""
    outputs = dict(re.findall(r'\("([^"]+)","(/[^"]+)","[^"]*","[^"]*"\)', head))
    if not outputs:
        paths = run(["nix-store", "--query", "--outputs", drv]).stdout.split()
        outputs = {("out" if i == 0 else f"out{i}"): p for i, p in enumerate(paths)}
    return outputs


def valid_paths(paths: Sequence[str]) -> set[str]:
    """The subset of ``paths`` that are valid in the store right now."""
    if not paths:
        return set()
    proc = run(["nix-store", "--check-validity", "--print-invalid", *paths], check=False)
    if proc.returncode not in (0,):
        # --print-invalid exits 0 and lists invalid ones; anything else is a real error
        raise OperationFailed(f"nix-store --check-validity failed: {last_lines(proc.stderr)}")
    invalid = set(proc.stdout.split())
    return {p for p in paths if p not in invalid}


def store_hash(path: str) -> str:
    """The 32-character hash that starts a store path's name (names a drv compactly)."""
    return Path(path).name.split("-", 1)[0]


def main_output(outputs: Mapping[str, str]) -> str:
    """The store path a user thinks of as "the package": ``out``, else the first output."""
    return outputs.get("out") or next(iter(outputs.values()), "")


def check_command(drv: str) -> list[str]:
    """``nix-store --realise DRV --check``: build ``drv`` again and compare with the store."""
    return ["nix-store", "--realise", drv, "--check", *OFFLINE_OPTIONS]


def realise_command(drv: str, gc_root: Path | None = None) -> list[str]:
    """The argv that builds ``drv`` through the daemon (used by both backends)."""
    cmd = ["nix-store", "--realise", drv, *OFFLINE_OPTIONS]
    if gc_root is not None:
        cmd += ["--add-root", str(gc_root), "--indirect"]
    return cmd
