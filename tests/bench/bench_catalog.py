"""Catalog benchmark on real data: five nixpkgs package lists, 2016-2026.

    /opt/nixmod/venv/bin/python tests/bench/bench_catalog.py [DATA_DIR]

DATA_DIR defaults to ../shared/data/nixpkgs beside the checkout (or $NIXMOD_BENCH_DATA). The
five dumps are configured as five channels in a throwaway HOME. Each phase
runs in its own process so that its peak RSS is its own:

1. cold: build the index from the dumps (no cache at all);
2. warm: load from the cache, then 200 fixed queries (full names, prefixes,
   one letter, typos, programs, description words): p50/p95/max;
3. ``nixmod search QUERY`` as a whole process, wall time (median of 7).

Figures are printed; nothing is asserted (targets: warm < 0.3 s, p95 <
15 ms, RSS < 400 MB, whole search < 0.5 s).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
NIXMOD = Path(PYTHON).with_name("nixmod")

NAMES = ["hello", "git", "firefox", "python3", "gcc", "cmake", "openssl", "curl", "vim",
         "emacs", "ripgrep", "samtools", "hdf5", "openmpi", "fftw", "boost", "zlib", "jq",
         "htop", "tmux", "neovim", "rustc", "go", "nodejs", "perl", "R", "julia", "octave",
         "gnuplot", "imagemagick", "ffmpeg", "blast", "bwa", "bowtie2", "gromacs", "lammps",
         "python3Packages.numpy", "python3Packages.scipy", "python3Packages.requests",
         "netcdf", "gdal", "sqlite", "postgresql", "docker", "singularity", "apptainer",
         "libreoffice", "inkscape", "gimp", "texlive"]
PROGRAMS = ["rg", "nvim", "hx", "fd", "bat", "ssh", "make", "python", "gpg", "rsync"]
DESCRIPTIONS = ["silver searcher", "greeting", "compression library", "sequence alignment",
                "molecular dynamics", "json processor", "web browser", "version control",
                "image manipulation", "fast fourier"]


def typo(word: str, seed: int) -> str:
    """A deterministic one-keystroke typo: drop, swap or double a letter."""
    if len(word) < 4:
        return word + word[-1]
    i = 1 + seed % (len(word) - 2)
    kind = seed % 3
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i] + word[i:]


def queries() -> list[str]:
    result = list(NAMES)                                                  # 50 full names
    result += [n[:k] for n in NAMES[:20] for k in (2, 3)]                 # 40 prefixes
    result += list("abcdefghijklmnopqrstuvwxyz")                          # 26 one letter
    result += [typo(n.split(".")[-1], i) for i, n in enumerate(NAMES)]    # 50 typos
    result += PROGRAMS + DESCRIPTIONS                                     # 20
    result += [n.upper() for n in NAMES[:14]]                             # 14 case
    assert len(result) == 200, len(result)
    return result


PHASE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from nixmod.config import load_config
from nixmod.catalog import Catalog
config = load_config()
catalog = Catalog.load(config)
load = time.perf_counter() - t0
out = {"load": load, "packages": len(catalog), "errors": len(catalog.errors)}
if sys.argv[1] == "warm":
    t = time.perf_counter()
    catalog.search("ripgrp")  # first query: unpacks the lazily loaded sections
    out["first"] = time.perf_counter() - t
    times = []
    for query in json.loads(sys.argv[2]):
        t = time.perf_counter()
        catalog.search(query)
        times.append(time.perf_counter() - t)
    out["times"] = times
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_phase(phase: str, env: dict[str, str]) -> dict:
    proc = subprocess.run([PYTHON, "-c", PHASE, phase, json.dumps(queries())],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else
                os.environ.get("NIXMOD_BENCH_DATA",
                               str(Path(__file__).resolve().parents[3] / "shared/data/nixpkgs")))
    dumps = sorted(data.glob("*.json.gz"))
    if not dumps:
        raise SystemExit(f"no *.json.gz under {data}")
    home = Path(tempfile.mkdtemp(prefix="nixmod-bench-"))
    try:
        config = home / ".config/nixmod/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text("".join(
            f'[[channels]]\nname = "{path.name.removesuffix(".json.gz")}"\npath = "{path}"\n\n'
            for path in dumps))
        env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
               "XDG_CONFIG_HOME": str(home / ".config"), "NIXMOD_SITE_CONFIG": "/nonexistent"}
        cold = run_phase("cold", env)
        warm = run_phase("warm", env)
        whole = []
        for _ in range(7):
            t = time.perf_counter()
            subprocess.run([str(NIXMOD), "search", "firefox"], env=env, check=True,
                           capture_output=True)
            whole.append(time.perf_counter() - t)
        times = sorted(warm["times"])
        ms = [t * 1000 for t in times]
        cache = home / ".cache/nixmod/catalog/index.bin"
        print(f"catalog benchmark: {len(dumps)} dumps, {warm['packages']} packages "
              f"({warm['errors']} channel errors), cache {cache.stat().st_size / 1e6:.0f} MB")
        print(f"cold build from dumps : {cold['load']:.2f} s   (peak RSS {cold['rss_mb']:.0f} MB)")
        print(f"warm load from cache  : {warm['load'] * 1000:.0f} ms "
              f"(+ {warm['first'] * 1000:.0f} ms for the first query, which unpacks the search sections)")
        print(f"search x{len(ms)} queries  : p50 {statistics.median(ms):.2f} ms, "
              f"p95 {ms[int(0.95 * len(ms)) - 1]:.2f} ms, max {ms[-1]:.2f} ms")
        print(f"peak RSS warm+search  : {warm['rss_mb']:.0f} MB")
        print(f"`nixmod search firefox` whole process: median {statistics.median(whole) * 1000:.0f} ms, "
              f"max {max(whole) * 1000:.0f} ms")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
