"""The catalog on saved package lists, in-process: load, search, resolve, versions, ranking.

The same questions test_catalog.py asks of the demo channels evaluated by
real Nix as a real user, asked here of their nix-env dumps (tests/dumps):
the catalog's rules (merging, ranking, Nix's version order, specs) with no
evaluation, so they run in the fast tier, as any user, in well under a second.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dump_channels import DEMO, DUMPS, DumpHome
from nixmod.catalog import Catalog
from nixmod.errors import UserError

QUOTER = """Prints "quoted" text, 'single' too, ]] and ]==] and $(echo pwned) \\ backslash"""


@pytest.fixture
def catalog(dump_home: DumpHome) -> Catalog:
    return Catalog.load(dump_home.config())


@pytest.fixture
def tie_catalog(dump_home: DumpHome) -> Catalog:
    """demo-2024, the tie channel (hello 2.10 again) and demo-2025, newest last."""
    dump_home.write_config(DEMO[0], ("tie", DUMPS / "catalog-tie.json"), DEMO[1])
    return Catalog.load(dump_home.config())


def test_the_demo_dumps_merge_into_the_demo_catalog(catalog: Catalog) -> None:
    """17 names in all (what `catalog info` says of the evaluated demo): 11 and 13 in the dumps."""
    names = set()
    for _channel, path in DEMO:
        names |= set(json.loads(path.read_text()))
    assert len(names) == 17 and len(catalog) == 17
    assert {h.package.name for h in catalog.search("e", limit=100)} <= names


@pytest.mark.parametrize("name, expected", [
    ("hello", [("2.12.1", "demo-2025"), ("2.10", "demo-2024")]),
    ("frob", [("2.0", "demo-2025"), ("2.0pre1", "demo-2024")]),   # 2.0pre1 is older to Nix
    ("samtools", [("1.19", "demo-2025"), ("1.17", "demo-2024")]),
    ("python3Packages.numpy-demo", [("2.1.0", "demo-2025"), ("1.24.0", "demo-2024")]),
    ("cowsay-demo", [("3.7.0", "demo-2025")]),
    ("quoter", [("0.9", "demo-2024")]),
])
def test_versions_are_newest_channel_first(catalog: Catalog, name: str, expected: list) -> None:
    assert [(v.version, v.channel) for v in catalog.versions(name)] == expected
    assert all(v.attr == name for v in catalog.versions(name))


def test_metadata_is_normalised_from_messy_meta(catalog: Catalog) -> None:
    hello = catalog.versions("hello")[0]
    assert hello.license == "GPL-3.0-or-later" and hello.homepage == "https://example.org/hello"
    assert hello.outputs and hello.platforms
    assert catalog.versions("frob")[0].license == "MIT, BSD-3-Clause"   # an object and a string
    hdf5 = catalog.versions("hdf5")[0]
    assert (hdf5.name, hdf5.pname, hdf5.main_program) == ("hdf5", "hdf5-cpp", "h5ls")
    assert catalog.versions("cowsay-demo")[0].homepage == "https://example.org/cowsay"  # first of a list
    assert catalog.versions("quoter")[0].description == QUOTER


@pytest.mark.parametrize("query, expected", [
    ("hello", ("hello", "exact")),
    ("HELLO", ("hello", "exact")),
    ("rg", ("ripgrep", "program")),
    ("samt", ("samtools", "prefix")),
    ("numpy", ("python3Packages.numpy-demo", "name")),
    ("ripgrpe", ("ripgrep", "fuzzy")),
    ("friendly greeting", ("hello", "description")),
    ("jq", ("jq-demo", "program")),
    ("cowsay", ("cowsay-demo", "program")),
])
def test_search_ranks_name_program_prefix_substring_typo_description(catalog: Catalog, query: str,
                                                                       expected: tuple) -> None:
    hits = catalog.search(query)
    assert (hits[0].package.name, hits[0].kind) == expected


def test_each_package_is_listed_once_and_the_limit_cuts_the_ranking(catalog: Catalog) -> None:
    names = [h.package.name for h in catalog.search("s", limit=200)]
    assert len(names) == len(set(names)) and "python3Packages.requests-demo" in names
    hits = catalog.search("demo")
    assert len(hits) > 3
    assert [h.package.name for h in catalog.search("demo", limit=2)] == [h.package.name for h in hits[:2]]


@pytest.mark.parametrize("channel, expected", [
    ("demo-2024", [("2.10", ["demo-2024"])]),
    ("demo-2025", [("2.12.1", ["demo-2025"])]),
])
def test_a_channel_filters_search(catalog: Catalog, channel: str, expected: list) -> None:
    hits = catalog.search("hello", channel=channel)
    assert [(h.package.versions[0].version, [v.channel for v in h.package.versions]) for h in hits] == expected


def test_a_package_only_in_the_other_channel_is_not_found_in_this_one(catalog: Catalog) -> None:
    assert catalog.search("cowsay", channel="demo-2024") == []


def test_an_unknown_channel_names_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(UserError, match="demo-2024, demo-2025"):
        catalog.search("hello", channel="nope")


def test_an_unknown_name_suggests_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UserError, match="unknown package 'helo'.*hello"):
        catalog.versions("helo")


@pytest.mark.parametrize("spec, expected", [
    ("hello", ("2.12.1", "demo-2025")),
    ("hello@2.10", ("2.10", "tie")),            # the same version twice: the later channel wins
    ("demo-2024:hello", ("2.10", "demo-2024")),
    ("demo-2024:hello@2.10", ("2.10", "demo-2024")),
    ("hello@>=2.11", ("2.12.1", "demo-2025")),
    ("hello@<2.11", ("2.10", "tie")),
    ("frob@>=2", ("2.0", "demo-2025")),
    ("tie-only", ("1.0", "tie")),
])
def test_specs_resolve_by_the_catalogs_rules(tie_catalog: Catalog, spec: str, expected: tuple) -> None:
    version = tie_catalog.resolve(spec)
    assert (version.version, version.channel) == expected


@pytest.mark.parametrize("spec, message", [
    ("datefmt@>=1", "not PEP 440"),
    ("hello@9.9", "no version '9.9'"),
    ("hello@>=nonsense", "bad version constraint"),
    ("nope:hello", "unknown channel 'nope'"),
    ("demo-2024:cowsay-demo", "not in channel 'demo-2024'"),
    ("hello@", "bad spec"),
    ("hello@@2.10", "bad spec"),
    ("nosuchthing", "unknown package 'nosuchthing'"),
])
def test_bad_specs_are_user_errors_that_say_why(tie_catalog: Catalog, spec: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        tie_catalog.resolve(spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_version_lists_what_there_is(tie_catalog: Catalog) -> None:
    with pytest.raises(UserError, match=r"2\.12\.1 \(demo-2025\)"):
        tie_catalog.resolve("hello@9.9")
    with pytest.raises(UserError, match="datefmt@VERSION"):
        tie_catalog.resolve("datefmt@>=1")


def test_the_same_version_in_two_channels_is_kept_twice(tie_catalog: Catalog) -> None:
    assert [(v.version, v.channel) for v in tie_catalog.versions("hello")] == [
        ("2.12.1", "demo-2025"), ("2.10", "tie"), ("2.10", "demo-2024")]


def test_newest_is_the_newest_channels_not_the_highest_version(dump_home: DumpHome) -> None:
    """Channels are configured newest last: with demo-2024 last, its 2.10 is the default."""
    dump_home.write_config(DEMO[1], DEMO[0])
    catalog = Catalog.load(dump_home.config())
    assert (catalog.resolve("hello").version, catalog.resolve("hello").channel) == ("2.10", "demo-2024")
    assert [v.channel for v in catalog.versions("hello")] == ["demo-2024", "demo-2025"]


def test_versions_that_cannot_name_a_module_are_still_listed(dump_home: DumpHome) -> None:
    dump_home.write_config(("odd", DUMPS / "catalog-odd.json"))
    catalog = Catalog.load(dump_home.config())
    assert [v.version for v in catalog.versions("noversion")] == [""]
    assert [v.version for v in catalog.versions("qmark")] == ["1.0?x"]
    assert [v.version for v in catalog.versions("fine")] == ["1.0"]


def test_a_gzipped_dump_reads_as_the_plain_one(dump_home: DumpHome, tmp_path: Path) -> None:
    packed = tmp_path / "demo-2025.json.gz"
    packed.write_bytes(gzip.compress((DUMPS / "demo-2025.json").read_bytes()))
    dump_home.write_config(DEMO[0], ("demo-2025", packed))
    catalog = Catalog.load(dump_home.config())
    assert [(v.version, v.channel) for v in catalog.versions("hello")] == [
        ("2.12.1", "demo-2025"), ("2.10", "demo-2024")]


def test_packages_json_shape_with_hostile_entries(dump_home: DumpHome, tmp_path: Path) -> None:
    """A channel's packages.json ({"version": 2, "packages": ...}) beside nix-env's shape;
    entries that cannot be records are reported, with a reason, not dropped silently."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({
        "tool": {"name": "tool-1.2", "pname": "tool", "version": "1.2",
                 "meta": {"description": "line one\nline two", "license": "MIT",
                          "platforms": ["x86_64-linux", {"kernel": "linux"}]}},
        "weird": "not an object",
        "has space": {"name": "x-1"},
    }))
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"version": 2, "packages": {
        "tool": {"name": "tool-1.10", "pname": "tool", "version": "1.10",
                 "meta": {"license": [{"shortName": "gpl2"}, {"fullName": "Custom"}], "mainProgram": "tl"}},
    }}))
    dump_home.write_config(("old", old), ("new", new))
    catalog = Catalog.load(dump_home.config())
    assert [(v.version, v.channel, v.license) for v in catalog.versions("tool")] == [
        ("1.10", "new", "gpl2, Custom"), ("1.2", "old", "MIT")]
    assert list(catalog.versions("tool")[1].platforms) == ["x86_64-linux"]   # the object dropped
    assert catalog.search("tl")[0].package.name == "tool"
    skipped = {s.attr: s.reason for s in catalog.skipped()}
    assert set(skipped) == {"weird", "has space"} and all(skipped.values())


def test_a_second_load_is_the_same_catalog_from_the_cache(dump_home: DumpHome) -> None:
    first = Catalog.load(dump_home.config())
    cached = list((dump_home.base / "cache").rglob("index.bin"))
    assert len(cached) == 1, cached
    written = cached[0].stat().st_mtime_ns
    again = Catalog.load(dump_home.config())
    assert cached[0].stat().st_mtime_ns == written          # read, not written again
    assert len(again) == len(first) == 17
    assert [v.version for v in again.versions("hello")] == ["2.12.1", "2.10"]
