"""Helpers for the module and shim tests: build and write modules as a real user.

The Python snippet below runs as the unprivileged user through the
installed nixmod, so a test sees exactly what a user's `nixmod` would do:
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

from rig import REPO, SCRATCH, VENV, UserSession

_WRITER = r'''
import json, sys
from pathlib import Path
from nixmod import lmod, nix
from nixmod.config import load_config
from nixmod.errors import NixmodError

spec = json.load(sys.stdin)
config = load_config()
built = {}
infos = []
for item in spec["items"]:
    outputs = item.get("outputs")
    if outputs is None:
        key = (item["channel"], item["attr"])
        if key not in built:
            inst = nix.instantiate(Path(item["channel"]), item["attr"])
            nix.run(nix.realise_command(inst.drv))
            built[key] = inst
        outputs = built[key].outputs
    text = {k: item[k] for k in ("description", "homepage", "license", "attr") if k in item}
    request = lmod.ModuleRequest(name=item["name"], version=item["version"], outputs=outputs,
                                 channel=item.get("channel_name", ""), **text)
    try:
        info = lmod.write_module(config, request, root=Path(spec["root"]),
                                 default=item.get("default", False))
    except NixmodError as exc:
        infos.append({"error": str(exc), "exit": exc.exit_code})
        continue
    infos.append({"module": info.module, "path": str(info.path), "outputs": outputs})
print(json.dumps(infos))
'''


def write_modules(session: UserSession, items: list[dict], root: Path) -> list[dict]:
    """Build (when no outputs are given) and write one module per item, as ``session``'s user."""
    proc = session.run(str(VENV / "bin/python"), "-c", _WRITER,
                       input=json.dumps({"items": items, "root": str(root)}), check=True)
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
