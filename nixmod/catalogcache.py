"""The catalog's cache file format: a header and named, checksummed sections.

One flat file: ``MAGIC``, the header's length, a ``marshal``-ed header (the
layout of the sections, their CRC and total size, plus whatever the writer
adds) and the sections themselves. Loading is a read, a CRC and a few
``marshal.loads``. Every write is a temporary file renamed into place, so two
processes refreshing at once each leave a whole file and a reader never sees
half of one. The per-channel listings (``nixmod.channels``), the merged index
(``nixmod.catalog``) and the site index (``nixmod.siteindex``) all use it.
"""

from __future__ import annotations

import hashlib
import marshal
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

from nixmod.files import atomic_open

#: bump when anything written to the cache changes shape
FORMAT = 4
MAGIC = b"NIXMOD-CATALOG\n"
Progress = Callable[[str], None]


def digest(value: Any) -> str:
    """A short stable name for ``value`` (cache file names, index keys)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]


def section_image(header: dict[str, Any], sections: Mapping[str, bytes | bytearray]
                   ) -> list[bytes | bytearray]:
    """A cache file's bytes, in pieces: magic, header (with layout and CRC), sections.

    The site index (nixmod/siteindex.py) embeds the same image, so a user
    with the site's channel list loads it exactly as their own cache.
    """
    layout: dict[str, tuple[int, int]] = {}
    offset = crc = 0
    for name, data in sections.items():
        layout[name] = (offset, len(data))
        offset += len(data)
        crc = zlib.crc32(data, crc)
    head = marshal.dumps({**header, "sections": layout, "crc": crc, "size": offset})
    return [MAGIC + struct.pack("<Q", len(head)) + head, *sections.values()]


def write_sections(path: Path, header: dict[str, Any], sections: dict[str, bytes | bytearray]
                    ) -> None:
    """Write header + sections atomically: temp file in the same dir, then rename."""
    with atomic_open(path, mode=0o600, binary=True, fsync=True) as out:
        for data in section_image(header, sections):
            out.write(data)


def cache_sections(path: Path, header: dict[str, Any], sections: dict[str, bytes | bytearray],
                    say: Progress) -> None:
    """Write a cache file, or say why not: the catalog in memory is good without it.

    Something in the way of the rename (a directory where the file goes, a
    full disk) must not cost the user the search they asked for.
    """
    try:
        write_sections(path, header, sections)
    except OSError as exc:
        say(f"catalog: cannot write the cache {path} ({exc.strerror or exc}); "
            "continuing without it (remove what is in the way to cache again)")


def read_sections(path: Path) -> tuple[dict[str, Any], dict[str, memoryview]] | None:
    """Header and sections of a cache file, or None if missing, foreign or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return parse_sections(data)


def parse_sections(data: bytes) -> tuple[dict[str, Any], dict[str, memoryview]] | None:
    """Header and sections of a cache image, or None if foreign or damaged."""
    try:
        if not data.startswith(MAGIC):
            return None
        start = len(MAGIC) + 8
        (head_size,) = struct.unpack_from("<Q", data, len(MAGIC))
        header = marshal.loads(data[start:start + head_size])
        payload = memoryview(data)[start + head_size:]
        if (not isinstance(header, dict) or header.get("format") != FORMAT
                or header.get("size") != len(payload) or header.get("crc") != zlib.crc32(payload)):
            return None
        sections = {name: payload[offset:offset + size]
                    for name, (offset, size) in header["sections"].items()}
    except (ValueError, EOFError, TypeError, KeyError, struct.error):
        return None
    return header, sections
