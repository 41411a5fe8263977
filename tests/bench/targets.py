"""One way for every benchmark to state a figure beside its target.

A benchmark that only prints numbers lets a missed target pass unnoticed
(issue 22: the TUI keystroke bench printed p95 92.7 ms against its own
50 ms target and exited 0). Each bench_*.py records its figures through a
`Targets`, which prints `figure  value  target  ok|MISSED` lines and gives
the exit code: 1 when any target was missed, so `make bench` (run_all.py)
fails.

Times on a shared 2-core machine are noisy, so a figure may also be
compared with a yardstick measured in the same run (a bare Python start,
reading the cache file): `ratio` states "at most N times the yardstick".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measured figure and the bound it must stay under (or over)."""

    name: str
    value: float
    unit: str
    limit: float
    at_most: bool = True

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def line(self) -> str:
        sign = "<=" if self.at_most else ">="
        verdict = "ok" if self.met else "MISSED"
        return (f"{self.name:<52} {self.value:>10.2f} {self.unit:<3} "
                f"target {sign} {self.limit:g} {self.unit:<3} {verdict}")


@dataclass
class Targets:
    """The figures of one benchmark; `finish()` prints the verdict and returns the exit code."""

    bench: str
    figures: list[Figure] = field(default_factory=list)

    def check(self, name: str, value: float, limit: float, unit: str = "ms",
              at_most: bool = True) -> Figure:
        """Record `value` against `limit` and print its line at once (long benches show progress)."""
        figure = Figure(name, value, unit, limit, at_most)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def ratio(self, name: str, value: float, yardstick: float, times: float) -> Figure:
        """Record `value` as a multiple of a yardstick measured in the same run."""
        return self.check(f"{name} / yardstick", value / yardstick if yardstick else float("inf"),
                          times, unit="x")

    def finish(self) -> int:
        """Print one summary line; 1 (and a MISSED line per figure) when any target was missed."""
        missed = [f for f in self.figures if not f.met]
        for figure in missed:
            print(f"MISSED: {self.bench}: {figure.line()}", flush=True)
        print(f"{self.bench}: {len(self.figures) - len(missed)} of {len(self.figures)} "
              f"target(s) met", flush=True)
        return 1 if missed else 0


def exit_with(targets: Targets) -> None:
    """End a benchmark's main with its verdict as the process exit code."""
    sys.exit(targets.finish())
