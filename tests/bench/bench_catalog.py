"""Catalog benchmark on real data: five nixpkgs package lists, 2016-2026.

    /opt/nixmod/venv/bin/python tests/bench/bench_catalog.py [DATA_DIR]

DATA_DIR defaults to ../shared/data/nixpkgs beside the checkout (or $NIXMOD_BENCH_DATA). The
five dumps are configured as five channels in a throwaway HOME. Each phase
runs in its own process so that its peak RSS is its own:

1. cold: build the index from the dumps (no cache at all): time, peak RSS;
2. warm: load from the cache and answer one query (the part the cache
   layout decides), then 200 fixed queries (full names, prefixes, one
   letter, typos, programs, description words): p50/p95/max, the first
   query included;
3. ``nixmod search hdf5`` as a whole process: wall time and peak RSS
   (median of 7), against a bare ``python -I -c pass`` timed in the same run,
   interleaved, as the yardstick (issue 22).

Each figure is printed beside its target (tests/bench/targets.py); the exit
code is 1 when one is MISSED.
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

from targets import Targets, exit_with

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
    catalog = Catalog.load(config)   # the imports above are start-up's, not the cache's
    catalog.search("hdf5")
    out["load_and_search"] = time.perf_counter() - t
    catalog = Catalog.load(config)   # afresh: the first of the 200 queries reads its sections
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


def whole_process(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One process: wall seconds and its own peak RSS (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, usage.ru_maxrss / 1024


def compiled() -> None:
    """nixmod's byte code written, as an installed nixmod has it: a figure taken where
    PYTHONDONTWRITEBYTECODE is set would otherwise time compiling what changed."""
    import compileall

    import nixmod

    compileall.compile_dir(str(Path(nixmod.__file__).parent), quiet=1)


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
        compiled()
        targets = Targets("bench_catalog")
        cold = run_phase("cold", env)
        warm = run_phase("warm", env)
        search, bare = [], []
        for _ in range(7):    # interleaved: a busy moment slows both alike
            bare.append(whole_process([PYTHON, "-I", "-c", "pass"], env))
            search.append(whole_process([str(NIXMOD), "search", "hdf5"], env))
        ms = sorted(t * 1000 for t in warm["times"])
        cache = home / ".cache/nixmod/catalog/index.bin"
        print(f"catalog benchmark: {len(dumps)} dumps, {warm['packages']} packages "
              f"({warm['errors']} channel errors), cache {cache.stat().st_size / 1e6:.0f} MB")
        print(f"search x{len(ms)}: p50 {statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms")
        targets.check("cold index of the dumps", cold["load"], 10, unit="s")
        targets.check("cold index, peak RSS", cold["rss_mb"], 250, unit="MB")
        targets.check("warm: Catalog.load + one search, in-process", warm["load_and_search"] * 1000,
                      20)
        targets.check(f"search x{len(ms)} queries in-process, p95", ms[int(0.95 * len(ms)) - 1], 5)
        search_ms = statistics.median(wall for wall, _rss in search) * 1000
        bare_ms = statistics.median(wall for wall, _rss in bare) * 1000
        print(f"bare `python -I -c pass`: median {bare_ms:.0f} ms")
        targets.check("`nixmod search hdf5` whole process, median", search_ms, 100)
        targets.ratio("`nixmod search hdf5` / bare python start", search_ms, bare_ms, 7)
        targets.check("`nixmod search hdf5` peak RSS", max(rss for _wall, rss in search), 60,
                      unit="MB")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    exit_with(targets)


if __name__ == "__main__":
    main()
