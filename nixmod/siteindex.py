"""The site catalog: channel listings published once by staff, read by every user.

``nixmod catalog publish DIR`` (``nixmod.publish``) lists each configured channel once and writes
one file, ``DIR/nixmod-site-catalog.bin``, that holds every channel's records
keyed by the channel's identity (the same identity the per-user cache uses,
so a listing is only ever used for the very channel it was made from), plus
the merged search index of the whole channel list, so that a user with the
site's channel list loads it as it is. A user whose config names
``[catalog] site_dir = DIR`` reads from there what it covers and lists only
the rest.

The index is one file renamed into place: a reader that opened it keeps
reading that inode while a publish writes the next one, so it sees the old
index or the new one, never a mix. Everything in it is checked before use
(sizes, a sha256 per section, the shape of every record), and it is trusted
only if it is a regular file (not a symlink) owned by root or by the site's
``[catalog] publisher`` and writable by nobody else, in a DIR that passes
``nixmod.dirs``' rules for those accounts: DIR and every directory above it
belong to root or the publisher and no one else can write them (a sticky
``/tmp`` or ``/scratch`` only if DIR itself is theirs). Who owns DIR counts
for nothing: another user who made the directory first, or who can swap it
through a parent, would otherwise choose what ``nixmod build NAME`` builds.
Anything else is a ``SiteIndexError``, which the catalog turns into one
warning and a per-user listing: a damaged or planted index costs time, never
wrong results.

Layout: magic line, 8-byte little-endian header length, a JSON header
(padded so that what follows is 8-byte aligned), then the sections that the
header points at by offset, size and sha256: each channel's listing
(``marshal`` data, checked whole by its sha256 when read) and the merged
index, a ``catalogcache`` image with the listing keys of its channels, read
in place (mapped) and checked block by block as it is read, so that a user
with the site's channels or some of them in the same order searches it
without reading all of it.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import mmap
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nixmod import __version__, dirs
from nixmod.catalogcache import CacheImage, map_file, parse_image
from nixmod.config import current_user
from nixmod.errors import UserError
from nixmod.files import atomic_open

INDEX_NAME = "nixmod-site-catalog.bin"
#: 2: the merged index names its channels (listing keys), so it serves any subset of them
FORMAT = 2
_MAGIC = b"NIXMOD-SITE-CATALOG\n"
_MAX_HEADER = 16 << 20       # far above any real channel list; a bigger one is not ours
Progress = Callable[[str], None]



class SiteIndexError(Exception):
    """The site index cannot be used (missing, foreign, damaged or untrusted): why."""


@dataclass(frozen=True)
class SiteListing:
    """One channel's records as the site listed them."""

    records: list[tuple]
    skipped: list[tuple[str, str]]
    listed_at: float


def _describe_owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def trusted_publishers(publisher: str) -> frozenset[int]:
    """The uids whose index is trusted: root, and the ``[catalog] publisher`` account if set."""
    import pwd

    if not publisher:
        return frozenset({0})
    try:
        return frozenset({0, pwd.getpwnam(publisher).pw_uid})
    except KeyError:
        raise SiteIndexError(f"[catalog] publisher {publisher!r} is not an account on this "
                             "host; only an index owned by root is trusted") from None


def _check_directory(directory: Path, trusted: frozenset[int]) -> os.stat_result:
    """The site directory's stat, if only ``trusted`` accounts can plant or swap files in it.

    ``nixmod.dirs.problem`` walks DIR and every directory above it (symlinks
    included) with the same rules that guard what nixmod writes.
    """
    why = dirs.problem(directory, trusted)
    if why is not None:
        raise SiteIndexError(f"{directory} is not trusted: {why}; only an index that "
                             f"{dirs.whom(trusted)} alone could have written is used")
    try:
        st = directory.stat()
    except OSError as exc:
        raise SiteIndexError(f"cannot open {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SiteIndexError(f"{directory} is not a directory")
    return st


class SiteIndex:
    """An open, checked site index; sections are read (and verified) on demand.

    The file descriptor pins the inode that was checked: a publish renaming
    a new index into place meanwhile does not change what this reader sees.
    """

    def __init__(self, directory: Path, publisher: str = ""):
        self.directory = directory
        self.path = directory / INDEX_NAME
        self.trusted = trusted_publishers(publisher)
        _check_directory(directory, self.trusted)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SiteIndexError(f"no index has been published in {directory} yet") from None
        except OSError as exc:
            if os.path.islink(self.path):
                raise SiteIndexError(f"{self.path} is a symlink; the index must be a file "
                                     "published there") from None
            raise SiteIndexError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        self._fd = fd
        self._mapped: mmap.mmap | None = None
        try:
            st = os.fstat(fd)
            self._check_file(st)
            # no st_dev: a home on NFS is read from nodes that number devices differently
            self.stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            self.header = self._read_header(st.st_size)
        except BaseException:
            self.close()
            raise

    def _check_file(self, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise SiteIndexError(f"{self.path} is not a regular file")
        if st.st_uid not in self.trusted:
            raise SiteIndexError(f"{self.path} is owned by {_describe_owner(st.st_uid)}, not by "
                                 f"{dirs.whom(self.trusted)} (root, or the site's [catalog] "
                                 "publisher); not trusting it")
        if dirs.others_can_write(st, self.trusted):
            raise SiteIndexError(f"{self.path} is writable by other users (mode "
                                 f"{stat.S_IMODE(st.st_mode):o}); not trusting it")

    def _pread(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise SiteIndexError(f"{self.path} is truncated")
        return data

    def _read_header(self, file_size: int) -> dict[str, Any]:
        start = len(_MAGIC) + 8
        lead = self._pread(0, start) if file_size >= start else b""
        if not lead.startswith(_MAGIC):
            raise SiteIndexError(f"{self.path} is not a nixmod site index")
        (head_size,) = struct.unpack_from("<Q", lead, len(_MAGIC))
        if head_size > min(_MAX_HEADER, file_size - start):
            raise SiteIndexError(f"{self.path} is truncated or damaged (header)")
        try:
            header = json.loads(self._pread(start, head_size))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise SiteIndexError(f"{self.path} is damaged (header is not JSON)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise SiteIndexError(f"{self.path} has format {found!r}, this nixmod reads {FORMAT} "
                                 "(publish it again with this nixmod)")
        self._payload = start + head_size
        if header.get("size") != file_size - self._payload:
            raise SiteIndexError(f"{self.path} is truncated or damaged (size)")
        channels, merged = header.get("channels"), header.get("merged")
        if not isinstance(channels, dict) or not all(
                isinstance(name, str) and _is_section(entry) and isinstance(entry.get("identity"), str)
                for name, entry in channels.items()):
            raise SiteIndexError(f"{self.path} is damaged (channel table)")
        if merged is not None and not (
                _is_section(merged) and isinstance(merged.get("key"), str)
                and isinstance(merged.get("channels"), list)
                and all(isinstance(key, str) for key in merged["channels"])):
            raise SiteIndexError(f"{self.path} is damaged (merged index entry)")
        return header

    def _section(self, entry: dict[str, Any], what: str) -> bytes:
        offset, size = entry["offset"], entry["size"]
        if offset + size > self.header["size"]:
            raise SiteIndexError(f"{self.path}: {what} lies outside the file")
        data = self._pread(self._payload + offset, size)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SiteIndexError(f"{self.path}: {what} is damaged (checksum)")
        return data

    @property
    def catalog_format(self) -> Any:
        return self.header.get("catalog_format")

    def _entry(self, name: str, identity: str) -> dict[str, Any]:
        """The published listing of this channel identity; SiteIndexError says why there is none.

        The identity is what counts: a user who calls the site's channel by
        another name still gets its listing.
        """
        channels: dict[str, dict[str, Any]] = self.header["channels"]
        entry = channels.get(name)
        if entry is not None and entry["identity"] == identity:
            return entry
        for other in channels.values():
            if other["identity"] == identity:
                return other
        if entry is not None:
            raise SiteIndexError(f"channel {name} changed since it was published (stale)")
        failed = self.header.get("failed", {})
        if isinstance(failed, dict) and isinstance(failed.get(name), str):
            raise SiteIndexError(f"channel {name} failed when it was published")
        raise SiteIndexError(f"channel {name} is not in it")

    def uncovered(self, keys: dict[str, str]) -> list[str]:
        """Why each channel (name -> listing key, ``channels.listing_key``) would be listed
        per user (empty: all covered)."""
        reasons = []
        for name, key in keys.items():
            try:
                self._entry(name, key)
            except SiteIndexError as exc:
                reasons.append(str(exc))
        return reasons

    def listing(self, name: str, identity: str) -> SiteListing:
        """Channel ``name``'s records, checked; SiteIndexError if stale, absent or damaged."""
        entry = self._entry(name, identity)
        data = self._section(entry, f"channel {name}")
        try:
            records, skipped = marshal.loads(data)
        except (ValueError, EOFError, TypeError, RecursionError):
            raise SiteIndexError(f"{self.path}: channel {name} is damaged (records)") from None
        if not (_valid_records(records) and _valid_skipped(skipped)):
            raise SiteIndexError(f"{self.path}: channel {name} is damaged (records)")
        listed_at = entry.get("listed_at")
        return SiteListing(records, skipped,
                           float(listed_at) if isinstance(listed_at, (int, float)) else 0.0)

    def merged_view(self, keys: list[str]) -> tuple[CacheImage | None, list[int]] | None:
        """The merged index, read in place, if it covers every one of ``keys`` (the
        listing keys, ``channels.listing_key``, of a user's channels in their order):
        the image (None: its header is damaged) and each key's channel in it.

        None when it does not cover them all, or in another order (the order
        ranks versions: the newest channel is the last). Its blocks are checked
        as they are read (``catalogcache.CacheImage``), not by the sha256 of the
        whole: a search reads a few hundred KB of a 56 MB index.
        """
        merged = self.header.get("merged")
        if merged is None:
            return None
        order = merged["channels"]
        places = [order.index(key) if key in order else -1 for key in keys]
        if not places or -1 in places or places != sorted(set(places)):
            return None
        if merged["offset"] + merged["size"] > self.header["size"]:
            raise SiteIndexError(f"{self.path}: the merged index lies outside the file")
        if self._mapped is None:
            self._mapped = map_file(self._fd)
            if self._mapped is None or len(self._mapped) < self._payload + self.header["size"]:
                raise SiteIndexError(f"{self.path} is truncated")
        return parse_image(self._mapped, self._payload + merged["offset"], merged["size"]), places

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "SiteIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_section(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            and all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                    and entry[k] >= 0 for k in ("offset", "size")))


def _strings(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, str) for item in value)


def _valid_records(records: Any) -> bool:
    """Every record is pkglist.Record's nine fields with their types (what indexing assumes)."""
    if not isinstance(records, list):
        return False
    for record in records:
        if not (isinstance(record, tuple) and len(record) == 9
                and all(isinstance(record[i], str) for i in (0, 1, 2, 3, 4, 5, 8))
                and _strings(record[6]) and _strings(record[7]) and record[0]):
            return False
    return True


def _valid_skipped(skipped: Any) -> bool:
    return isinstance(skipped, list) and all(
        isinstance(row, tuple) and len(row) == 2 and all(isinstance(x, str) for x in row)
        for row in skipped)


def open_site(directory: Path, publisher: str = "") -> SiteIndex:
    """The site index in ``directory``, checked; SiteIndexError says why it is unusable.

    ``publisher``: the ``[catalog] publisher`` account whose index is trusted
    besides root's.
    """
    try:
        return SiteIndex(directory, publisher)
    except SiteIndexError:
        raise
    except Exception as exc:   # whatever a hostile file provokes is a reason, not a crash
        raise SiteIndexError(f"cannot read the index in {directory}: "
                             f"{type(exc).__name__}: {exc}") from None


# -- publishing -------------------------------------------------------------------

def check_publish_dir(directory: Path, publisher: str = "") -> None:
    """Refuse, before any work, a directory whose index users would not trust.

    Users trust an index of root or ``publisher`` (their ``[catalog]
    publisher``, normally the site config's) in a directory only those can
    change, so publishing as anyone else, or into any other directory,
    would only make every user list the channels themselves.
    """
    if directory.is_symlink() and not directory.is_dir():
        raise UserError(f"catalog publish: {directory} is a dangling symlink; give a directory")
    if directory.exists() and not directory.is_dir():
        raise UserError(f"catalog publish: {directory} is not a directory; give the site "
                        "catalog directory ([catalog] site_dir)")
    try:
        trusted = trusted_publishers(publisher)
    except SiteIndexError as exc:
        raise UserError(f"catalog publish: {exc}") from None
    me = os.geteuid()
    if me not in trusted:
        raise UserError(f"catalog publish: users trust only an index written by "
                        f"{dirs.whom(trusted)}; you are {_describe_owner(me)}: publish as root, or "
                        f"set [catalog] publisher = \"{_describe_owner(me)}\" in the site config "
                        "(/etc/nixmod/config.toml)")
    try:
        why = dirs.problem(directory, trusted)   # before creating anything in a hostile place
        if why is not None:
            raise SiteIndexError(f"{directory} is not trusted: {why}; users would not use an "
                                 "index there")
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        _check_directory(directory, trusted)
    except SiteIndexError as exc:
        raise UserError(f"catalog publish: {exc}") from None
    except OSError as exc:
        raise UserError(f"catalog publish: cannot create {directory} ({exc.strerror or exc})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"catalog publish: cannot write in {directory}")


def _remove_abandoned(directory: Path, age: float = 24 * 3600) -> None:
    """Temp files of publishes that were killed (a full index each), once surely dead."""
    now = time.time()
    for temp in directory.glob(f".{INDEX_NAME}.*.tmp"):
        try:
            st = temp.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and now - st.st_mtime > age:
                temp.unlink()
        except OSError:
            continue


def write_index(directory: Path, channels: list[tuple[str, str, SiteListing]],
                failed: dict[str, str], merged: tuple[str, bytes] | None,
                catalog_format: int) -> Path:
    """Write the index atomically (temp file, fsync, rename), world-readable.

    ``channels``: (name, identity digest, listing); ``merged``: (key, cache
    image) of the whole channel list, or None.
    """
    sections: list[bytes] = []
    table: dict[str, Any] = {}
    offset = 0

    def add(data: bytes) -> dict[str, Any]:
        nonlocal offset
        entry = {"offset": offset, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        sections.append(data)
        offset += len(data)
        return entry

    for name, identity, listing in channels:
        data = marshal.dumps((listing.records, listing.skipped))
        table[name] = {**add(data), "identity": identity, "packages": len(listing.records),
                       "listed_at": listing.listed_at}
    merged_entry = None
    if merged:
        add(bytes(-offset % 8))   # the image's arrays are read in place: 8-byte aligned
        merged_entry = {**add(merged[1]), "key": merged[0],
                        "channels": [identity for _name, identity, _listing in channels]}
    head = {"format": FORMAT, "catalog_format": catalog_format, "nixmod": __version__,
            "published_at": time.time(), "publisher": current_user(),
            "channels": table, "failed": failed, "merged": merged_entry, "size": offset}
    header = json.dumps(head).encode()
    # the payload starts 8-byte aligned (the header is padded with blanks, still JSON)
    header += b" " * (-(len(_MAGIC) + 8 + len(header)) % 8)
    path = directory / INDEX_NAME
    _remove_abandoned(directory)
    with atomic_open(path, mode=0o644, binary=True, fsync=True) as out:
        out.write(_MAGIC + struct.pack("<Q", len(header)) + header)
        for data in sections:
            out.write(data)
    return path
