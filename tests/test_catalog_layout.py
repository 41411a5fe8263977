"""The catalog cache read in place (issue 22): damaged, foreign and old files.

The cache is mapped and its blocks are checked when first read, so damage is
found either at load (the sections every query reads) or by the query that
first touches it (a package's rows). Either way a user gets one line naming
the file and correct results on the next run, never wrong results or a
traceback. In-process on generated dumps: fast tier.
"""

from __future__ import annotations

import json
import marshal
import shutil
import struct
from pathlib import Path

import pytest

from dump_channels import DumpHome
from nixmod import catalogcache
from nixmod.catalog import Catalog
from nixmod.errors import UserError

PACKAGES = 3000


@pytest.fixture
def big_home(dump_home: DumpHome, tmp_path: Path) -> DumpHome:
    """A channel of 3,000 packages: a cache of many 64 KiB blocks."""
    dump = tmp_path / "big.json"
    dump.write_text(json.dumps({
        f"pkg{i:05d}": {"name": f"pkg{i:05d}-1.{i}", "pname": f"pkg{i:05d}", "version": f"1.{i}",
                        "meta": {"description": f"generated package number {i} " + "x" * 200}}
        for i in range(PACKAGES)}))
    dump_home.write_config(("big", dump))
    return dump_home


def cache_of(home: DumpHome) -> Path:
    [path] = (home.base / "cache").rglob("index.bin")
    return path


def rewrite_header(path: Path, change: dict) -> None:
    """The cache with its header's fields changed, everything else as it was."""
    data = path.read_bytes()
    start = len(catalogcache.MAGIC) + 8
    (size,) = struct.unpack_from("<Q", data, len(catalogcache.MAGIC))
    header = marshal.loads(data[start:start + size])
    payload = start + size + (-(start + size) % 8)
    head = marshal.dumps({**header, **change})
    lead = catalogcache.MAGIC + struct.pack("<Q", len(head)) + head
    path.write_bytes(lead + bytes(-len(lead) % 8) + data[payload:])


def test_damage_in_a_package_row_is_found_by_the_query_that_reads_it(big_home: DumpHome) -> None:
    Catalog.load(big_home.config())
    path = cache_of(big_home)
    image = catalogcache.open_image(path)
    assert image is not None
    details = image.where("details")
    del image
    data = bytearray(path.read_bytes())
    data[details + (len(data) - details) // 2] ^= 0xFF            # a row near the middle
    path.write_bytes(bytes(data))

    said: list[str] = []
    catalog = Catalog.load(big_home.config(), said.append)
    assert said == []                             # the sections every query reads are sound
    assert catalog.versions("pkg00000")[0].version == "1.0"
    with pytest.raises(UserError, match=f"catalog cache {path} is damaged .*removed it"):
        for i in range(PACKAGES):                  # some package's rows lie in that block
            catalog.versions(f"pkg{i:05d}")
    assert not path.exists()
    again = Catalog.load(big_home.config(), said.append)
    assert [v.version for v in again.versions(f"pkg{PACKAGES - 1:05d}")] == [f"1.{PACKAGES - 1}"]
    assert path.exists()


def test_damage_in_the_names_is_found_at_load_and_rebuilt(big_home: DumpHome) -> None:
    Catalog.load(big_home.config())
    path = cache_of(big_home)
    image = catalogcache.open_image(path)
    assert image is not None
    lower = image.where("lower")
    del image
    data = bytearray(path.read_bytes())
    data[lower + 100:lower + 108] = b"zzzzzzzz"
    path.write_bytes(bytes(data))
    said: list[str] = []
    catalog = Catalog.load(big_home.config(), said.append)
    assert any(f"catalog cache {path} is damaged" in line for line in said), said
    assert [hit.package.name for hit in catalog.search("pkg00003", limit=1)] == ["pkg00003"]


@pytest.mark.parametrize("change", [
    {"format": catalogcache.FORMAT - 1},                       # an older nixmod's cache
    {"sections": {"lower": (0, 1 << 40)}},                      # a section outside the file
    {"sections": {"lower": (3, 10)}},                           # not where arrays can lie
    {"blocks": b"\0\0\0\0"},                                    # the block table cut short
    {"byteorder": "big" if struct.pack("=I", 1)[0] else "little"},   # another machine's
])
def test_an_old_foreign_or_garbled_header_is_rebuilt_not_misread(big_home: DumpHome,
                                                                  change: dict) -> None:
    Catalog.load(big_home.config())
    path = cache_of(big_home)
    rewrite_header(path, change)
    said: list[str] = []
    catalog = Catalog.load(big_home.config(), said.append)
    assert any("damaged or from another version; rebuilding" in line for line in said), said
    assert len(catalog) == PACKAGES
    assert catalog.versions("pkg00042")[0].description.startswith("generated package number 42 ")


def test_an_empty_or_planted_file_is_rebuilt(big_home: DumpHome) -> None:
    Catalog.load(big_home.config())
    path = cache_of(big_home)
    for planted in (b"", catalogcache.MAGIC, catalogcache.MAGIC + struct.pack("<Q", 1 << 60)):
        path.write_bytes(planted)
        catalog = Catalog.load(big_home.config())
        assert catalog.search("pkg00007", limit=1)[0].package.name == "pkg00007"


def _dump(path: Path, packages: dict[str, tuple[str, str, str]]) -> Path:
    """A saved list: attribute -> (version, description, mainProgram)."""
    path.write_text(json.dumps({
        attr: {"name": f"{attr}-{version}", "pname": attr, "version": version,
               "meta": {"description": description, "mainProgram": program}}
        for attr, (version, description, program) in packages.items()}))
    return path


def test_a_subset_of_the_site_index_answers_as_its_own_index(dump_home: DumpHome,
                                                              tmp_path: Path) -> None:
    """Issue 22: a user whose channels are some of the site index's reads its merged
    index in place, and every answer is the one an index of their channels alone gives:
    versions, ranking ties (newest of *their* channels first), programs and description
    words that only a channel they do not have carries."""
    import getpass

    from dump_channels import DUMPS
    from nixmod.publish import publish

    only_there = _dump(tmp_path / "only-there.json", {
        "hello": ("9.9", "zebra greeting from elsewhere", "zebrahello"),
        "helloworld": ("1.0", "another zebra", ""),
        "hell": ("0.1", "short name, only here", "hl"),
        "zzalpha": ("2.0", "in a newer channel here", "")})
    # zzalpha ranks before the shorter zzbeta only while "elsewhere" (newer) counts
    both = _dump(tmp_path / "both.json", {"zzalpha": ("1.0", "z", ""), "zzbeta": ("1.0", "z", "")})
    site_channels = [("demo-2024", DUMPS / "demo-2024.json"), ("both", both),
                     ("tie", DUMPS / "catalog-tie.json"), ("elsewhere", only_there),
                     ("demo-2025", DUMPS / "demo-2025.json")]
    site = tmp_path / "site"
    publisher = f'[catalog]\npublisher = "{getpass.getuser()}"\n'
    dump_home.write_config(*site_channels, extra=publisher)
    publish(dump_home.config(), site)

    mine = [("old", DUMPS / "demo-2024.json"), ("both", both),
            ("mytie", DUMPS / "catalog-tie.json"), ("new", DUMPS / "demo-2025.json")]
    dump_home.write_config(*mine, extra=publisher + f'site_dir = "{site}"\n')
    view = Catalog.load(dump_home.config())
    assert view.path == site / "nixmod-site-catalog.bin"
    assert not list((dump_home.base / "cache").rglob("index.bin"))

    alone_home = DumpHome(tmp_path / "alone")
    alone_home.write_config(*mine)
    alone = Catalog.load(alone_home.config())
    assert alone.path.name == "index.bin"

    def answers(catalog: Catalog, query: str, channel: str | None = None) -> list:
        return [(hit.package.name, hit.kind, [(v.version, v.channel, v.description)
                                              for v in hit.package.versions])
                for hit in catalog.search(query, limit=50, channel=channel)]

    names = sorted({p.name for p in alone.listing(limit=1000)})
    queries = names + ["zebra", "zebrahello", "hl", "hell", "greeting", "hel", "helo", "h", "e",
                       "a", "lib", "tool", "python", "numpy", "gcc", "zz", "z"]
    for query in queries:
        assert answers(view, query) == answers(alone, query), query
        for channel in ("old", "both", "mytie", "new"):
            assert answers(view, query, channel) == answers(alone, query, channel), (query, channel)
    assert answers(view, "zebra") == []
    assert [name for name, *_ in answers(view, "zz")] == ["zzbeta", "zzalpha"]
    for name in names:
        assert view.versions(name) == alone.versions(name)
    with pytest.raises(UserError, match="unknown package 'hell'"):
        view.versions("hell")
    assert len(view) == len(alone)
    assert [p.name for p in view.listing(limit=100)] == [p.name for p in alone.listing(limit=100)]
    assert view.skipped() == alone.skipped()
    assert [c.name for c in view.channels] == ["old", "both", "mytie", "new"]

    # all of the site's channels under names of the user's own: the index as it is
    renamed = [(f"my-{name}", path) for name, path in site_channels]
    dump_home.write_config(*renamed, extra=publisher + f'site_dir = "{site}"\n')
    whole = Catalog.load(dump_home.config())
    assert whole.path == site / "nixmod-site-catalog.bin"
    assert [c.name for c in whole.channels] == [name for name, _path in renamed]
    assert [(v.version, v.channel) for v in whole.versions("hello")] == [
        ("2.12.1", "my-demo-2025"), ("9.9", "my-elsewhere"), ("2.10", "my-tie"),
        ("2.10", "my-demo-2024")]
    assert answers(whole, "zebra", "my-elsewhere")[0][0] == "hello"


def test_a_damaged_block_of_the_site_index_costs_one_command_then_its_listings_serve(
        big_home: DumpHome, tmp_path: Path) -> None:
    """The site's merged index is checked block by block as searches read it: a user whose
    query meets a damaged block is told once, and from the next command on their channels
    are indexed from the index's per-channel listings (checked whole), with the warning,
    until staff publish again."""
    import getpass

    from nixmod.publish import publish

    config_text = big_home.config_file.read_text()
    publisher = f'[catalog]\npublisher = "{getpass.getuser()}"\n'
    site = tmp_path / "site"
    big_home.config_file.write_text(config_text + publisher)
    publish(big_home.config(), site)
    index = site / "nixmod-site-catalog.bin"
    good = index.read_bytes()
    big_home.config_file.write_text(config_text + publisher + f'site_dir = "{site}"\n')
    shutil.rmtree(big_home.base / "cache", ignore_errors=True)
    view = Catalog.load(big_home.config())
    assert view.path == index
    details = view._image.where("details")        # where the rows lie in the site file
    del view
    damaged = bytearray(good)
    damaged[details + (len(good) - details) // 3] ^= 0xFF
    index.write_bytes(bytes(damaged))

    catalog = Catalog.load(big_home.config())
    with pytest.raises(UserError, match=f"site catalog {index} is damaged .*run the command again"):
        for i in range(PACKAGES):
            catalog.versions(f"pkg{i:05d}")
    said: list[str] = []
    again = Catalog.load(big_home.config(), said.append)
    assert again.path.name == "index.bin"                 # indexed for the user, as before
    assert any("the merged index is damaged (checksum)" in w for w in again.warnings)
    assert [v.version for v in again.versions(f"pkg{PACKAGES - 1:05d}")] == [f"1.{PACKAGES - 1}"]

    index.write_bytes(good)                                 # staff publish again
    assert Catalog.load(big_home.config()).path == index


@pytest.mark.parametrize("text, expected", [
    ('{ "a" : {"name":"x-1"} ,\n "b":{"name":"y-2"} }', ["a", "b"]),       # blanks around keys
    ('{"a\\"x": {"name": "x-1"}, "b": {"name": "y-2"}}', ['a"x', "b"]),     # an escaped key
    ('{"\\u0061b": {"name": "x-1"}}', ["ab"]),                               # a \u escape
    ('{"a": {}, "b" {}}', "expected ':' at character 14"),
    ('{"a": {} "b": {}}', "expected ',' or '}' at character 10"),
    ('{"a\x01": {"name": "x-1"}}', "bad JSON (Invalid control character at) at character 1"),
    ('{1: 2}', "expected an attribute name at character 2"),
])
def test_keys_read_fast_or_by_the_decoder_mean_the_same(tmp_path: Path, text: str,
                                                         expected: list[str] | str) -> None:
    """Issue 22: plain keys are read by a regex, the rest by the JSON decoder, with the
    same records and the same one-line reasons for a broken list."""
    from nixmod import pkglist

    path = tmp_path / "list.json"
    path.write_text(text)
    if isinstance(expected, str):
        with pytest.raises(pkglist.MalformedList, match=expected.replace("(", r"\(")
                           .replace(")", r"\)")):
            pkglist.read_list(path)
    else:
        records, skipped = pkglist.read_list(path)
        assert [r.attr for r in records] == expected and skipped == []
