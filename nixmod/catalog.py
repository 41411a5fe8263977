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

import bisect
import dataclasses
import heapq
import itertools
import marshal
import sys
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable

from nixmod.catalogcache import (FORMAT, CacheImage, DamagedCache, Postings, Strings,
                                 cache_sections, digest, open_image)
from nixmod.catalogindex import (COMMON_TRIGRAM, MAX_WORDS_PER_PACKAGE, WORD, build_index,
                                 edit_distance, tie_key, trigrams_of, typo_budget)
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
    """The merged, cached index of every configured channel, read in place.

    A view of a cache image (``catalogcache.CacheImage``): the user's own
    ``index.bin``, or the site index's merged one. ``channel_of`` maps the
    image's channels to the user's (None: not one of theirs), so a user
    whose channels are a subset of the site's reads the site's index and
    sees only those channels, under their own names, ranked as an index of
    those channels alone would rank them.
    """

    def __init__(self, path: Path, image: CacheImage, *,
                 view: list[tuple[int, str]] | None = None):
        self.path = path
        self._image = image
        self._header = image.header
        rows = [ChannelInfo(*row) for row in image.header["channels"]]
        self._count = image.header["packages"]
        if view is None:
            self.channels: list[ChannelInfo] = rows
            self._channel_of: list[int | None] = list(range(len(rows)))
            self._visible: int | None = None
        else:
            self.channels = [dataclasses.replace(rows[place], name=name) for place, name in view]
            self._channel_of = [None] * len(rows)
            for user_index, (place, _name) in enumerate(view):
                self._channel_of[place] = user_index
            self._visible = sum(1 << place for place, _name in view)
        self.errors: list[ChannelError] = [ChannelError(c.name, c.error)
                                           for c in self.channels if c.error]
        #: problems that cost time but not results (a site index that did not
        #: cover every channel): one line each, for stderr or the TUI's problems
        self.warnings: list[str] = list(image.header.get("warnings", ()))
        # what every query reads, checked now: a damaged file is found at load
        self._lower = Strings(image, "lower", "lower_starts")
        self._masks = _masks(image)
        image.section("tie_order")
        self._tie_order = image.ints("tie_order")
        if not (len(self._masks) == len(self._tie_order) == len(self._lower) == self._count):
            raise DamagedCache("the sections disagree on the number of packages")

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
            if site is not None:
                names = [c.name for c in config.channels]
                merged = cls._from_site(site, [digest((FORMAT, i)) for i in identities], names,
                                        lister.site_misses)
                if merged is not None:
                    if outdated:  # else every later search would read it before the site's
                        path.unlink(missing_ok=True)
                    return merged
            listings = [lister.listing(c, i, refresh) for c, i in zip(config.channels, identities)]
            lister.forget_strings()
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
            full = places == list(range(len(image.header["channels"])))
            return cls(site.path, image,
                       view=None if full and names == [row[0] for row in image.header["channels"]]
                       else list(zip(places, names)))
        except (DamagedCache, KeyError, TypeError, ValueError, IndexError):
            problems.append(f"{site.path}: the merged index is damaged (checksum)")
            return None

    # reading the image -----------------------------------------------------------

    @cached_property
    def _names(self) -> _Names:
        return _Names(self._image)

    @cached_property
    def _programs(self) -> Postings:
        return Postings(self._image, "program")

    @cached_property
    def _grams(self) -> Postings:
        return Postings(self._image, "gram")

    @cached_property
    def _words(self) -> Postings:
        return Postings(self._image, "word")

    @cached_property
    def _tails(self) -> Postings:
        return Postings(self._image, "tail")

    @cached_property
    def _offsets(self) -> memoryview:
        return self._image.ints("offsets", "Q")

    @cached_property
    def _platforms(self) -> list[tuple[str, ...]]:
        return self._image.marshalled("platforms")

    @cached_property
    def _outputs(self) -> list[tuple[str, ...]]:
        return self._image.marshalled("outputs")

    @cached_property
    def _top_versions(self) -> memoryview:
        return self._image.ints("top_versions")

    def _seen(self, package_id: int) -> bool:
        """Is the package in one of the user's channels (always, unless a subset view)?"""
        return self._visible is None or bool(self._masks[package_id] & self._visible)

    def _tie(self, package_id: int) -> int:
        """The package's place among equal matches: ``catalogindex._tie_order``, for the
        channels this view shows (computed per package for a subset of the image's).

        Only for packages the view shows (``_seen``).
        """
        if self._visible is None:
            return self._tie_order[package_id]
        newest = (self._masks[package_id] & self._visible).bit_length() - 1
        slot = package_id * len(self._channel_of) + newest
        self._image.span("top_versions", 4 * slot, 4 * slot + 4)
        starts = self._lower.starts
        return tie_key(self._channel_of[newest] or 0,
                       starts[package_id + 1] - starts[package_id] - 1,
                       self._top_versions[slot], package_id)

    def _damaged(self, exc: Exception) -> UserError:
        """What to tell a user whose query met a damaged block (found only once touched)."""
        if self.path.name == "index.bin":
            self.path.unlink(missing_ok=True)
            return UserError(f"catalog cache {self.path} is damaged ({exc}); removed it: run "
                             "the command again to rebuild it")
        return UserError(f"site catalog {self.path} is damaged ({exc}); staff: publish it "
                         "again ('nixmod catalog publish')")

    # records -------------------------------------------------------------------

    def _versions_of(self, package_id: int, channel: int | None = None) -> list[PackageVersion]:
        start, end = self._offsets[package_id], self._offsets[package_id + 1]
        self._image.span("offsets", 8 * package_id, 8 * package_id + 16)
        name = self._names.text(package_id)
        result = []
        for (version, channel_index, attr, pname, description, homepage, license, plats, outs,
             program) in marshal.loads(self._image.span("details", start, end)):
            mine = self._channel_of[channel_index]
            if mine is None or (channel is not None and mine != channel):
                continue
            result.append(PackageVersion(
                name=name, version=version, channel=self.channels[mine].name,
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
        lowered = name.lower().encode("utf-8", "surrogatepass")
        wanted = name.encode("utf-8", "surrogatepass")
        index = bisect.bisect_left(self._lower, lowered)
        while index < len(self._lower) and self._lower[index] == lowered:
            if self._names[index] == wanted and self._seen(index):
                return index
            index += 1
        return None

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

    # search --------------------------------------------------------------------

    def search(self, query: str, limit: int = 20, channel: str | None = None) -> list[SearchHit]:
        """Ranked matches for ``query``; each tier is consulted only if the better ones
        have not already filled ``limit``."""
        try:
            return self._search(query, limit, channel)
        except DamagedCache as exc:
            raise self._damaged(exc) from None

    def _search(self, query: str, limit: int, channel: str | None) -> list[SearchHit]:
        channel_index = self._channel_index(channel)
        text = query.strip().lower()
        if not text or limit < 1:
            return []
        wanted = self._bits(channel_index)
        masks, tie = self._masks, self._tie
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
            if finder == self._by_prefix and self._visible is None:
                for package_id in self._first_by_prefix(text, room, chosen, wanted):
                    chosen[package_id] = rank
                    order.append(package_id)
                continue
            best: dict[int, int] = {}
            for key, pid in finder(text):
                if pid in chosen or (wanted is not None and not masks[pid] & wanted):
                    continue
                if pid not in best or key < best[pid]:
                    best[pid] = key
            candidates = ((key, tie(pid), pid) for pid, key in best.items())
            if self._visible is not None and finder in (self._by_program, self._by_description):
                # the image's program and word postings speak for every channel in it
                ranked = (pid for _key, _tie, pid in sorted(candidates))
                picked = list(itertools.islice((pid for pid in ranked
                                                if self._matches_here(pid, finder, text)), room))
            else:
                picked = [pid for _key, _tie, pid in heapq.nsmallest(room, candidates)]
            for package_id in picked:
                chosen[package_id] = rank
                order.append(package_id)
        return [SearchHit(package=Package(self._names.text(pid),
                                          self._versions_of(pid, channel_index)),
                          kind=MATCH_KINDS[chosen[pid]], rank=chosen[pid])
                for pid in order]

    def _matches_here(self, package_id: int, finder: Any, text: str) -> bool:
        """Does the package match ``text`` by program or description in this view's channels
        alone (as ``build_index`` would have filed it for them)?"""
        versions = self._versions_of(package_id)
        if finder == self._by_program:
            return any(v.main_program.lower() == text for v in versions)
        own = sorted({word for v in versions for word in WORD.findall(v.description.lower())
                      if len(word) > 1})[:MAX_WORDS_PER_PACKAGE]
        return all(any(w == word or (len(word) > 2 and w.startswith(word)) for w in own)
                   for word in WORD.findall(text))

    def _bits(self, channel_index: int | None) -> int | None:
        """The mask bits a package needs to be shown: one channel's, the view's, or None (any)."""
        if channel_index is None:
            return self._visible
        return 1 << self._channel_of.index(channel_index)

    def listing(self, limit: int = 20, channel: str | None = None) -> list[Package]:
        """The first ``limit`` packages in name order: what there is before anything is typed."""
        channel_index = self._channel_index(channel)
        wanted = self._bits(channel_index)
        masks = self._masks
        ids = (pid for pid in range(self._count) if wanted is None or masks[pid] & wanted)
        try:
            return [Package(self._names.text(pid), self._versions_of(pid, channel_index))
                    for pid in itertools.islice(ids, max(limit, 0))]
        except DamagedCache as exc:
            raise self._damaged(exc) from None

    def _exact(self, text: str) -> Iterable[tuple[int, int]]:
        needle = text.encode("utf-8", "surrogatepass")
        lower = self._lower
        index = bisect.bisect_left(lower, needle)
        while index < len(lower) and lower[index] == needle:
            yield 0, index
            index += 1

    def _by_program(self, text: str) -> Iterable[tuple[int, int]]:
        for package_id in self._programs.get(text):
            yield 0, package_id

    def _by_component(self, text: str) -> Iterable[tuple[int, int]]:
        """Names whose last attribute component is ``text`` (python313Packages.numpy)."""
        for package_id in self._tails.get(text):
            yield 0, package_id

    def _by_prefix(self, text: str) -> Iterable[tuple[int, int]]:
        needle = text.encode("utf-8", "surrogatepass")
        lower = self._lower
        index = bisect.bisect_left(lower, needle)
        while index < len(lower) and lower[index].startswith(needle):
            yield 0, index
            index += 1

    def _first_by_prefix(self, text: str, room: int, chosen: dict[int, int],
                         wanted: int | None) -> list[int]:
        """The ``room`` best names starting with ``text``, not ``chosen``, with a ``wanted``
        channel bit: what ``_by_prefix`` ranked by tie order gives, without ranking all
        of a prefix such as "p" (40,000 names): past a few thousand, packages are taken in
        tie order until ``room`` start with it."""
        needle = text.encode("utf-8", "surrogatepass")
        lower, masks = self._lower, self._masks
        low = bisect.bisect_left(lower, needle)
        high = bisect.bisect_left(lower, needle + b"\xff", low)    # UTF-8 has no 0xff byte

        def fits(pid: int) -> bool:
            return pid not in chosen and (wanted is None or bool(masks[pid] & wanted))

        if high - low <= _RANK_ALL:
            return heapq.nsmallest(room, (p for p in range(low, high) if fits(p)),
                                   key=self._tie_order.__getitem__)
        found: list[int] = []
        for pid in self._tie_ranked:
            if low <= pid < high and fits(pid):
                found.append(pid)
                if len(found) == room:
                    break
        return found

    @cached_property
    def _tie_ranked(self) -> memoryview:
        """The packages in tie order (``_tie_order`` the other way round)."""
        self._image.section("tie_ranked")
        ranked = self._image.ints("tie_ranked")
        if len(ranked) != self._count:
            raise DamagedCache("tie_ranked: not one entry per package")
        return ranked

    def _in_name(self, text: str) -> Iterable[tuple[int, int]]:
        """Substrings of the attribute path: at the start of a component first, then
        at the start of a word (after ``-`` or ``_``), then anywhere."""
        lower = self._lower
        source, start, starts = lower.source, lower.start, lower.starts
        end = start + starts[len(lower)]
        needle = text.encode("utf-8", "surrogatepass")
        position = source.find(needle, start, end)
        while position >= 0:
            package_id = bisect.bisect_right(starts, position - start) - 1
            before = source[position - 1] if position > start else 10
            yield (0 if before in _COMPONENT_START else 1 if before in _WORD_START else 2), package_id
            position = source.find(needle, position + 1, end)

    def _fuzzy(self, text: str) -> Iterable[tuple[int, int]]:
        budget = typo_budget(text)
        if budget == 0:
            return
        grams = self._grams
        counts: Counter[int] = Counter()
        wanted = trigrams_of(text)
        # An edit breaks up to 4 trigrams (a swap); trigrams shared by a huge
        # share of names ("pyt", "ack") say little and cost most, so skip them.
        needed = len(wanted) - 4 * budget
        for gram in wanted:
            slot = grams.keys.find(gram.encode("utf-8", "surrogatepass"))
            if slot is None:
                continue
            if grams.size(slot) > COMMON_TRIGRAM:
                needed -= 1
                continue
            counts.update(grams.ids(slot))
        needed = max(1, needed)
        parts = text.split(".")
        for package_id, shared in counts.most_common(300):
            if shared < needed:
                break
            lower = self._lower[package_id].decode("utf-8", "surrogatepass")
            candidates = [lower] + (lower.split(".")[-len(parts):] if len(parts) == 1 else [])
            distance = min(edit_distance(text, c, budget) for c in candidates)
            if distance <= budget:
                yield distance, package_id

    def _by_description(self, text: str) -> Iterable[tuple[int, int]]:
        words = self._words
        keys = words.keys
        matched: set[int] | None = None
        for word in WORD.findall(text):
            needle = word.encode()
            found: set[int] = set()
            index = bisect.bisect_left(keys, needle)
            while index < len(keys) and (keys[index] == needle or
                                         (len(word) > 2 and keys[index].startswith(needle))):
                found.update(words.ids(index))
                index += 1
            matched = found if matched is None else matched & found
            if not matched:
                return
        for package_id in matched or ():
            yield 0, package_id

    # reporting -----------------------------------------------------------------

    def info(self) -> CatalogInfo:
        versions = (self._header["versions"] if self._visible is None
                    else sum(c.packages for c in self.channels))
        return CatalogInfo(cache=str(self.path), built_at=self._header["built_at"],
                           packages=len(self), versions=versions, channels=list(self.channels))

    def skipped(self, channel: str | None = None) -> list[SkippedEntry]:
        """Entries that were reported instead of indexed, with the reason."""
        try:
            rows = self._image.marshalled("skipped")
        except DamagedCache as exc:
            raise self._damaged(exc) from None
        own = {row[0]: self.channels[mine].name
               for row, mine in zip(self._header["channels"], self._channel_of) if mine is not None}
        return [SkippedEntry(own[name], attr, reason) for name, attr, reason in rows
                if name in own and (channel is None or own[name] == channel)]

    @cached_property
    def _shown(self) -> int:
        masks, visible = self._masks, self._visible
        return sum(1 for pid in range(self._count) if masks[pid] & visible)

    def __len__(self) -> int:
        return self._count if self._visible is None else self._shown


#: a prefix matching more names than this is searched in tie order (``_first_by_prefix``)
_RANK_ALL = 3000
_COMPONENT_START = frozenset(b".\n")
_WORD_START = frozenset(b"-_")


class _Names(Strings):
    """The packages' names as they are spelt (bytes; ``text`` for a str), read in place."""

    def __init__(self, image: CacheImage):
        self._image = image
        self.source, self.start = image.source, image.where("names")
        self.starts = image.ints("name_starts")
        self._count = max(0, len(self.starts) - 1)

    def __getitem__(self, index: int) -> bytes:
        self._image.span("name_starts", 4 * index, 4 * index + 8)
        start, end = self.starts[index], self.starts[index + 1] - 1
        if not 0 <= start <= end:
            raise DamagedCache("names: a name lies outside the section")
        return bytes(self._image.span("names", start, end))

    def text(self, index: int) -> str:
        return self[index].decode("utf-8", "surrogatepass")


def _masks(image: CacheImage) -> Any:
    """Per package, the bit field of the image's channels that have it (read in place)."""
    image.section("masks")
    words = image.header.get("mask_words", 1)
    if words == 1:
        return image.ints("masks", "Q")
    return _WideMasks(image.section("masks"), 8 * words)


class _WideMasks:
    """Masks of more than 64 channels: ``width`` bytes each."""

    def __init__(self, data: memoryview, width: int):
        self.data, self.width = data, width

    def __len__(self) -> int:
        return len(self.data) // self.width

    def __getitem__(self, index: int) -> int:
        return int.from_bytes(self.data[index * self.width:(index + 1) * self.width], sys.byteorder)


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
