"""Channels: what identifies one, and listing its packages (through a per-channel cache).

A channel is listed once (``nix-env -qaP --json --meta``, or a saved dump or
listing read directly) and its records cached by the channel's identity
(``channel_identity``), so a user who adds a sixth channel does not wait for
the other five again. ``nixmod.catalog`` merges the listings into the
searchable index; ``nixmod.siteindex`` publishes them for a site.
"""

from __future__ import annotations

import marshal
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from nixmod import __version__
from nixmod.catalogcache import FORMAT, Progress, cache_sections, digest, read_sections
from nixmod.config import DEMO_DIR, Channel
from nixmod.errors import NixmodError, UserError
from nixmod.files import atomic_write
from nixmod.siteindex import SiteIndex, SiteIndexError


def require_writable(directory: Path) -> None:
    """The cache directory, created if need be; a UserError naming the fix otherwise.

    Listing a nix channel writes nix-env's output there first, so without it
    every channel would fail with a bare "Permission denied".
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        usable = os.access(directory, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as exc:
        usable, reason = False, exc.strerror or str(exc)
    if not usable:
        raise UserError(f"cannot use the catalog cache {directory} ({reason}); set XDG_CACHE_HOME "
                        "to a directory you can write (default ~/.cache)")


def _stat_identity(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path), "missing")
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def channel_kind(channel: Channel) -> str:
    return "url" if channel.path is None else ("dump" if channel.is_dump else "nix")


def channel_identity(channel: Channel) -> tuple:
    """What must be unchanged for a cached listing of ``channel`` to stay true.

    A path channel is its file (or, for a directory, the directory, its
    default.nix and the revision markers a nixpkgs checkout carries); the
    bundled demo channels also change with nixmod itself. A url channel is
    pinned by its sha256, so url + sha256 is the whole identity. A channel
    with a ``listing`` is that file plus its path/url. The site index keys
    its listings by this identity too, so a published listing stands in for
    exactly the channel it was made from.
    """
    if channel.listing is not None:
        # what the catalog reads is the listing; what builds evaluate pairs with it
        return ("listing", _stat_identity(channel.listing),
                channel_identity(Channel(channel.name, channel.path, channel.url, channel.sha256)))
    if channel.path is None:
        return (channel_kind(channel), channel.url, channel.sha256)
    path = channel.path
    parts: list[tuple] = [_stat_identity(path)]
    if path.is_dir():
        for marker in ("default.nix", ".git-revision", ".version-suffix", ".git/HEAD"):
            parts.append(_stat_identity(path / marker))
    if DEMO_DIR in path.parents or path == DEMO_DIR:
        parts.append(("nixmod", __version__))
        parts.extend(_stat_identity(p) for p in sorted(DEMO_DIR.rglob("*.nix")))
    return (channel_kind(channel), tuple(parts))


def listing_key(channel: Channel) -> str:
    """The key a listing of ``channel`` is filed under, in the per-user cache and the site index."""
    return digest((FORMAT, channel_identity(channel)))


@dataclass
class Listing:
    """One channel's records (as marshal-friendly tuples) and what was skipped."""

    records: list[tuple]      # pkglist.Record fields in order
    skipped: list[tuple[str, str]]
    listed_at: float
    error: str = ""


class ChannelLister:
    """Lists channels, through the per-channel cache when it is still true."""

    def __init__(self, cache_dir: Path, progress: Progress, site: SiteIndex | None = None):
        self.cache_dir = cache_dir
        self.progress = progress
        self.site = site
        self.site_misses: list[str] = []
        #: one object per distinct version, description, license... across the channels
        #: listed: five nixpkgs repeat most of them, and one copy halves the records'
        #: memory (109 -> 59 MB for the 5 real dumps). ``forget_strings`` once listed.
        self._strings: dict[Any, Any] = {}

    def forget_strings(self) -> None:
        """Let the shared strings go with the records (indexing frees them as it packs)."""
        self._strings = {}

    def _shared(self, records: Iterable[tuple]) -> list[tuple]:
        """``records`` with their fields (the attribute path and the platforms, already
        shared per channel, aside) replaced by the one copy this lister keeps."""
        pool = self._strings
        share = pool.setdefault
        return [(attr, share(version, version), share(pname, pname),
                 share(description, description), share(homepage, homepage),
                 share(license, license), platforms, share(outputs, outputs),
                 share(program, program))
                for attr, version, pname, description, homepage, license, platforms, outputs,
                program in records]

    def listing(self, channel: Channel, identity: tuple, refresh: bool) -> Listing:
        key = digest((FORMAT, identity))
        if self.site is not None:
            try:
                got = self.site.listing(channel.name, key)
                return Listing(self._shared(got.records), got.skipped, got.listed_at)
            except SiteIndexError as exc:
                self.site_misses.append(str(exc))
            except Exception as exc:  # a hostile index costs a listing, never the search
                self.site_misses.append(f"channel {channel.name}: {type(exc).__name__}: {exc}")
        cache = self.cache_dir / "channels" / f"{key}.bin"
        if not refresh:
            cached = read_sections(cache)
            if cached is not None and cached[0].get("identity") == identity:
                header, sections = cached
                return Listing(self._shared(marshal.loads(sections["records"])),
                               marshal.loads(sections["skipped"]), header["listed_at"])
        try:
            records, skipped = self._list(channel)
        except (NixmodError, OSError) as exc:
            message = str(exc)
            self.progress(f"{channel.name}: FAILED: {message}")
            return Listing([], [], time.time(), error=message)
        except Exception as exc:  # pkglist.MalformedList and anything a hostile file provokes
            message = f"{type(exc).__name__}: {exc}"
            self.progress(f"{channel.name}: FAILED: {message}")
            return Listing([], [], time.time(), error=message)
        # plain tuples field by field: ``dataclasses.asdict`` deep-copies every
        # platform list (34 of 61 s of a cold index, and the sharing
        # ``read_list`` set up lost: hundreds of MB)
        from nixmod.pkglist import record_tuple

        listing = Listing([record_tuple(r) for r in records],      # strings shared as read
                           [(s.attr, s.reason) for s in skipped], time.time())
        cache_sections(cache, {"format": FORMAT, "identity": identity, "listed_at": listing.listed_at},
                        {"records": marshal.dumps(listing.records),
                         "skipped": marshal.dumps(listing.skipped)}, self.progress)
        return listing

    def _list(self, channel: Channel) -> tuple[list, list]:
        # here, not at the top: a search from the cache needs neither (issue 22: the
        # JSON reader, gzip, subprocess and tempfile are a tenth of its start-up)
        import tempfile

        from nixmod import nix, pkglist

        saved = channel.listing or (channel.path if channel.is_dump else None)
        if saved is not None:
            if not saved.is_file():
                what = "listing" if channel.listing else "dump"
                raise UserError(f"{what} {saved} does not exist")
            self.progress(f"{channel.name}: reading {saved}")
            return pkglist.read_list(saved, self._strings)
        source = channel.path if channel.path is not None else self._url_expression(channel)
        if not source.exists():
            raise UserError(f"path {source} does not exist")
        self.progress(f"{channel.name}: evaluating {source} with nix-env "
                      "(a real nixpkgs takes minutes)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".listing-", suffix=".json", dir=self.cache_dir)
        os.close(fd)
        try:
            nix.list_packages_to_file(source, Path(temp), self.progress, channel.name)
            return pkglist.read_list(Path(temp), self._strings)
        finally:
            Path(temp).unlink(missing_ok=True)

    def _url_expression(self, channel: Channel) -> Path:
        """A small .nix file importing the pinned tarball, for nix-env -f."""
        from nixmod import nix

        path = self.cache_dir / "sources" / f"{digest((channel.url, channel.sha256))}.nix"
        text = nix.tarball_expression(channel.url, channel.sha256) + "\n"
        if not path.is_file() or path.read_text() != text:
            atomic_write(path, text, mode=0o600)
        return path
