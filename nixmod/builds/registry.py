"""Every scheduler nixmod can use, by its ``[build] backend`` name: the one registry.

mypy checks each module against the ``Backend`` protocol here; nothing
else in the core names a scheduler. The names themselves are
``config.BACKEND_NAMES`` (the config checks a value before any backend is
imported); a module added here without its name there, or the other way
round, stops nixmod at import rather than at a user's build.

A backend's module is imported when it is first looked up, not with the
registry: ``nixmod status`` with no SLURM job in flight never loads the
SLURM backend (issue 22, start-up). Iterating ``BACKENDS.items()`` loads
them all; callers that poll look up only the names their records carry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Iterator, Mapping

from nixmod.builds.backend import Backend
from nixmod.config import BACKEND_NAMES

__all__ = ["BACKENDS"]

#: the module of each backend, under ``nixmod.builds``
_MODULES = {"local": "local", "slurm": "slurm", "pbs": "pbs"}

if TYPE_CHECKING:   # mypy checks each module against the protocol, as the registry did eagerly
    from nixmod.builds import local, pbs, slurm

    _CHECKED: dict[str, Backend] = {local.NAME: local, slurm.NAME: slurm, pbs.NAME: pbs}


class _Backends(Mapping[str, Backend]):
    """The registry: names known at once, each module imported on its first lookup."""

    def __getitem__(self, name: str) -> Backend:
        if name not in _MODULES:
            raise KeyError(name)
        module: Backend = importlib.import_module(f"nixmod.builds.{_MODULES[name]}")
        return module

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)

    def __contains__(self, name: object) -> bool:
        return name in _MODULES


BACKENDS: Mapping[str, Backend] = _Backends()

if tuple(_MODULES) != BACKEND_NAMES:
    raise ImportError(f"builds.registry names {tuple(_MODULES)}, config.BACKEND_NAMES "
                      f"{BACKEND_NAMES}: add the backend to both")
