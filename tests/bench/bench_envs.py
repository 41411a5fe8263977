"""Environment planning on real nixpkgs: about 50 Python libraries and a few tools, under 1 s.

    /opt/nixmod/venv/bin/python tests/bench/bench_envs.py [DATA_DIR]

DATA_DIR defaults to ../shared/data/nixpkgs beside the checkout (or
$NIXMOD_BENCH_DATA). Its 2026 and 2020 listings (96,000 and 50,000
packages) are configured as two channels in a throwaway HOME; the catalog
is built once (not timed here: bench_catalog's), then a fresh process loads
it from the cache and plans (``envplan.plan_environment``, what ``env
create`` does before it evaluates anything):

1. 50 ``python313Packages.*`` and 4 tools: the newest channel, python313's
   ``withPackages``, the tools beside it in ``buildEnv``;
2. R with three libraries that only the 2020 channel has: the newest
   channel is tried first, then the older one (the slow path);
3. the refusal of two interpreters (nothing resolved at all).

The listings hold no ``python312Packages`` (2026 has python313/314Packages,
2020 python37/38Packages), so the Python case uses python313Packages: the
same rule, the names the dump has. Each plan is checked (interpreter,
channel, expression) and timed: the first plan after loading (it unpacks
the catalog's lazily loaded sections) and the median of 5.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Targets, exit_with  # noqa: E402

PYTHON = sys.executable
NEW = "nixpkgs-26.11pre-master-2026-07"
OLD = "nixpkgs-20.09pre-unstable-2020-07-26"
LIBS = ["numpy", "scipy", "pandas", "matplotlib", "requests", "scikit-learn", "h5py", "xarray",
        "netcdf4", "sympy", "numba", "cython", "pytest", "ipython", "seaborn", "statsmodels",
        "networkx", "pillow", "pyyaml", "click", "rich", "tqdm", "dask", "bokeh", "plotly",
        "numexpr", "tables", "pyarrow", "polars", "biopython", "astropy", "mpi4py", "joblib",
        "lxml", "beautifulsoup4", "sqlalchemy", "flask", "attrs", "pydantic", "toolz",
        "cloudpickle", "fsspec", "zarr", "pint", "uncertainties", "lmfit", "scikit-image",
        "jupyter", "notebook", "distributed"]
TOOLS = ["jq", "ripgrep", "git", "cmake"]
CASES = {
    "python": ([f"python313Packages.{lib}" for lib in LIBS] + TOOLS, "python313", NEW),
    "r": (["rPackages.ggplot2", "rPackages.dplyr", "rPackages.data_table", "jq"], "rWrapper", OLD),
    "refused": (["python313Packages.numpy", "python314Packages.scipy"], "", ""),
}

PHASE = r"""
import json, statistics, sys, time
from nixmod.config import load_config
from nixmod.catalog import Catalog
from nixmod.envplan import plan_environment
from nixmod.errors import UserError
t0 = time.perf_counter()
catalog = Catalog.load(load_config())
load = time.perf_counter() - t0
channels = [c.name for c in catalog.channels]
out = {"load": load, "packages": len(catalog), "cases": {}}
for name, specs in json.loads(sys.argv[1]).items():
    times, result = [], None
    for _ in range(6):
        t = time.perf_counter()
        try:
            plan = plan_environment(catalog, specs, channels)
            result = {"interpreter": plan.interpreter, "channel": plan.channel,
                      "members": len(plan.members), "expression": plan.expression}
        except UserError as exc:
            result = {"refused": str(exc)}
        times.append(time.perf_counter() - t)
    out["cases"][name] = {"first": times[0], "median": statistics.median(times[1:]), **result}
print(json.dumps(out))
"""


def check(name: str, case: dict, interpreter: str, channel: str, specs: list[str]) -> list[str]:
    """What is wrong with the plan of ``name`` (empty when it is the right one)."""
    if not interpreter:
        said = case.get("refused", "")
        return [] if "need two interpreters" in said else [f"{name}: not refused ({case})"]
    wrong = []
    if (case.get("interpreter"), case.get("channel")) != (interpreter, channel):
        wrong.append(f"{name}: planned {case.get('interpreter')} in {case.get('channel')}, "
                     f"expected {interpreter} in {channel}")
    if case.get("members") != len(specs):
        wrong.append(f"{name}: {case.get('members')} members, expected {len(specs)}")
    expression = case.get("expression", "")
    if interpreter == "rWrapper":
        wanted = ["pkgs.rWrapper.override { packages = [ pkgs.rPackages.data_table "
                  "pkgs.rPackages.dplyr pkgs.rPackages.ggplot2 ]; }", "pkgs.jq"]
    else:
        leaves = " ".join("ps." + lib for lib in sorted(LIBS))
        wanted = [f"(pkgs.python313.withPackages (ps: [ {leaves} ]))",
                  *(f"pkgs.{tool}\n" for tool in sorted(TOOLS))]
    wrong += [f"{name}: expression lacks {piece!r}" for piece in wanted if piece not in expression]
    return wrong


def shared_data() -> Path:
    """../shared/data/nixpkgs of the first directory above the checkout that has one
    (a checkout at /work/main and a worktree at /work/wt/NAME both find /work/shared)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared/data/nixpkgs").is_dir():
            return parent / "shared/data/nixpkgs"
    return Path(__file__).resolve().parents[3] / "shared/data/nixpkgs"


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else
                os.environ.get("NIXMOD_BENCH_DATA", str(shared_data())))
    home = Path(tempfile.mkdtemp(prefix="nixmod-bench-envs-"))
    targets = Targets("envs")
    try:
        config = home / ".config/nixmod/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text("".join(f'[[channels]]\nname = "{name}"\npath = "{data / name}.json.gz"\n\n'
                                  for name in (OLD, NEW)))
        env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
               "XDG_CONFIG_HOME": str(home / ".config"), "NIXMOD_SITE_CONFIG": "/nonexistent"}
        # the catalog once, untimed (bench_catalog times it): planning reads the cache
        refresh = subprocess.run([PYTHON, "-m", "nixmod", "catalog", "refresh"], env=env,
                                 capture_output=True, text=True)
        if refresh.returncode:
            raise SystemExit(f"catalog refresh failed: {refresh.stderr[-2000:]}")
        proc = subprocess.run([PYTHON, "-c", PHASE, json.dumps({k: v[0] for k, v in CASES.items()})],
                              env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"planning failed: {proc.stderr[-2000:]}")
        out = json.loads(proc.stdout)
        print(f"environment planning on {out['packages']} packages in 2 channels "
              f"(catalog loaded from its cache in {out['load'] * 1000:.0f} ms)")
        wrong = []
        for name, (specs, interpreter, channel) in CASES.items():
            case = out["cases"][name]
            wrong += check(name, case, interpreter, channel, specs)
            label = f"{name} ({len(specs)} packages)"
            targets.check(f"plan {label}, first", case["first"] * 1000, 1000)
            targets.check(f"plan {label}, median of 5", case["median"] * 1000, 1000)
        for line in wrong:
            print(f"WRONG PLAN: {line}")
        if wrong:
            targets.check("plans that are wrong", len(wrong), 0, unit="")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    exit_with(targets)


if __name__ == "__main__":
    main()
