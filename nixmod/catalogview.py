"""One merged index read in place: finding, ranking and unpacking packages.

``IndexView`` reads a cache image (``catalogcache.CacheImage``): the user's
own ``index.bin``, or the site index's merged one, through all its channels
or some of them (``view``). It never copies a section: names and keys are
bisected as bytes where they lie, id lists read as slices, a package's rows
unpacked when shown. ``catalog.Catalog`` adds loading (which image, built
how) and resolving specs; the ranking rules are described there.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import marshal
import operator
import sys
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from nixmod.catalogcache import CacheImage, DamagedCache, Postings, Strings
from nixmod.catalogindex import (COMMON_TRIGRAM, MAX_WORDS_PER_PACKAGE, WORD, edit_distance,
                                 tie_key, trigrams_of, typo_budget)
from nixmod.errors import UserError
from nixmod.files import atomic_write
from nixmod.packages import (MATCH_KINDS, ChannelError, ChannelInfo, Package, PackageVersion,
                             SearchHit, SkippedEntry)


class IndexView:
    """A merged index seen through the user's channels (all of the image's, or some).

    ``channel_of`` maps the image's channels to the user's (None: not one of
    theirs), so a user whose channels are a subset of the site's reads the
    site's index and sees only those channels, under their own names, ranked
    as an index of those channels alone would rank them.
    """

    def __init__(self, path: Path, image: CacheImage, *,
                 view: list[tuple[int, str]] | None = None):
        self.path = path
        self._image = image
        #: for a view of the site's merged index: where to note that a block of it is
        #: damaged, and the index's stamp (so the note lapses when staff publish again)
        self._marker: tuple[Path, str] | None = None
        self._header = image.header
        rows = [ChannelInfo(*row) for row in image.header["channels"]]
        self._count = image.header["packages"]
        if view is None or [place for place, _name in view] == list(range(len(rows))):
            # all of the image's channels (perhaps under the user's names): no filtering
            self.channels: list[ChannelInfo] = rows if view is None else [
                dataclasses.replace(row, name=name) for row, (_place, name) in zip(rows, view)]
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
        if self._marker is None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass
            return UserError(f"catalog cache {self.path} is damaged ({exc}); removed it: run "
                             "the command again to rebuild it")
        if self._marker is not None:
            try:
                atomic_write(self._marker[0], self._marker[1], mode=0o600)
            except OSError:
                pass
        return UserError(f"site catalog {self.path} is damaged ({exc}); run the command again: "
                         "your channels are then indexed from its per-channel listings "
                         "(staff: publish it again with 'nixmod catalog publish')")

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
        finders: tuple[Any, ...] = (self._exact, self._by_program, self._by_component,
                                    self._by_prefix, self._in_name, self._fuzzy,
                                    self._by_description)
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
            if finder == self._in_name:
                best = self._in_name(text, chosen, wanted)
            else:
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

    def _in_name(self, text: str, chosen: dict[int, int], wanted: int | None
                 ) -> dict[int, int]:
        """Substrings of the attribute path, each package's best place: at the start of
        a component (0), at the start of a word after ``-`` or ``_`` (1), anywhere (2).

        Not chosen by a better tier, and with a ``wanted`` mask bit. One loop
        rather than a generator the search filters: a two-letter query meets
        thousands of names (issue 22: "rg", 2,000 occurrences, was 3 ms).
        """
        lower, masks = self._lower, self._masks
        needle = text.encode("utf-8", "surrogatepass")
        few = self._names_with_grams_of(text)
        if few is not None:      # a handful of names hold all its trigrams: look in those
            found: dict[int, int] = {}
            for package_id in few:
                if package_id in chosen or (wanted is not None and not masks[package_id] & wanted):
                    continue
                name = lower[package_id]
                position = name.find(needle)
                while position >= 0 and found.get(package_id, 3):
                    before = name[position - 1] if position else 10
                    where = 0 if before in _COMPONENT_START else 1 if before in _WORD_START else 2
                    found[package_id] = min(where, found.get(package_id, 3))
                    position = name.find(needle, position + 1)
            return found
        source, start, starts = lower.source, lower.start, lower.starts
        end = start + starts[len(lower)]
        find, after = source.find, bisect.bisect_right
        best: dict[int, int] = {}
        position = find(needle, start, end)
        while position >= 0:
            package_id = after(starts, position - start) - 1
            if package_id not in chosen and (wanted is None or masks[package_id] & wanted):
                before = source[position - 1] if position > start else 10
                where = 0 if before in _COMPONENT_START else 1 if before in _WORD_START else 2
                if where < best.get(package_id, 3):
                    best[package_id] = where
            position = find(needle, position + 1, end)
        return best

    def _names_with_grams_of(self, text: str) -> Iterable[int] | None:
        """The packages whose name has every trigram of ``text`` (a superset of those
        that contain it), if that is a short list; None if a scan of all names is cheaper.

        The trigram index is of each dotted component, so only for a ``text``
        of three characters or more without a dot (it lies in one component).
        """
        if len(text) < 3 or "." in text:
            return None
        grams, sizes = self._grams, []
        for gram in {text[i:i + 3] for i in range(len(text) - 2)}:
            slot = grams.keys.find(gram.encode("utf-8", "surrogatepass"))
            if slot is None:
                return ()                 # no name has it: none contains the text
            sizes.append((grams.size(slot), slot))
        size, slot = min(sizes)
        return grams.ids(slot) if size <= _SCAN_FEWER_THAN else None

    def _fuzzy(self, text: str) -> Iterable[tuple[int, int]]:
        budget = typo_budget(text)
        if budget == 0:
            return
        grams = self._grams
        wanted = trigrams_of(text)
        # An edit breaks up to 4 trigrams (a swap); trigrams shared by a huge
        # share of names ("pyt", "ack") say little and cost most, so skip them.
        needed = len(wanted) - 4 * budget
        slots = []
        for gram in wanted:
            slot = grams.keys.find(gram.encode("utf-8", "surrogatepass"))
            if slot is None:
                continue
            if grams.size(slot) > COMMON_TRIGRAM:
                needed -= 1
                continue
            slots.append(slot)
        needed = max(1, needed)
        if len(slots) < needed:           # no name can share enough of them
            return
        counts: Counter[int] = Counter()
        for slot in slots:
            counts.update(grams.ids(slot))
        # the names sharing enough, most shared first (ties in the order met): what
        # most_common gives, without ranking the thousands that share too few
        close = [(pid, shared) for pid, shared in counts.items() if shared >= needed]
        if len(close) > _FUZZY_CANDIDATES:
            close = heapq.nlargest(_FUZZY_CANDIDATES, close, key=operator.itemgetter(1))
        else:
            close.sort(key=operator.itemgetter(1), reverse=True)
        single, size = "." not in text, len(text)
        for package_id, _shared in close:
            lower = self._lower[package_id].decode("utf-8", "surrogatepass")
            # the whole name, and for a one-part query its last component (once: a name
            # without a dot is its own last component); a length beyond the budget is
            # too far without computing anything
            distance = budget + 1
            for candidate in ((lower, lower.rpartition(".")[2]) if single and "." in lower
                              else (lower,)):
                if abs(len(candidate) - size) <= budget:
                    distance = min(distance, edit_distance(text, candidate, budget))
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
#: names (those sharing the most trigrams) the typo tier measures at most
_FUZZY_CANDIDATES = 300
#: a substring whose rarest trigram has fewer names than this is looked for in those names
_SCAN_FEWER_THAN = 2000
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
