"""The TUI's plain-Python model (tui/model.py): no terminal, no rig, any user.

What the screens show is worked out here; these pin the rules a user
relies on (what a version's status says, which builds a filter keeps, how
sorting orders them, when a build "finished", how undo works) without
starting Textual. test_tui.py drives the same through the real app.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nixmod.builds.state import BuildRecord
from nixmod.packages import Package, PackageVersion
from nixmod.config import Config
from nixmod.lmod import ModuleInfo, path_entries
from nixmod.tui import model


def version(name: str = "hello", ver: str = "2.12.1", channel: str = "new") -> PackageVersion:
    return PackageVersion(name=name, version=ver, channel=channel, attr=name)


def record(id: int, name: str = "hello", ver: str = "2.12.1", state: str = "built", **kw) -> BuildRecord:
    return BuildRecord(id=id, name=name, version=ver, channel="new", attr=name, state=state, **kw)


def module_row(name: str, ver: str, valid: bool = True) -> model.ModuleRow:
    return model.ModuleRow(module=f"nix/{name}/{ver}", name=name, version=ver, valid=valid,
                           store_path="/nix/store/x", use_line="", load_line="", path_entries=())


def test_selection_is_one_pick_per_version_and_undo_puts_back_what_went() -> None:
    selection = model.Selection()
    assert selection.toggle(version()) is True
    assert selection.toggle(version(channel="old")) is True
    assert len(selection) == 2 and version() in selection
    assert selection.toggle(version()) is False          # the same version again: taken out
    assert [v.channel for v in selection.items] == ["old"]
    assert selection.clear() == 1 and len(selection) == 0
    assert selection.undo() is True and [v.channel for v in selection.items] == ["old"]
    assert selection.remove_at(5) is None
    selection.forget()
    assert len(selection) == 0 and selection.undo() is False


def test_a_version_status_prefers_the_module_then_the_newest_record() -> None:
    v = version()
    assert model.version_status(v, [], []) == ""
    records = [record(1, state="failed"), record(2, state="running", job="41_0")]
    assert model.version_status(v, records, []) == "running (job 41_0)"
    assert model.version_status(v, records, [module_row("hello", "2.12.1")]) == "module nix/hello/2.12.1"
    assert model.version_status(v, records, [module_row("hello", "2.12.1", valid=False)]) == \
        "module nix/hello/2.12.1 (store path gone)"
    assert model.version_status(version(ver="2.10"), records, []) == ""


def test_a_saved_list_channel_is_browse_only_unless_something_is_built() -> None:
    package = Package("hello", [version(), version(ver="2.10", channel="dump")])
    rows = model.version_rows(package, [], [], model.Selection(), frozenset({"dump"}))
    assert [(r.version.channel, r.status) for r in rows] == [("new", ""), ("dump", model.BROWSE_ONLY)]


def test_builds_filter_by_every_word_and_sort_by_name_state_or_newest() -> None:
    records = [record(1, "hello", state="built"), record(2, "ripgrep", "14.1.0", state="failed", node="nb01"),
               record(3, "samtools", "1.19", state="running", job="7_0")]
    assert [r.id for r in model.filter_records(records, "nb01 FAILED")] == [2]
    assert [r.id for r in model.filter_records(records, "7_0")] == [3]
    assert [r.id for r in model.filter_records(records, "")] == [1, 2, 3]
    assert [r.id for r in model.sort_records(records, "newest")] == [3, 2, 1]
    assert [r.id for r in model.sort_records(records, "name")] == [1, 2, 3]
    assert [r.id for r in model.sort_records(records, "state")] == [3, 2, 1]


def test_only_a_change_to_an_end_state_is_news() -> None:
    before = [record(1, state="queued"), record(2, state="running"), record(3, state="built")]
    after = [record(1, state="running"), record(2, state="failed"), record(3, state="built"),
             record(4, state="built")]
    assert [r.id for r in model.build_transitions(before, after)] == [2]


def test_elapsed_reads_like_a_clock() -> None:
    assert model.elapsed(record(1, created=0.0), 100.0) == ""
    assert model.elapsed(record(1, state="running", created=1000.0), 1012.0) == "12s"
    assert model.elapsed(record(1, state="built", created=1000.0, updated=1185.0), 9999.0) == "3m05s"
    assert model.elapsed(record(1, state="running", created=1000.0), 1000.0 + 3720) == "1h02m"


@pytest.mark.parametrize("shims,expected", [(["hello"], True), ([], False)])
def test_path_entries_are_the_shim_bin_only_when_it_holds_programs(tmp_path: Path, shims: list[str],
                                                                   expected: bool) -> None:
    config = Config()
    config.modules.root = tmp_path / "modules"
    bin_dir = tmp_path / "modules.shims" / config.modules.prefix / "hello" / "2.12.1" / "bin"
    bin_dir.mkdir(parents=True)
    for name in shims:
        (bin_dir / name).write_text("#!/bin/sh\n")
    info = ModuleInfo(module="nix/hello/2.12.1", name="hello", version="2.12.1",
                      path=tmp_path / "modules" / "nix" / "hello" / "2.12.1.lua")
    assert path_entries(config, info) == ((str(bin_dir),) if expected else ())


def test_modules_sort_by_size_largest_first_and_by_last_load_longest_unused_first() -> None:
    rows = [module_row("a", "1"), module_row("b", "1"), module_row("c", "1"), module_row("d", "1")]
    disk = model.DiskTotals(modules={
        "nix/a/1": model.ModuleDisk(closure_size=10, only_size=10, last_load=300.0),
        "nix/b/1": model.ModuleDisk(closure_size=30, only_size=0, last_load=None),
        "nix/c/1": model.ModuleDisk(closure_size=20, only_size=5, last_load=100.0),
    }, total_size=60, only_size=15)
    # d has no sizes yet (du has not reached it): last in either order
    assert [r.name for r in model.sort_modules(rows, "size", disk)] == ["b", "c", "a", "d"]
    assert [r.name for r in model.sort_modules(rows, "last load", disk)] == ["b", "c", "a", "d"]
    assert [r.name for r in model.sort_modules(rows, "size", None)] == ["a", "b", "c", "d"]
    assert "size" in model.MODULE_SORTS and "last load" in model.MODULE_SORTS
