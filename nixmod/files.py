"""Writing files so that a reader never sees half of one.

Modulefiles and shims are read by Lmod and by running jobs at any moment,
possibly on other nodes over a shared filesystem; a file that is being
rewritten must be either the old one or the new one, never a truncated mix.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


@contextmanager
def atomic_open(path: Path, *, mode: int = 0o644, binary: bool = False,
                fsync: bool = False) -> Iterator[IO[Any]]:
    """A handle on a temp file in ``path``'s directory that becomes ``path`` on success.

    The temp file lives next to the target because ``rename`` is atomic only
    within one filesystem. ``mode`` is applied before the rename, so the file
    never appears with the wrong permissions (a shim without its x bit would
    fail for whoever runs it in that instant). On any error the temp file
    goes and ``path`` is untouched. ``fsync`` for large files that a crash
    should not leave empty behind a completed rename.
    """
    import tempfile  # startup: loaded by the first write (a warm search writes nothing)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one."""
    with atomic_open(path, mode=mode) as handle:
        handle.write(text)
