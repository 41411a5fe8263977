"""Search ranking and spec resolution on an in-process catalog: no rig, any user.

The catalog is built from two saved package lists (nix-env's JSON, as a
site saves it): nothing is evaluated, so these run in a second without Nix,
SLURM or root (``pytest -m "not rig"``). The same ranking is checked end to
end, through the CLI as a real user, in test_catalog.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nixmod.catalog import Catalog
from nixmod.config import load_config
from nixmod.errors import UserError


def entry(name: str, pname: str, version: str, description: str = "", program: str = "") -> dict:
    meta = {"description": description} | ({"mainProgram": program} if program else {})
    return {"name": f"{name}-{version}", "pname": pname, "version": version, "meta": meta}


OLD = {
    "hello": entry("hello", "hello", "2.10", "A program that produces a familiar, friendly greeting", "hello"),
    "samtools": entry("samtools", "samtools", "1.17", "Tools for manipulating SAM/BAM"),
}
NEW = {
    "hello": entry("hello", "hello", "2.12.1", "A program that produces a familiar, friendly greeting", "hello"),
    "hello-wayland": entry("hello-wayland", "hello-wayland", "0.1", "Hello world for Wayland"),
    "ripgrep": entry("ripgrep", "ripgrep", "14.1.0", "Fast line-oriented search tool", "rg"),
    "samtools": entry("samtools", "samtools", "1.19", "Tools for manipulating SAM/BAM"),
    "python3Packages.numpy": entry("python3.11-numpy", "numpy", "1.26.4", "Scientific tools for Python"),
}


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "old.json").write_text(json.dumps(OLD))
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    config_file = tmp_path / "config.toml"
    # channels are configured oldest first: the last one is the newest
    config_file.write_text(f'[[channels]]\nname = "old"\npath = "{tmp_path}/old.json"\n'
                           f'[[channels]]\nname = "new"\npath = "{tmp_path}/new.json"\n')
    config = load_config(config_file, environ={"NIXMOD_SITE_CONFIG": str(tmp_path / "no-site.toml"),
                                               "HOME": str(tmp_path)})
    return Catalog.load(config)


def first(catalog: Catalog, query: str) -> tuple[str, str] | None:
    hits = catalog.search(query)
    return (hits[0].package.name, hits[0].kind) if hits else None


def test_each_tier_ranks_its_match_first(catalog: Catalog) -> None:
    assert first(catalog, "hello") == ("hello", "exact")
    assert first(catalog, "HELLO") == ("hello", "exact")
    assert first(catalog, "rg") == ("ripgrep", "program")
    assert first(catalog, "samt") == ("samtools", "prefix")
    assert first(catalog, "numpy") == ("python3Packages.numpy", "component")
    assert first(catalog, "ripgrpe") == ("ripgrep", "fuzzy")
    assert first(catalog, "friendly greeting") == ("hello", "description")
    assert catalog.search("zzzzqqq") == []


def test_an_exact_name_beats_a_longer_one_and_each_package_is_listed_once(catalog: Catalog) -> None:
    names = [hit.package.name for hit in catalog.search("hello", limit=10)]
    assert names[:2] == ["hello", "hello-wayland"]
    names = [hit.package.name for hit in catalog.search("s", limit=50)]
    assert len(names) == len(set(names))


def test_versions_are_newest_channel_first_and_a_channel_filters(catalog: Catalog) -> None:
    hello = catalog.package("hello")
    assert [(v.version, v.channel) for v in hello.versions] == [("2.12.1", "new"), ("2.10", "old")]
    only_old = catalog.search("hello", channel="old")
    assert [(h.package.name, [v.version for v in h.package.versions]) for h in only_old] == [("hello", ["2.10"])]
    assert catalog.search("ripgrep", channel="old") == []


def test_specs_resolve_by_the_catalogs_rules(catalog: Catalog) -> None:
    assert (catalog.resolve("hello").version, catalog.resolve("hello").channel) == ("2.12.1", "new")
    assert catalog.resolve("hello@2.10").channel == "old"
    assert catalog.resolve("old:samtools").version == "1.17"
    assert catalog.resolve("samtools@>=1.18").version == "1.19"
    with pytest.raises(UserError, match="ripgrep"):
        catalog.resolve("ripgrp")
    with pytest.raises(UserError, match="2.12.1"):
        catalog.resolve("hello@9.9")
