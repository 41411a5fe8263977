"""The TUI on saved package lists, in-process through Textual's pilot: the fast tier.

No Nix, no daemon, no scheduler, no root: the catalog is the demo's nix-env
dumps (tests/dumps), HOME, state and modules are in tmp_path
(``dump_home``), and the Builds screen shows records written through the
real ``BuildStore`` (the only stand-in for a scheduler, and only here: the
rig's test_tui.py builds for real). What is checked is what a user sees
(``screen_text``) and is told (``WatchedApp.told``), at 80x24 and 120x40.
Saved lists are browse only, so picks are put in the selection directly
(``Selection.toggle``, as test_tui.py's browse-only test puts in "a pick that
got in anyway"); picking with space and submitting for real are
test_tui.py's, on the rig. A query is pasted into the box (``paste_query``):
a key costs the pilot ~0.15 s, and typing key by key is checked once
(``test_in_the_search_box_keys_are_text``).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from dump_channels import DumpHome
from nixmod.builds.state import BuildRecord, BuildStore
from nixmod.config import Config, load_config
from nixmod.lmod import ModuleRequest, write_module
from nixmod.tui.app import NixmodApp
from nixmod.tui.builds import LogScreen
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.help import HelpScreen, key_rows
from nixmod.tui.selection import PlanScreen
from tui_view import WatchedApp, footer_text, notifications, screen_text, settle
from tui_view import wait_until as wait_until_every

SIZES = [(80, 24), (120, 40)]
SIZE_IDS = ["80x24", "120x40"]
#: a store path that looks real but is never valid: a module over it shows "gone"
FAKE_STORE_PATH = "/nix/store/00000000000000000000000000000000-hello-2.10"


@pytest.fixture
def config(dump_home: DumpHome) -> Config:
    """The demo catalog as saved lists; state and modules private to the test."""
    return dump_home.config()


async def keys(pilot, *names: str) -> None:
    """Press ``names`` in order: Textual's pilot lets each key's work (a focus change, a
    search) finish before the next, which is all the fast tier needs (the rig's
    ``tui_view.keys`` also pauses after each, for apps with refresh timers running)."""
    await pilot.press(*names)


async def wait_until(pilot, condition, timeout: float = 20.0) -> None:
    """``tui_view.wait_until``, looking every 50 ms: here nothing waits on a scheduler."""
    await wait_until_every(pilot, condition, timeout, poll=0.05)


def quiet_app(config: Config) -> NixmodApp:
    """No refresh timer: what is on screen does not depend on when a timer fired."""
    return WatchedApp(config, watch_builds=False)


def add_records(config: Config, *records: BuildRecord) -> list[BuildRecord]:
    """Build records as a build would leave them, written through the real store."""
    with BuildStore(config.build.state_dir) as store:
        return [store.add(record) for record in records]


def record(name: str, version: str, state: str, **fields: object) -> BuildRecord:
    now = time.time()
    return BuildRecord(name=name, version=version, channel="demo-2025", attr=name,
                       drv=f"/nix/store/{'0' * 32}-{name}-{version}.drv",
                       out=f"/nix/store/{'1' * 32}-{name}-{version}", state=state,
                       created=now - 90, updated=now - 30, **fields)  # type: ignore[arg-type]


async def paste_query(pilot, text: str, box: str = "#search") -> None:
    """/ and ``text`` in the screen's box at once (a paste): the search or filter runs as for
    typed text; the box keeps the focus (↵ or esc leaves it)."""
    await keys(pilot, "slash")
    pilot.app.screen.query_one(box).value = text
    await settle(pilot)


# -- moved from test_tui.py: their subject is the TUI, not Nix ----------------------------

def test_a_crash_exits_non_zero(config):
    """An unexpected exception ends the app with status 1, so a shell (or a wrapper) sees it."""
    from textual.binding import Binding

    from nixmod.tui.app import exit_status

    class Crashing(NixmodApp):
        BINDINGS = [Binding("x", "crash", "Crash")]

        def action_crash(self) -> None:
            raise RuntimeError("a bug")

    async def press_x(pilot) -> None:
        await pilot.pause(0.5)
        await pilot.press("escape", "x")

    app = Crashing(config, watch_builds=False)
    assert exit_status(app, headless=True, size=(80, 24), auto_pilot=press_x) == 1
    normal = WatchedApp(config, watch_builds=False)

    async def quit_now(pilot) -> None:
        await pilot.pause(0.5)
        await pilot.press("escape", "q")

    assert exit_status(normal, headless=True, size=(80, 24), auto_pilot=quit_now) == 0


def test_bad_channel_keeps_the_app_usable(dump_home, tmp_path):
    asyncio.run(_bad_channel_keeps_the_app_usable(dump_home, tmp_path))


async def _bad_channel_keeps_the_app_usable(dump_home, tmp_path):
    """No catalog: a clear reason; the other screens and the help still work."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "site"\npath = "{tmp_path}/missing"\n'
                           f'[build]\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    app = WatchedApp(load_config(config_file), watch_builds=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "channel site could not be read" in text and "config.toml" in text, text
        assert "Traceback" not in text
        await keys(pilot, "s")                       # submit with nothing picked: a warning
        await keys(pilot, "down", "3")
        await pilot.pause()
        assert app.current_mode == "builds"
        await keys(pilot, "question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"



@pytest.mark.parametrize("where", ["search box", "help screen", "modules screen"])
def test_ctrl_c_quits_from_anywhere(config, where):
    asyncio.run(_ctrl_c_quits_from_anywhere(config, where))


async def _ctrl_c_quits_from_anywhere(config, where):
    """ctrl+c ends the app wherever the user is, even in the search box (where Textual
    would otherwise copy) and on a pushed screen (where it would only hint at ctrl+q)."""
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        if where == "help screen":
            await keys(pilot, "down", "question_mark")
            assert type(app.screen).__name__ == "HelpScreen"
        elif where == "modules screen":
            await keys(pilot, "down", "4")
            assert app.current_mode == "modules"
        else:
            assert type(app.focused).__name__ == "FilterInput"
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code in (0, None)



@pytest.fixture
def saved_config(dump_home, tmp_path):
    """One channel that is a saved package list (nix-env --json): browse only."""
    dump = tmp_path / "saved.json"
    dump.write_text('{"oldtool": {"name": "oldtool-1.2", "pname": "oldtool", "version": "1.2", '
                    '"system": "x86_64-linux", "outputs": {"out": null}, '
                    '"meta": {"description": "A tool from a saved list"}}}')
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "saved"\npath = "{dump}"\n'
                           f'[build]\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    return load_config(config_file)


def test_a_saved_package_list_is_browse_only(saved_config):
    asyncio.run(_browse_only(saved_config))


async def _browse_only(saved_config):
    """Versions say `browse only`, the footer offers no pick or submit, space explains,
    and the plan dialog explains instead of offering a Submit that does nothing."""
    app = WatchedApp(saved_config, watch_builds=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await paste_query(pilot, "oldtool")
        await keys(pilot, "enter", "enter")
        text = screen_text(app)
        assert "browse only" in text and "available" not in text, text
        assert "Pick" not in footer_text(app) and "Submit" not in footer_text(app), footer_text(app)
        await keys(pilot, "space")
        assert len(app.selection) == 0
        assert any("browse only" in m and "cannot be built" in m for m in notifications(app))
        # a pick that got in anyway (the palette, a future path): the dialog explains
        app.selection.toggle(app.catalog.package("oldtool").versions[0])
        app.push_screen(PlanScreen())
        await wait_until(pilot, lambda: "Nothing here can be built" in screen_text(app), timeout=20)
        assert "saved package list" in screen_text(app)
        assert "Submit" not in screen_text(app).split("Nothing here can be built")[1]
        await keys(pilot, "enter")
        assert isinstance(app.screen, PlanScreen) and app.records == []



def test_modules_filter_sort_and_remove(config):
    asyncio.run(_modules_remove(config))


async def _modules_remove(config):
    """d on Modules asks, then does what `nixmod modules remove` does."""
    for version in ("2.10", "2.12.1"):
        write_module(config, ModuleRequest(name="hello", version=version, description="demo",
                                                outputs={"out": FAKE_STORE_PATH}))
    write_module(config, ModuleRequest(name="jq-demo", version="1.7.1", description="demo",
                                            outputs={"out": FAKE_STORE_PATH}))
    modulefile = config.modules.root / "nix" / "hello" / "2.10.lua"
    assert modulefile.exists()
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "4")
        await wait_until(pilot, lambda: len(app.module_rows) == 3)
        text = screen_text(app)
        assert "store path" in text and FAKE_STORE_PATH[:30] in text, text
        await paste_query(pilot, "hello/", "#modules-filter")
        await keys(pilot, "enter")
        assert [r.module for r in app.screen.shown] == ["nix/hello/2.10", "nix/hello/2.12.1"]
        await keys(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen) and "nix/hello/2.10" in screen_text(app)
        await keys(pilot, "escape")
        assert modulefile.exists()
        await keys(pilot, "d", "y")
        await wait_until(pilot, lambda: not modulefile.exists() and len(app.module_rows) == 2)
        assert any("Removed nix/hello/2.10" in m for m in notifications(app))



def test_help_says_there_is_more_below(config):
    asyncio.run(_help_more(config))


async def _help_more(config):
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "f1")
        await pilot.pause()
        assert "more" in screen_text(app), screen_text(app)
        assert "esc" in screen_text(app)
        await keys(pilot, "end")
        await pilot.pause()
        assert "↓ more" not in screen_text(app)



# -- Browse ------------------------------------------------------------------------------
# A pilot session costs about a CPU second and each key about 0.1 s: a test walks through
# several things a user does in one session rather than starting the app for each.

@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_browse_lists_every_package_and_opens_its_versions(config, size):
    asyncio.run(_browse(config, size))


async def _browse(config, size):
    """Every package, the box focused; rg ↵ ↵ opens ripgrep's versions across both
    channels, newest first, each with its channel and `browse only`; esc goes back."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert app.catalog_error == ""
        text = screen_text(app)
        assert "17 packages in 2 channel(s)" in text, text
        assert len(app.screen.result_names) == 17 and app.screen.result_names[0] == "bioinfo-tools"
        assert "demo-2024, demo-2025" in text.splitlines()[0] and "Traceback" not in text
        assert type(app.focused).__name__ == "FilterInput"
        await paste_query(pilot, "rg")
        await keys(pilot, "enter", "enter")
        versions = app.screen.query_one("#versions")
        assert app.focused is versions
        rows = [" ".join(str(cell) for cell in versions.get_row_at(i)) for i in range(versions.row_count)]
        assert len(rows) == 2 and "14.1.0" in rows[0] and "demo-2025" in rows[0], rows
        assert "demo-2024" in rows[1] and all("browse only" in row for row in rows), rows
        assert "2 version(s)" in screen_text(app)
        assert "Pick" not in footer_text(app) and "Submit" not in footer_text(app)
        await keys(pilot, "escape")                       # back from the versions to the results
        assert app.focused is app.screen.query_one("#results")


SEARCHES = [("rg", "ripgrep"), ("ripgrpe", "ripgrep"), ("samt", "samtools"),
            ("friendly greeting", "hello"), ("jq", "jq-demo")]


def test_search_as_you_type_ranks_like_the_catalog(config):
    asyncio.run(_search(config))


async def _search(config):
    """Each query's first result is the catalog's (program, typo, prefix, description);
    the versions cursor starts on the newest of each package opened (numpy ↵ ↵ ↓, then
    samtools ↵ ↵: row 0; test_tui.py picks it too, on channels that can build); a query
    with no match lists nothing and says so without a traceback."""
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for query, first in SEARCHES:
            await paste_query(pilot, query)
            assert app.screen.result_names[0] == first, (query, app.screen.result_names)
        await paste_query(pilot, "numpy")
        await keys(pilot, "enter", "enter", "down")
        assert app.screen.query_one("#versions").cursor_row == 1
        await paste_query(pilot, "samtools")
        await keys(pilot, "enter", "enter")
        assert app.screen.query_one("#versions").cursor_row == 0
        assert "samtools  1.19" in screen_text(app)
        await paste_query(pilot, "zzzzqqqq")
        assert app.screen.result_names == [] and "Traceback" not in screen_text(app)
        await keys(pilot, "escape", "space")              # nothing highlighted: space says why
        assert notifications(app), "space on an empty list told the user nothing"


def test_keys_are_text_in_the_box_and_switch_screens_outside_it(config):
    asyncio.run(_box_and_screen_keys(config))


async def _box_and_screen_keys(config):
    """1 q ? s space typed in the box are text; esc (or ↓) leaves it; then 4 2 3 1 switch
    screens and q quits."""
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        search = app.screen.query_one("#search")
        footer = footer_text(app)
        assert "esc" in footer and "q Quit" not in footer and "? Help" not in footer, footer
        await keys(pilot, "1", "q", "question_mark", "s", "space")
        assert search.value == "1q?s " and app.current_mode == "browse" and app.is_running
        await keys(pilot, "ctrl+a", "ctrl+k", *"hel", "escape")
        assert app.focused is app.screen.query_one("#results")
        assert "q Quit" in footer_text(app)
        await keys(pilot, "escape", "slash")              # esc again stays out; / goes in
        assert app.focused is search and search.value == "hel"
        await keys(pilot, "down")                         # ↓ leaves the box as esc does
        assert app.focused is not search
        for key, mode in (("4", "modules"), ("2", "selection"), ("3", "builds"), ("1", "browse")):
            await keys(pilot, key)
            assert app.current_mode == mode
        await keys(pilot, "escape", "q")
        assert not app.is_running
    assert app.return_code in (0, None)


# -- the screens with nothing in them yet ------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_empty_selection_builds_and_modules_say_what_to_do(config, size):
    asyncio.run(_empty_screens(config, size))


async def _empty_screens(config, size):
    """A new user's Selection, Builds and Modules: how to get something there, and keys
    that have nothing to act on warn instead of failing or opening a dialog."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "2")
        assert "Nothing picked yet" in screen_text(app) and "space" in screen_text(app)
        await keys(pilot, "s")                            # submit nothing: a warning, no dialog
        assert not isinstance(app.screen, PlanScreen) and notifications(app)

        await keys(pilot, "3")
        assert app.current_mode == "builds" and app.records == []
        assert "0 of 0 build(s)" in screen_text(app) or "no builds" in screen_text(app).lower()
        await keys(pilot, "c")
        assert any("can be cancelled" in m for m in notifications(app))
        await keys(pilot, "v")
        assert any("Only a built package can be verified" in m for m in notifications(app))
        await keys(pilot, "l")                            # no build, no log screen
        assert not isinstance(app.screen, LogScreen)

        await keys(pilot, "4")
        assert app.current_mode == "modules" and app.module_rows == []
        await keys(pilot, "L")
        assert any("No built module to lock yet" in m for m in notifications(app))
        await keys(pilot, "d")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Traceback" not in screen_text(app) and app.is_running


# -- Selection and the plan dialog -------------------------------------------------------

def pick(app: NixmodApp, *specs: str) -> None:
    """Put versions in the selection directly (saved lists refuse space)."""
    assert app.catalog is not None
    for spec in specs:
        app.selection.toggle(app.catalog.resolve(spec))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_selection_and_the_plan_dialog(config, size):
    asyncio.run(_selection_and_plan(config, size))


async def _selection_and_plan(config, size):
    """Picks are listed; d removes, u undoes, D clears (c does not), u undoes; s opens the
    plan, which over saved lists says why nothing can be built, per version, and ↵
    submits nothing; esc goes back with the picks kept."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pick(app, "hello", "demo-2024:frob")
        await keys(pilot, "escape", "2")
        text = screen_text(app)
        assert "hello" in text and "2.12.1" in text and "frob" in text and "2.0pre1" in text, text
        assert "2 picked" in text and "Selection (2)" in text
        await keys(pilot, "d")                            # the highlighted (first) pick
        assert [v.name for v in app.selection.items] == ["frob"]
        await keys(pilot, "u")
        assert sorted(v.name for v in app.selection.items) == ["frob", "hello"]
        await keys(pilot, "c")                            # c is cancel (Builds), not clear
        assert len(app.selection) == 2
        await keys(pilot, "D")
        assert len(app.selection) == 0 and "selection 0" in app.sub_title
        assert any("u undoes" in m for m in notifications(app))
        await keys(pilot, "u")
        assert sorted(v.name for v in app.selection.items) == ["frob", "hello"]

        await keys(pilot, "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen)
                         and "Nothing here can be built" in screen_text(app), timeout=20)
        text = screen_text(app)
        assert "Nothing here can be built: demo-2024, demo-2025" in text and "saved package" in text, text
        assert len([line for line in text.splitlines() if "browse only: not built" in line]) == 2, text
        dialog = "\n".join(line for line in text.splitlines() if "█" in line)
        assert "Submit" not in dialog.split("Nothing here can be built")[1], dialog
        await keys(pilot, "enter")
        assert isinstance(app.screen, PlanScreen) and app.records == []
        await keys(pilot, "escape")
        assert not isinstance(app.screen, PlanScreen)
        assert len(app.selection) == 2 and app.records == []


# -- Builds, over records written through the real BuildStore ----------------------------

@pytest.fixture
def three_builds(config) -> list[BuildRecord]:
    """A failed build (with its log), a built one and a cancelled one, oldest first."""
    records = add_records(config,
                          record("hello", "2.12.1", "failed", error="configure: error: missing frobnicator"),
                          record("samtools", "1.19", "built", module="nix/samtools/1.19", node="nb01"),
                          record("frob", "2.0", "cancelled"))
    Path(records[0].log).write_text("nixmod: building hello\nchecking for frobnicator... no\n"
                                    "configure: error: missing frobnicator\n")
    return records


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_builds_show_each_state_the_cause_and_the_log(config, three_builds, size):
    asyncio.run(_builds(config, size))


async def _builds(config, size):
    """Newest first with state, node and count; the failed build's cause on the status
    line and its log in the pane; l opens the whole log, esc comes back; / filters, o sorts."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "3")
        await wait_until(pilot, lambda: len(app.records) == 3, timeout=20)
        text = screen_text(app)
        for word in ("failed", "built", "cancelled", "hello", "samtools", "frob", "nb01"):
            assert word in text, (word, text)
        assert "3 of 3 build(s), 0 in flight" in text
        assert [r.name for r in app.screen.shown] == ["frob", "samtools", "hello"]   # newest first
        for column in ("#", "state", "node"):
            assert column in text.splitlines()[3], text
        screen = app.screen
        await keys(pilot, "G")
        assert screen.highlighted_id == min(r.id for r in app.records)     # the oldest: hello
        flat = " ".join(screen_text(app).split())
        assert "#1 failed: configure: error: missing frobnicator" in flat, flat
        await wait_until(pilot, lambda: "checking for frobnicator" in app.log_text, timeout=20)
        await keys(pilot, "l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen)
                         and "checking for frobnicator" in screen_text(app), timeout=20)
        await keys(pilot, "escape")
        assert app.screen is screen
        await paste_query(pilot, "sam", "#builds-filter")
        await keys(pilot, "enter")
        assert [r.name for r in screen.shown] == ["samtools"] and "1 of 3 build(s)" in screen_text(app)
        await paste_query(pilot, "", "#builds-filter")
        await keys(pilot, "escape", "o")
        assert screen.sort_key == "name" and [r.name for r in screen.shown] == ["frob", "hello", "samtools"]


def test_v_verifies_only_a_built_package_and_c_cancels_only_one_in_flight(config, three_builds):
    asyncio.run(_verify_and_cancel(config))


async def _verify_and_cancel(config):
    """v on each row: a built one is verified (its module is not there: the app says so,
    without a traceback), the others are refused; c on an ended build warns, asks nothing."""
    told = {"frob": "Only a built package can be verified", "samtools": "Could not verify samtools",
            "hello": "Only a built package can be verified"}
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "3")
        await wait_until(pilot, lambda: len(app.records) == 3, timeout=20)
        for row, name in enumerate(["frob", "samtools", "hello"]):
            assert [r.name for r in app.screen.shown][row] == name
            assert app.screen.highlighted_id == next(r.id for r in app.records if r.name == name)
            app.told.clear()
            await keys(pilot, "v")
            await wait_until(pilot, lambda: any(told[name] in m for m in notifications(app)), timeout=20)
            await keys(pilot, "c")
            assert not isinstance(app.screen, ConfirmScreen)
            assert any("can be cancelled" in m for m in notifications(app))
            await keys(pilot, "j")
        assert {r.name: r.state for r in app.records} == {"hello": "failed", "samtools": "built",
                                                          "frob": "cancelled"}
        assert app.is_running


# -- Modules -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_module_whose_store_path_is_gone_says_so(config, size):
    asyncio.run(_module_gone(config, size))


async def _module_gone(config, size):
    """The module, `gone`, its exact load line and where to `module use`; y and u copy
    them; L has nothing valid to lock and writes no lock file."""
    write_module(config, ModuleRequest(name="hello", version="2.10", description="demo",
                                       outputs={"out": FAKE_STORE_PATH}))
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "4")
        await wait_until(pilot, lambda: len(app.module_rows) == 1, timeout=20)
        text = screen_text(app)
        assert "nix/hello/2.10" in text and "gone" in text and "module load nix/hello/2.10" in text, text
        pane = " ".join(text.replace("│", " ").split())
        assert f"first: module use {config.modules.root} (u copies it)" in pane, pane
        await keys(pilot, "y")
        assert app.clipboard == "module load nix/hello/2.10"
        await keys(pilot, "u")
        assert app.clipboard == f"module use {config.modules.root}"
        await keys(pilot, "L")
        assert any("No built module to lock yet" in m for m in notifications(app))
        assert not list(Path.home().glob("nixmod-*.lock"))


# -- help --------------------------------------------------------------------------------

@pytest.mark.parametrize("size, key", [(SIZES[0], "question_mark"), (SIZES[1], "f1")], ids=SIZE_IDS)
def test_help_lists_every_bound_key(config, size, key):
    asyncio.run(_help_lists(config, size, key))


async def _help_lists(config, size, key):
    """? (and f1) open the help made from the bindings: paged through, every row's keys
    and text are on screen, v (verify) and L (lock) among them; esc closes it."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", key)
        assert isinstance(app.screen, HelpScreen)
        seen = screen_text(app)
        dialog = app.screen.query_one("#help-dialog")
        while dialog.scroll_y < dialog.max_scroll_y:
            await keys(pilot, "pagedown")
            seen += "\n" + screen_text(app)
        lines = seen.splitlines()
        for row in key_rows(NixmodApp):
            shown = " ".join(row.keys)
            assert any(shown in line and row.what[:15] in line for line in lines), (row, seen)
        assert any(" v " in line and "verify: rebuild" in line for line in lines), seen
        assert any(" L " in line and "lock the built" in line for line in lines), seen
        await keys(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)


def test_results_below_the_fold_follow_the_first_paint(dump_home, tmp_path):
    asyncio.run(_below_the_fold(dump_home, tmp_path))


async def _below_the_fold(dump_home, tmp_path):
    """60 matches at 80x24: the rows on screen come first, the others after the paint
    (issue 22); once settled every match is in the list and G reaches the last one."""
    listing = tmp_path / "many.json"
    listing.write_text(json.dumps({
        f"tool{index:02d}": {"name": f"tool{index:02d}-1.{index}", "pname": f"tool{index:02d}",
                             "version": f"1.{index}", "system": "x86_64-linux",
                             "outputName": "out", "outputs": {"out": None},
                             "meta": {"description": f"Tool number {index}"}}
        for index in range(60)}))
    dump_home.write_config(("many", listing))
    app = quiet_app(dump_home.config())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await paste_query(pilot, "tool")
        await pilot.pause()
        table = app.screen.query_one("#results")
        assert len(app.screen.result_names) == 60
        await wait_until(pilot, lambda: table.row_count == 60)
        await keys(pilot, "escape", "G")
        await pilot.pause()
        last = app.screen.result_names[-1]
        assert table.cursor_row == 59 and f"{last}  1." in screen_text(app), screen_text(app)
