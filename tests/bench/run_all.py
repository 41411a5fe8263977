"""Run every benchmark in tests/bench/ one after the other and print their figures.

`make bench` calls this (as root, after tests/cluster/up.sh): each
bench_*.py runs in its own process with the venv's interpreter, so one
benchmark's memory or caches never colour the next one's figures.
Pass names to run only some: ``run_all.py catalog modules``.

A benchmark exits 1 when it misses a target (tests/bench/targets.py prints a
``MISSED: ...`` line for each); the summary at the end repeats every MISSED
line, so a missed target cannot scroll by unnoticed, and the exit status is 1.
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
    missed: list[str] = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.monotonic()
        # its output is shown as it comes (long benches print progress) and read for MISSED lines
        with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              bufsize=1) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("MISSED:"):
                    missed.append(line.rstrip("\n"))
        code = proc.returncode
        print(f"--- {script.stem}: exit {code}, {time.monotonic() - started:.1f} s", flush=True)
        if code:
            failed.append(script.stem)
    print(f"\n=== summary: {len(scripts) - len(failed)} of {len(scripts)} benchmark(s) passed ===")
    for line in missed:
        print(line)
    if failed:
        print(f"failed: {', '.join(failed)}" + ("" if missed else " (no target missed: "
                                                 "the script itself failed; see its output)"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
