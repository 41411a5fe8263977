"""What the CLI prints: one JSON document on stdout, plain tables, progress on stderr.

With ``--json`` exactly one JSON document goes to stdout; progress and
messages go to stderr so that scripts can pipe the JSON safely. A table
cell shows a catalog's newline or escape; it never obeys it.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from nixmod.builds.state import BuildRecord

__all__ = ["emit_json", "emit_table", "progress", "one_line"]


def emit_json(data: Any) -> None:
    """One JSON document on stdout, nothing else."""
    import json  # startup: only --json loads it

    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _cell(value: Any) -> str:
    """A table cell on one line: a newline or escape from a catalog is shown, not obeyed."""
    text = "" if value is None else str(value)
    return _CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], text)


def emit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain, aligned text table (last column not padded)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        padded = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        print("  ".join(padded).rstrip())


def progress(message: str) -> None:
    """Progress for long work: stderr, so that --json stays clean."""
    print(message, file=sys.stderr, flush=True)


def one_line(text: str, width: int = 70) -> str:
    """A description squeezed to one line for tables (JSON keeps it verbatim)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def build_verb_status(records: Sequence[BuildRecord], warnings: Sequence[str], waited: bool) -> int:
    """Say the wait's warnings, then the exit status of a verb that submits builds.

    With ``--wait``, a build whose module could not be written is not a
    success: the user has nothing to load. ``build`` and ``env`` share this.
    """
    from nixmod.builds.state import DONE_STATES  # startup: only verbs that built load it

    for warning in warnings:
        progress(f"warning: {warning}")
    if waited:
        return 0 if all(r.state in DONE_STATES and r.module and not r.error for r in records) else 1
    return 0
