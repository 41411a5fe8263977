"""Environments, planned: which interpreter each package joins, which channel, which Nix expression.

An environment (SPEC.md "Environments") is one derivation made from several
packages of one channel, so that a Python imports its libraries and an R
loads its packages. This module decides, with no subprocess and no file,
what that derivation is; ``nixmod.environments`` instantiates and builds it
through ``builds`` like any package, and ``lmod`` writes its module.

How packages combine follows nixpkgs, through the channel's own functions
(never a copy of their logic):

* ``pythonXYPackages.*`` and ``python3Packages.*`` go into that interpreter's
  ``pythonXY.withPackages (ps: [ ... ])``;
* ``rPackages.*`` go into ``rWrapper.override { packages = [ ... ]; }``;
* the rest, with the interpreter's environment, into ``buildEnv``.

The expression depends only on the channel and the *sorted* attribute set:
never on the environment's NAME, its generation or the user's home. Two
users who make the same environment get the same drv, so the second one
reuses or joins the first one's build (nothing built twice).

Refused here, before anything is evaluated or submitted (UserError, exit 2,
one line): packages of two interpreters (naming both), packages pinned to
two channels (naming both), a package that is not in its interpreter's set
(saying where it is), an unknown package (the catalog's own suggestion).
A browse-only channel is refused by ``require_buildable``, which needs the
configuration; the planning itself runs on saved dumps too (the benchmark
plans on real nixpkgs listings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from nixmod.config import Config
from nixmod.errors import UserError
from nixmod.metadata import Identity, identity
from nixmod.nix import nix_string
from nixmod.packages import PackageVersion, SearchHit

__all__ = ["Lookup", "Role", "role_of", "EnvPlan", "plan_environment", "environment_expression",
           "require_buildable", "parse_spec", "ENV_DRV_NAME", "EnvGeneration", "generation_number"]

#: the derivation name of every environment: the same for everyone (never the user's NAME)
ENV_DRV_NAME = "nixmod-env"
#: an interpreter's package set: ``python3Packages``, ``python312Packages``
_PYTHON_SET = re.compile(r"(python[0-9]*)Packages\.(.+)")
#: a Python interpreter named on its own: ``python3``, ``python312``
_PYTHON = re.compile(r"python[0-9]*")
#: R's packages, and the names R itself goes by
_R_SET = re.compile(r"rPackages\.(.+)")
_R_NAMES = ("R", "rWrapper")
#: the attribute whose ``override { packages }`` makes an R that loads its packages
R_INTERPRETER = "rWrapper"
#: an attribute name Nix reads bare after a dot; anything else (a keyword too) is quoted
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_KEYWORDS = frozenset({"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"})


class Lookup(Protocol):
    """What planning asks of the catalog (``catalog.Catalog`` is one): in-process, no Nix."""

    def resolve(self, spec: str) -> PackageVersion: ...

    def versions(self, name: str, channel: str | None = None) -> list[PackageVersion]: ...

    def search(self, query: str, limit: int = 20, channel: str | None = None) -> list[SearchHit]: ...


@dataclass(frozen=True)
class Role:
    """Where one package goes in an environment.

    ``interpreter``: the attribute of the interpreter it needs (``python312``,
    ``rWrapper``), or "" for a package that goes into ``buildEnv`` as it is.
    ``in_set``: its attribute path inside the interpreter's package set
    (``numpy`` for ``python312Packages.numpy``); "" for the interpreter itself
    named on its own (``python312``, ``R``), which the interpreter's
    environment already holds.
    """

    interpreter: str = ""
    in_set: str = ""

    @property
    def is_interpreter(self) -> bool:
        return bool(self.interpreter) and not self.in_set


def role_of(attr: str) -> Role:
    """The interpreter ``attr`` belongs to, from its attribute path alone (nixpkgs' naming)."""
    match = _PYTHON_SET.fullmatch(attr)
    if match:
        return Role(interpreter=match.group(1), in_set=match.group(2))
    match = _R_SET.fullmatch(attr)
    if match:
        return Role(interpreter=R_INTERPRETER, in_set=match.group(1))
    if _PYTHON.fullmatch(attr):
        return Role(interpreter=attr)
    if attr in _R_NAMES:
        return Role(interpreter=R_INTERPRETER)
    return Role()


def parse_spec(spec: str) -> tuple[str | None, str, str]:
    """``[CHANNEL:]NAME[@VERSION]`` -> (channel or None, NAME, the ``@…`` part or "")."""
    text = spec.strip()
    channel = None
    if ":" in text.split("@", 1)[0]:
        channel, text = text.split(":", 1)
    name, at, wanted = text.partition("@")
    if not name or (at and not wanted):
        raise UserError(f"bad package {spec!r}; write NAME, NAME@VERSION or CHANNEL:NAME "
                        "(e.g. python3Packages.numpy)")
    return channel, name, at + wanted


@dataclass(frozen=True)
class EnvPlan:
    """What an environment is, decided: one channel, at most one interpreter, its packages.

    ``members`` are the catalog's records, sorted by attribute path, each
    once; ``expression`` is a Nix function of the channel's package set
    (``pkgs: …``) whose result is the environment: ``nix.instantiate_expression``
    applies it to the channel.
    """

    channel: str
    interpreter: str | None
    members: tuple[PackageVersion, ...]
    expression: str

    @property
    def attrs(self) -> list[str]:
        return [m.attr for m in self.members]

    def packages(self) -> list[Identity]:
        """The members as the records keep them (name, version, channel, attr)."""
        return [identity(m) for m in self.members]

    def as_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "interpreter": self.interpreter,
                "packages": self.packages(), "expression": self.expression}


def plan_environment(catalog: Lookup, specs: Sequence[str], channels: Sequence[str],
                     channel: str | None = None) -> EnvPlan:
    """Plan an environment of ``specs`` (``[CHANNEL:]NAME[@VERSION]``).

    ``channels`` are the configured channels' names, newest last (the
    catalog's order). The channel is ``channel`` (``--channel``) or a
    spec's own ``CHANNEL:``, else the newest channel that has every package.
    Raises UserError (one line) for everything the module docstring lists.
    """
    if not specs:
        raise UserError("an environment needs at least one package, "
                        "e.g. 'nixmod env create sci python3Packages.numpy'")
    parsed = [(spec, *parse_spec(spec)) for spec in specs]
    interpreter = _one_interpreter([(spec, name) for spec, _c, name, _w in parsed])
    fixed = _one_channel(parsed, channel)
    candidates = [fixed] if fixed else list(reversed(channels))
    for candidate in candidates:
        members = _resolve_all(catalog, parsed, candidate)
        if members is not None:
            return _planned(candidate, interpreter, members)
    raise _why_unresolved(catalog, parsed, fixed)


def _one_interpreter(named: Sequence[tuple[str, str]]) -> str | None:
    """The one interpreter the packages need (None: none), or UserError naming two that clash."""
    seen: dict[str, str] = {}          # interpreter -> the first spec that needs it
    for spec, name in named:
        role = role_of(name)
        if not role.interpreter:
            continue
        for other_interpreter, other_spec in seen.items():
            if other_interpreter != role.interpreter:
                raise UserError(
                    f"{other_spec} and {spec} need two interpreters ({other_interpreter} and "
                    f"{role.interpreter}); an environment has one: take every package from "
                    f"one set (e.g. {_in_same_set(spec, other_interpreter)})")
        seen.setdefault(role.interpreter, spec)
    return next(iter(seen), None)


def _in_same_set(spec: str, interpreter: str) -> str:
    """``spec`` as the package of ``interpreter``'s set it would be (for the advice)."""
    _channel, name, _wanted = parse_spec(spec)
    role = role_of(name)
    if not role.in_set:
        return f"drop {name}; {interpreter}'s packages bring {interpreter}"
    if interpreter == R_INTERPRETER:
        return f"rPackages.{role.in_set}"
    return f"{interpreter}Packages.{role.in_set}"


def _one_channel(parsed: Sequence[tuple[str, str | None, str, str]], channel: str | None) -> str | None:
    """The channel the specs (and ``--channel``) pin, if any; UserError when they pin two."""
    pinned = [(f"--channel {channel}", channel)] if channel else []
    pinned += [(spec, chosen) for spec, chosen, _n, _w in parsed if chosen]
    for spec, chosen in pinned[1:]:
        if chosen != pinned[0][1]:
            raise UserError(f"{pinned[0][0]} and {spec} name two channels ({pinned[0][1]} and "
                            f"{chosen}); an environment is built from one channel: name one "
                            "with --channel")
    return pinned[0][1] if pinned else None


def _resolve_all(catalog: Lookup, parsed: Sequence[tuple[str, str | None, str, str]],
                 channel: str) -> list[PackageVersion] | None:
    """Every spec resolved in ``channel``, or None if one is not there."""
    members = []
    for _spec, _chosen, name, wanted in parsed:
        try:
            members.append(catalog.resolve(f"{channel}:{name}{wanted}"))
        except UserError:
            return None
    return members


def _why_unresolved(catalog: Lookup, parsed: Sequence[tuple[str, str | None, str, str]],
                    fixed: str | None) -> UserError:
    """The one line that says why no channel has every package."""
    found: list[tuple[str, set[str]]] = []
    for spec, _chosen, name, wanted in parsed:
        try:
            everywhere = catalog.resolve(f"{name}{wanted}")
        except UserError as exc:
            return _not_in_set(catalog, name) or exc
        if fixed:
            try:
                catalog.resolve(f"{fixed}:{name}{wanted}")
            except UserError as exc:
                return UserError(f"{spec}: {exc}")
        found.append((spec, _channels_with(catalog, name, wanted, everywhere)))
    for index, (spec, where) in enumerate(found):
        for other, other_where in found[index + 1:]:
            if not where & other_where:
                return UserError(
                    f"{spec} (channel {', '.join(sorted(where))}) and {other} (channel "
                    f"{', '.join(sorted(other_where))}) are in no channel together; an "
                    "environment is built from one channel")
    return UserError("no channel has every package of "
                     f"{' '.join(spec for spec, *_ in parsed)}; 'nixmod versions NAME' shows "
                     "where each one is")


def _channels_with(catalog: Lookup, name: str, wanted: str, newest: PackageVersion) -> set[str]:
    """The channels that have ``name`` (at ``wanted``), from the catalog's versions of it."""
    where = set()
    for version in catalog.versions(name):
        try:
            catalog.resolve(f"{version.channel}:{name}{wanted}")
            where.add(version.channel)
        except UserError:
            continue
    return where or {newest.channel}


def _not_in_set(catalog: Lookup, name: str) -> UserError | None:
    """For ``python312Packages.foo`` that does not exist: where ``foo`` is, if anywhere."""
    role = role_of(name)
    if not role.in_set:
        return None
    leaf = role.in_set
    owner = f"{role.interpreter}'s package set" if role.interpreter != R_INTERPRETER else "rPackages"
    elsewhere = [hit.package.name for hit in catalog.search(leaf, limit=50)
                 if hit.package.name == leaf or hit.package.name.endswith(f"Packages.{leaf}")]
    if not elsewhere:
        return None
    if leaf in elsewhere:
        return UserError(f"{name}: {leaf} is not in {owner}; it is a package of its own: "
                         f"give it as {leaf} (it goes into the environment beside the interpreter)")
    return UserError(f"{name}: {leaf} is not in {owner}; it is in {', '.join(elsewhere[:3])}: "
                     "take every package from one of those sets")


def _planned(channel: str, interpreter: str | None, members: Iterable[PackageVersion]) -> EnvPlan:
    unique = {m.attr: m for m in members}     # one package named twice is one member
    ordered = tuple(unique[attr] for attr in sorted(unique))
    return EnvPlan(channel=channel, interpreter=interpreter, members=ordered,
                   expression=environment_expression(interpreter, [m.attr for m in ordered]))


def environment_expression(interpreter: str | None, attrs: Iterable[str]) -> str:
    """The Nix function ``pkgs: …`` that makes the environment of ``attrs`` in a channel.

    Only the channel's functions: ``withPackages``, ``rWrapper.override``,
    ``buildEnv``. The text depends on nothing but the sorted attributes and
    the interpreter, so equal environments are equal derivations.
    """
    in_set: list[str] = []
    plain: list[str] = []
    for attr in sorted(set(attrs)):
        role = role_of(attr)
        if role.in_set:
            in_set.append(role.in_set)
        elif not role.is_interpreter:
            plain.append(_pkgs(attr))
    paths = []
    if interpreter == R_INTERPRETER:
        listed = " ".join(_pkgs(f"rPackages.{leaf}") for leaf in in_set)
        paths.append(f"(pkgs.{R_INTERPRETER}.override {{ packages = [ {listed} ]; }})")
    elif interpreter:
        listed = " ".join(_select("ps", leaf) for leaf in in_set)
        paths.append(f"({_pkgs(interpreter)}.withPackages (ps: [ {listed} ]))")
    paths += plain
    body = "\n".join(f"    {p}" for p in paths)
    return (f"pkgs: pkgs.buildEnv {{\n  name = {nix_string(ENV_DRV_NAME)};\n"
            f"  paths = [\n{body}\n  ];\n}}\n")


def _pkgs(attr: str) -> str:
    return _select("pkgs", attr)


def _select(base: str, attr: str) -> str:
    """``base.a.b`` for a dotted attribute path from a catalog (anybody's text): each part
    bare when Nix reads it so, else a quoted string, so no name becomes Nix code."""
    return base + "".join("." + (part if _BARE.fullmatch(part) and part not in _KEYWORDS
                                 else nix_string(part)) for part in attr.split("."))


def require_buildable(config: Config, plan: EnvPlan) -> None:
    """Refuse a plan on a browse-only channel (a saved package list), in one line."""
    chosen = config.channel(plan.channel)
    if chosen.is_dump:
        buildable = [c.name for c in config.channels if not c.is_dump]
        hint = (f"; name a nixpkgs path or url channel with --channel ({', '.join(buildable)})"
                if buildable else "; configure a nixpkgs path or url channel to build from")
        raise UserError(f"channel {chosen.name!r} is a saved package list ({chosen.path}), "
                        f"browse-only: an environment cannot be built from it{hint}")


# -- generations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EnvGeneration:
    """One generation of a user's environment: what ``env list`` / ``env show`` report.

    Kept in the generation's modulefile (``<root>/<env_prefix>/NAME/<generation>.lua``),
    as the JSON request every nixmod modulefile carries (``lmod.ModuleRequest``
    with ``packages`` and ``interpreter``), so the tree itself is the record:
    no second store that could disagree with what ``module load`` finds.
    """

    name: str                     # the environment's NAME (the user's word, validated)
    generation: int
    channel: str
    channel_pin: str = ""
    interpreter: str = ""
    packages: list[Identity] = field(default_factory=list)
    drv: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    module: str = ""              # ``nixenv/NAME/GEN``
    valid: bool = True            # are the store paths still valid?

    @property
    def store_path(self) -> str:
        return self.outputs.get("out") or next(iter(self.outputs.values()), "")

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "generation": self.generation, "module": self.module,
                "channel": self.channel, "channel_pin": self.channel_pin,
                "interpreter": self.interpreter or None,
                "packages": [dict(p) for p in self.packages], "drv": self.drv,
                "outputs": dict(self.outputs), "store_path": self.store_path, "valid": self.valid}


def generation_number(text: str) -> int | None:
    """A generation as a module version names it (``"3"``), or None for anything else."""
    return int(text) if text.isdigit() and not text.startswith("0") else None
