"""Run every benchmark in tests/bench/ one after the other and print their figures.

`make bench` calls this (as root, after tests/cluster/up.sh): each
bench_*.py runs in its own process with the venv's interpreter, so one
benchmark's memory or caches never colour the next one's figures.
Pass names to run only some: ``run_all.py catalog modules``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = [p for p in sorted(HERE.glob("bench_*.py"))
               if not wanted or p.stem.removeprefix("bench_") in wanted]
    if not scripts:
        print(f"no benchmark matches {' '.join(argv)}; have: "
              + ", ".join(p.stem.removeprefix("bench_") for p in sorted(HERE.glob("bench_*.py"))),
              file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(script)]).returncode
        print(f"--- {script.stem}: exit {code}, {time.monotonic() - started:.1f} s", flush=True)
        if code:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
