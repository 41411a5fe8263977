"""The catalog: pinned channels merged into one searchable index.

Each channel is listed once and cached by its identity (``nixmod.channels``).
The merged index is one cache file of checksummed sections
(``nixmod.catalogcache``): loading it is a read, a CRC and a few
``marshal.loads`` (no JSON, no per-record objects); a package's full
metadata is unpacked only when it is shown.

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

import bisect
import heapq
import itertools
import marshal
from array import array
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable

from nixmod.catalogcache import FORMAT, cache_sections, digest, parse_sections, read_sections
from nixmod.catalogindex import (COMMON_TRIGRAM, WORD, build_index, edit_distance, trigrams_of,
                                 typo_budget)
from nixmod.channels import ChannelLister, channel_identity, require_writable
from nixmod.config import Config
from nixmod.errors import UserError
from nixmod.names import check_module_names
from nixmod.packages import (MATCH_KINDS, CatalogInfo, ChannelError, ChannelInfo, Package,
                             PackageVersion, SearchHit, SkippedEntry, display_version)
from nixmod.siteindex import SiteIndex, SiteIndexError, open_site

Progress = Callable[[str], None]


# -- the catalog ------------------------------------------------------------------

class Catalog:
    """The merged, cached index of every configured channel."""

    def __init__(self, path: Path, header: dict[str, Any], sections: dict[str, Any]):
        self.path = path
        self._header = header
        self._sections = sections
        self.channels: list[ChannelInfo] = [ChannelInfo(*row) for row in header["channels"]]
        self.errors: list[ChannelError] = [ChannelError(c.name, c.error)
                                           for c in self.channels if c.error]
        #: problems that cost time but not results (a site index that did not
        #: cover every channel): one line each, for stderr or the TUI's problems
        self.warnings: list[str] = list(header.get("warnings", ()))

    # loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, config: Config, progress: Progress | None = None, *,
             refresh: bool = False) -> "Catalog":
        """The catalog of ``config``'s channels: from the cache, or listed and cached now.

        With ``[catalog] site_dir`` the channels that the site index covers
        (same identity) are read from it, even on ``refresh``, and never
        evaluated; if it holds the merged index of exactly these channels,
        that is the catalog. What it does not cover is listed as before,
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
                cached = read_sections(path)
                # A channel that failed (nix-env not on PATH, the daemon down, a
                # dump on an unmounted filesystem) is tried again: caching the
                # failure would keep reporting it after the cause is gone. A
                # cache that the site index could not fully serve is rebuilt once
                # the index changes: it may cover those channels now.
                if (cached is not None and cached[0].get("key") == key
                        and not any(ChannelInfo(*row).error for row in cached[0]["channels"])
                        and (not cached[0].get("warnings") or cached[0].get("site") == site_stamp)):
                    return cls(path, *cached)
                if cached is None and path.exists():
                    say(f"catalog cache {path} is damaged or from another version; rebuilding it")
                outdated = cached is not None
            lister = ChannelLister(path.parent, say, site)
            if site is not None:
                merged = cls._from_site(site, key, lister.site_misses)
                if merged is not None:
                    if outdated:  # else every later search would read it before the site's
                        path.unlink(missing_ok=True)
                    return merged
            listings = [lister.listing(c, i, refresh) for c, i in zip(config.channels, identities)]
        finally:
            if site is not None:
                site.close()
        header, sections = build_index(config.channels, listings, say)
        header["key"] = key
        if lister.site_misses:
            site_warning = (f"site catalog {site_dir}: {'; '.join(lister.site_misses)}; "
                            "listed for you instead (staff: run 'nixmod catalog publish "
                            f"{site_dir}')")
        if site_warning:
            header["warnings"], header["site"] = [site_warning], site_stamp
        cache_sections(path, header, sections, say)
        say(f"catalog: {header['packages']} packages from {len(config.channels)} channels, "
            f"cached in {path}")
        return cls(path, header, {name: memoryview(data) for name, data in sections.items()})

    @classmethod
    def _from_site(cls, site: SiteIndex, key: str, problems: list[str]) -> "Catalog | None":
        """The site's merged index if it is the one of exactly these channels, else None.

        A damaged one is added to ``problems``: the per-channel listings may
        still serve, but staff should hear of it.
        """
        try:
            image = site.merged(key)
        except SiteIndexError as exc:
            problems.append(str(exc))
            return None
        if image is None:
            return None
        parsed = parse_sections(image)
        if parsed is None or parsed[0].get("key") != key:
            problems.append(f"{site.path}: the merged index is damaged")
            return None
        return cls(site.path, *parsed)

    def _marshalled(self, name: str) -> Any:
        return marshal.loads(self._sections[name])

    def _ids(self, name: str) -> array:
        values = array("I")
        values.frombytes(self._sections[name])
        return values

    @cached_property
    def _names(self) -> list[str]:
        return self._marshalled("names")

    @cached_property
    def _lower(self) -> list[str]:
        return self._marshalled("lower")

    @cached_property
    def _masks(self) -> list[int]:
        return self._marshalled("masks")

    @cached_property
    def _programs(self) -> dict[str, list[int]]:
        return self._marshalled("programs")

    @cached_property
    def _name_blob(self) -> tuple[str, list[int]]:
        """All lower-case names joined by newlines, and where each one starts."""
        blob = "\n".join(self._lower) + "\n"
        starts = list(itertools.accumulate((len(n) + 1 for n in self._lower), initial=0))
        return blob, starts

    @cached_property
    def _grams(self) -> tuple[dict[str, int], array, array]:
        keys = self._marshalled("gram_keys")
        return {k: i for i, k in enumerate(keys)}, self._ids("gram_spans"), self._ids("gram_ids")

    @cached_property
    def _words(self) -> tuple[list[str], array, array]:
        return self._marshalled("word_keys"), self._ids("word_spans"), self._ids("word_ids")

    @cached_property
    def _tails(self) -> tuple[list[str], array, array]:
        return self._marshalled("tail_keys"), self._ids("tail_spans"), self._ids("tail_ids")

    @cached_property
    def _offsets(self) -> array:
        values = array("Q")
        values.frombytes(self._sections["offsets"])
        return values

    @cached_property
    def _platforms(self) -> list[tuple[str, ...]]:
        return self._marshalled("platforms")

    @cached_property
    def _outputs(self) -> list[tuple[str, ...]]:
        return self._marshalled("outputs")

    @cached_property
    def _tie_order(self) -> array:
        """Package id -> its place among equal matches (``_tie_order`` at index time)."""
        return self._ids("tie_order")

    # records -------------------------------------------------------------------

    def _versions_of(self, package_id: int, channel: int | None = None) -> list[PackageVersion]:
        start, end = self._offsets[package_id], self._offsets[package_id + 1]
        name = self._names[package_id]
        result = []
        for (version, channel_index, attr, pname, description, homepage, license, plats, outs,
             program) in marshal.loads(self._sections["details"][start:end]):
            if channel is not None and channel_index != channel:
                continue
            result.append(PackageVersion(
                name=name, version=version, channel=self.channels[channel_index].name,
                attr=attr or name, pname=pname, description=description, homepage=homepage,
                license=license, platforms=self._platforms[plats], outputs=self._outputs[outs],
                main_program=program))
        return result

    def _channel_index(self, channel: str | None) -> int | None:
        if channel is None:
            return None
        for index, info in enumerate(self.channels):
            if info.name == channel:
                return index
        known = ", ".join(c.name for c in self.channels) or "none configured"
        raise UserError(f"unknown channel {channel!r}; channels: {known}")

    def _find(self, name: str) -> int | None:
        lowered = name.lower()
        index = bisect.bisect_left(self._lower, lowered)
        while index < len(self._lower) and self._lower[index] == lowered:
            if self._names[index] == name:
                return index
            index += 1
        return None

    def package(self, name: str, channel: str | None = None) -> Package:
        """The package called ``name`` (its attribute path), the newest channel's version first.

        Unknown names are a UserError that suggests the closest names.
        """
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
        return Package(name=self._names[package_id], versions=versions)

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

    # search --------------------------------------------------------------------

    def search(self, query: str, limit: int = 20, channel: str | None = None) -> list[SearchHit]:
        """Ranked matches for ``query``; each tier is consulted only if the better ones
        have not already filled ``limit``."""
        channel_index = self._channel_index(channel)
        text = query.strip().lower()
        if not text or limit < 1:
            return []
        bit = None if channel_index is None else 1 << channel_index
        masks = self._masks
        chosen: dict[int, int] = {}
        order: list[int] = []
        finders = (self._exact, self._by_program, self._by_component, self._by_prefix,
                   self._in_name, self._fuzzy, self._by_description)
        for rank, finder in enumerate(finders):
            room = limit - len(order)
            if room <= 0:
                break
            # a finder may meet one package more than once (a substring that
            # occurs twice in its name): keep its best key only
            best: dict[int, Any] = {}
            for key, pid in finder(text):
                if pid in chosen or (bit is not None and not masks[pid] & bit):
                    continue
                if pid not in best or key < best[pid]:
                    best[pid] = key
            candidates = ((key, pid) for pid, key in best.items())
            for _key, package_id in heapq.nsmallest(room, candidates):
                chosen[package_id] = rank
                order.append(package_id)
        return [SearchHit(package=Package(self._names[pid], self._versions_of(pid, channel_index)),
                          kind=MATCH_KINDS[chosen[pid]], rank=chosen[pid])
                for pid in order]

    def listing(self, limit: int = 20, channel: str | None = None) -> list[Package]:
        """The first ``limit`` packages in name order: what there is before anything is typed."""
        channel_index = self._channel_index(channel)
        bit = None if channel_index is None else 1 << channel_index
        masks = self._masks
        ids = (pid for pid in range(len(self._names)) if bit is None or masks[pid] & bit)
        return [Package(self._names[pid], self._versions_of(pid, channel_index))
                for pid in itertools.islice(ids, max(limit, 0))]

    def _exact(self, text: str) -> Iterable[tuple[Any, int]]:
        index = bisect.bisect_left(self._lower, text)
        while index < len(self._lower) and self._lower[index] == text:
            yield self._tie_order[index], index
            index += 1

    def _by_program(self, text: str) -> Iterable[tuple[Any, int]]:
        order = self._tie_order
        for package_id in self._programs.get(text, ()):
            yield order[package_id], package_id

    def _by_component(self, text: str) -> Iterable[tuple[Any, int]]:
        """Names whose last attribute component is ``text`` (python313Packages.numpy)."""
        keys, spans, ids = self._tails
        slot = bisect.bisect_left(keys, text)
        if slot == len(keys) or keys[slot] != text:
            return
        order = self._tie_order
        for package_id in ids[spans[slot]:spans[slot + 1]]:
            yield order[package_id], package_id

    def _by_prefix(self, text: str) -> Iterable[tuple[Any, int]]:
        lower = self._lower
        order = self._tie_order
        index = bisect.bisect_left(lower, text)
        while index < len(lower) and lower[index].startswith(text):
            yield order[index], index
            index += 1

    def _in_name(self, text: str) -> Iterable[tuple[Any, int]]:
        """Substrings of the attribute path: at the start of a component first, then
        at the start of a word (after ``-`` or ``_``), then anywhere."""
        blob, starts = self._name_blob
        order, count = self._tie_order, len(self._lower)
        position = blob.find(text)
        while position >= 0:
            package_id = bisect.bisect_right(starts, position) - 1
            before = blob[position - 1] if position else "\n"
            where = 0 if before in ".\n" else (1 if before in "-_" else 2)
            yield where * count + order[package_id], package_id
            position = blob.find(text, position + 1)

    def _fuzzy(self, text: str) -> Iterable[tuple[Any, int]]:
        budget = typo_budget(text)
        if budget == 0:
            return
        lookup, spans, ids = self._grams
        counts: Counter[int] = Counter()
        grams = trigrams_of(text)
        # An edit breaks up to 4 trigrams (a swap); trigrams shared by a huge
        # share of names ("pyt", "ack") say little and cost most, so skip them.
        needed = len(grams) - 4 * budget
        for gram in grams:
            slot = lookup.get(gram)
            if slot is None:
                continue
            if spans[slot + 1] - spans[slot] > COMMON_TRIGRAM:
                needed -= 1
                continue
            counts.update(ids[spans[slot]:spans[slot + 1]])
        needed = max(1, needed)
        parts = text.split(".")
        for package_id, shared in counts.most_common(300):
            if shared < needed:
                break
            lower = self._lower[package_id]
            candidates = [lower] + (lower.split(".")[-len(parts):] if len(parts) == 1 else [])
            distance = min(edit_distance(text, c, budget) for c in candidates)
            if distance <= budget:
                yield distance * len(self._lower) + self._tie_order[package_id], package_id

    def _by_description(self, text: str) -> Iterable[tuple[Any, int]]:
        keys, spans, ids = self._words
        matched: set[int] | None = None
        for word in WORD.findall(text):
            found: set[int] = set()
            index = bisect.bisect_left(keys, word)
            while index < len(keys) and (keys[index] == word or
                                         (len(word) > 2 and keys[index].startswith(word))):
                found.update(ids[spans[index]:spans[index + 1]])
                index += 1
            matched = found if matched is None else matched & found
            if not matched:
                return
        order = self._tie_order
        for package_id in matched or ():
            yield order[package_id], package_id

    # reporting -----------------------------------------------------------------

    def info(self) -> CatalogInfo:
        return CatalogInfo(cache=str(self.path), built_at=self._header["built_at"],
                           packages=self._header["packages"], versions=self._header["versions"],
                           channels=list(self.channels))

    def skipped(self, channel: str | None = None) -> list[SkippedEntry]:
        """Entries that were reported instead of indexed, with the reason."""
        return [SkippedEntry(*row) for row in self._marshalled("skipped")
                if channel is None or row[0] == channel]

    def __len__(self) -> int:
        return self._header["packages"]


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
