"""Build logs: where a record's log is, following it as it grows, and why a build failed."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

from nixmod.builds.following import orphaned, refresh
from nixmod.builds.records import named, open_store
from nixmod.config import Config


def log_path(config: Config, record_id: int) -> Path:
    with open_store(config) as store:
        record = named(store, [record_id])[0]
        return Path(record.log)


def follow_log(config: Config, record_id: int, interval: float = 0.5) -> Iterator[str]:
    """The log's text as it grows, until the build has ended (then what is left)."""
    path = log_path(config, record_id)
    offset = 0
    while True:
        record = refresh(config, [record_id])[0]
        ended = record.finished or bool(orphaned(config, [record]))
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            yield chunk
        if ended:
            return
        time.sleep(interval)


#: lines of a build log that are Nix's or nixmod's own narration, never the cause of a failure
_NARRATION = re.compile(
    r"\s*(>|For full logs|last \d+ log lines|nixmod: |this derivation|these \d+ derivations|"
    r"building '|/nix/store/\S+$|error: builder for|error: build of|error: \d+ dependenc|"
    r"error: cannot build derivation|note: keeping build directory)")
#: "error:" with what names it ("configure: error: …", "foo.c:3:1: error: …")
_ERROR_AT = re.compile(r"(?:[\w.+/-][\w.+/:-]*: )?(?:fatal )?error: .*", re.I)


def failure_cause(log_text: str) -> str:
    """The line of a failed build's log that says why it failed, for a one-line report.

    A failed log starts with nixmod's "building X" line and ends with Nix's
    "builder for … failed" wrapper; neither says what went wrong. The cause
    is the builder's last line that mentions an error (cut to the error
    itself: ``configure: error: missing frobnicator``), else the builder's
    last line, else Nix's own message. Every face (toast, status line,
    ``status``) uses this one rule.
    """
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    builder = [line for line in lines if not _NARRATION.match(line)]
    for line in reversed(builder):
        found = _ERROR_AT.search(line)
        if found:
            cause = found.group(0)
            if cause.endswith(")") and cause.count(")") > cause.count("("):
                cause = cause[:-1]   # "… (configure: error: x)": the bracket was around it
            return cause.strip()
    if builder:
        return builder[-1]
    return lines[-1] if lines else ""
