"""What an environment's module says (whatis, help, ``extensions()``), and the hint a
single library's module gives: plain text, which ``lmod`` puts into Lua literals."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from nixmod.metadata import Identity

__all__ = ["environment_hint", "environment_help", "environment_rebuild", "extension",
           "store_lines"]

#: a single library of an interpreter's set: its own module imports nothing (README "Environments")
_LIBRARY_SET = re.compile(r"(python[0-9]*Packages|rPackages)\.")


class EnvironmentRequest(Protocol):
    """What the help reads of an environment's ``lmod.ModuleRequest``."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def interpreter(self) -> str: ...
    @property
    def packages(self) -> Sequence[Identity]: ...
    @property
    def channel_pin(self) -> str: ...
    @property
    def drv(self) -> str: ...
    @property
    def outputs(self) -> Mapping[str, str]: ...


def store_lines(labelled: Sequence[tuple[str, str]], outputs: Mapping[str, str],
                programs: Sequence[str], shim_bin: Path) -> list[str]:
    """The lines every module's help ends with, a package's or an environment's: its facts
    (each ``label: value`` that has a value), each output's store path, the programs' wrappers."""
    lines = [f"{label}: {value}" for label, value in labelled if value]
    lines += [f"Store path ({output}): {path}" for output, path in outputs.items()]
    if programs:
        lines.append(f"Programs: {' '.join(programs)} (wrappers in {shim_bin})")
    return lines


def environment_help(request: EnvironmentRequest, module: str, programs: list[str],
                     shim_bin: Path) -> str:
    """``module help`` of an environment: its packages, channel pin, store path, programs."""
    lines = [f"{module}: {request.description}" if request.description else module, "",
             f"A nixmod environment from channel {request.channel or '(unknown)'}"
             + (f", interpreter {request.interpreter}." if request.interpreter else "."),
             "Packages:"]
    lines += [f"  {p.get('attr') or p.get('name')} {p.get('version', '')}" for p in request.packages]
    lines += store_lines((("Channel pin", request.channel_pin), ("Derivation", request.drv)),
                         request.outputs, programs, shim_bin)
    lines.append(f"Change it with: nixmod env add {request.name} SPEC... / "
                 f"nixmod env drop {request.name} PKG... (a new generation)")
    return "\n".join(lines)


def environment_hint(attr: str, demo: bool = False) -> str:
    """For a module of one Python or R library: the command that makes an environment
    that imports it ("" for any other package). Loading the library's own module puts
    its programs on PATH; no interpreter finds the library through it."""
    if not _LIBRARY_SET.match(attr):
        return ""
    leaf = re.sub(r"[^A-Za-z0-9_+-]", "-", attr.rsplit(".", 1)[-1]).strip("-") or "env"
    command = ("nixmod --demo env create " if demo else "nixmod env create ") + \
        f"{shlex.quote(leaf)} {shlex.quote(attr)} --wait"
    return f"To import it from its interpreter, make an environment: {command}"


def environment_rebuild(name: str, packages: Sequence[Identity], demo: bool = False) -> str:
    """``nixmod env add NAME PKG`` with a package the environment has: the same package
    set again, so a new generation of the same derivation (its store path back)."""
    first = str(packages[0].get("attr") or packages[0].get("name")) if packages else "PKG"
    return ("nixmod --demo env add " if demo else "nixmod env add ") + \
        f"{shlex.quote(name)} {shlex.quote(first)}"


def extension(package: Identity) -> str:
    """``numpy-demo/2.1.0`` for Lmod's ``extensions()``: the attribute's last part (what
    ``module spider`` is asked for), its version when it has one."""
    name = str(package.get("attr") or package.get("name") or "").rsplit(".", 1)[-1]
    version = str(package.get("version") or "")
    return f"{name}/{version}" if version else name
