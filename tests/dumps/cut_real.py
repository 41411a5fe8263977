"""Cut the fast tier's real-nixpkgs dumps (``nixpkgs-*-envs.json``) from ../shared/data/nixpkgs.

    python tests/dumps/cut_real.py [DATA_DIR]

Environments are planned from attribute paths (``python313Packages.numpy``
goes into ``python313.withPackages``); the fast tests of that planning
(test_envplan_real.py) use the real names, so they are cut from the real
listings: the packages named below, each entry as nixpkgs wrote it, its
``meta`` reduced to what nixmod reads (description, homepage, license,
mainProgram, platforms on x86_64-linux) so the files stay small. Rerun it
after changing the lists; the output is sorted and stable.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: ../shared/data/nixpkgs of the first directory above the checkout that has one
DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else next(
    (p / "shared/data/nixpkgs" for p in HERE.parents if (p / "shared/data/nixpkgs").is_dir()),
    HERE.parents[2] / "shared/data/nixpkgs")

TOOLS = ["jq", "ripgrep", "git", "cmake", "hdf5", "gcc", "openmpi", "R", "rWrapper",
         "python3", "python312", "python313", "python314"]
PYTHON_LIBS = ["numpy", "scipy", "pandas", "matplotlib", "requests", "scikit-learn", "h5py",
               "xarray", "netcdf4", "sympy", "numba", "cython", "pytest", "ipython", "seaborn",
               "statsmodels", "networkx", "pillow", "pyyaml", "click", "rich", "tqdm", "dask",
               "bokeh", "plotly", "numexpr", "tables", "pyarrow", "polars", "biopython",
               "astropy", "mpi4py", "joblib", "lxml", "beautifulsoup4", "sqlalchemy", "flask",
               "attrs", "pydantic", "toolz", "cloudpickle", "fsspec", "zarr", "pint",
               "uncertainties", "lmfit", "scikit-image", "jupyter", "notebook", "distributed"]
#: (dump file, output name, the package sets whose PYTHON_LIBS are kept, extra attributes)
CUTS = [
    ("nixpkgs-26.11pre-master-2026-07.json.gz", "nixpkgs-26.11-envs.json",
     ["python313Packages", "python314Packages"], ["rPackages.ACME", "rPackages.AIMS"]),
    ("nixpkgs-20.09pre-unstable-2020-07-26.json.gz", "nixpkgs-20.09-envs.json",
     ["python37Packages", "python38Packages", "python3Packages"],
     ["rPackages.ggplot2", "rPackages.dplyr", "rPackages.data_table", "rPackages.Rcpp",
      "python3", "python37", "python38", "rWrapper", "R"]),
]
META_KEPT = ("description", "homepage", "license", "mainProgram")


def reduced(entry: dict) -> dict:
    meta = entry.get("meta") or {}
    kept = {key: meta[key] for key in META_KEPT if key in meta}
    if isinstance(meta.get("platforms"), list):
        kept["platforms"] = [p for p in meta["platforms"] if p == "x86_64-linux"]
    return {**{k: v for k, v in entry.items() if k != "meta"}, "meta": kept}


def main() -> None:
    for source, target, sets, extra in CUTS:
        with gzip.open(DATA / source, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        wanted = TOOLS + extra + [f"{s}.{lib}" for s in sets for lib in PYTHON_LIBS]
        cut = {attr: reduced(data[attr]) for attr in sorted(set(wanted)) if attr in data}
        (HERE / target).write_text(json.dumps(cut, indent=1, sort_keys=True) + "\n")
        print(f"{target}: {len(cut)} of {len(set(wanted))} attributes from {source}")


if __name__ == "__main__":
    main()
