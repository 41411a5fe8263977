"""The catalog's cache file format: a header and named sections, read in place.

One flat file: ``MAGIC``, the header's length, a ``marshal``-ed header (the
layout of the sections, a CRC32 per 64 KiB block of what follows, plus
whatever the writer adds) and the sections themselves, each starting on an
8-byte boundary so that arrays of ids can be read where they lie.

A reader maps the file (``mmap``) and touches only the pages a query needs:
loading is a header read, not a read of the whole file (issue 22: reading
and CRC-ing 56 MB and unpacking every section cost ~200 ms and ~100 MB per
search). Blocks are checked when first touched: ``section`` checks all of a
section's blocks, ``span`` only those under the bytes asked for; a block
whose CRC does not match raises ``DamagedCache``. Every write is a temporary
file renamed into place, so two processes refreshing at once each leave a
whole file and a reader, whose mapping pins the inode it opened, never sees
half of one. The per-channel listings (``nixmod.channels``), the merged
index (``nixmod.catalog``) and the site index (``nixmod.siteindex``, which
embeds the same image) all use it.
"""

from __future__ import annotations

import bisect
import hashlib
import marshal
import mmap
import os
import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from nixmod.files import atomic_open

#: bump when anything written to the cache changes shape
FORMAT = 6
MAGIC = b"NIXMOD-CATALOG\n"
#: the unit of checking: a query that touches one byte of a block CRCs that block
BLOCK = 1 << 16
_ALIGN = 8
Progress = Callable[[str], None]
#: a section's bytes as the index builder hands them over (a memoryview: of bytes, format "B")
Section = bytes | bytearray | memoryview


class DamagedCache(Exception):
    """A block of a cache image does not match its CRC: the file was damaged after writing."""


def digest(value: Any) -> str:
    """A short stable name for ``value`` (cache file names, index keys)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]


def _pad(offset: int) -> int:
    return -offset % _ALIGN


def _image_parts(header: dict[str, Any], sections: dict[str, Section]
                 ) -> list[Section]:
    """The image as pieces to write one after the other: magic + header + padding, then
    each section and its padding, never copied into one buffer (a cold index of 143k
    packages: 61 MB of sections). The block CRCs run over the pieces as they lie."""
    layout: dict[str, tuple[int, int]] = {}
    pieces: list[Section] = []
    offset = 0
    for name, data in sections.items():
        if _pad(offset):
            pieces.append(bytes(_pad(offset)))
            offset += _pad(offset)
        layout[name] = (offset, len(data))
        pieces.append(data)
        offset += len(data)
    blocks = array("I")
    crc = filled = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            take = min(len(view), BLOCK - filled)
            crc = zlib.crc32(view[:take], crc)
            filled += take
            view = view[take:]
            if filled == BLOCK:
                blocks.append(crc)
                crc = filled = 0
    if filled:
        blocks.append(crc)
    head = marshal.dumps({**header, "sections": layout, "size": offset,
                          "blocks": blocks.tobytes(), "byteorder": sys.byteorder})
    lead = MAGIC + struct.pack("<Q", len(head)) + head
    return [lead + bytes(_pad(len(lead))), *pieces]


def section_image(header: dict[str, Any], sections: dict[str, Section]) -> bytes:
    """A cache file's bytes: magic, header (layout, block CRCs), padded sections.

    The site index (nixmod/siteindex.py) embeds the same image (at an
    8-byte aligned offset), so a user with the site's channel list reads it
    exactly as their own cache.
    """
    return b"".join(_image_parts(header, sections))


def write_sections(path: Path, header: dict[str, Any], sections: dict[str, Section]
                    ) -> None:
    """Write header + sections atomically (temp file in the same dir, then rename)."""
    with atomic_open(path, mode=0o600, binary=True, fsync=True) as out:
        for piece in _image_parts(header, sections):
            out.write(piece)


def cache_sections(path: Path, header: dict[str, Any], sections: dict[str, Section],
                    say: Progress) -> CacheImage:
    """Write a cache file and map it, or say why not: the catalog in memory is good without it.

    Something in the way of the rename (a directory where the file goes, a
    full disk) must not cost the user the search they asked for.
    """
    try:
        write_sections(path, header, sections)
    except OSError as exc:
        say(f"catalog: cannot write the cache {path} ({exc.strerror or exc}); "
            "continuing without it (remove what is in the way to cache again)")
    else:
        written = open_image(path)     # mapped: only the pages a query reads are in memory
        if written is not None:
            return written
    image = parse_image(section_image(header, sections))
    assert image is not None, "an image made here parses"
    return image


class CacheImage:
    """A parsed cache image over a buffer (a mapping of the file, or bytes in memory).

    Sections are handed out as memoryviews of that buffer, never copied;
    each block is CRC-checked the first time any of its bytes is handed out.
    """

    def __init__(self, source: Any, base: int, buffer: memoryview, header: dict[str, Any],
                 payload: int, layout: dict[str, tuple[int, int]], crcs: array):
        #: what ``buffer`` views (an mmap or bytes: both have ``find``), and where the image starts
        self.source, self.base = source, base
        self._buffer = buffer
        self.header = header
        self._payload = payload
        self._layout = layout
        self._crcs = crcs
        self._checked = bytearray(len(crcs))

    def __contains__(self, name: str) -> bool:
        return name in self._layout

    def _check(self, start: int, end: int) -> None:
        """CRC the payload blocks that bytes [start, end) of the payload lie in."""
        for block in range(start // BLOCK, (max(end, start + 1) - 1) // BLOCK + 1):
            if self._checked[block]:
                continue
            begin = self._payload + block * BLOCK
            data = self._buffer[begin:min(begin + BLOCK, len(self._buffer))]
            if zlib.crc32(data) != self._crcs[block]:
                raise DamagedCache(f"block {block} does not match its checksum")
            self._checked[block] = 1

    def span(self, name: str, start: int, end: int) -> memoryview:
        """Bytes [start, end) of section ``name``, their blocks checked."""
        offset, size = self._layout[name]
        start, end = max(0, start), min(size, end)
        if end <= start:
            return self._buffer[0:0]
        self._check(offset + start, offset + end)
        return self._buffer[self._payload + offset + start:self._payload + offset + end]

    def section(self, name: str) -> memoryview:
        """All of section ``name``, every block checked."""
        return self.span(name, 0, self._layout[name][1])

    def where(self, name: str) -> int:
        """Where section ``name`` starts in ``source`` (for ``source.find`` and slicing)."""
        return self.base + self._payload + self._layout[name][0]

    def ints(self, name: str, typecode: Literal["I", "Q"] = "I") -> memoryview:
        """Section ``name`` as an array of native unsigned ints, read where it lies.

        Only the bounds are known here: blocks are checked by the caller
        through ``span`` (big sections) or ``section`` (small, hot ones).
        """
        offset, size = self._layout[name]
        start = self._payload + offset
        width = struct.calcsize(typecode)
        return self._buffer[start:start + size - size % width].cast(typecode)

    def marshalled(self, name: str) -> Any:
        """Section ``name`` unpacked with ``marshal`` (small sections only)."""
        return marshal.loads(self.section(name))

    def check_all(self) -> None:
        """Every block (for files read whole anyway, such as a channel's listing)."""
        if self._crcs:
            self._check(0, len(self._crcs) * BLOCK)


def parse_image(source: bytes | mmap.mmap, base: int = 0, length: int | None = None
                ) -> CacheImage | None:
    """The image in ``source`` at ``base``, or None if foreign or damaged (header or layout)."""
    view = memoryview(source)[base:] if length is None else memoryview(source)[base:base + length]
    try:
        if view[:len(MAGIC)] != MAGIC:
            return None
        start = len(MAGIC) + 8
        (head_size,) = struct.unpack_from("<Q", view, len(MAGIC))
        if head_size > len(view) - start:
            return None
        header = marshal.loads(view[start:start + head_size])
        payload = start + head_size
        payload += _pad(payload)
        if (not isinstance(header, dict) or header.get("format") != FORMAT
                or header.get("byteorder") != sys.byteorder
                or header.get("size") != len(view) - payload):
            return None
        size = header["size"]
        crcs = array("I")
        crcs.frombytes(header["blocks"])
        if len(crcs) != -(-size // BLOCK):
            return None
        layout = header["sections"]
        if not isinstance(layout, dict) or not all(
                isinstance(name, str) and isinstance(entry, tuple) and len(entry) == 2
                and all(type(n) is int and n >= 0 for n in entry) and entry[0] % _ALIGN == 0
                and entry[0] + entry[1] <= size for name, entry in layout.items()):
            return None
    except (ValueError, EOFError, TypeError, KeyError, struct.error):
        return None
    return CacheImage(source, base, view, header, payload, layout, crcs)


def map_file(fd: int) -> mmap.mmap | None:
    """A read-only mapping of all of ``fd``, or None if empty or unmappable."""
    try:
        length = os.fstat(fd).st_size
        return mmap.mmap(fd, length, access=mmap.ACCESS_READ) if length else None
    except (OSError, ValueError):
        return None


def open_image(path: Path) -> CacheImage | None:
    """The cache image in ``path``, mapped, or None if missing, foreign or damaged."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        mapped = map_file(fd)
    finally:
        os.close(fd)      # the mapping stays valid without the descriptor
    return None if mapped is None else parse_image(mapped)


def read_sections(path: Path) -> tuple[dict[str, Any], dict[str, memoryview]] | None:
    """Header and every section of a small cache file, all checked; None if missing or damaged."""
    image = open_image(path)
    if image is None:
        return None
    try:
        image.check_all()
    except DamagedCache:
        return None
    return image.header, {name: image.section(name) for name in image._layout}


class Strings:
    """A list of strings stored by ``catalogindex.strings``, read in place as UTF-8 bytes.

    A sequence (``len``, ``[i]``), so ``bisect`` searches a sorted one
    without unpacking it; the blob and its starts are checked as a whole
    the first time (they are small, or a query reads all of them anyway).
    """

    def __init__(self, image: CacheImage, name: str, starts: str):
        image.section(name)
        image.section(starts)
        self.source, self.start = image.source, image.where(name)
        self.starts = image.ints(starts)
        self._count = max(0, len(self.starts) - 1)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bytes:
        if not 0 <= index < self._count:
            raise IndexError(index)
        return bytes(self.source[self.start + self.starts[index]:
                                 self.start + self.starts[index + 1] - 1])

    def find(self, key: bytes) -> int | None:
        """The index of ``key`` in a sorted list, or None."""
        slot = bisect.bisect_left(self, key)
        return slot if slot < self._count and self[slot] == key else None


class Postings:
    """Sorted keys -> lists of package ids (``catalogindex._postings``), read in place."""

    def __init__(self, image: CacheImage, name: str):
        self.image, self._ids_name = image, f"{name}_ids"
        self.keys = Strings(image, f"{name}_keys", f"{name}_key_starts")
        image.section(f"{name}_spans")
        self.spans = image.ints(f"{name}_spans")
        self._ids = image.ints(self._ids_name)

    def size(self, slot: int) -> int:
        return self.spans[slot + 1] - self.spans[slot]

    def ids(self, slot: int) -> memoryview:
        """The ids filed under key ``slot``, their blocks checked."""
        start, end = self.spans[slot], self.spans[slot + 1]
        if not start <= end <= len(self._ids):
            raise DamagedCache(f"{self._ids_name}: a span lies outside the section")
        self.image.span(self._ids_name, 4 * start, 4 * end)
        return self._ids[start:end]

    def get(self, key: str) -> memoryview:
        slot = self.keys.find(key.encode("utf-8", "surrogatepass"))
        return self._ids[0:0] if slot is None else self.ids(slot)
