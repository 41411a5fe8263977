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
import time
from array import array
from dataclasses import asdict
from typing import Any, Callable, Iterable, TypeVar

from nixmod.catalogcache import FORMAT
from nixmod.channels import Listing, channel_kind
from nixmod.config import Channel
from nixmod.packages import ChannelInfo
from nixmod.versions import sort_key

Progress = Callable[[str], None]
T = TypeVar("T")


# -- building the merged index ----------------------------------------------------

WORD = re.compile(r"[a-z0-9]+")
_MAX_WORDS_PER_PACKAGE = 200


def trigrams_of(text: str) -> set[str]:
    """Trigrams of each dotted component, padded so that starts and ends count."""
    grams: set[str] = set()
    for part in text.split("."):
        padded = f"^{part}$"
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return grams


def _postings(index: dict[str, array]) -> tuple[list[str], bytes, bytes]:
    """Sorted keys, span offsets (n+1) and the concatenated id lists, as arrays."""
    keys = sorted(index)
    spans = array("I", [0])
    ids = array("I")
    for key in keys:
        ids.extend(index[key])
        spans.append(len(ids))
    return keys, spans.tobytes(), ids.tobytes()


def build_index(channels: list[Channel], listings: list[Listing], progress: Progress
                 ) -> tuple[dict[str, Any], dict[str, bytes | bytearray]]:
    by_name: dict[str, list[tuple[int, tuple]]] = {}
    for index in range(len(listings)):
        for record in listings[index].records:
            by_name.setdefault(record[0], []).append((index, record))
    progress(f"indexing {len(by_name)} packages from {len(channels)} channels")
    names = sorted(by_name, key=lambda n: (n.lower(), n))
    lower = [n.lower() for n in names]
    platforms: dict[tuple, int] = {}
    outputs: dict[tuple, int] = {}
    details = bytearray()
    offsets = array("Q", [0])
    masks: list[int] = []
    programs: dict[str, list[int]] = {}
    # id lists as arrays: millions of postings as Python ints would cost ~10x the memory
    trigrams: dict[str, array] = {}
    words: dict[str, array] = {}
    #: last component of a dotted attribute path -> packages (numpy -> python3xxPackages.numpy)
    tails: dict[str, array] = {}
    default_versions: list[str] = []
    for package_id, name in enumerate(names):
        entries = version_order(by_name[name], channel_of=lambda e: e[0],
                                version_of=lambda e: e[1][1])
        default_versions.append(entries[0][1][1])
        rows = []
        mask = 0
        package_words: set[str] = set()
        package_programs: set[str] = set()
        for channel_index, rec in entries:
            attr, version, pname, description, homepage, license, plats, outs, program = rec
            rows.append((version, channel_index, "" if attr == name else attr, pname, description,
                         homepage, license, platforms.setdefault(tuple(plats), len(platforms)),
                         outputs.setdefault(tuple(outs), len(outputs)), program))
            mask |= 1 << channel_index
            package_words.update(WORD.findall(description.lower()))
            if program:
                package_programs.add(program.lower())
        details += marshal.dumps(rows)
        offsets.append(len(details))
        masks.append(mask)
        for program in package_programs:
            programs.setdefault(program, []).append(package_id)
        for gram in trigrams_of(lower[package_id]):
            trigrams.setdefault(gram, array("I")).append(package_id)
        _head, dot, tail = lower[package_id].rpartition(".")
        if dot:
            tails.setdefault(tail, array("I")).append(package_id)
        for word in itertools.islice(sorted(w for w in package_words if len(w) > 1),
                                     _MAX_WORDS_PER_PACKAGE):
            words.setdefault(word, array("I")).append(package_id)
    gram_keys, gram_spans, gram_ids = _postings(trigrams)
    word_keys, word_spans, word_ids = _postings(words)
    tail_keys, tail_spans, tail_ids = _postings(tails)
    infos = [ChannelInfo(name=c.name, kind=channel_kind(c),
                         source=str(c.path or c.url) + (f" (listed from {c.listing})"
                                                        if c.listing else ""),
                         packages=len(l.records), skipped=len(l.skipped), error=l.error,
                         listed_at=l.listed_at)
             for c, l in zip(channels, listings)]
    skipped = [(c.name, attr, reason) for c, l in zip(channels, listings) for attr, reason in l.skipped]
    header = {"format": FORMAT, "built_at": time.time(), "packages": len(names),
              "versions": sum(len(l.records) for l in listings),
              "channels": [tuple(asdict(i).values()) for i in infos]}
    sections: dict[str, bytes | bytearray] = {
        "names": marshal.dumps(names), "lower": marshal.dumps(lower),
        "masks": marshal.dumps(masks), "programs": marshal.dumps(programs),
        "gram_keys": marshal.dumps(gram_keys), "gram_spans": gram_spans, "gram_ids": gram_ids,
        "word_keys": marshal.dumps(word_keys), "word_spans": word_spans, "word_ids": word_ids,
        "tail_keys": marshal.dumps(tail_keys), "tail_spans": tail_spans, "tail_ids": tail_ids,
        "platforms": marshal.dumps(list(platforms)), "outputs": marshal.dumps(list(outputs)),
        "offsets": offsets.tobytes(), "details": details,
        "skipped": marshal.dumps(skipped),
        "tie_order": _tie_order(lower, masks, default_versions).tobytes(),
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


def _tie_order(lower: list[str], masks: list[int], versions: list[str]) -> array:
    """Per package, its place among all packages when two match a query equally well.

    First the packages that the newest channel has (the highest bit of the
    channel mask), then shorter names, then newer default versions (Nix's
    order), then the name. Computed once here, so that a search compares
    one integer per candidate and never unpacks a package's records.
    """
    # distinct versions only (far fewer than packages): their keys are the costly part
    newest_first = sorted(set(versions), key=sort_key, reverse=True)
    place_of = {version: place for place, version in enumerate(newest_first)}
    # one int per package rather than a tuple: (newest channel, length, version, id) packed
    # into bit fields sorts the same and costs a fraction of the memory at 150k packages
    ranked = sorted(range(len(lower)), key=lambda p: (
        ((((_MAX_CHANNELS - masks[p].bit_length()) << 16 | min(len(lower[p]), 0xFFFF)) << 32
          | place_of[versions[p]]) << 32) | p))
    order = array("I", bytes(4 * len(lower)))
    for place, package_id in enumerate(ranked):
        order[package_id] = place
    return order


# -- fuzzy matching -------------------------------------------------------------

def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent swaps count 1), giving up above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


COMMON_TRIGRAM = 4000


def typo_budget(query: str) -> int:
    """How many typos a query of this length may carry and still mean something."""
    return 0 if len(query) < 4 else (1 if len(query) < 8 else 2)
