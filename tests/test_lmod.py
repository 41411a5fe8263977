"""Modulefiles through real Lmod, as a real unprivileged user (issue 5).

Packages are built through the shared nix-daemon from the demo channels and
tests/channels/modules.nix; modules are written by nixmod.lmod as the user;
everything is then read back by `module load`, `whatis`, `help`, `avail`.
"""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from modules_helpers import lmod_script, site_lua, write_modules  # noqa: F401 (fixture)
from rig import run_userside

FAKE_STORE_PATH = "/nix/store/" + "a" * 32 + "-gone-1.0"


def hello(demo_dir, year: str, version: str, **extra) -> dict:
    return {"channel": str(demo_dir / f"demo-{year}"), "attr": "hello", "name": "hello",
            "version": version, "channel_name": f"demo-{year}",
            "description": "A program that produces a familiar, friendly greeting", **extra}


def test_a_built_demo_package_loads_and_its_program_runs(alice, demo_dir):
    root = alice.home / "modules"
    [info] = write_modules(alice, [hello(demo_dir, "2024", "2.10", homepage="https://example.org/hello",
                                         license="GPL-3.0-or-later")], root)
    store = info["outputs"]["out"]
    proc = alice.bash(lmod_script(root, 'module load nix/hello\nhello world\n'
                                  'echo "which=$(command -v hello)"\necho "path=$PATH"\n'
                                  'echo "manpath=$MANPATH"\necho "root=$NIXMOD_HELLO_ROOT"\n'
                                  'echo "sysman=$(man -w ls)"\n'
                                  'module whatis nix/hello\nmodule help nix/hello\nmodule keyword greeting'))
    assert proc.returncode == 0, proc.stderr
    assert "hello 2.10\nargs: world" in proc.stdout
    which = proc.stdout.split("which=")[1].splitlines()[0]
    assert which == str(root) + ".shims/nix/hello/2.10/bin/hello"
    path = proc.stdout.split("path=")[1].splitlines()[0]
    assert "/nix/store" not in path
    assert f"manpath={store}/share/man" in proc.stdout
    assert "sysman=/usr/share/man/man1/ls.1" in proc.stdout   # system man pages still found
    assert f"root={store}" in proc.stdout
    for line in ("Description: A program that produces a familiar, friendly greeting",
                 "Homepage: https://example.org/hello", "License: GPL-3.0-or-later",
                 "Channel: demo-2024", "Attribute: hello", f"Store path: {store}"):
        assert line in proc.stderr
    assert "Rebuild with: nixmod build hello@2.10" in proc.stderr
    assert "nix/hello/2.10" in proc.stderr.split("module keyword")[-1]


def test_loading_another_version_swaps_and_a_default_wins_over_the_highest(alice, demo_dir):
    root = alice.home / "modules"
    write_modules(alice, [hello(demo_dir, "2024", "2.10"), hello(demo_dir, "2025", "2.12.1")], root)
    proc = alice.bash(lmod_script(root, "module load nix/hello/2.10\nhello\n"
                                  "module load nix/hello/2.12.1\nhello\nmodule -t list 2>&1\n"
                                  "module purge\nmodule load nix/hello\nhello"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "hello 2.10" and lines[1] == "hello 2.12.1"
    assert "nix/hello/2.12.1" in lines and "nix/hello/2.10" not in lines
    assert lines[-1] == "hello 2.12.1"   # highest version without a default

    write_modules(alice, [hello(demo_dir, "2024", "2.10", default=True)], root)
    proc = alice.bash(lmod_script(root, "module load nix/hello\nhello"))
    assert proc.stdout.strip() == "hello 2.10", proc.stderr
    rc = (root / "nix/hello/.modulerc.lua").read_text()
    assert 'module_version("nix/hello/2.10", "default")' in rc
    assert not (root / "nix/hello/default").exists()


def test_every_output_is_inspected_and_nothing_is_set_that_is_not_there(alice, test_channels):
    root = alice.home / "modules"
    channel = str(test_channels / "modules.nix")
    [multi, bare] = write_modules(alice, [
        {"channel": channel, "attr": "multi", "name": "multi", "version": "3.1"},
        {"channel": channel, "attr": "bare", "name": "bare", "version": "0.1"}], root)
    out = multi["outputs"]
    variables = ("PATH", "MANPATH", "INFOPATH", "PKG_CONFIG_PATH", "ACLOCAL_PATH", "CPATH",
                 "CMAKE_PREFIX_PATH", "XDG_DATA_DIRS", "LD_LIBRARY_PATH")
    show = "\n".join(f'echo "{v}=${{{v}-}}"' for v in variables)
    proc = alice.bash(lmod_script(root, f"module load nix/multi\nmulti\n{show}"))
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines()[1:])
    assert proc.stdout.startswith("multi-bin\n")
    assert env["PATH"].startswith(str(root) + ".shims/nix/multi/3.1/bin:")
    assert "/nix/store" not in env["PATH"]
    assert env["MANPATH"].split(":")[0] == f"{out['man']}/share/man"
    assert env["INFOPATH"].split(":")[0] == f"{out['out']}/share/info"
    assert env["PKG_CONFIG_PATH"].split(":")[0] == f"{out['dev']}/lib/pkgconfig"
    assert env["ACLOCAL_PATH"].split(":")[0] == f"{out['dev']}/share/aclocal"
    assert env["CPATH"].split(":")[0] == f"{out['dev']}/include"
    assert env["CMAKE_PREFIX_PATH"].split(":")[0] == out["out"]
    assert env["XDG_DATA_DIRS"].split(":")[0] == f"{out['out']}/share"
    assert env["LD_LIBRARY_PATH"] == ""

    text = (root / "nix/bare/0.1.lua").read_text()
    assert "prepend_path" not in text and 'setenv("NIXMOD_BARE_ROOT"' in text
    assert not (root.parent / "modules.shims/nix/bare/0.1/bin").exists()


# Catalog text is hostile: quotes, long-bracket closers, backslashes, shell, newlines, unicode.
_TOKENS = ['"', "'", "\\", "]]", "]==]", "[[", "$(id)", "`id`", "\n", "%s", "%", "\t", "é", "✓",
           "\u2028", "--", " "]
hostile = st.lists(
    st.one_of(st.sampled_from(_TOKENS),
              st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)),
    min_size=1, max_size=10,
).map("".join).map(str.strip).filter(lambda s: s and "\n\n" not in s)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=st.lists(hostile, min_size=6, max_size=6))
def test_catalog_text_comes_out_of_lmod_verbatim(alice, test_channels, texts):
    root = alice.home / f"modules-{uuid.uuid4().hex[:6]}"
    channel = str(test_channels / "modules.nix")
    items = [{"channel": channel, "attr": "bare", "name": "quoted", "version": f"{i}.0",
              "description": text, "homepage": text, "license": text} for i, text in enumerate(texts)]
    write_modules(alice, items, root)
    calls = "\n".join(f"module whatis nix/quoted/{i}.0\nmodule help nix/quoted/{i}.0"
                      for i in range(len(texts)))
    proc = alice.bash(lmod_script(root, calls))
    assert proc.returncode == 0, proc.stderr
    for i, text in enumerate(texts):
        whatis_prefix = f"nix/quoted/{i}.0".ljust(20) + ": "
        for label in ("Description", "Homepage", "License"):
            assert f"{whatis_prefix}{label}: {text}" in proc.stderr
        assert f"nix/quoted/{i}.0: {text}\n" in proc.stderr
        assert f"Homepage: {text}\n" in proc.stderr


def test_bad_names_and_versions_are_refused_and_nothing_is_written(alice, test_channels):
    root = alice.home / "modules"
    channel = str(test_channels / "modules.nix")
    items = [{"channel": channel, "attr": "bare", "name": name, "version": version}
             for name, version in (("../evil", "1.0"), ("ok", "../../x"), (".hidden", "1"),
                                   ("a/b", "1"), ("ok", ".."), ("ok", "1.0..x"), ("ok", "1\n2"),
                                   ("", "1"))]
    results = write_modules(alice, items, root)
    assert all(r.get("exit") == 2 for r in results), results
    assert all("not usable as a module" in r["error"] for r in results)
    assert not root.exists() and not (alice.home / "modules.shims").exists()
    assert not (alice.home / "evil").exists()

    cli = alice.nixmod("modules", "remove", "../evil/1.0")
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1


def test_a_missing_store_path_stops_the_load_with_a_clear_lmod_error(alice, site_lua, test_channels):
    root = alice.home / "modules"
    write_modules(alice, [{"name": "gone", "version": "1.0", "outputs": {"out": FAKE_STORE_PATH}}], root)
    proc = alice.bash(lmod_script(root, "module load nix/gone; echo rc=$?\nmodule whatis nix/gone",
                                  package_path=site_lua))
    assert "rc=1" in proc.stdout
    message = " ".join(proc.stderr.split())
    assert f"store path {FAKE_STORE_PATH} is missing on this node" in message
    assert "Rebuild it with: nixmod build gone@1.0" in message
    assert "Name: gone" in proc.stderr   # whatis still works where the store path is not


def test_cli_lists_removes_and_refreshes_modules(alice, test_channels):
    root = alice.home / ".local/share/nixmod/modules"
    channel = str(test_channels / "modules.nix")
    [probe, _gone] = write_modules(alice, [
        {"channel": channel, "attr": "probe", "name": "probe", "version": "1.0"},
        {"name": "gone", "version": "1.0", "outputs": {"out": FAKE_STORE_PATH}}], root)
    # the GC root the builds code registers, in the agreed scheme
    gcroot = alice.home / ".local/state/nixmod/gcroots/probe/1.0/result"
    alice.run("mkdir", "-p", str(gcroot.parent), check=True)
    alice.run("nix-store", "--realise", probe["outputs"]["out"], "--add-root", str(gcroot),
              "--indirect", check=True)

    listed = json.loads(alice.nixmod("modules", "list", "--json", check=True).stdout)
    assert [(m["module"], m["valid"]) for m in listed] == [("nix/gone/1.0", False), ("nix/probe/1.0", True)]
    assert listed[1]["store_path"] == probe["outputs"]["out"]
    table = alice.nixmod("modules", "list", check=True).stdout
    assert "nix/probe/1.0" in table and "missing" in table

    removed = alice.nixmod("modules", "remove", "probe/1.0")
    assert removed.returncode == 0, removed.stderr
    assert not (root / "nix/probe/1.0.lua").exists()
    assert not (alice.home / ".local/share/nixmod/modules.shims/nix/probe").exists()
    assert not gcroot.is_symlink()
    assert alice.run("test", "-d", probe["outputs"]["out"]).returncode == 0   # left to the GC
    again = alice.nixmod("modules", "remove", "probe/1.0")
    assert again.returncode == 2 and "no module nix/probe/1.0" in again.stderr


def test_refresh_rewrites_from_requests_and_prunes_only_what_is_gone(alice, test_channels):
    root = alice.home / "modules"
    channel = str(test_channels / "modules.nix")
    [probe, _gone, _multi] = write_modules(alice, [
        {"channel": channel, "attr": "probe", "name": "probe", "version": "1.0"},
        {"name": "gone", "version": "1.0", "outputs": {"out": FAKE_STORE_PATH}},
        {"channel": channel, "attr": "multi", "name": "multi", "version": "3.1"}], root)
    requests = [{"name": "probe", "version": "1.0", "description": "refreshed", "outputs": probe["outputs"]}]
    proc = run_userside(alice, "lmod_calls", "refresh", str(root), input=json.dumps(requests), check=True)
    assert json.loads(proc.stdout) == {"written": ["nix/probe/1.0"], "pruned": ["nix/gone/1.0"]}
    assert "Description: refreshed" in (root / "nix/probe/1.0.lua").read_text()
    assert (root / "nix/multi/3.1.lua").exists()   # valid, not in the requests: kept
    assert not (root / "nix/gone").exists()


def test_site_tree_spider_cache_is_written_new_then_renamed_and_used(alice, demo_dir):
    root = alice.home / "site/modules"
    write_modules(alice, [hello(demo_dir, "2024", "2.10"), hello(demo_dir, "2025", "2.12.1")], root)
    proc = run_userside(alice, "lmod_calls", "spider-cache", str(root), check=True)
    cache = root.parent / "modules.lmodcache"
    assert proc.stdout.strip() == str(cache)
    assert "nix/hello/2.12.1" in (cache / "spiderT.lua").read_text()
    assert sorted(p.name for p in cache.iterdir()) == ["lmodrc.lua", "spiderT.lua", "timestamp"]
    avail = alice.bash(lmod_script(root, f"export LMOD_RC={cache}/lmodrc.lua\nmodule -t avail 2>&1\n"
                                         "module --config 2>&1 | grep -i -A3 'cache'"))
    assert "nix/hello/2.12.1" in avail.stdout and "nix/hello/2.10" in avail.stdout
    assert str(cache) in avail.stdout


def test_modules_refresh_rewrites_what_nixmod_built_and_remove_drops_its_gc_root(alice):
    built = alice.nixmod("build", "hello", "--wait")
    assert built.returncode == 0, built.stderr
    root = alice.home / ".local/share/nixmod/modules"
    module = root / "nix/hello/2.12.1.lua"
    original = module.read_text()
    alice.run("rm", str(module), check=True)

    refreshed = alice.nixmod("modules", "refresh", "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    assert [m["module"] for m in json.loads(refreshed.stdout)["written"]] == ["nix/hello/2.12.1"]
    assert module.read_text() == original

    gcroots = alice.home / ".local/state/nixmod/gcroots"
    assert (gcroots / "hello/2.12.1/result").is_symlink()
    assert alice.nixmod("modules", "remove", "nix/hello/2.12.1").returncode == 0
    assert not (gcroots / "hello").exists()
    assert not module.exists()
