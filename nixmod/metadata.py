"""What every record of one package says about it, wherever that record lives.

Four records describe a package on its way from the catalog to a user's
``module load``: the catalog's ``PackageVersion``, the build request
(``builds.BuildRecord``, an SQLite row), the modulefile's
``lmod.ModuleRequest`` (JSON in the modulefile's header) and a lock's
``repro.LockedPackage``. Each is stored its own way, so they stay four
types; what passes from one to the next passes through ``metadata`` (or its
two halves) here, so a field that every record should carry is one edit
here and mypy points at every record that lacks it.
"""

from __future__ import annotations

from typing import Protocol, TypedDict


class Identity(TypedDict):
    """Which package: the name users type, its version, and where it was pinned."""

    name: str
    version: str
    channel: str
    attr: str


class About(TypedDict):
    """What the package is, as ``module help`` and the TUI show it."""

    description: str
    homepage: str
    license: str


class Metadata(Identity, About):
    """Both halves: everything a package's records share."""


class Described(Protocol):
    """Any record that carries a package's metadata (read-only is enough)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def attr(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def homepage(self) -> str: ...
    @property
    def license(self) -> str: ...


def identity(of: Described) -> Identity:
    """``of``'s name, version, channel and attribute (an old record's empty attr is its name)."""
    return Identity(name=of.name, version=of.version, channel=of.channel,
                    attr=of.attr or of.name)


def about(of: Described) -> About:
    return About(description=of.description, homepage=of.homepage, license=of.license)


def metadata(of: Described) -> Metadata:
    """Everything ``of`` says about its package, to build the next record from: ``X(**metadata(r), …)``."""
    return Metadata(**identity(of), **about(of))
