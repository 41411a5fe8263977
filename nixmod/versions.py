"""Nix's own version order, so that "newest" means what it means to Nix.

Users compare what nixmod calls newest with what ``nix-env -u`` or
``lib.versionOlder`` would pick; any other order (PEP 440, semver) would
disagree on ``2.0pre1`` vs ``2.0`` or ``0-unstable-2024-03-01``. This is a
transcription of ``compareVersions`` in Nix's ``libexpr/names.cc``:

* a version is split into components: runs of ASCII digits, or runs of
  anything else that is not ``.`` or ``-`` (those only separate);
* two numbers compare as numbers; a missing component ("") is less than a
  number; ``pre`` is less than anything but ``pre``; a word is less than a
  number (``2.3a`` < ``2.3.1``); two words compare bytewise.

Numbers that do not fit a C ``int`` are not numbers to Nix (its
``string2Int<int>`` fails), so they compare as words here too.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset(".-")
_INT_MAX = 2**31 - 1


def components(version: str) -> list[str]:
    """Split ``version`` the way Nix's ``nextComponent`` does."""
    parts: list[str] = []
    i, end = 0, len(version)
    while i < end:
        while i < end and version[i] in _SEPARATORS:
            i += 1
        if i == end:
            break
        start = i
        if version[i] in _DIGITS:
            while i < end and version[i] in _DIGITS:
                i += 1
        else:
            while i < end and version[i] not in _DIGITS and version[i] not in _SEPARATORS:
                i += 1
        parts.append(version[start:i])
    return parts


def _as_int(component: str) -> int | None:
    """The number Nix sees in a component, or None when Nix sees a word."""
    if component and component[0] in _DIGITS:
        value = int(component)
        return value if value <= _INT_MAX else None
    return None


def _component_less(c1: str, c2: str) -> bool:
    n1, n2 = _as_int(c1), _as_int(c2)
    if n1 is not None and n2 is not None:
        return n1 < n2
    if c1 == "" and n2 is not None:
        return True
    if c1 == "pre" and c2 != "pre":
        return True
    if c2 == "pre":
        return False
    if n2 is not None:
        return True
    if n1 is not None:
        return False
    # Nix compares std::string bytes; UTF-8 byte order equals code point order.
    return c1 < c2


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1, exactly as ``builtins.compareVersions a b``."""
    parts_a, parts_b = components(a), components(b)
    for index in range(max(len(parts_a), len(parts_b))):
        c1 = parts_a[index] if index < len(parts_a) else ""
        c2 = parts_b[index] if index < len(parts_b) else ""
        if _component_less(c1, c2):
            return -1
        if _component_less(c2, c1):
            return 1
    return 0


#: a sort key for ``sorted(..., key=version_key)``: oldest first
version_key = functools.cmp_to_key(compare_versions)

# Component ranks for ``sort_key``: Nix's rules make one total order of
# components, ``pre`` < (missing) < words (bytewise) < numbers (numerically).
_PRE, _END, _WORD, _NUMBER = 0, 1, 2, 3


def sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A plain tuple that sorts exactly as ``compare_versions`` orders.

    ``cmp_to_key`` calls back into Python for every comparison; this key is
    computed once per version and then compared by the interpreter's own
    tuple comparison, which the catalog needs to rank 200k versions while
    building its index. A missing component is Nix's padding ``""``, so
    the tuple ends with an ``_END`` marker that sorts above ``pre`` and
    below any word or number (components are never empty themselves).
    """
    key: list[tuple[int, int | str]] = []
    for part in components(version):
        number = _as_int(part)
        if number is not None:
            key.append((_NUMBER, number))
        elif part == "pre":
            key.append((_PRE, 0))
        else:
            key.append((_WORD, part))
    key.append((_END, 0))
    return tuple(key)


def sort_newest_first(items: Iterable[T], version_of: Callable[[T], str] = str) -> list[T]:
    """``items`` newest first by Nix's order; equal versions keep their input order.

    The sort is stable, so a caller that wants a tie-break (the catalog puts
    the later channel first) arranges the input that way.
    """
    # sorted() stays stable with reverse=True: ties keep their input order.
    return sorted(items, key=lambda item: sort_key(version_of(item)), reverse=True)
