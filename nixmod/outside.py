"""Text from outside nixmod: what schedulers, Nix, Lmod and git print, logs, listings.

Such text is whatever its writer put there. Another user's job comment or
environment, a builder's log line, a file name in a listing can hold bytes
that are not UTF-8, and one of them must never make a verb fail for every
user (issue 24.1: one job with ``\\xff`` in its comment made everybody's
``status`` a traceback). So every answer of a tool and every file nixmod
did not write itself is read here, and read tolerantly: a byte that is not
UTF-8 becomes U+FFFD (``REPLACED``), never an exception.

The replacement is visible on purpose: a record that held such a byte is
garbled, and ``garbled`` says so. What other users' jobs say is trusted
for nothing when any of it is garbled (the backends skip such a job: it is
never joined), and a replaced byte can never be confused with a
character nixmod looks for (hashes, ``nixmod:``, paths are ASCII), unlike
``errors="ignore"``, which would turn ``nixmod:<hash>\\xff`` into a
well-formed ``nixmod:<hash>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:  # startup: a search reads no tool's output, so it does not load subprocess
    import subprocess

#: what a byte that is not UTF-8 reads as
REPLACED = "\ufffd"


def decode(data: bytes) -> str:
    """Bytes from outside as text; a byte that is not UTF-8 becomes ``REPLACED``."""
    return data.decode("utf-8", errors="replace")


def read_text(path: Path) -> str:
    """A file nixmod did not write (a log, a listing, a config of PBS's): never a decode error."""
    return decode(Path(path).read_bytes())


def run(argv: Sequence[str], *, timeout: float | None = None, input: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` capturing a tool's output as text read tolerantly (``decode``).

    The callers keep their own timeouts and error mapping (the one thin
    wrapper per tool family, docs/HACKING.md); this is only how they read.
    """
    import subprocess  # startup: loaded by the first tool nixmod runs

    return subprocess.run(list(argv), capture_output=True, encoding="utf-8", errors="replace",
                          timeout=timeout, input=input, env=env,
                          stdin=stdin if input is None else None)


def garbled(value: object) -> bool:
    """Does ``value`` (a string, or JSON made of dicts and lists) hold a byte that was not text?"""
    if isinstance(value, str):
        return REPLACED in value
    if isinstance(value, dict):
        return any(garbled(key) or garbled(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(garbled(item) for item in value)
    return False
