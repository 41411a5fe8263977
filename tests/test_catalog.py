"""The catalog as users see it: real nix-env evaluations of the demo channels,
saved dumps, the cache, ranked search, version specs, and the five real
nixpkgs dumps. Everything runs as a real unprivileged user.
"""

from __future__ import annotations

import json

import pytest

from rig import VENV, run_userside
from dump_channels import channels_config

#: record counts from data/README.md: every one must be indexed or reported
REAL_DUMPS = {
    "nixpkgs-16.09-2016-12-02": 17352,
    "nixpkgs-17.09-2018-02-22": 15126,
    "nixpkgs-18.03pre-master-2018-02-22": 16510,
    "nixpkgs-20.09pre-unstable-2020-07-26": 50685,
    "nixpkgs-26.11pre-master-2026-07": 96324,
}
QUOTER = """Prints "quoted" text, 'single' too, ]] and ]==] and $(echo pwned) \\ backslash"""


def json_of(session, *args: str):
    proc = session.nixmod(*args, "--json", check=True)
    return json.loads(proc.stdout)


def catalog_query(session, *question: str):
    """The user's catalog asked through nixmod's Python API (tests/userside/catalog_query.py)."""
    proc = run_userside(session, "catalog_query", *question)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- the demo channels, evaluated by real Nix ------------------------------------------

def test_demo_channels_merge_versions_newest_first_with_metadata(alice):
    hello = json_of(alice, "versions", "hello")
    assert [(v["version"], v["channel"]) for v in hello] == [("2.12.1", "demo-2025"), ("2.10", "demo-2024")]
    assert hello[0]["license"] == "GPL-3.0-or-later"
    assert hello[0]["homepage"] == "https://example.org/hello"
    assert hello[0]["outputs"] == ["out"] and hello[0]["platforms"]

    frob = json_of(alice, "versions", "frob")  # 2.0pre1 is older than 2.0 to Nix
    assert [v["version"] for v in frob] == ["2.0", "2.0pre1"]
    assert frob[0]["license"] == "MIT, BSD-3-Clause"  # a list of an object and a string

    hdf5 = json_of(alice, "versions", "hdf5")[0]
    assert (hdf5["name"], hdf5["pname"], hdf5["main_program"]) == ("hdf5", "hdf5-cpp", "h5ls")
    cowsay = json_of(alice, "versions", "cowsay-demo")[0]
    assert cowsay["homepage"] == "https://example.org/cowsay"  # first of a list

    numpy = json_of(alice, "versions", "python3Packages.numpy-demo")
    assert [(v["version"], v["channel"], v["attr"]) for v in numpy] == [
        ("2.1.0", "demo-2025", "python3Packages.numpy-demo"),
        ("1.24.0", "demo-2024", "python3Packages.numpy-demo")]

    quoter = json_of(alice, "versions", "quoter")
    assert quoter[0]["description"] == QUOTER


def test_search_ranks_name_program_prefix_substring_typo_description(alice):
    def first(query, *extra):
        hits = json_of(alice, "search", query, *extra)
        return (hits[0]["name"], hits[0]["match"]) if hits else None

    assert first("hello") == ("hello", "exact")
    assert first("HELLO") == ("hello", "exact")
    assert first("rg") == ("ripgrep", "program")
    assert first("samt") == ("samtools", "prefix")
    assert first("numpy") == ("python3Packages.numpy-demo", "name")
    assert first("ripgrpe") == ("ripgrep", "fuzzy")
    assert first("friendly greeting") == ("hello", "description")

    # a one-letter query meets some names several times; each package is listed once
    names = [h["name"] for h in json_of(alice, "search", "s", "--limit", "200")]
    assert len(names) == len(set(names)) and "python3Packages.requests-demo" in names

    hits = json_of(alice, "search", "demo")
    assert len(hits) > 3 and json_of(alice, "search", "demo", "--limit", "2") == hits[:2]
    assert hits[0]["versions"] and hits[0]["version"] == hits[0]["versions"][0]["version"]

    only_2024 = json_of(alice, "search", "hello", "--channel", "demo-2024")
    assert [(h["version"], [v["channel"] for v in h["versions"]]) for h in only_2024] == [("2.10", ["demo-2024"])]
    assert json_of(alice, "search", "cowsay", "--channel", "demo-2024") == []

    table = alice.nixmod("search", "quoter", check=True).stdout
    assert "quoter" in table and "0.9" in table and "demo-2024" in table


def test_unknown_names_and_channels_are_one_line_exit_2_with_suggestions(alice):
    alice.nixmod("catalog", "info", check=True)  # warm: no progress lines below
    proc = alice.nixmod("versions", "helo")
    assert proc.returncode == 2
    assert "unknown package 'helo'" in proc.stderr and "hello" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    proc = alice.nixmod("search", "hello", "--channel", "nope")
    assert proc.returncode == 2 and "demo-2024, demo-2025" in proc.stderr
    assert alice.nixmod("search", "x", "--limit", "0").returncode == 2


def test_output_into_a_closed_pipe_is_not_an_error(alice):
    """`nixmod search ... | head -1` is how people skim: the reader leaving early is fine."""
    alice.nixmod("catalog", "info", check=True)  # warm: no progress lines below
    proc = alice.run("bash", "-c", 'nixmod search e --limit 100 --json | true; echo "rc=${PIPESTATUS[0]}"',
                     # unbuffered (as job scripts often set) so the write meets the closed
                     # pipe inside nixmod, as a real catalog's many-KB answer does
                     env={"PATH": f"{VENV}/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.strip() == "rc=0" and proc.stderr == "", proc.stderr


def test_resolve_specs_ties_and_constraints(alice, demo_dir, test_channels):
    alice.write_config(channels_config(("demo-2024", demo_dir / "demo-2024"),
                                       ("tie", test_channels / "catalog-tie.nix"),
                                       ("demo-2025", demo_dir / "demo-2025")))
    resolved = catalog_query(alice, "resolve", "hello", "hello@2.10", "demo-2024:hello", "demo-2024:hello@2.10",
                             "hello@>=2.11", "hello@<2.11", "frob@>=2", "datefmt@>=1", "hello@9.9",
                             "hello@>=nonsense", "nope:hello", "demo-2024:cowsay-demo", "tie-only", "hello@",
                             "hello@@2.10")
    versions = catalog_query(alice, "versions", "hello")
    # newest channel first; the same version in two channels: both kept, the later first
    assert versions == [["2.12.1", "demo-2025"], ["2.10", "tie"], ["2.10", "demo-2024"]]
    assert resolved["hello"] == ["2.12.1", "demo-2025"]
    assert resolved["hello@2.10"] == ["2.10", "tie"]
    assert resolved["demo-2024:hello"] == ["2.10", "demo-2024"]
    assert resolved["demo-2024:hello@2.10"] == ["2.10", "demo-2024"]
    assert resolved["hello@>=2.11"] == ["2.12.1", "demo-2025"]
    assert resolved["hello@<2.11"] == ["2.10", "tie"]
    assert resolved["frob@>=2"] == ["2.0", "demo-2025"]
    assert resolved["tie-only"] == ["1.0", "tie"]
    assert "not PEP 440" in resolved["datefmt@>=1"] and "datefmt@VERSION" in resolved["datefmt@>=1"]
    assert "no version '9.9'" in resolved["hello@9.9"] and "2.12.1 (demo-2025)" in resolved["hello@9.9"]
    assert "bad version constraint" in resolved["hello@>=nonsense"]
    assert "unknown channel 'nope'" in resolved["nope:hello"]
    assert "not in channel 'demo-2024'" in resolved["demo-2024:cowsay-demo"]
    assert resolved["hello@"].startswith("error: bad spec")
    assert resolved["hello@@2.10"].startswith("error: bad spec")

    # "newest" is the newest channel's (channels are configured newest last), not the
    # highest version string: with demo-2024 configured last, its 2.10 is the default
    alice.write_config(channels_config(("demo-2025", demo_dir / "demo-2025"),
                                       ("demo-2024", demo_dir / "demo-2024")))
    assert catalog_query(alice, "resolve", "hello") == {"hello": ["2.10", "demo-2024"]}
    assert [v["channel"] for v in json_of(alice, "versions", "hello")] == ["demo-2024", "demo-2025"]


# -- cache ---------------------------------------------------------------------

def test_a_version_that_cannot_name_a_module_is_refused_before_building(alice, test_channels):
    alice.write_config(channels_config(("odd", test_channels / "catalog-odd.nix")))
    assert [v["version"] for v in json_of(alice, "versions", "noversion")] == [""]
    for spec in ("noversion", "qmark", "qmark@1.0?x", "odd:qmark"):
        proc = alice.nixmod("build", spec)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("nixmod: cannot build"), proc.stderr
        assert "nothing was built" in proc.stderr and "Traceback" not in proc.stderr
    assert json_of(alice, "status") == []
    assert not (alice.home / ".local/share/nixmod/modules").exists()


def test_cache_is_reused_rebuilt_when_corrupt_and_refreshed(alice):
    first = alice.nixmod("search", "hello", check=True)
    assert "evaluating" in first.stderr
    again = alice.nixmod("search", "hello", check=True)
    assert again.stderr == "" and again.stdout == first.stdout  # nothing evaluated

    index = alice.home / ".cache/nixmod/demo/catalog/index.bin"
    size = index.stat().st_size
    alice.run("python3", "-c", f"f=open('{index}','r+b'); f.seek({size // 2}); f.write(b'garbage!'); f.close()",
              check=True)
    damaged = alice.nixmod("versions", "hello", "--json", check=True)
    assert "damaged" in damaged.stderr
    assert [v["version"] for v in json.loads(damaged.stdout)] == ["2.12.1", "2.10"]

    alice.run("truncate", "-s", "100", str(index), check=True)
    assert "damaged" in alice.nixmod("search", "hello", check=True).stderr

    refreshed = alice.nixmod("catalog", "refresh", check=True)
    assert refreshed.stderr.count("evaluating") == 2
    info = json_of(alice, "catalog", "info")
    assert info["packages"] == 17 and info["versions"] == 24
    assert [(c["name"], c["kind"], c["packages"], c["error"]) for c in info["channels"]] == [
        ("demo-2024", "nix", 11, ""), ("demo-2025", "nix", 13, "")]
    assert info["cache"] == str(index) and info["age_seconds"] < 60


def test_a_channel_that_failed_is_tried_again_once_the_cause_is_gone(alice):
    """nix-env was not on PATH (the user had not loaded the nix module yet): the next
    run with nix-env finds the packages, without the user knowing about `catalog refresh`."""
    failed = alice.nixmod("search", "hello", env={"PATH": f"{VENV}/bin"})
    assert failed.returncode == 0 and "'nix-env' not found on PATH" in failed.stderr
    proc = alice.nixmod("search", "hello", "--json")
    assert proc.returncode == 0 and "not found" not in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "hello"
    again = alice.nixmod("search", "hello", check=True)
    assert again.stderr == ""  # and now the good index is used as it is


def test_an_unusable_cache_is_one_line_or_worked_around(alice):
    for cache_home in ("/nonexistent/cache", "/"):
        proc = alice.nixmod("versions", "hello", env={"XDG_CACHE_HOME": cache_home})
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "XDG_CACHE_HOME" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    # something in the way of the index file: the search still answers, and says why it
    # could not cache
    index = alice.home / ".cache/nixmod/demo/catalog/index.bin"
    alice.run("mkdir", "-p", str(index), check=True)
    proc = alice.nixmod("versions", "hello", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [v["version"] for v in json.loads(proc.stdout)] == ["2.12.1", "2.10"]
    assert f"cannot write the cache {index}" in proc.stderr


def test_a_broken_channel_is_reported_and_the_others_still_load(alice, demo_dir, test_channels):
    alice.write_config(channels_config(("demo-2024", demo_dir / "demo-2024"),
                                       ("broken", test_channels / "catalog-broken.nix"),
                                       ("gone", "/nonexistent/channel.json.gz")))
    proc = alice.nixmod("search", "hello", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["version"] == "2.10"
    assert "channel broken failed" in proc.stderr and "syntax error" in proc.stderr
    assert "channel gone failed" in proc.stderr and "does not exist" in proc.stderr
    info = json_of(alice, "catalog", "info")
    errors = {c["name"]: c["error"] for c in info["channels"]}
    assert errors["demo-2024"] == "" and "catalog-broken.nix:5" in errors["broken"]


def test_saved_dumps_in_both_formats_with_hostile_entries(alice):
    nix_env_shape = {
        "tool": {"name": "tool-1.2", "pname": "tool", "version": "1.2",
                 "meta": {"description": "line one\nline two \"quoted\" \\ é ]]", "license": "MIT",
                          "homepage": None, "platforms": ["x86_64-linux", {"kernel": "linux"}]}},
        "noversion": {"name": "noversion", "meta": None},
        "weird": "not an object",
        "has space": {"name": "x-1"},
    }
    packages_json = {"version": 2, "packages": {
        "tool": {"name": "tool-1.10", "pname": "tool", "version": "1.10",
                 "meta": {"license": [{"shortName": "gpl2"}, {"fullName": "Custom"}],
                          "mainProgram": "tl"}},
        "sets.inner": {"name": "inner-0.1", "version": "0.1", "meta": {}},
    }}
    plain = alice.write("dumps/old.json", json.dumps(nix_env_shape))
    packed = alice.home / "dumps/new.json.gz"
    alice.run("sh", "-c", f'gzip -c > "{packed}"', input=json.dumps(packages_json), check=True)
    alice.write_config(channels_config(("old", plain), ("new", packed)))

    tool = json_of(alice, "versions", "tool")
    assert [(v["version"], v["channel"], v["license"]) for v in tool] == [
        ("1.10", "new", "gpl2, Custom"), ("1.2", "old", "MIT")]
    assert tool[1]["description"] == nix_env_shape["tool"]["meta"]["description"]
    assert tool[1]["platforms"] == ["x86_64-linux"]
    assert json_of(alice, "search", "tl")[0]["name"] == "tool"
    assert json_of(alice, "versions", "sets.inner")[0]["version"] == "0.1"
    assert json_of(alice, "versions", "noversion")[0]["version"] == ""

    info = {c["name"]: c for c in json_of(alice, "catalog", "info")["channels"]}
    assert (info["old"]["kind"], info["old"]["packages"], info["old"]["skipped"]) == ("dump", 2, 2)
    assert (info["new"]["packages"], info["new"]["skipped"]) == (2, 0)
    skipped = {attr: reason for _channel, attr, reason in catalog_query(alice, "skipped")}
    assert set(skipped) == {"weird", "has space"} and all(skipped.values())


def test_tables_show_catalog_control_characters_instead_of_obeying_them(alice):
    dump = {"tricky": {"name": "tricky-1.0", "version": "1.0\nrm -rf ~",
                       "meta": {"description": "first\rsecond\x1b[31mred"}}}
    alice.write_config(channels_config(("dump", alice.write("d.json", json.dumps(dump)))))
    table = alice.nixmod("versions", "tricky", check=True).stdout.splitlines()
    assert len(table) == 2 and "1.0\\nrm -rf ~" in table[1] and "\x1b" not in table[1]
    assert json_of(alice, "versions", "tricky")[0]["version"] == "1.0\nrm -rf ~"   # JSON verbatim


def test_an_empty_search_is_bad_input(alice):
    proc = alice.nixmod("search", "  ")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "empty search" in proc.stderr


# -- the five real nixpkgs dumps ----------------------------------------------------

@pytest.fixture(scope="module")
def real_dumps_user(request, real_dumps):
    from rig import BOB, new_session

    missing = [n for n in REAL_DUMPS if not (real_dumps / f"{n}.json.gz").is_file()]
    if missing:
        pytest.fail(f"real dumps missing under {real_dumps}: {missing} (set NIXMOD_TEST_DATA)")
    session = new_session(BOB, "real-dumps")
    session.write_config(channels_config(*((n, real_dumps / f"{n}.json.gz") for n in REAL_DUMPS)))
    return session


def test_all_five_real_dumps_every_record_indexed_or_reported(real_dumps_user):
    info = json_of(real_dumps_user, "catalog", "info")
    for channel in info["channels"]:
        assert channel["error"] == "", channel
        assert channel["packages"] + channel["skipped"] == REAL_DUMPS[channel["name"]], channel
    assert info["versions"] == sum(c["packages"] for c in info["channels"])
    assert info["packages"] > 100_000


def test_real_dumps_versions_and_search(real_dumps_user):
    git = json_of(real_dumps_user, "versions", "git")
    assert [v["version"] for v in git] == ["2.54.0", "2.27.0", "2.16.2", "2.15.0", "2.10.0"]
    assert git[0]["channel"] == "nixpkgs-26.11pre-master-2026-07"
    assert json_of(real_dumps_user, "search", "rg")[0]["name"] == "ripgrep"
    assert json_of(real_dumps_user, "search", "firefx")[0]["name"] == "firefox"
    numpy = json_of(real_dumps_user, "versions", "python3Packages.numpy")
    assert numpy and all(v["name"] == "python3Packages.numpy" for v in numpy)


NEWEST = "nixpkgs-26.11pre-master-2026-07"
REAL_CHANNEL_2018 = "nixpkgs-18.03pre-master-2018-02-22"


def test_real_dumps_default_version_is_the_newest_channels(real_dumps_user):
    """Nix's order would pick lammps 2016-02-16 (2016 > 22) and alacritty 2018-01-31."""
    lammps = json_of(real_dumps_user, "versions", "lammps")
    assert (lammps[0]["version"], lammps[0]["channel"]) == ("22Jul2025_update4", NEWEST)
    assert [v["channel"] for v in lammps] == list(reversed(REAL_DUMPS))
    alacritty = json_of(real_dumps_user, "versions", "alacritty")
    assert (alacritty[0]["version"], alacritty[0]["channel"]) == ("0.17.0", NEWEST)
    assert "2018-01-31" in [v["version"] for v in alacritty]

    resolved = catalog_query(real_dumps_user, "resolve", "lammps", "alacritty", "alacritty@unstable-2018-01-31",
                             "alacritty@2018-01-31", "alacritty@01", "git", "git@>=99")
    assert resolved["lammps"] == ["22Jul2025_update4", NEWEST]
    assert resolved["alacritty"] == ["0.17.0", NEWEST]
    # the version as the nixpkgs derivation name spells it (alacritty-unstable-2018-01-31)
    assert resolved["alacritty@unstable-2018-01-31"] == ["2018-01-31", REAL_CHANNEL_2018]
    assert resolved["alacritty@2018-01-31"] == ["2018-01-31", REAL_CHANNEL_2018]
    assert resolved["alacritty@01"].startswith("error: alacritty has no version '01'")
    assert resolved["git"] == ["2.54.0", NEWEST]
    assert resolved["git@>=99"].endswith("available: 2.54.0, 2.27.0, 2.16.2, 2.15.0, 2.10.0")


def test_real_dumps_an_empty_version_is_shown_not_left_blank(real_dumps_user):
    """nix-env reports lammps-stable_22Aug2018 (20.09) with no version at all."""
    rows = real_dumps_user.nixmod("versions", "lammps", check=True).stdout.splitlines()[1:]
    assert [row.split()[:2] for row in rows][1] == ["(none)", "nixpkgs-20.09pre-unstable-2020-07-26"]
    table = real_dumps_user.nixmod("search", "lammps", "--limit", "1", check=True).stdout
    row = table.splitlines()[1]
    assert "22Jul2025_update4, (none), 2016-02-16" in row and ", ," not in row and ",  " not in row


def test_real_dumps_common_searches_put_a_current_exact_match_first(real_dumps_user):
    def hits(query):
        return [(h["name"], h["version"], h["channel"], h["match"])
                for h in json_of(real_dumps_user, "search", query, "--limit", "20")]

    numpy = hits("numpy")
    names = [h[0] for h in numpy]
    assert numpy[0] == ("python313Packages.numpy", "2.4.4", NEWEST, "component"), numpy[:3]
    assert numpy[1][0] == "python314Packages.numpy"
    # an exact last component (any channel) above a prefix of one: numpydoc comes later
    assert names.index("python27Packages.numpy") < names.index("emacsPackages.numpydoc")
    assert names.index("python3Packages.numpy") < names.index("emacsPackages.numpydoc")

    scipy = hits("scipy")
    assert scipy[0][:3] == ("python313Packages.scipy", "1.17.1", NEWEST)
    assert hits("python3")[0][:3] == ("python3", "3.13.13", NEWEST)
    gcc = hits("gcc")
    assert gcc[0][:3] == ("gcc", "15.2.0", NEWEST)
    assert all(h[2] == NEWEST for h in gcc[:8]), gcc[:8]
    assert hits("openmpi")[0][:3] == ("openmpi", "5.0.10", NEWEST)
    hdf5 = hits("hdf5")
    assert hdf5[0][:3] == ("hdf5", "1.14.6", NEWEST)
    assert {h[0] for h in hdf5[1:4]} <= {"hdf5-cpp", "hdf5-mpi", "hdf5_1_10", "hdf5-fortran"}
    boost = hits("boost")
    assert boost[0][:3] == ("boost", "1.89.0", NEWEST)
    assert boost[1][:3] == ("python313Packages.boost", "1.89.0", NEWEST)
    for query, found in (("numpy", numpy), ("gcc", gcc), ("boost", boost)):
        ranks = [("exact", "program", "component", "prefix", "name", "fuzzy", "description")
                 .index(h[3]) for h in found]
        assert ranks == sorted(ranks), (query, found)
        # within one kind of match, the newest channel's packages come first
        for kind in {h[3] for h in found}:
            channels = [list(REAL_DUMPS).index(h[2]) for h in found if h[3] == kind]
            assert channels == sorted(channels, reverse=True), (query, kind, found)


# -- a url channel, pinned by its sha256 ----------------------------------------------

def test_url_channel_is_fetched_pinned_listed_and_built(alice, demo_dir):
    """A `url` + `sha256` channel (a file:// tarball here: the rig is offline)."""
    source = alice.home / "src" / "chan"
    alice.write("src/chan/lib.nix", (demo_dir / "lib.nix").read_text())
    alice.write("src/chan/default.nix",
                (demo_dir / "demo-2025" / "default.nix").read_text().replace("../lib.nix", "./lib.nix"))
    tarball = alice.home / "chan.tar.gz"
    alice.run("tar", "-czf", str(tarball), "-C", str(source.parent), "chan", check=True)
    url = f"file://{tarball}"
    sha256 = alice.run("nix-prefetch-url", "--unpack", url, check=True).stdout.strip().splitlines()[-1]

    alice.write_config(f'[[channels]]\nname = "pinned"\nurl = "{url}"\nsha256 = "{sha256}"\n')
    versions = json_of(alice, "versions", "cowsay-demo")
    assert [(v["version"], v["channel"]) for v in versions] == [("3.7.0", "pinned")]
    built = json_of(alice, "build", "cowsay-demo", "--wait")
    assert built[0]["state"] in ("built", "reused") and built[0]["module"] == "nix/cowsay-demo/3.7.0"

    # a wrong hash is not silently accepted: the channel fails, named, with Nix's reason
    alice.write_config(f'[[channels]]\nname = "pinned"\nurl = "{url}"\nsha256 = "{"0" * 52}"\n')
    proc = alice.nixmod("catalog", "refresh")
    assert proc.returncode == 1, proc.stderr   # every channel failed: operation failed
    assert "pinned" in proc.stderr and "hash mismatch" in proc.stderr.lower()
