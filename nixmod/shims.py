"""FHS-shim wrappers: what a module puts on PATH instead of a store path.

A shim is a small host ``/bin/sh`` script, one per executable in the
``bin/`` and ``sbin/`` of a build's outputs, that runs the store binary
whether or not this node has the store where its paths are named
(``shims.store_dir``, normally ``/nix/store``). It lives outside the store
on purpose: a wrapper built into the store would itself need /nix.

Why a shell script and not a compiled launcher: measured on the rig
(``tests/bench/bench_modules.py``) the ``direct`` script adds well under the
1 ms target per exec, and ``/bin/sh`` exists on every node, while a compiled
launcher would need a compiler at build time or a binary per architecture.
POSIX ``exec`` cannot set argv[0], so the program sees its store path as
argv[0]; the basename (what multi-call programs look at) is the same as the
command the user typed.

Where shims live: ``<modules root>.shims/<prefix>/<NAME>/<version>/bin/``,
a sibling of the modules root. A sibling, because Lmod walks everything
under a ``module use`` directory as modulefiles (a shim under it would be
listed by ``module avail``), and next to the root, because whoever can read
the modules (a site tree under /opt/nixmod/modules is world-readable) can
then read the shims too.

Modes (``shims.mode``), decided inside the script each time it runs so that a
decision made on one node is never reused on another (the stale cached
choice is nix-portable's most reported problem):

* ``direct``: ``exec`` the store binary; same process, so stdin/stdout/
  stderr, signals and the exit status are the program's own.
* ``bwrap``: the store is at ``real_store_dir`` on this node; bubblewrap binds
  it onto ``store_dir`` in a private mount namespace with the rest of the host
  visible. Bubblewrap can only mount onto a directory that exists, so when
  ``store_dir`` is absent the new root is built from the host's top-level
  entries plus the store (as nixpkgs' buildFHSEnv does). Never
  ``--unshare-pid``: SLURM must still see and signal the program, and MPI
  launchers must find their ranks. ``--die-with-parent`` so that killing the
  shim (as SLURM does at the time limit) kills the program too.
* ``proot``: the same binding through ptrace, where user namespaces are off.
* ``auto``: ``direct`` if the store binary is there; else, if it is under
  ``real_store_dir``, ``bwrap`` when user namespaces are usable (a few
  builtin tests of /proc/sys, no process started) or bwrap is setuid, and
  ``proot`` otherwise; else a one-line error naming the missing path and
  the ``nixmod build`` that brings it back.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from nixmod import nix
from nixmod.config import Config
from nixmod.errors import UserError
from nixmod.files import atomic_write

#: outputs searched for programs, first found wins for a name: nixpkgs moves
#: programs to ``bin`` when a package has one, and ``out`` holds them otherwise
_OUTPUT_ORDER = ("bin", "out")
_PROGRAM_DIRS = ("bin", "sbin")
#: where a glibc locale archive sits inside a store path (glibcLocales)
_LOCALE_ARCHIVE = "lib/locale/locale-archive"

# The part of every shim after its header. Each choice is explained where it
# is made, because whoever debugs a job on a strange node will read this.
_RUNTIME = r'''
# Library paths inherited from other modules make store binaries load host
# libraries of other versions (and crash); store binaries find theirs through
# their RPATH, so they need neither.
unset LD_LIBRARY_PATH LD_PRELOAD

# Store-built OpenSSL/curl look for CA certificates where NixOS keeps them;
# point them at this host's bundle, unless the user already chose one.
if [ -z "${SSL_CERT_FILE-}" ]; then
    for nixmod_ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
                     /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
        if [ -r "$nixmod_ca" ]; then SSL_CERT_FILE=$nixmod_ca; export SSL_CERT_FILE; break; fi
    done
fi
if [ -z "${NIX_SSL_CERT_FILE-}" ] && [ -n "${SSL_CERT_FILE-}" ]; then
    NIX_SSL_CERT_FILE=$SSL_CERT_FILE; export NIX_SSL_CERT_FILE
fi

nixmod_missing() {
    echo "nixmod: $nixmod_target is missing on this node (${SLURMD_NODENAME:-$(uname -n)}); rebuild it with: $nixmod_rebuild" >&2
    exit 127
}

# bwrap works unprivileged only where user namespaces are on (or it is setuid).
nixmod_userns_ok() {
    [ -u "$1" ] && return 0
    for nixmod_knob in /proc/sys/kernel/unprivileged_userns_clone /proc/sys/user/max_user_namespaces; do
        if [ -r "$nixmod_knob" ]; then read -r nixmod_v < "$nixmod_knob"; [ "$nixmod_v" != 0 ] || return 1; fi
    done
    if [ -r /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
        read -r nixmod_v < /proc/sys/kernel/apparmor_restrict_unprivileged_userns
        [ "$nixmod_v" = 0 ] || return 1
    fi
    return 0
}

# A program under real_store_dir may be a symlink to another store path, named at
# store_dir (an environment's bin/ is all such links, as nixpkgs' buildEnv makes it):
# it resolves only once the store is bound at store_dir, so the link itself counts.
nixmod_present() { [ -e "$1" ] || [ -L "$1" ]; }

if [ "$nixmod_mode" = auto ]; then
    if [ -e "$nixmod_target" ]; then
        nixmod_mode=direct
    elif [ -n "$nixmod_real_store_dir" ] && nixmod_present "$nixmod_real_target"; then
        nixmod_mode=proot
        if nixmod_bwrap=$(command -v bwrap) && nixmod_userns_ok "$nixmod_bwrap"; then nixmod_mode=bwrap; fi
    else
        nixmod_missing
    fi
fi

case $nixmod_mode in
direct)
    [ -e "$nixmod_target" ] || nixmod_missing
    exec "$nixmod_target" "$@" ;;
bwrap)
    nixmod_present "$nixmod_real_target" || { nixmod_target=$nixmod_real_target; nixmod_missing; }
    if [ -d "$nixmod_store_dir" ]; then
        exec bwrap --dev-bind / / --ro-bind "$nixmod_real_store_dir" "$nixmod_store_dir" \
            --die-with-parent -- "$nixmod_target" "$@"
    fi
    # No mount point for the store: a new root of the host's top-level
    # entries (symlinks kept as symlinks, for merged-/usr hosts) plus the store.
    set -- -- "$nixmod_target" "$@"
    nixmod_top=${nixmod_store_dir#/}; nixmod_top=/${nixmod_top%%/*}
    for nixmod_entry in /*; do
        [ "$nixmod_entry" = "$nixmod_top" ] && continue
        if [ -L "$nixmod_entry" ]; then
            set -- --symlink "$(readlink "$nixmod_entry")" "$nixmod_entry" "$@"
        elif [ -e "$nixmod_entry" ]; then
            set -- --dev-bind "$nixmod_entry" "$nixmod_entry" "$@"
        fi
    done
    exec bwrap --die-with-parent --ro-bind "$nixmod_real_store_dir" "$nixmod_store_dir" "$@" ;;
proot)
    nixmod_present "$nixmod_real_target" || { nixmod_target=$nixmod_real_target; nixmod_missing; }
    exec proot -v -1 -b "$nixmod_real_store_dir:$nixmod_store_dir" "$nixmod_target" "$@" ;;
esac
echo "nixmod: unknown shim mode '$nixmod_mode' (want auto, direct, bwrap or proot)" >&2
exit 127
'''


@dataclass(frozen=True)
class Program:
    """One executable a shim stands for: the name on PATH and the store file it runs."""

    name: str
    target: str   # path under store_dir, as the store names it (not resolved)


def shims_root(modules_root: Path) -> Path:
    """The sibling directory of a modules root that holds its shims (see module doc)."""
    return modules_root.with_name(modules_root.name + ".shims")


def shim_dir(modules_root: Path, prefix: str, name: str, version: str) -> Path:
    """The per-build directory whose ``bin/`` a module puts on PATH."""
    return shims_root(modules_root) / prefix / name / version


def find_programs(outputs: Mapping[str, str]) -> list[Program]:
    """Every executable in ``bin/`` and ``sbin/`` of every output, one per name.

    The store path is named, not resolved: a program in ``bin/`` that is a
    symlink elsewhere in the store still runs as ``bin/<name>``, which is
    what wrapper scripts in nixpkgs expect to see.
    """
    ordered = [o for o in _OUTPUT_ORDER if o in outputs] + sorted(
        o for o in outputs if o not in _OUTPUT_ORDER)
    programs: dict[str, Program] = {}
    for output in ordered:
        for sub in _PROGRAM_DIRS:
            directory = Path(outputs[output]) / sub
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name in programs or entry.name.startswith("."):
                    continue
                if entry.is_file() and os.access(entry.path, os.X_OK):
                    programs[entry.name] = Program(entry.name, str(directory / entry.name))
    return list(programs.values())


@lru_cache(maxsize=4096)
def _closure(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The runtime closure of valid store paths (cached: a closure never changes)."""
    proc = nix.run(["nix-store", "--query", "--requisites", *paths], check=False)
    return tuple(proc.stdout.split()) if proc.returncode == 0 else paths


def locale_archive(outputs: Mapping[str, str]) -> str:
    """The glibc locale archive in the outputs' closure, or '' when there is none.

    Only then is LOCALE_ARCHIVE set: pointing store glibc at the host's
    archive (a different format) is worse than leaving it alone.
    """
    for path in _closure(tuple(sorted(outputs.values()))):
        candidate = Path(path) / _LOCALE_ARCHIVE
        if candidate.is_file():
            return str(candidate)
    return ""


def render_shim(config: Config, program: Program, *, rebuild: str, locale: str = "") -> str:
    """The text of one shim: a header of quoted values, then the shared runtime."""
    store_dir = str(config.shims.store_dir).rstrip("/") or "/"
    real_store_dir = str(config.shims.real_store_dir or "").rstrip("/")
    relative = os.path.relpath(program.target, store_dir)
    real_target = f"{real_store_dir}/{relative}" if real_store_dir else ""
    values = {
        "nixmod_target": program.target,
        "nixmod_real_target": real_target,
        "nixmod_store_dir": store_dir,
        "nixmod_real_store_dir": real_store_dir,
        "nixmod_mode": config.shims.mode,
        "nixmod_rebuild": rebuild,
    }
    lines = ["#!/bin/sh",
             "# nixmod FHS shim (generated; `nixmod modules refresh` rewrites it)"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    if locale:
        lines.append(f"LOCALE_ARCHIVE={shlex.quote(locale)}; export LOCALE_ARCHIVE")
    return "\n".join(lines) + "\n" + _RUNTIME


def check_mode(config: Config) -> None:
    """Refuse a forced namespace mode that has nothing to bind, before writing anything."""
    if config.shims.mode in ("bwrap", "proot") and not config.shims.real_store_dir:
        raise UserError(f"shims.mode = {config.shims.mode!r} needs shims.real_store_dir "
                        "(where the store really is on compute nodes); or use mode = \"auto\"")


def write_shims(config: Config, directory: Path, outputs: Mapping[str, str], *,
                rebuild: str) -> list[Program]:
    """Write ``directory/bin/<name>`` for each program, then drop shims no longer wanted.

    Each shim is replaced atomically, so a job starting the program while a
    refresh runs gets the old shim or the new one, never a missing file.
    """
    check_mode(config)
    programs = find_programs(outputs)
    locale = locale_archive(outputs) if programs else ""
    bin_dir = directory / "bin"
    for program in programs:
        atomic_write(bin_dir / program.name,
                     render_shim(config, program, rebuild=rebuild, locale=locale), mode=0o755)
    wanted = {p.name for p in programs}
    if bin_dir.is_dir():
        for stale in bin_dir.iterdir():
            if stale.name not in wanted:
                stale.unlink()
    return programs


def remove_shims(directory: Path) -> None:
    """Remove one build's shim directory and the name directory if it is left empty."""
    shutil.rmtree(directory, ignore_errors=True)
    _remove_empty_parents(directory.parent, stop=2)


def _remove_empty_parents(directory: Path, *, stop: int) -> None:
    """Remove ``directory`` and up to ``stop - 1`` parents while they are empty."""
    for _ in range(stop):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
