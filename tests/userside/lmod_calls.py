"""``nixmod.lmod`` called as the user: ``refresh ROOT`` (stdin: [{name, version, description,
outputs}], the requests; stdout: {"written": [...], "pruned": [...]}), ``spider-cache ROOT``
(stdout: the spider cache directory written) and ``set-default NAME VERSION`` (in the
user's own tree, as a stack makes its defaults)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nixmod import lmod
from nixmod.config import load_config


def refresh(root: Path) -> dict[str, list[str]]:
    requests = [lmod.ModuleRequest(name=r["name"], version=r["version"], description=r.get("description", ""),
                                   outputs=r["outputs"]) for r in json.load(sys.stdin)]
    result = lmod.refresh_modules(load_config(), requests, root=root)
    return {"written": [i.module for i in result.written], "pruned": [i.module for i in result.pruned]}


if __name__ == "__main__":
    verb = sys.argv[1]
    if verb == "refresh":
        print(json.dumps(refresh(Path(sys.argv[2]))))
    elif verb == "spider-cache":
        print(lmod.update_spider_cache(Path(sys.argv[2])))
    elif verb == "set-default":
        lmod.set_default(load_config(), sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"lmod_calls: unknown verb {verb!r}")
