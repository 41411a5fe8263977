"""Build logs: the one reader, where a record's log is, and why a build failed.

Every face and the job step read a log through ``read_log`` (the whole
log, the part after an offset while following it, or its last bytes), so
each says the same: bytes a builder printed that are not UTF-8 become
U+FFFD, line ends are Python's text-mode ones, and a huge log is never
read whole for a tail. ``following.follow_log`` follows one as it grows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nixmod import outside
from nixmod.builds.records import named, open_store
from nixmod.config import Config


@dataclass(frozen=True)
class LogText:
    """What ``read_log`` read: the text, the file's size then, and the offset after it."""

    text: str
    size: int
    end: int


def read_log(path: Path | str, *, start: int = 0, last: int | None = None) -> LogText:
    """A build log's text from byte ``start`` (``last``: only its last bytes); a log that
    is not there yet reads as empty."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            begin = max(start, size - last) if last is not None else start
            handle.seek(begin)
            data = handle.read()
    except FileNotFoundError:
        return LogText("", 0, start)
    text = outside.decode(data).replace("\r\n", "\n").replace("\r", "\n")
    return LogText(text, size, begin + len(data))


def log_path(config: Config, record_id: int) -> Path:
    with open_store(config) as store:
        record = named(store, [record_id])[0]
        return Path(record.log)


#: Nix's repeat of a failed builder's last lines ("> ..." and its header)
_NIX_REPEAT = r">|For full logs|last \d+ log lines"
NIX_REPEAT = re.compile(rf"\s*({_NIX_REPEAT})")
#: lines of a build log that are Nix's or nixmod's own narration, never the cause of a failure
_NARRATION = re.compile(
    rf"\s*({_NIX_REPEAT}|nixmod: |this derivation|these \d+ derivations|"
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
