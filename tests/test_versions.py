"""Nix's version order, checked against the real ``builtins.compareVersions``.

Every pair is asked of real Nix; pairs are batched into one
``nix-instantiate --eval`` per hypothesis example so that hundreds of pairs
cost a handful of evaluations.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nixmod.nix import nix_string
from nixmod.versions import compare_versions, sort_key, sort_newest_first

FIXED_PAIRS = [
    ("1.0", "1.0"), ("1.0", "1.0.0"), ("2.0pre1", "2.0"), ("2.0pre", "2.0"),
    ("2.0", "2.0rc1"), ("2.0rc1", "2.0rc2"), ("2.3a", "2.3.1"), ("2.3a", "2.3"),
    ("1.0", "1.0a"), ("0-unstable-2024-03-01", "0-unstable-2024-11-20"),
    ("0-unstable-2024-03-01", "1.0"), ("unstable-2020-01-01", "2019.1"),
    ("2024.01", "2025.01"), ("1.10", "1.9"), ("1.2.13", "1.3.1"), ("", "0"),
    ("", "pre"), ("pre", "alpha"), ("1..2", "1.2"), ("1.-2", "1.2"),
    ("99999999999", "1"), ("2147483647", "2147483648"), ("1.01", "1.1"),
    ("1.0-beta", "1.0"), ("r10", "r9"), ("é1", "e1"), ("2.12.1", "2.10"),
]

component = st.one_of(
    st.integers(min_value=0, max_value=30).map(str),
    st.sampled_from(["pre", "rc", "alpha", "beta", "unstable", "a", "b", "p", "git",
                     "2024", "20240301", "01", "007", "4294967296", "2147483648", "é", ""]),
    st.text(alphabet="abcxyzPR0123456789", min_size=1, max_size=4),
)
version = st.lists(st.tuples(component, st.sampled_from([".", "-", "", ".."])),
                   max_size=5).map(lambda parts: "".join(c + s for c, s in parts))


def nix_compare_all(session, pairs: list[tuple[str, str]]) -> list[int]:
    """One nix-instantiate call answering every pair, as the test user."""
    calls = " ".join(f"(builtins.compareVersions {nix_string(a)} {nix_string(b)})"
                     for a, b in pairs)
    proc = session.run("nix-instantiate", "--eval", "--strict", "--json",
                       "--option", "substituters", "", "-E", f"[ {calls} ]", check=True)
    return json.loads(proc.stdout)


def assert_agrees(session, pairs: list[tuple[str, str]]) -> None:
    expected = nix_compare_all(session, pairs)
    ours = [compare_versions(a, b) for a, b in pairs]
    wrong = [(a, b, o, e) for (a, b), o, e in zip(pairs, ours, expected) if o != e]
    assert not wrong, f"disagreements with Nix (a, b, ours, nix): {wrong[:10]}"


def test_fixed_pairs_agree_with_nix(alice):
    pairs = FIXED_PAIRS + [(b, a) for a, b in FIXED_PAIRS]
    assert_agrees(alice, pairs)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
                                 HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(version, version), min_size=150, max_size=150))
def test_generated_pairs_agree_with_nix(alice, pairs):
    assert_agrees(alice, pairs)


def test_sort_newest_first_uses_nix_order_and_keeps_ties_in_input_order():
    versions = ["2.0pre1", "1.10", "2.0", "1.9", "2.0rc1", "0-unstable-2024-03-01", "2.0"]
    tagged = [(v, i) for i, v in enumerate(versions)]
    ordered = sort_newest_first(tagged, version_of=lambda item: item[0])
    assert [v for v, _ in ordered] == ["2.0rc1", "2.0", "2.0", "2.0pre1", "1.10", "1.9",
                                       "0-unstable-2024-03-01"]
    # the two "2.0" keep input order (index 2 before index 6)
    assert [i for v, i in ordered if v == "2.0"] == [2, 6]


@settings(max_examples=300, deadline=None)
@given(a=version, b=version)
def test_sort_key_orders_exactly_as_compare_versions(a, b):
    """The catalog ranks by ``sort_key`` (a plain tuple, fast); it must be Nix's order."""
    ours = (sort_key(a) > sort_key(b)) - (sort_key(a) < sort_key(b))
    assert ours == compare_versions(a, b), (a, b)


def test_sort_key_on_the_fixed_pairs():
    for a, b in FIXED_PAIRS:
        assert (sort_key(a) > sort_key(b)) - (sort_key(a) < sort_key(b)) == compare_versions(a, b)
