"""The CLI verbs that need no Nix and no scheduler, as a subprocess, on the demo dumps.

``nixmod`` runs as ``python -I -m nixmod`` of this interpreter (the venv's)
with HOME, XDG dirs, state and modules in tmp_path and a PATH that holds
no Nix and no scheduler (``DumpHome.nixmod``): the fast tier's user. The
same verbs on evaluated channels, as real users, are test_catalog.py's and
test_cli.py's, on the rig.
"""

from __future__ import annotations

import json

import pytest

from dump_channels import DUMPS, DumpHome


def json_of(home: DumpHome, *args: str) -> object:
    proc = home.nixmod(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_search_prints_a_table_and_says_where_it_read_from(dump_home: DumpHome) -> None:
    proc = dump_home.nixmod("search", "rg")
    assert proc.returncode == 0, proc.stderr
    header, first = proc.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "VERSIONS", "CHANNEL", "DESCRIPTION"]
    assert first.startswith("ripgrep") and "14.1.0, 13.0.0" in first and "demo-2025" in first
    # the first run lists the dumps (on stderr: stdout stays the answer); the next is cached
    assert "reading" in proc.stderr and "17 packages from 2 channels" in proc.stderr
    again = dump_home.nixmod("search", "rg")
    assert again.stdout == proc.stdout and again.stderr == ""


def test_search_json_is_ranked_and_limited(dump_home: DumpHome) -> None:
    hits = json_of(dump_home, "search", "demo")
    assert isinstance(hits, list) and len(hits) > 3
    assert json_of(dump_home, "search", "demo", "--limit", "2") == hits[:2]
    assert hits[0]["versions"] and hits[0]["version"] == hits[0]["versions"][0]["version"]
    first = json_of(dump_home, "search", "friendly greeting")
    assert isinstance(first, list) and (first[0]["name"], first[0]["match"]) == ("hello", "description")


def test_search_in_one_channel(dump_home: DumpHome) -> None:
    only_2024 = json_of(dump_home, "search", "hello", "--channel", "demo-2024")
    assert isinstance(only_2024, list)
    assert [(h["version"], [v["channel"] for v in h["versions"]]) for h in only_2024] == [("2.10", ["demo-2024"])]
    assert json_of(dump_home, "search", "cowsay", "--channel", "demo-2024") == []


def test_versions_table_and_json(dump_home: DumpHome) -> None:
    table = dump_home.nixmod("versions", "hello")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "CHANNEL", "ATTRIBUTE"]
    assert lines[1].split()[:2] == ["2.12.1", "demo-2025"] and lines[2].split()[:2] == ["2.10", "demo-2024"]
    hello = json_of(dump_home, "versions", "hello")
    assert isinstance(hello, list)
    assert [(v["version"], v["channel"]) for v in hello] == [("2.12.1", "demo-2025"), ("2.10", "demo-2024")]
    assert hello[0]["license"] == "GPL-3.0-or-later" and hello[0]["outputs"] == ["out"]


def test_the_default_version_follows_the_channel_order(dump_home: DumpHome) -> None:
    dump_home.write_config(("demo-2025", DUMPS / "demo-2025.json"), ("demo-2024", DUMPS / "demo-2024.json"))
    hello = json_of(dump_home, "versions", "hello")
    assert isinstance(hello, list) and [v["channel"] for v in hello] == ["demo-2024", "demo-2025"]


def test_status_with_no_builds(dump_home: DumpHome) -> None:
    proc = dump_home.nixmod("status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no builds yet") and "nixmod build NAME" in proc.stdout
    assert "ID" not in proc.stdout   # no bare header
    assert json_of(dump_home, "status") == []


def test_catalog_info_counts_the_dumps(dump_home: DumpHome) -> None:
    info = json_of(dump_home, "catalog", "info")
    assert isinstance(info, dict) and (info["packages"], info["versions"]) == (17, 24)
    assert [(c["name"], c["kind"], c["packages"], c["error"]) for c in info["channels"]] == [
        ("demo-2024", "dump", 11, ""), ("demo-2025", "dump", 13, "")]


def test_env_list_with_no_environment(dump_home: DumpHome) -> None:
    proc = dump_home.nixmod("env", "list")
    assert proc.returncode == 0 and "no environments yet" in proc.stdout, proc.stderr
    assert json_of(dump_home, "env", "list") == []


def test_help_lists_the_verbs_and_not_the_job_step(dump_home: DumpHome) -> None:
    proc = dump_home.nixmod("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for verb in ("search", "versions", "build", "status", "logs", "cancel", "modules", "doctor"):
        assert f"    {verb}" in proc.stdout, verb
    assert "_job" not in proc.stdout


@pytest.mark.parametrize("args, says", [
    (("versions", "helo"), "unknown package 'helo'; did you mean: hello?"),
    (("search", "  "), "empty search"),
    (("search", "x", "--limit", "0"), "--limit must be at least 1, got 0"),
    (("search", "hello", "--channel", "nope"), "unknown channel 'nope'; channels: demo-2024, demo-2025"),
    (("bogus",), "argument VERB: invalid choice: 'bogus'"),
    (("versions", "hello@2.10"), "unknown package 'hello@2.10'"),   # versions takes a NAME
    (("build", "hello"), "is a saved package list"),
    (("status", "notanumber"), "notanumber"),
    (("env", "create", "sci", "python3Packages.numpy-demo"), "'demo-2025' is a saved package list"),
    (("env", "create", "sci", "python3Packages.numpy-demo", "python311Packages.scipy-demo"),
     "need two interpreters (python3 and python311)"),
    (("env", "create", "a/b", "hello"), "environment name 'a/b' is not usable"),
    (("env", "create", "sci"), "name at least one package"),
    (("env", "show", "nosuch"), "no environment nosuch"),
    (("env", "remove", "nosuch/1"), "no environment nosuch/1"),
])
def test_bad_input_is_one_line_and_exit_2(dump_home: DumpHome, args: tuple[str, ...], says: str) -> None:
    assert dump_home.nixmod("catalog", "info").returncode == 0    # cached: no progress lines below
    proc = dump_home.nixmod(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("nixmod: ") and says in line, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (dump_home.base / "modules").exists()        # nothing half-written
