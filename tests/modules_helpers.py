"""Helpers for the module and shim tests: build and write modules as a real user.

``tests/userside/write_modules.py`` runs as the unprivileged user through
the installed nixmod, so a test sees exactly what a user's `nixmod` would do:
nix-instantiate and nix-store --realise through the daemon, then
lmod.write_module into the user's tree.
"""

from __future__ import annotations

import json
import shlex
import shutil
import uuid
from pathlib import Path

import pytest

from rig import REPO, SCRATCH, UserSession, run_userside


def write_modules(session: UserSession, items: list[dict], root: Path) -> list[dict]:
    """Build (when no outputs are given) and write one module per item, as ``session``'s user."""
    proc = run_userside(session, "write_modules", input=json.dumps({"items": items, "root": str(root)}),
                        check=True)
    return json.loads(proc.stdout)


def lmod_script(root: Path, body: str, *, package_path: Path | None = None) -> str:
    """A bash snippet: Lmod on ``root`` (and the nixmod site hook when given), then ``body``."""
    hook = f"export LMOD_PACKAGE_PATH={shlex.quote(str(package_path))}\n" if package_path else ""
    return f"{hook}module use {shlex.quote(str(root))}\n{body}"


@pytest.fixture(scope="module")
def site_lua():
    """lua/ copied where every user can read it (the checkout may not be)."""
    target = SCRATCH / f"lua-{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO / "lua", target)
    for path in [target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target
