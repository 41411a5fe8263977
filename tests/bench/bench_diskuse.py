"""``nixmod du`` and ``nixmod gc --dry-run`` over 500 modules, on the rig, as an unprivileged user.

    /opt/nixmod/venv/bin/python tests/bench/bench_diskuse.py [COUNT]

Run as root it re-runs itself as the first NIXMOD_TEST_USERS user (HOME in a
throwaway directory). It puts COUNT (default 500) small distinct store
paths in the store in one ``nix-store --add``, gives each a GC root where
nixmod's builds put them and writes a module for each (``lmod.write_module``),
then times ``nixmod du --json``, ``nixmod gc --dry-run --unused-for 0`` and
``nixmod du --site --json`` (median of 3 runs each). Target (issue 23):
``du`` in a few seconds for 500 modules: each verb's median is printed beside
< 5 s (tests/bench/targets.py) and the script exits 1 when one is MISSED.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Targets  # noqa: E402  (a script beside its helper)

USER = os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(",")[0]
RUNS = 3
#: "a few seconds" (issue 23), for each verb over COUNT modules
SECONDS = 5.0


def as_user() -> None:
    home = Path(tempfile.mkdtemp(prefix="nixmod-bench-diskuse-", dir="/tmp"))
    shutil.chown(home, user=USER, group=USER)
    home.chmod(0o755)
    env = ["HOME=" + str(home), "NIX_REMOTE=daemon", f"PATH={Path(sys.executable).parent}:/usr/bin:/bin",
           "LANG=C.UTF-8"]
    code = subprocess.call(["runuser", "-u", USER, "--", "env", "-i", *env, sys.executable,
                            str(Path(__file__).resolve()), *sys.argv[1:]], cwd=home)
    shutil.rmtree(home, ignore_errors=True)
    raise SystemExit(code)


def make_modules(count: int, home: Path) -> None:
    from nixmod import gcroots, lmod, nix
    from nixmod.config import load_config

    config = load_config()
    sources = home / "src"
    for index in range(count):
        package = sources / f"p{index}" / "bin"
        package.mkdir(parents=True)
        program = package / f"prog{index}"
        program.write_text(f"#!/bin/sh\necho {index} {home.name}\n")
        program.chmod(0o755)
    started = time.perf_counter()
    paths = nix.run(["nix-store", "--add", *(str(sources / f"p{i}") for i in range(count))]
                    ).stdout.split()
    print(f"{count} store paths added in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    roots = gcroots.personal_gcroot_dir(Path(config.build.state_dir))
    for index, path in enumerate(paths):
        link = gcroots.gc_root(roots, f"pkg{index}", "1.0")
        link.parent.mkdir(parents=True, exist_ok=True)
        nix.run(nix.realise_command(path, link))
        lmod.write_module(config, lmod.ModuleRequest(name=f"pkg{index}", version="1.0",
                                                     outputs={"out": path}))
    print(f"{count} GC roots and modules written in {time.perf_counter() - started:.1f} s")


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr[-500:]}")
    return elapsed, proc.stdout


def main() -> int:
    if os.geteuid() == 0:
        as_user()
    targets = Targets("bench_diskuse")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    home = Path(os.environ["HOME"])
    make_modules(count, home)
    nixmod = str(Path(sys.executable).parent / "nixmod")
    for label, argv in (("du", [nixmod, "du", "--json"]),
                        ("gc --dry-run", [nixmod, "gc", "--dry-run", "--unused-for", "0", "--json"]),
                        ("du --site", [nixmod, "du", "--site", "--json"])):
        samples = []
        for _ in range(RUNS):
            elapsed, out = timed(argv)
            samples.append(elapsed)
        data = json.loads(out)
        listed = len(data.get("modules") or data.get("candidates") or data.get("groups") or [])
        print(f"nixmod {label}: median {statistics.median(samples):.2f} s over {RUNS} runs "
              f"(min {min(samples):.2f} s), {listed} entries")
        targets.check(f"nixmod {label}, {count} modules, median", statistics.median(samples),
                      SECONDS, unit="s")
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main())
