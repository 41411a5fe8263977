"""Every scheduler nixmod can use, by its ``[build] backend`` name: the one registry.

mypy checks each module against the ``Backend`` protocol here; nothing
else in the core names a scheduler. The names themselves are
``config.BACKEND_NAMES`` (the config checks a value before any backend is
imported); a module added here without its name there, or the other way
round, stops nixmod at import rather than at a user's build.
"""

from __future__ import annotations

from nixmod.builds import local, pbs, slurm
from nixmod.builds.backend import Backend
from nixmod.config import BACKEND_NAMES

__all__ = ["BACKENDS"]

BACKENDS: dict[str, Backend] = {local.NAME: local, slurm.NAME: slurm, pbs.NAME: pbs}

if tuple(BACKENDS) != BACKEND_NAMES:
    raise ImportError(f"builds.registry names {tuple(BACKENDS)}, config.BACKEND_NAMES "
                      f"{BACKEND_NAMES}: add the backend to both")
