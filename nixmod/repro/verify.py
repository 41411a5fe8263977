"""``nixmod verify``: rebuild a module's drv with ``--check`` and compare, output by output.

The rebuild runs where the configured backend builds (``Backend.verify``:
here, or one ``srun`` step on SLURM's build partition); this module only
compares what it says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from nixmod import lmod, nix
from nixmod.builds.registry import BACKENDS
from nixmod.config import Config
from nixmod.errors import UserError
from nixmod.repro.lockdoc import Progress


@dataclass(frozen=True)
class VerifyResult:
    """How one output of one module compared with a fresh build of it."""

    module: str
    output: str
    path: str
    result: str                 # reproducible | differs | not compared | failed
    detail: str = ""
    node: str = ""              # where the check build ran (a SLURM node, or this host)
    job: str = ""               # its SLURM job, if any

    def as_json(self) -> dict[str, str]:
        return {"module": self.module, "output": self.output, "path": self.path,
                "result": self.result, "detail": self.detail, "node": self.node, "job": self.job}


def verify(config: Config, targets: Sequence[str], *, backend: str | None = None,
           modules_root: Path | None = None, progress: Progress | None = None) -> list[VerifyResult]:
    """Rebuild each named module's drv with ``--check``; per output: reproducible or differs.

    ``<env_prefix>/NAME/GEN`` names a generation of an environment (its module tree).
    """
    if not targets:
        raise UserError("nixmod verify: name at least one module as NAME/VERSION "
                        "('nixmod modules list' shows them)")
    runner = BACKENDS[backend or config.build.backend]
    requests = []
    trees = {}
    for target in targets:
        tree = lmod.environment_config(config) \
            if target.startswith(f"{config.modules.env_prefix}/") else config
        name, version = lmod.parse_target(tree, target)
        request = lmod.read_request(lmod.module_path(tree, name, version, root=modules_root))
        if request is None:
            raise UserError(f"no module {lmod.module_name(tree, name, version)}; "
                            "'nixmod modules list' shows the modules")
        requests.append(request)
        trees[id(request)] = tree
    for request in requests:
        wanted = [request.drv, *request.outputs.values()]
        valid = nix.valid_paths(wanted)
        missing = [p for p in wanted if p not in valid]
        if missing:
            raise UserError(f"{request.name} {request.version}: {missing[0]} is not in the store; "
                            f"verify needs the built outputs and their derivation "
                            f"({lmod.rebuild_command(request.name, request.version)})")
    results: list[VerifyResult] = []
    for request in requests:
        module = lmod.module_name(trees[id(request)], request.name, request.version)
        if progress:
            progress(f"{module}: rebuilding {request.drv} {runner.VERIFY_PLACE} to compare (--check)")
        run = runner.verify(config, request.drv)
        differing = set(re.findall(r"output '([^']+)' differs", run.stderr))
        for output, path in request.outputs.items():
            if run.returncode == 0:
                result, detail = "reproducible", ""
            elif path in differing:
                result, detail = "differs", "a fresh build gave other bytes"
            elif differing:
                result, detail = "not compared", "the check stopped at a differing output"
            else:
                result, detail = "failed", nix.last_lines(run.stderr, 1)
            results.append(VerifyResult(module, output, path, result, detail, run.node, run.job))
    return results
