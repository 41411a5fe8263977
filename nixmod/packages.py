"""The package records every part codes against: what the catalog finds and the faces show.

``PackageVersion`` (one version of one package in one channel: what a build
is made from), ``Package`` (a name's versions), ``SearchHit``, and what the
catalog says about its channels. Plain data on the ground floor: the
builds, stacks, locks and both faces use these types without loading the
catalog's search code.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PackageVersion", "Package", "MATCH_KINDS", "SearchHit", "ChannelInfo", "ChannelError",
           "SkippedEntry", "CatalogInfo", "display_version", "version_json"]


@dataclass(frozen=True)
class PackageVersion:
    """One version of one package, as one channel pins it."""

    name: str                 # the attribute path: what users type (SPEC.md NAME)
    version: str
    channel: str
    attr: str                 # attribute path inside the channel (== name today)
    pname: str = ""           # the derivation's own pname (hdf5 -> hdf5-cpp)
    description: str = ""
    homepage: str = ""
    license: str = ""         # display string, e.g. "MIT, BSD-3-Clause"
    platforms: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("out",)
    main_program: str = ""


@dataclass
class Package:
    """A name and all its versions across channels: the newest channel's first.

    ``versions[0]`` is what ``nixmod build NAME`` picks (the module docstring
    says why channel order, not Nix's version order across channels).
    """

    name: str
    versions: list[PackageVersion] = field(default_factory=list)

    @property
    def newest(self) -> PackageVersion:
        return self.versions[0]


#: how a search hit matched, best first; SearchHit.rank is the position here.
#: "component": the last component of the attribute path is the query.
MATCH_KINDS = ("exact", "program", "component", "prefix", "name", "fuzzy", "description")


@dataclass(frozen=True)
class SearchHit:
    """One search result: the package (versions newest first) and why it matched."""

    package: Package
    kind: str                 # one of MATCH_KINDS
    rank: int                 # MATCH_KINDS.index(kind): lower is better

    @property
    def newest(self) -> PackageVersion:
        return self.package.newest


@dataclass(frozen=True)
class ChannelInfo:
    """What the catalog knows about one configured channel."""

    name: str
    source: str               # the path or url, for people
    kind: str                 # "dump" | "nix" | "url"
    packages: int = 0         # records indexed
    skipped: int = 0          # entries reported instead of indexed
    error: str = ""           # Nix's (or the reader's) message when the channel failed
    listed_at: float = 0.0    # when it was evaluated or read (epoch seconds)


@dataclass(frozen=True)
class ChannelError:
    """A channel that could not be listed; the others still load."""

    channel: str
    message: str


@dataclass(frozen=True)
class SkippedEntry:
    """A listed entry that did not become a record, with the reason."""

    channel: str
    attr: str
    reason: str


@dataclass(frozen=True)
class CatalogInfo:
    """``nixmod catalog info``: where the index is, how old, what it holds."""

    cache: str
    built_at: float
    packages: int             # distinct names
    versions: int             # (name, channel) records
    channels: list[ChannelInfo]

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.built_at)


def display_version(version: str) -> str:
    """A version for a table or a message: nix-env leaves some empty
    (``lammps-stable_22Aug2018`` has no version after its name), shown as ``(none)``."""
    return version if version else "(none)"


def version_json(version: PackageVersion) -> dict[str, Any]:
    """A PackageVersion as JSON for ``--json`` output (lists, not tuples)."""
    data = asdict(version)
    data["platforms"] = list(version.platforms)
    data["outputs"] = list(version.outputs)
    return data
