"""The catalog: pinned channels merged into one searchable index.

(Being built: the records below are the contract other parts rely on.)
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """A name and all its versions across channels, newest first (Nix's order)."""

    name: str
    versions: list[PackageVersion] = field(default_factory=list)

    @property
    def newest(self) -> PackageVersion:
        return self.versions[0]
