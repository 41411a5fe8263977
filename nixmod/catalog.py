"""The catalog: pinned channels merged into one searchable index.

Each channel is listed once and cached by its identity (``nixmod.channels``).
The merged index is one cache file of sections (``nixmod.catalogcache``)
read in place: loading maps it and checks the few sections every query
reads; a query bisects names and keys as bytes where they lie and reads only
the id lists it needs; a package's full metadata is unpacked only when it is
shown (issue 22: a search reads a few hundred KB of a 58 MB index).

Ranking (issue 3, issue 10): exact name, exact ``meta.mainProgram``, exact last
component of the attribute path (``numpy`` finds ``python313Packages.numpy``),
name prefix, word or substring of the attribute path, typo-tolerant match,
description words. Within a tier the package that the newest channel has comes
first, then the shorter name, then the newer version (see ``_tie_order``).

A package's versions are ordered by channel, newest channel (the last one
configured) first, and by Nix's version order within a channel: the first is
what ``build NAME`` picks. Nix's order across channels would pick lammps
``2016-02-16`` over ``22Jul2025_update4`` (2016 > 22) or an old
``unstable-2023-05-01`` over a current ``0.3``; the newest channel is the
current pin, whatever its version string looks like.
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Callable, Iterable, Iterator

from nixmod.catalogcache import FORMAT, DamagedCache, cache_sections, digest, open_image
from nixmod.catalogindex import build_index
from nixmod.catalogview import IndexView
from nixmod.channels import ChannelLister, channel_identity, require_writable
from nixmod.config import Config
from nixmod.errors import UserError
from nixmod.names import check_module_names
from nixmod.packages import CatalogInfo, Package, PackageVersion, display_version
from nixmod.siteindex import SiteIndex, SiteIndexError, open_site

Progress = Callable[[str], None]


# -- the catalog ------------------------------------------------------------------

class Catalog(IndexView):
    """The merged, cached index of every configured channel, read in place (``IndexView``)."""

    # loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, config: Config, progress: Progress | None = None, *,
             refresh: bool = False) -> "Catalog":
        """The catalog of ``config``'s channels: from the cache, or listed and cached now.

        With ``[catalog] site_dir`` the channels that the site index covers
        (same identity) are read from it, even on ``refresh``, and never
        evaluated; if its merged index covers all of them (the site's
        channel list, or part of it in the same order), that is the
        catalog, read in place. What it does not cover is listed as before,
        and ``warnings`` says so.
        """
        say = progress or (lambda message: None)
        identities = [channel_identity(c) for c in config.channels]
        key = digest((FORMAT, [(c.name, i) for c, i in zip(config.channels, identities)]))
        path = config.cache_dir / "catalog" / "index.bin"
        require_writable(path.parent)
        site_dir = config.catalog.site_dir
        site: SiteIndex | None = None
        site_stamp = site_warning = ""
        if site_dir is not None:
            try:
                site = open_site(site_dir, config.catalog.publisher)
                site_stamp = repr(site.stamp)
            except SiteIndexError as exc:
                site_stamp = str(exc)
                site_warning = (f"site catalog unusable ({exc}); channels are listed "
                                "for you instead")
        outdated = False      # a cache of ours that the site index may now replace
        try:
            if not refresh:
                cached = _open_cache(path)
                # A channel that failed (nix-env not on PATH, the daemon down, a
                # dump on an unmounted filesystem) is tried again: caching the
                # failure would keep reporting it after the cause is gone. A
                # cache that the site index could not fully serve is rebuilt once
                # the index changes: it may cover those channels now.
                if cached is not None:
                    head = cached._header
                    if (head.get("key") == key and not cached.errors
                            and (not head.get("warnings") or head.get("site") == site_stamp)):
                        return cached
                if cached is None and path.exists():
                    say(f"catalog cache {path} is damaged or from another version; rebuilding it")
                outdated = cached is not None
            lister = ChannelLister(path.parent, say, site)
            # a query met a damaged block of this very index: its listings serve instead
            marker = path.parent / _SITE_DAMAGED
            if site is not None and _read_marker(marker) == site_stamp:
                lister.site_misses.append(f"{site.path}: the merged index is damaged (checksum)")
            elif site is not None:
                names = [c.name for c in config.channels]
                merged = cls._from_site(site, [digest((FORMAT, i)) for i in identities], names,
                                        lister.site_misses)
                if merged is not None:
                    if outdated:  # else every later search would read it before the site's
                        path.unlink(missing_ok=True)
                    merged._marker = (marker, site_stamp)
                    return merged
            with _without_gc():
                listings = [lister.listing(c, i, refresh)
                            for c, i in zip(config.channels, identities)]
            lister.forget_strings()
        finally:
            if site is not None:
                site.close()
        with _without_gc():
            header, sections = build_index(config.channels, listings, say)
        header["key"] = key
        if lister.site_misses:
            site_warning = (f"site catalog {site_dir}: {'; '.join(lister.site_misses)}; "
                            "listed for you instead (staff: run 'nixmod catalog publish "
                            f"{site_dir}')")
        if site_warning:
            header["warnings"], header["site"] = [site_warning], site_stamp
        del listings
        image = cache_sections(path, header, sections, say)
        say(f"catalog: {header['packages']} packages from {len(config.channels)} channels, "
            f"cached in {path}")
        return cls(path, image)

    @classmethod
    def _from_site(cls, site: SiteIndex, keys: list[str], names: list[str],
                   problems: list[str]) -> "Catalog | None":
        """The site's merged index seen through these channels (listing ``keys``, the
        user's ``names``), if it covers them all in this order; else None.

        A damaged one is added to ``problems``: the per-channel listings may
        still serve, but staff should hear of it.
        """
        try:
            found = site.merged_view(keys)
        except SiteIndexError as exc:
            problems.append(str(exc))
            return None
        if found is None:
            return None
        image, places = found
        try:
            if image is None:
                raise DamagedCache("its header")
            return cls(site.path, image, view=list(zip(places, names)))
        except (DamagedCache, KeyError, TypeError, ValueError, IndexError):
            problems.append(f"{site.path}: the merged index is damaged (checksum)")
            return None

    # records -------------------------------------------------------------------

    def package(self, name: str, channel: str | None = None) -> Package:
        """The package called ``name`` (its attribute path), the newest channel's version first.

        Unknown names are a UserError that suggests the closest names.
        """
        try:
            return self._package(name, channel)
        except DamagedCache as exc:
            raise self._damaged(exc) from None

    def _package(self, name: str, channel: str | None) -> Package:
        channel_index = self._channel_index(channel)
        package_id = self._find(name)
        if package_id is None:
            close = [hit.package.name for hit in self.search(name, limit=5)] if name.strip() else []
            hint = f"; did you mean: {', '.join(close)}?" if close else "; try 'nixmod search WORD'"
            raise UserError(f"unknown package {name!r}{hint}")
        versions = self._versions_of(package_id, channel_index)
        if not versions:
            where = ", ".join(sorted({v.channel for v in self._versions_of(package_id)}))
            raise UserError(f"{name} is not in channel {channel!r}; it is in: {where}")
        return Package(name=self._names.text(package_id), versions=versions)

    def versions(self, name: str, channel: str | None = None) -> list[PackageVersion]:
        """Every version of ``name`` across channels (or in one): the newest channel's first."""
        return self.package(name, channel).versions

    def resolve(self, spec: str) -> PackageVersion:
        """The version a build SPEC means: ``[CHANNEL:]NAME[@VERSION|@CONSTRAINT]``.

        Without a version the first of ``versions`` wins: the version in the
        newest channel (the last configured) that has the package. ``@VERSION``
        is the version as nix-env reports it, or as the derivation name ends
        (``zed@unstable-2023-05-01`` for ``zed-unstable-2023-05-01``, whose
        version nix-env reports as ``2023-05-01``); the newest channel wins
        when several pin it. A constraint such as ``>=2.10`` uses PEP 440
        through ``packaging``, picks the first version in that same order
        that satisfies it, and only applies to versions that are PEP 440;
        when none are, the error says so rather than guessing.
        """
        text = spec.strip()
        channel = None
        if ":" in text.split("@", 1)[0]:
            channel, text = text.split(":", 1)
        name, _, wanted = text.partition("@")
        if not name or (text.endswith("@") and not wanted) or "@" in wanted:
            raise UserError(f"bad spec {spec!r}; write NAME, NAME@VERSION, CHANNEL:NAME "
                            "or NAME@>=VERSION")
        versions = self.versions(name, channel)
        if not wanted:
            return _can_name_a_module(versions[0])
        if wanted[0] in "<>=!~":
            return _can_name_a_module(self._matching(name, wanted, versions))
        for version in versions:
            if version.version == wanted:
                return _can_name_a_module(version)
        for version in versions:
            if _drv_name_ends_with(version, wanted):
                return _can_name_a_module(version)
        listed = ", ".join(f"{display_version(v.version)} ({v.channel})" for v in versions)
        raise UserError(f"{name} has no version {wanted!r}; available: {listed}")

    @staticmethod
    def _matching(name: str, constraint: str, versions: list[PackageVersion]) -> PackageVersion:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version

        try:
            specifier = SpecifierSet(constraint)
        except InvalidSpecifier:
            raise UserError(f"bad version constraint {constraint!r} for {name}; "
                            "write e.g. >=2.10 or >=1.2,<2") from None
        comparable: list[tuple[Version, PackageVersion]] = []
        for version in versions:
            try:
                comparable.append((Version(version.version), version))
            except InvalidVersion:
                continue
        if not comparable:
            listed = _distinct_versions(versions)
            raise UserError(f"constraint {constraint!r} cannot apply to {name}: its versions "
                            f"({listed}) are not PEP 440 versions; name one with {name}@VERSION")
        allowed = set(specifier.filter(v for v, _ in comparable))
        for parsed, version in comparable:  # in the order ``build NAME`` picks from
            if parsed in allowed:
                return version
        listed = _distinct_versions(versions)
        raise UserError(f"no version of {name} satisfies {constraint!r}; available: {listed}")

    # reporting -----------------------------------------------------------------

    def info(self) -> CatalogInfo:
        versions = (self._header["versions"] if self._visible is None
                    else sum(c.packages for c in self.channels))
        return CatalogInfo(cache=str(self.path), built_at=self._header["built_at"],
                           packages=len(self), versions=versions, channels=list(self.channels))

@contextlib.contextmanager
def _without_gc() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: listing and indexing make millions of
    tuples and no cycles, and each collection walks all of them (0.7 of 7.9 s of a
    cold index of the 5 real dumps, 1,833 collections)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_SITE_DAMAGED = "site-damaged"


def _read_marker(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _open_cache(path: Path) -> "Catalog | None":
    """The user's own cache, or None if missing, foreign or damaged."""
    image = open_image(path)
    if image is None:
        return None
    try:
        return Catalog(path, image)
    except (DamagedCache, KeyError, TypeError, ValueError, IndexError):
        return None


def _distinct_versions(versions: Iterable[PackageVersion]) -> str:
    """The versions, each once, in order: one version pinned by four channels is one choice."""
    return ", ".join(display_version(v) for v in dict.fromkeys(v.version for v in versions))


def _drv_name_ends_with(version: PackageVersion, wanted: str) -> bool:
    """Does the derivation name (``pname-version``) end with ``-wanted``, covering the whole version?

    nixpkgs spells ``zed-unstable-2023-05-01`` where nix-env reports pname
    ``zed-unstable`` and version ``2023-05-01``; a user who copies the
    version from the nixpkgs file writes ``unstable-2023-05-01``. Only a
    suffix longer than the reported version counts, so ``@01`` matches nothing.
    """
    drv_name = f"{version.pname}-{version.version}" if version.version else version.pname
    return len(wanted) > len(version.version) and drv_name.endswith("-" + wanted)


def _can_name_a_module(version: PackageVersion) -> PackageVersion:
    """``version`` if its name and version can name a modulefile (what a build ends in)."""
    check_module_names(version.name, version.version)
    return version
