"""The site catalog (issue 11 item 2): staff publish once, users read instead of evaluating.

Staff (one real user) runs ``nixmod catalog publish DIR``; another real user
whose config names ``[catalog] site_dir = DIR`` searches. That no evaluation
happens is shown by taking nix-env off the user's PATH: a channel it had to
evaluate would fail ("nix-env not found"), and the test checks that it does
without the site index. Stale, partial, damaged and planted indexes must
give the right results (listed per user) and one warning line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from builds_helpers import new_counter, records
from rig import SCRATCH, VENV, run_userside

#: a PATH with nixmod but no nix-env: any evaluation fails
NO_NIX = {"PATH": f"{VENV}/bin"}


def channel_nix(packages: dict[str, str], description: str = "site test package") -> str:
    """A tiny Nix channel: each name -> version, with meta that nix-env --meta lists."""
    body = "\n".join(
        f'  {name} = (derivation {{ name = "{name}-{version}"; pname = "{name}"; '
        f'version = "{version}"; system = builtins.currentSystem; builder = "/bin/sh"; '
        f'args = [ "-c" "echo > $out" ]; }}) // {{ meta = {{ description = '
        f'"{description} {name}"; }}; }};'
        for name, version in packages.items())
    return f"{{ ... }}:\n{{\n{body}\n}}\n"


def scratch_dir(label: str) -> Path:
    """A root-owned, world-readable directory for channel files the test may change."""
    path = SCRATCH / f"site-{label}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    path.chmod(0o755)
    return path


def write_public(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)
    return path


def config(channels: dict[str, Path], site: Path | None = None, extra: str = "",
           publisher: str = "") -> str:
    """A user config; ``publisher``: the [catalog] publisher whose index is trusted (staff:
    the publishing user needs it too, since users trust only root's or that account's)."""
    text = "".join(f'[[channels]]\nname = "{name}"\npath = "{path}"\n{extra}\n'
                   for name, path in channels.items())
    catalog = (f'site_dir = "{site}"\n' if site else "") + \
        (f'publisher = "{publisher}"\n' if publisher else "")
    return text + (f'[catalog]\n{catalog}' if catalog else "")


def publish(staff, site: Path) -> subprocess.CompletedProcess[str]:
    return staff.nixmod("catalog", "publish", str(site), check=True)


def search(user, query: str, env: dict[str, str] | None = None):
    proc = user.nixmod("search", query, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return [(hit["name"], hit["version"], hit["channel"]) for hit in json.loads(proc.stdout)], proc


def warnings(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "warning" in line]


def _header(index: bytes) -> dict:
    """The JSON header of a site index (magic line, 8-byte length, JSON)."""
    start = index.index(b"\n") + 1
    size = int.from_bytes(index[start:start + 8], "little")
    return json.loads(index[start + 8:start + 8 + size])


def test_staff_publishes_and_a_user_searches_without_evaluating(alice, bob):
    channels = scratch_dir("eval")
    a = write_public(channels / "a.nix", channel_nix({"sitealpha": "1.0", "sitebeta": "2.0"}))
    b = write_public(channels / "b.nix", channel_nix({"sitealpha": "1.5"}))
    site = alice.home / "site"
    alice.write_config(config({"chan-a": a, "chan-b": b}, publisher=alice.user))
    published = publish(alice, site)
    assert "published" in published.stdout and "FAILED" not in published.stdout
    index = site / "nixmod-site-catalog.bin"
    assert index.stat().st_mode & 0o777 == 0o644

    # without the site index, bob (no nix-env on PATH) cannot list these channels
    bob.write_config(config({"chan-a": a, "chan-b": b}))
    failed = bob.nixmod("search", "sitealpha", "--json", env=NO_NIX)
    assert "nix-env" in failed.stderr and json.loads(failed.stdout) == []

    bob.write_config(config({"chan-a": a, "chan-b": b}, site, publisher=alice.user))
    shutil.rmtree(bob.home / ".cache", ignore_errors=True)
    hits, proc = search(bob, "sitealpha", env=NO_NIX)
    assert hits[0] == ("sitealpha", "1.5", "chan-b")
    assert proc.stderr == ""            # no warning, no evaluation progress
    versions = json.loads(bob.nixmod("versions", "sitealpha", "--json", env=NO_NIX,
                                     check=True).stdout)
    assert [(v["version"], v["channel"]) for v in versions] == [("1.5", "chan-b"), ("1.0", "chan-a")]
    assert versions[1]["description"] == "site test package sitealpha"
    info = json.loads(bob.nixmod("catalog", "info", "--json", env=NO_NIX, check=True).stdout)
    assert info["cache"] == str(index)
    refreshed = bob.nixmod("catalog", "refresh", env=NO_NIX, check=True)   # reads, never evaluates
    assert "chan-a" in refreshed.stdout and "warning" not in refreshed.stderr

    # a subset of the site's channels, under a name of bob's own: the published listing of
    # the same identity is indexed for bob, still without evaluating
    bob.write_config(config({"mine": a}, site, publisher=alice.user))
    hits, proc = search(bob, "sitebeta", env=NO_NIX)
    assert hits == [("sitebeta", "2.0", "mine")] and warnings(proc) == []
    assert "evaluating" not in proc.stderr


def test_a_subset_of_the_site_channels_is_read_from_the_index_as_it_is(alice, bob):
    """Issue 22: a user with 2 of the site's 3 channels reads the site's merged index
    and filters it: nothing is indexed or cached for them (no index.bin, no listing
    of their own), and they see only their channels, under their own names, ranked
    as an index of those channels alone would rank them."""
    channels = scratch_dir("subset")
    old = write_public(channels / "old.nix", channel_nix({"subpkg": "1.0", "oldonly": "0.1"}))
    mid = write_public(channels / "mid.nix", channel_nix({"subpkg": "2.0", "midonly": "0.2",
                                                          "subpkgz": "9.0"}))
    new = write_public(channels / "new.nix", channel_nix({"subpkg": "3.0", "subpkgy": "1.0"}))
    site = alice.home / "site"
    alice.write_config(config({"old": old, "mid": mid, "new": new}, publisher=alice.user))
    publish(alice, site)

    bob.write_config(config({"first": old, "last": new}, site, publisher=alice.user))
    shutil.rmtree(bob.home / ".cache", ignore_errors=True)
    hits, proc = search(bob, "subpkg", env=NO_NIX)       # no nix-env: nothing can be evaluated
    assert proc.stderr == ""
    # subpkgz is only in the channel bob does not have; subpkgy is in his newest
    assert hits == [("subpkg", "3.0", "last"), ("subpkgy", "1.0", "last")]
    versions = json.loads(bob.nixmod("versions", "subpkg", "--json", env=NO_NIX,
                                     check=True).stdout)
    assert [(v["version"], v["channel"]) for v in versions] == [("3.0", "last"), ("1.0", "first")]
    assert search(bob, "midonly", env=NO_NIX)[0] == []
    assert search(bob, "oldonly", env=NO_NIX)[0] == [("oldonly", "0.1", "first")]
    assert "is not in channel" in bob.nixmod("versions", "oldonly", "--channel", "last",
                                            env=NO_NIX).stderr
    info = json.loads(bob.nixmod("catalog", "info", "--json", env=NO_NIX, check=True).stdout)
    assert info["cache"] == str(site / "nixmod-site-catalog.bin")
    assert info["packages"] == 3 and [c["name"] for c in info["channels"]] == ["first", "last"]
    cached = sorted(p.name for p in (bob.home / ".cache").rglob("*") if p.is_file())
    assert cached == [], cached                          # no per-user index, no listing

    # the site's channels in another order rank versions otherwise: the published
    # listings are indexed for bob (still without evaluating), as before
    bob.write_config(config({"last": new, "first": old}, site, publisher=alice.user))
    hits, proc = search(bob, "subpkg", env=NO_NIX)
    assert hits[0] == ("subpkg", "1.0", "first") and warnings(proc) == []
    assert list((bob.home / ".cache").rglob("index.bin"))


def test_stale_index_falls_back_per_user_with_one_warning(alice, bob):
    channels = scratch_dir("stale")
    a = write_public(channels / "a.nix", channel_nix({"stalepkg": "1.0"}))
    site = alice.home / "site"
    alice.write_config(config({"chan-a": a}, publisher=alice.user))
    publish(alice, site)
    write_public(a, channel_nix({"stalepkg": "1.1", "addedlater": "0.1"}))   # after publish

    bob.write_config(config({"chan-a": a}, site, publisher=alice.user))
    hits, proc = search(bob, "stalepkg")
    assert hits == [("stalepkg", "1.1", "chan-a")]          # the channel as it is now
    assert search(bob, "addedlater")[0] == [("addedlater", "0.1", "chan-a")]
    lines = warnings(proc)
    assert len(lines) == 1 and "channel chan-a changed since it was published (stale)" in lines[0]
    assert f"nixmod catalog publish {site}" in lines[0]
    # the TUI lists the same line among the catalog's problems
    shown = run_userside(bob, "catalog_query", "tui-problems", check=True)
    assert lines[0].removeprefix("nixmod: warning: ") in shown.stdout

    # staff publishes again: the next search uses the index and the warning is gone
    publish(alice, site)
    hits, proc = search(bob, "addedlater", env=NO_NIX)
    assert hits == [("addedlater", "0.1", "chan-a")] and warnings(proc) == []


def test_partial_coverage_lists_only_the_rest(alice, bob, real_dumps):
    channels = scratch_dir("partial")
    a = write_public(channels / "a.nix", channel_nix({"coveredpkg": "1.0"}))
    dump = real_dumps / "nixpkgs-16.09-2016-12-02.json.gz"
    site = alice.home / "site"
    alice.write_config(config({"chan-a": a}, publisher=alice.user))
    publish(alice, site)

    # chan-a comes from the index (nix-env is not even on PATH); the dump is read per user
    bob.write_config(config({"chan-a": a, "old": dump}, site, publisher=alice.user))
    hits, proc = search(bob, "coveredpkg", env=NO_NIX)
    assert hits == [("coveredpkg", "1.0", "chan-a")]
    assert search(bob, "hello", env=NO_NIX)[0][0][:3] == ("hello", "2.10", "old")
    lines = warnings(proc)
    assert len(lines) == 1 and "channel old is not in it" in lines[0] and "chan-a" not in lines[0]
    doctor = json.loads(bob.nixmod("doctor", "--json", env=NO_NIX).stdout)
    site_check = [c for c in doctor["checks"] if c["name"] == "site catalog"]
    assert site_check and site_check[0]["status"] == "warn"
    assert "channel old is not in it" in site_check[0]["detail"]
    assert f"nixmod catalog publish {site}" in site_check[0]["fix"]


def test_damaged_or_planted_index_never_breaks_search(alice, bob):
    channels = scratch_dir("hostile")
    a = write_public(channels / "a.nix", channel_nix({"hostilepkg": "3.0"}))
    site = alice.home / "site"
    alice.write_config(config({"chan-a": a}, publisher=alice.user))
    publish(alice, site)
    index = site / "nixmod-site-catalog.bin"
    good = index.read_bytes()
    bob.write_config(config({"chan-a": a}, site, publisher=alice.user))

    def check(expected: str) -> None:
        hits, proc = search(bob, "hostilepkg")
        assert hits == [("hostilepkg", "3.0", "chan-a")], proc.stderr
        lines = warnings(proc)
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr

    index.write_bytes(good[: len(good) // 2])                    # truncated in place
    check("truncated")
    index.write_bytes(good[:-40] + bytes(40))                    # the merged index damaged
    check("the merged index is damaged (checksum)")
    damaged = bytearray(good[:-40] + bytes(40))                  # and the channel's listing
    payload = len(good) - _header(good)["size"]
    damaged[payload + 5] ^= 0xFF
    index.write_bytes(bytes(damaged))
    check("channel chan-a is damaged (checksum)")
    index.write_bytes(b"PK\x03\x04 not an index at all")
    check("is not a nixmod site index")
    index.unlink()
    check("no index has been published")
    os.symlink(channels / "a.nix", index)                        # symlink games
    check("is a symlink")
    index.unlink()
    index.write_bytes(good)
    os.chown(index, 0, 0)
    shutil.chown(index, user=bob.user)                           # someone else's file
    check("not trusting it")
    os.chown(index, 0, 0)
    site.chmod(0o777)                                            # anyone could plant one
    check(f"{site} is not trusted: {site} is writable by other users (mode 777)")
    site.chmod(0o755)
    hits, proc = search(bob, "hostilepkg", env=NO_NIX)           # root's is trusted
    assert hits == [("hostilepkg", "3.0", "chan-a")] and warnings(proc) == []


def test_publish_while_users_read(alice, bob):
    """A reader never sees half an index: searches during repeated publishes all succeed."""
    channels = scratch_dir("race")
    a = write_public(channels / "a.nix", channel_nix({f"racepkg{i}": "1.0" for i in range(40)}))
    site = alice.home / "site"
    alice.write_config(config({"chan-a": a}, publisher=alice.user))
    publish(alice, site)
    bob.write_config(config({"chan-a": a}, site, publisher=alice.user))
    script = ("for i in $(seq 15); do nixmod catalog publish \"$1\" >/dev/null 2>&1 "
              "|| echo PUBLISH-FAILED; done")
    publisher = subprocess.Popen(["runuser", "-u", alice.user, "--", "env", "-i",
                                  *(f"{k}={v}" for k, v in alice.env().items()),
                                  "sh", "-c", script, "sh", str(site)],
                                 stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(15):
            shutil.rmtree(bob.home / ".cache", ignore_errors=True)
            hits, proc = search(bob, "racepkg17", env=NO_NIX)
            assert hits[0] == ("racepkg17", "1.0", "chan-a") and proc.stderr == ""
    finally:
        out, _ = publisher.communicate(timeout=300)
    assert "PUBLISH-FAILED" not in out


def test_listing_channel_searches_the_listing_and_builds_from_the_path(alice, test_channels):
    nonce, counter = new_counter()
    alice.extra_env.update(NIXMOD_TEST_NONCE=nonce, NIXMOD_TEST_COUNTER=str(counter),
                           NIXMOD_TEST_SLEEP="0")
    listing = scratch_dir("listing") / "builds.json"
    write_public(listing, json.dumps({"pkg7": {
        "name": "pkg7-1.0", "pname": "pkg7", "version": "1.0", "system": "x86_64-linux",
        "meta": {"description": "pkg7 as the saved listing describes it", "mainProgram": "pkg7"}}}))
    alice.write_config(f'[[channels]]\nname = "lp"\npath = "{test_channels / "builds.nix"}"\n'
                       f'listing = "{listing}"\n')
    hits = json.loads(alice.nixmod("search", "pkg7", "--json", env=NO_NIX, check=True).stdout)
    assert [(h["name"], h["version"], h["description"]) for h in hits] == [
        ("pkg7", "1.0", "pkg7 as the saved listing describes it")]   # not the evaluated text
    missing = alice.nixmod("versions", "pkg8", env=NO_NIX)   # in builds.nix, not in the listing
    assert missing.returncode == 2 and "unknown package 'pkg8'" in missing.stderr

    built = records(alice.nixmod("build", "lp:pkg7", "--wait", "--json", check=True))[0]
    assert built["state"] == "built" and built["channel"] == "lp" and built["module"] == "nix/pkg7/1.0"
    ran = alice.bash("module use ~/.local/share/nixmod/modules && module load nix/pkg7 && pkg7",
                     check=True)
    assert "pkg7 1.0" in ran.stdout


def test_bad_catalog_config_is_one_line_and_exit_2(alice, bob, test_channels):
    nix = test_channels / "builds.nix"
    cases = {
        f'[[channels]]\nname = "x"\nlisting = "/srv/x.json"\n':
            "channel 'x': listing needs path or url",
        f'[[channels]]\nname = "x"\npath = "{nix}"\nlisting = "/srv/x.nix"\n':
            "listing must be the path of a saved package list (*.json or *.json.gz)",
        '[[channels]]\nname = "x"\npath = "/srv/a.json"\nlisting = "/srv/x.json"\n':
            "is already a saved package list",
        f'[[channels]]\nname = "x"\npath = "{nix}"\nlisting = 3\n':
            "key 'channels.listing' must be a string",
        f'[[channels]]\nname = "x"\npath = "{nix}"\n[catalog]\nsite = "/srv"\n':
            "unknown key 'catalog.site'; allowed: site_dir",
        f'[[channels]]\nname = "x"\npath = "{nix}"\n[catalog]\nsite_dir = "catalog"\n':
            "'catalog.site_dir' must be an absolute path",
        f'[[channels]]\nname = "x"\npath = "{nix}"\n[catalog]\npublisher = "a b"\n':
            "'catalog.publisher' must be one account name",
        f'[[channels]]\nname = "x"\npath = "{nix}"\n[catalog]\npublisher = 0\n':
            "key 'catalog.publisher' must be a string",
    }
    for text, expected in cases.items():
        alice.write_config(text)
        proc = alice.nixmod("search", "hello")
        assert proc.returncode == 2 and expected in proc.stderr, (text, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1

    alice.write_config(f'[[channels]]\nname = "x"\npath = "{nix}"\n')
    proc = alice.nixmod("catalog", "publish")
    assert proc.returncode == 2 and "name the site catalog directory" in proc.stderr
    proc = alice.nixmod("catalog", "publish", str(alice.home / "site"))   # not the publisher
    assert proc.returncode == 2 and "trust only an index written by root" in proc.stderr
    assert f'set [catalog] publisher = "{alice.user}"' in proc.stderr
    assert not (alice.home / "site").exists()
    alice.write_config(f'[[channels]]\nname = "x"\npath = "{nix}"\n'
                       f'[catalog]\npublisher = "{alice.user}"\n')
    proc = alice.nixmod("catalog", "publish", str(bob.home))      # bob's directory
    assert proc.returncode == 2 and f"{bob.home} belongs to {bob.user}" in proc.stderr
    assert not (bob.home / "nixmod-site-catalog.bin").exists()
    proc = alice.nixmod("catalog", "info", "/tmp")
    assert proc.returncode == 2 and "takes no directory" in proc.stderr


def test_a_site_dir_another_user_made_first_never_chooses_what_builds(alice, bob):
    """Issue 24.3: bob creates the configured site_dir first in a shared sticky directory
    (as /scratch) and publishes rows whose name is ``hello`` and whose attribute is his
    ``evil``. alice's site trusts root only: she is warned once, naming the directory, lists
    the channel herself, and ``nixmod build hello`` builds hello."""
    channels = scratch_dir("planted")
    a = write_public(channels / "a.nix", channel_nix({"hello": "1.0", "evil": "6.6"}))
    shared = SCRATCH / f"scratch-{uuid.uuid4().hex[:8]}"
    shared.mkdir()
    shared.chmod(0o1777)
    site = shared / "catalog"
    bob.run("mkdir", "-m", "755", str(site), check=True)
    bob.write_config(config({"chan-a": a}, publisher=bob.user))    # bob trusts himself
    publish(bob, site)
    run_userside(bob, "forge_site_index", str(site), "hello", "evil", check=True)
    # what bob's index says, to him: the forgery is real
    bob.write_config(config({"chan-a": a}, site, publisher=bob.user))
    forged = json.loads(bob.nixmod("versions", "hello", "--json", env=NO_NIX, check=True).stdout)
    assert [v["attr"] for v in forged] == ["evil"]

    alice.write_config(config({"chan-a": a}, site))
    versions = alice.nixmod("versions", "hello", "--json")
    assert [v["attr"] for v in json.loads(versions.stdout)] == ["hello"], versions.stderr
    lines = warnings(versions)
    assert len(lines) == 1, versions.stderr
    assert (f"site catalog unusable ({site} is not trusted: {site} belongs to {bob.user}, not "
            f"to root (in the shared directory {shared})") in lines[0]
    built = records(alice.nixmod("build", "hello", "--wait", "--json", check=True))[0]
    assert built["state"] in ("built", "reused") and built["out"].endswith("-hello-1.0"), built
    assert built["module"] == "nix/hello/1.0"


def test_only_an_index_of_root_or_the_configured_publisher_is_trusted(alice, bob):
    """Issue 24.3: bob is the site's ``[catalog] publisher`` here. His index is used by
    alice when her site says so; without that key (root only), or with a parent directory
    that others can write (the site dir could be swapped), it is one warning naming the
    directory and she lists the channel herself."""
    channels = scratch_dir("publisher")
    a = write_public(channels / "a.nix", channel_nix({"staffpkg": "2.0"}))
    parent = scratch_dir("staff")                      # root's, 755: as /opt/nixmod
    site = parent / "catalog"
    site.mkdir()
    shutil.chown(site, user=bob.user, group=bob.user)
    bob.write_config(config({"chan-a": a}, publisher=bob.user))
    publish(bob, site)

    alice.write_config(config({"chan-a": a}, site, publisher=bob.user))
    hits, proc = search(alice, "staffpkg", env=NO_NIX)        # read, never evaluated
    assert hits == [("staffpkg", "2.0", "chan-a")] and proc.stderr == ""

    def untrusted(expected: str) -> None:
        shutil.rmtree(alice.home / ".cache", ignore_errors=True)
        hits, proc = search(alice, "staffpkg")
        assert hits == [("staffpkg", "2.0", "chan-a")], proc.stderr
        lines = warnings(proc)
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"site catalog unusable ({site} is not trusted: " in lines[0], lines[0]
        assert expected in lines[0] and "listed for you instead" in lines[0], lines[0]

    alice.write_config(config({"chan-a": a}, site))
    untrusted(f"{site} belongs to {bob.user}, not to root")
    alice.write_config(config({"chan-a": a}, site, publisher=bob.user))
    parent.chmod(0o777)
    untrusted(f"{parent} is writable by other users (mode 777, not sticky)")
    parent.chmod(0o755)
    site.chmod(0o775)                                         # bob's group is his own: fine
    shutil.rmtree(alice.home / ".cache", ignore_errors=True)
    hits, proc = search(alice, "staffpkg", env=NO_NIX)
    assert hits == [("staffpkg", "2.0", "chan-a")] and proc.stderr == ""
    shutil.chown(site, group=alice.user)                      # another user's group can write
    untrusted(f"{site} is writable by other users (mode 775); only root or {bob.user} may "
              "write it")
