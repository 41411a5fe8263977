"""Modules and shims benchmark, on the rig, as an unprivileged user.

    /opt/nixmod/venv/bin/python tests/bench/bench_modules.py [COUNT]

Run as root it re-runs itself as the first NIXMOD_TEST_USERS user (HOME in a throwaway
directory); run as a user it runs as that user. Phases:

1. write COUNT (default 5,000) modules with ``lmod.write_module`` (each with
   its shim) for a real store path built through the daemon: files/s;
2. ``module avail`` and ``module spider`` over that tree: without a cache
   (Lmod walks the tree; a fresh, empty user cache dir each run) and with the
   spider cache that ``lmod.update_spider_cache`` writes (LMOD_RC);
3. shim overhead: 200 runs of a trivial store program directly and through
   the shim in each mode (direct, auto, bwrap, proot; the two namespace
   modes with /nix present and the store bound onto itself), median and p95
   of the added wall time.

Each figure with a target is printed beside it (tests/bench/targets.py); the
script exits 1 when one is MISSED: the direct shim adds < 1 ms at the median.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Targets  # noqa: E402  (a script beside its helper)

RUNS = 200
USER = os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(",")[0]
LMOD_INIT = "/usr/share/lmod/lmod/init/bash"
TRIVIAL = r'''
{ system ? builtins.currentSystem }:
derivation { name = "true-bench"; inherit system; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin && printf '#!/bin/sh\nexit 0\n' > $out/bin/t && /bin/chmod 755 $out/bin/t" ]; }
'''


def as_user() -> None:
    """Root re-runs this script as the test user, in a world-readable scratch HOME."""
    home = Path(tempfile.mkdtemp(prefix="nixmod-bench-modules-", dir="/tmp"))
    shutil.chown(home, user=USER, group=USER)
    env = ["HOME=" + str(home), "NIX_REMOTE=daemon", "PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
    code = subprocess.call(["runuser", "-u", USER, "--", "env", "-i", *env, sys.executable,
                            str(Path(__file__).resolve()), *sys.argv[1:]], cwd=home)
    shutil.rmtree(home, ignore_errors=True)
    raise SystemExit(code)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def build_trivial(home: Path) -> str:
    expr = home / "true.nix"
    expr.write_text(TRIVIAL)
    out = subprocess.run(["nix-build", "--no-out-link", str(expr), "--option", "substituters", ""],
                         capture_output=True, text=True, check=True).stdout.split()[-1]
    return out


def bench_write(count: int, root: Path, store_path: str) -> None:
    from nixmod import lmod
    from nixmod.config import load_config

    config = load_config()
    start = time.perf_counter()
    for i in range(count):
        request = lmod.ModuleRequest(name=f"pkg{i // 5}", version=f"1.{i % 5}",
                                     description=f"benchmark package {i}", channel="bench",
                                     outputs={"out": store_path})
        lmod.write_module(config, request, root=root)
    elapsed = time.perf_counter() - start
    print(f"write {count} modules (+ shims): {elapsed:.2f} s, {count / elapsed:.0f} modules/s")


def bench_lmod(root: Path, home: Path) -> None:
    from nixmod import lmod

    start = time.perf_counter()
    cache = lmod.update_spider_cache(root)
    print(f"update_spider_cache: {time.perf_counter() - start:.2f} s")
    for label, rc in (("no cache", ""), ("spider cache", f"{cache}/lmodrc.lua")):
        for command in ("avail", "spider"):
            samples = []
            for run in range(3):
                user_cache = home / f"lmod-user-cache-{label[:2]}-{command}-{run}"
                script = (f"export LMOD_RC={rc}\nsource {LMOD_INIT}\nmodule use {root}\n"
                          f"module -t {command} >/dev/null 2>&1")
                env = dict(os.environ, HOME=str(user_cache))   # no user cache carried over
                user_cache.mkdir()
                samples.append(timed(["bash", "-c", script], env))
            print(f"module {command:6} ({label}): median {statistics.median(samples):.2f} s "
                  f"of {len(samples)}")


def bench_shims(home: Path, store_path: str, targets: Targets) -> None:
    from nixmod import lmod
    from nixmod.config import load_config

    program = f"{store_path}/bin/t"
    direct = [timed([program]) for _ in range(RUNS)]
    base, base95 = percentiles(direct)
    print(f"direct exec of the store program: median {base * 1e3:.2f} ms, p95 {base95 * 1e3:.2f} ms")
    store_dir = str(Path(store_path).parent)
    for mode in ("direct", "auto", "bwrap", "proot"):
        config = load_config()
        config.shims.mode = mode
        config.shims.real_store_dir = Path(store_dir)   # the namespace modes bind the store onto itself
        root = home / f"shim-{mode}"
        lmod.write_module(config, lmod.ModuleRequest(name="t", version="1", outputs={"out": store_path}),
                          root=root)
        shim = f"{root}.shims/nix/t/1/bin/t"
        samples = [timed([shim]) for _ in range(RUNS)]
        median, p95 = percentiles(samples)
        print(f"shim {mode:6}: median {median * 1e3:.2f} ms (+{(median - base) * 1e3:.2f}), "
              f"p95 {p95 * 1e3:.2f} ms (+{(p95 - base95) * 1e3:.2f}) over {RUNS} runs")
        if mode == "direct":
            targets.check("direct shim, added at the median", (median - base) * 1e3, 1.0)


def main() -> int:
    if os.geteuid() == 0:
        as_user()
    targets = Targets("bench_modules")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    home = Path(os.environ["HOME"])
    store_path = build_trivial(home)
    root = home / "modules"
    bench_write(count, root, store_path)
    bench_lmod(root, home)
    bench_shims(home, store_path, targets)
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main())
