"""The merged search index: built once from the channels' listings, then only read.

``build_index`` turns every channel's listing into the sections the
catalog file holds (names, trigram and word postings, programs, the tie
order); ``edit_distance`` / ``typo_budget`` serve the typo-tolerant
search. ``catalog.Catalog`` reads the sections; ``publish`` embeds them in
the site index.
"""

from __future__ import annotations

import itertools
import marshal
import re
import sys
import time
from array import array
from collections import defaultdict
from dataclasses import asdict
from typing import Any, Callable, Iterable, TypeVar

from nixmod.catalogcache import FORMAT, Section
from nixmod.channels import Listing, channel_kind
from nixmod.config import Channel
from nixmod.packages import ChannelInfo
from nixmod.versions import sort_key

Progress = Callable[[str], None]
T = TypeVar("T")


# -- building the merged index ----------------------------------------------------

WORD = re.compile(r"[a-z0-9]+")
MAX_WORDS_PER_PACKAGE = 200


def trigrams_of(text: str) -> set[str]:
    """Trigrams of each dotted component, padded so that starts and ends count."""
    if "." not in text:
        padded = f"^{text}$"
        return {padded[i:i + 3] for i in range(len(padded) - 2)}
    grams: set[str] = set()
    for part in text.split("."):
        padded = f"^{part}$"
        grams.update([padded[i:i + 3] for i in range(len(padded) - 2)])
    return grams


def _postings(index: dict[str, array], name: str) -> dict[str, Section]:
    """Sections ``NAME_keys``/``_key_starts`` (sorted keys, see ``strings``), ``NAME_spans``
    (n+1 offsets) and ``NAME_ids`` (the concatenated id lists), all read in place."""
    keys = sorted(index)
    spans = array("I", [0])
    ids = array("I")
    for key in keys:
        ids.extend(index.pop(key))     # each list let go once copied: one copy at a time
        spans.append(len(ids))
    blob, starts = strings(keys)
    return {f"{name}_keys": blob, f"{name}_key_starts": starts,
            f"{name}_spans": memoryview(spans).cast("B"), f"{name}_ids": memoryview(ids).cast("B")}


def _ids() -> array:
    return array("I")


def strings(values: list[str]) -> tuple[bytes, bytes]:
    """``values`` as one UTF-8 blob, each followed by a newline, and where each starts (n+1).

    Item i is ``blob[starts[i]:starts[i + 1] - 1]``: read in place, and in
    the same order as the strings (UTF-8 keeps code point order), so a
    sorted list can be bisected as bytes.
    """
    encoded = [value.encode("utf-8", "surrogatepass") for value in values]
    starts = array("I", itertools.accumulate((len(e) + 1 for e in encoded), initial=0))
    return b"\n".join(encoded) + (b"\n" if encoded else b""), starts.tobytes()


def build_index(channels: list[Channel], listings: list[Listing], progress: Progress
                 ) -> tuple[dict[str, Any], dict[str, Section]]:
    """The merged index's header and sections.

    Takes the records out of ``listings`` (each ``records`` is left empty):
    a package's records are let go once its rows are packed, so a cold index
    of 143k packages never holds every record and every section at once.
    """
    counts = [len(listing.records) for listing in listings]
    by_name: dict[str, list[tuple[int, tuple]]] = {}
    for index, listing in enumerate(listings):
        records, listing.records = listing.records, []
        for record in records:
            by_name.setdefault(record[0], []).append((index, record))
        del records
    progress(f"indexing {len(by_name)} packages from {len(channels)} channels")
    names = sorted(by_name, key=lambda n: (n.lower(), n))
    lower = [n.lower() for n in names]
    platforms: dict[tuple, int] = {}
    #: id of a platform tuple (read_list shares one per distinct list) -> (it, its index):
    #: hashing a 30-platform tuple per record was a tenth of the indexing time
    platform_of: dict[int, tuple[tuple, int]] = {}
    outputs: dict[tuple, int] = {}
    details = bytearray()
    offsets = array("Q", [0])
    masks: list[int] = []
    programs: dict[str, list[int]] = {}
    # id lists as arrays: millions of postings as Python ints would cost ~10x the memory
    # (a factory, not setdefault(key, array("I")): that made an array per posting, 4 million)
    trigrams: defaultdict[str, array] = defaultdict(_ids)
    words: defaultdict[str, array] = defaultdict(_ids)
    #: last component of a dotted attribute path -> packages (numpy -> python3xxPackages.numpy)
    tails: defaultdict[str, array] = defaultdict(_ids)
    default_versions: list[str] = []
    #: per package, per channel: the version ``build NAME`` would pick from that channel
    #: alone (None: not there), so a subset of the channels can be ranked as its own index
    top_versions: list[str | None] = []
    for package_id, name in enumerate(names):
        entries = by_name.pop(name)
        if len(entries) > 1:
            if len({channel for channel, _rec in entries}) == len(entries):
                entries.sort(key=lambda e: e[0], reverse=True)   # one version per channel
            else:
                entries = version_order(entries, channel_of=lambda e: e[0],
                                        version_of=lambda e: e[1][1])
        default_versions.append(entries[0][1][1])
        top = [None] * len(listings)
        for channel_index, rec in entries:     # newest first: a channel's first is its top
            if top[channel_index] is None:
                top[channel_index] = rec[1]
        top_versions.extend(top)
        rows = []
        mask = 0
        package_words: set[str] = set()
        package_programs: set[str] = set()
        descriptions: set[str] = set()
        for channel_index, rec in entries:
            attr, version, pname, description, homepage, license, plats, outs, program = rec
            known = platform_of.get(id(plats))
            if known is None:
                known = platform_of[id(plats)] = (plats, platforms.setdefault(tuple(plats),
                                                                              len(platforms)))
            rows.append((version, channel_index, "" if attr == name else attr, pname, description,
                         homepage, license, known[1],
                         outputs.setdefault(tuple(outs), len(outputs)), program))
            mask |= 1 << channel_index
            if description not in descriptions:     # channels mostly repeat it
                descriptions.add(description)
                package_words.update(WORD.findall(description.lower()))
            if program:
                package_programs.add(program.lower())
        details += marshal.dumps(rows)
        offsets.append(len(details))
        masks.append(mask)
        for program in package_programs:
            programs.setdefault(program, []).append(package_id)
        for gram in trigrams_of(lower[package_id]):
            trigrams[gram].append(package_id)
        _head, dot, tail = lower[package_id].rpartition(".")
        if dot:
            tails[tail].append(package_id)
        kept = [w for w in package_words if len(w) > 1]
        if len(kept) > MAX_WORDS_PER_PACKAGE:   # which ones: the same for every build
            kept = sorted(kept)[:MAX_WORDS_PER_PACKAGE]
        for word in kept:
            words[word].append(package_id)
    infos = [ChannelInfo(name=c.name, kind=channel_kind(c),
                         source=str(c.path or c.url) + (f" (listed from {c.listing})"
                                                        if c.listing else ""),
                         packages=count, skipped=len(l.skipped), error=l.error,
                         listed_at=l.listed_at)
             for c, l, count in zip(channels, listings, counts)]
    skipped = [(c.name, attr, reason) for c, l in zip(channels, listings) for attr, reason in l.skipped]
    mask_words = max(1, -(-len(listings) // 64))
    header = {"format": FORMAT, "built_at": time.time(), "packages": len(names),
              "versions": sum(counts),
              "channels": [tuple(asdict(i).values()) for i in infos], "mask_words": mask_words}
    names_blob, name_starts = strings(names)
    lower_blob, lower_starts = strings(lower)
    place_of = _version_places(default_versions, top_versions)
    sections: dict[str, Section] = {
        "lower": lower_blob, "lower_starts": lower_starts,
        "names": names_blob, "name_starts": name_starts,
        "masks": b"".join(mask.to_bytes(8 * mask_words, sys.byteorder) for mask in masks),
        **_tie_order(lower, masks, [place_of[v] for v in default_versions]),
        "top_versions": array("I", (place_of[v] if v is not None else _ABSENT
                                    for v in top_versions)).tobytes(),
        **_postings({k: array("I", v) for k, v in programs.items()}, "program"),
        **_postings(trigrams, "gram"), **_postings(words, "word"), **_postings(tails, "tail"),
        "platforms": marshal.dumps(list(platforms)), "outputs": marshal.dumps(list(outputs)),
        "offsets": offsets.tobytes(), "details": details,
        "skipped": marshal.dumps(skipped),
    }
    return header, sections


def version_order(items: Iterable[T], channel_of: Callable[[T], int],
                  version_of: Callable[[T], str]) -> list[T]:
    """``items`` in the order ``versions`` lists and ``build NAME`` picks from.

    The newest channel (the highest index: channels are configured newest
    last) first; within one channel, Nix's version order, newest first.
    """
    return sorted(items, key=lambda item: (channel_of(item), sort_key(version_of(item))),
                  reverse=True)


#: more channels than anyone configures; only bounds a bit field in ``_tie_order``
_MAX_CHANNELS = 1 << 16


_ABSENT = 0xFFFFFFFF


def _version_places(*versions: Iterable[str | None]) -> dict[str, int]:
    """Each distinct version's place in Nix's order, newest first (0: the newest)."""
    distinct = {v for values in versions for v in values if v is not None}
    # the text breaks ties between versions Nix's order calls equal: without it their
    # order, and so the index, would follow the set's (a different hash seed each run)
    return {version: place for place, version in
            enumerate(sorted(distinct, key=lambda v: (sort_key(v), v), reverse=True))}


def tie_key(newest_channel: int, name_length: int, version_place: int, package_id: int) -> int:
    """One int that sorts as (newest channel first, shorter name, newer version, id)."""
    return ((((_MAX_CHANNELS - newest_channel - 1) << 16 | min(name_length, 0xFFFF)) << 32
             | version_place) << 32) | package_id


def _tie_order(lower: list[str], masks: list[int], places: list[int]) -> dict[str, bytes]:
    """Per package, its place among all packages when two match a query equally well.

    First the packages that the newest channel has (the highest bit of the
    channel mask), then shorter names, then newer default versions (Nix's
    order), then the name. Computed once here, so that a search compares
    one integer per candidate and never unpacks a package's records.
    """
    # one int per package rather than a tuple: (newest channel, length, version, id) packed
    # into bit fields sorts the same and costs a fraction of the memory at 150k packages
    ranked = sorted(range(len(lower)), key=lambda p: tie_key(
        masks[p].bit_length() - 1, len(lower[p].encode("utf-8", "surrogatepass")), places[p], p))
    order = array("I", bytes(4 * len(lower)))
    for place, package_id in enumerate(ranked):
        order[package_id] = place
    # and the other way round: the packages in that order, for a search that takes the
    # first few matches of thousands (every name starting with "p") without ranking them all
    return {"tie_order": order.tobytes(), "tie_ranked": array("I", ranked).tobytes()}


# -- fuzzy matching -------------------------------------------------------------

def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent swaps count 1), giving up above ``limit``.

    Only the band of cells within ``limit`` of the diagonal is computed: a
    path outside it costs more than ``limit`` anyway (issue 22: the typo tier
    computes this for hundreds of names per query).
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    over = limit + 1
    width = len(b) + 1
    previous2: list[int] = []
    previous = [j if j <= limit else over for j in range(width)]
    for i in range(1, len(a) + 1):
        current = [over] * width
        if i <= limit:
            current[0] = i
        best = current[0]
        char = a[i - 1]
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            value = previous[j - 1] + (char != b[j - 1])
            if previous[j] + 1 < value:
                value = previous[j] + 1
            if current[j - 1] + 1 < value:
                value = current[j - 1] + 1
            if (i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == b[j - 1]
                    and previous2[j - 2] + 1 < value):
                value = previous2[j - 2] + 1
            current[j] = value
            if value < best:
                best = value
        if best > limit:
            return over
        previous2, previous = previous, current
    return min(previous[-1], over)


COMMON_TRIGRAM = 4000


def typo_budget(query: str) -> int:
    """How many typos a query of this length may carry and still mean something."""
    return 0 if len(query) < 4 else (1 if len(query) < 8 else 2)
