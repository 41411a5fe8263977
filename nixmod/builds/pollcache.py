"""One scheduler answer per period, shared by every nixmod process of a user.

SPEC "Gentle on the scheduler": while nixmod waits (``build --wait``,
``status --watch``, the TUI, ``stack build --wait``) it asks the scheduler at
most once per ``[build] poll_seconds``. Two TUIs and a ``--wait`` of the same
user are three processes; they share one answer through a small file in the
user's state dir (``scheduler.json``), written atomically with the time it
was asked. A process whose answer is too old takes ``scheduler.lock``
(``fcntl``), looks again (another process may have asked while it waited for
the lock), and only then asks; so at the deadline one of them asks and the
others read.

A failed question (slurmctld away) is kept too: the others say "did not
answer" without asking again before the period is over, so an outage is not
met with one retry per process per second. A submission's look (to join)
does not keep its failures: one slow answer under load must not fail the
submission that follows it.

An answer is dated when it was asked (the queue as it was then); a failure
when it failed.

Each answer is a list of rows (plain JSON objects) under a key the backend
chooses (``slurm:mine``, ``slurm:job:123_4``, ``pbs:job:12[].srv``); the
backend checks every row it reads back (``valid``), and an entry that does
not check out is taken as no entry. The file is the user's own, in a 0700
dir, but it is parsed as untrusted text all the same.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from nixmod.builds.backend import SchedulerUnavailable
from nixmod.files import atomic_write

CACHE_FILE = "scheduler.json"
LOCK_FILE = "scheduler.lock"
#: entries not asked about for this long are dropped when the file is next written
KEEP_SECONDS = 3600.0
#: an entry dated this far in the future (the clock was set back) is not trusted
CLOCK_SLACK = 5.0
#: keys whose answers say how the user's own builds are doing ("checked N s ago")
FOLLOW_PREFIXES = ("slurm:mine", "slurm:job:", "pbs:job:")

Row = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What the scheduler said (``rows``) and when it was asked (``time``, epoch seconds)."""

    time: float
    rows: list[Row]


def ask(state_dir: Path, key: str, max_age: float, query: Callable[[], list[Row]],
        valid: Callable[[Row], bool], *, share_failure: bool = True) -> Answer:
    """The answer to ``key``: the shared one when younger than ``max_age``, else ``query()``.

    ``max_age`` 0 always asks (a plain ``nixmod status`` asks once). A
    failed ``query`` (``SchedulerUnavailable``) is remembered for the same
    period and raised again to every process that reads it meanwhile;
    ``share_failure=False`` (a submission's look) forgets it: the next look
    asks again, as a submission did before answers were shared.
    """
    cached = _fresh(_read(state_dir).get(key), max_age, valid)
    if cached is not None:
        return _answer(cached)
    with _locked(state_dir):
        cached = _fresh(_read(state_dir).get(key), max_age, valid)
        if cached is not None:   # another process asked while this one waited for the lock
            return _answer(cached)
        asked = time.time()
        try:
            rows = query()
        except SchedulerUnavailable as exc:
            # dated when it failed (a timeout takes seconds): the period counts from then
            if share_failure:
                _write(state_dir, {key: {"time": time.time(), "error": str(exc)[:500]}})
            raise
        _write(state_dir, {key: {"time": asked, "rows": rows}})
        return Answer(asked, rows)


def forget(state_dir: Path, *prefixes: str) -> None:
    """Drop the answers whose key starts with one of ``prefixes``: they are out of date.

    After our own ``sbatch`` or ``scancel`` the queue is not what was last
    seen; the next reader asks (once) instead of trusting it.
    """
    with _locked(state_dir):
        entries = _read(state_dir)
        kept = {key: value for key, value in entries.items() if not key.startswith(prefixes)}
        if len(kept) != len(entries):
            _write(state_dir, {}, base=kept)


def last_checked(state_dir: Path) -> float | None:
    """When the scheduler last answered about the user's builds (None: not since long)."""
    times = [entry["time"] for key, entry in _read(state_dir).items()
             if key.startswith(FOLLOW_PREFIXES) and "rows" in entry]
    return max(times) if times else None


# -- the file ------------------------------------------------------------------------------

def _answer(entry: dict[str, Any]) -> Answer:
    if "error" in entry:
        raise SchedulerUnavailable(f"{entry['error']} (asked {_ago(entry['time'])})")
    return Answer(float(entry["time"]), list(entry["rows"]))


def _ago(when: float) -> str:
    return f"{max(0, round(time.time() - when))} s ago"


def _fresh(entry: Any, max_age: float, valid: Callable[[Row], bool]) -> dict[str, Any] | None:
    """``entry`` if it is well-formed and younger than ``max_age`` seconds, else None."""
    if max_age <= 0 or not _well_formed(entry, valid):
        return None
    age = time.time() - entry["time"]
    return entry if -CLOCK_SLACK <= age < max_age else None


def _well_formed(entry: Any, valid: Callable[[Row], bool]) -> bool:
    if not isinstance(entry, dict):
        return False
    when = entry.get("time")
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        return False
    if "error" in entry:
        return isinstance(entry["error"], str) and "rows" not in entry
    rows = entry.get("rows")
    return isinstance(rows, list) and all(isinstance(row, dict) and valid(row) for row in rows)


def _read(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(state_dir: Path, changes: dict[str, Any], *, base: dict[str, Any] | None = None) -> None:
    """Merge ``changes`` into the file (under the lock), dropping entries nobody asked for lately."""
    entries = _read(state_dir) if base is None else base
    entries.update(changes)
    now = time.time()
    entries = {key: value for key, value in entries.items()
               if isinstance(value, dict) and isinstance(value.get("time"), (int, float))
               and now - value["time"] < KEEP_SECONDS}
    try:
        atomic_write(state_dir / CACHE_FILE, json.dumps(entries), mode=0o600)
    except OSError:
        pass   # a full disk: the next process asks again, nothing is lost


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Held while one process asks: the others wait (one query's time, bounded) and then read."""
    with open(state_dir / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
