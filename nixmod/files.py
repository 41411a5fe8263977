"""Writing files so that a reader never sees half of one.

Modulefiles and shims are read by Lmod and by running jobs at any moment,
possibly on other nodes over a shared filesystem; a file that is being
rewritten must be either the old one or the new one, never a truncated mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory + ``os.replace``.

    The temp file lives next to the target because ``rename`` is atomic only
    within one filesystem. ``mode`` is applied before the rename, so the file
    never appears with the wrong permissions (a shim without its x bit would
    fail for whoever runs it in that instant).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
