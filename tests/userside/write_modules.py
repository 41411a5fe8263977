"""Build (when an item gives no outputs) and write one module per item, as the user does.

stdin: {"root": modules root, "items": [{name, version, channel?, attr?, outputs?,
description?, homepage?, license?, channel_name?, default?}]}. nix-instantiate
and nix-store --realise run through the daemon, then ``lmod.write_module``
writes into the user's tree. stdout: one JSON object per item, {module, path,
outputs} or {error, exit} when nixmod refused it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nixmod import lmod, nix
from nixmod.config import load_config
from nixmod.errors import NixmodError


def write_all(spec: dict[str, Any]) -> list[dict[str, Any]]:
    config = load_config()
    built: dict[tuple[str, str], nix.Instantiated] = {}
    infos: list[dict[str, Any]] = []
    for item in spec["items"]:
        outputs = item.get("outputs")
        if outputs is None:
            key = (item["channel"], item["attr"])
            if key not in built:
                instantiated = nix.instantiate(Path(item["channel"]), item["attr"])
                nix.run(nix.realise_command(instantiated.drv))
                built[key] = instantiated
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
    return infos


if __name__ == "__main__":
    print(json.dumps(write_all(json.load(sys.stdin))))
