"""Lmod modulefiles for built store paths.

(Being built: the records below are the contract other parts rely on.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModuleRequest:
    """Everything a modulefile says, independent of where it came from (build or stack)."""

    name: str                       # attribute path (SPEC.md NAME)
    version: str
    description: str = ""
    homepage: str = ""
    license: str = ""
    channel: str = ""
    attr: str = ""
    drv: str = ""
    outputs: dict[str, str] = field(default_factory=dict)   # output name -> store path


@dataclass(frozen=True)
class ModuleInfo:
    """A modulefile on disk."""

    module: str        # e.g. "nix/hello/2.12.1" (what `module load` takes)
    name: str
    version: str
    path: Path         # the .lua file
    store_path: str = ""
    valid: bool = True  # is the store path still valid?
