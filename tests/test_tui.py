"""The TUI, driven like a user drives it: snapshots of every screen, and the main flows.

The app runs in-process (Textual's pilot) as root, against the real Nix
daemon store and the real local backend; HOME and the XDG directories point
at a temporary directory so nothing leaks into the machine's state. The
demo catalog is evaluated once per module with real Nix and cached, so the
snapshots see exactly what a user of ``nixmod --demo`` sees, minus clocks,
job ids and store hashes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest

from nixmod.config import load_config
from nixmod.lmod import ModuleRequest, write_module
from nixmod.tui.app import NixmodApp
from nixmod.tui.browse import BrowseScreen
from nixmod.tui.builds import LogScreen
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.selection import PlanScreen
from tui_view import (WatchedApp, local_channel_config, after, footer_text, keys, notifications, record_of, screen_text, settle,
                      type_query, wait_until)

SIZES = [(80, 24), (120, 40)]
SIZE_IDS = ["80x24", "120x40"]
#: snapshots show paths (modules root, config file): keep them the same on every run
SNAPSHOT_DIR = Path("/tmp/nixmod-tui-snapshot")
#: a store path that looks real but is never valid: deterministic, and shows "gone"
FAKE_STORE_PATH = "/nix/store/00000000000000000000000000000000-hello-2.10"

#: every test here needs the rig (the demo catalog is evaluated by the real nix-daemon)
pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def tui_home(tmp_path_factory) -> Path:
    """A private HOME/XDG for the in-process app, with the demo catalog cached once."""
    base = tmp_path_factory.mktemp("tui")
    names = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "NIXMOD_SITE_CONFIG", "NIXMOD_CONFIG", "NO_COLOR")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(HOME=str(base / "home"), XDG_CACHE_HOME=str(base / "cache"),
                      XDG_CONFIG_HOME=str(base / "config"),
                      NIXMOD_SITE_CONFIG=str(base / "no-site-config.toml"))
    os.environ.pop("NIXMOD_CONFIG", None)
    os.environ.pop("NO_COLOR", None)
    from nixmod.catalog import Catalog

    Catalog.load(load_config(demo=True))
    yield base
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def snapshot_dir(tui_home) -> Path:
    """A fixed, emptied directory for one snapshot test's state, modules and config."""
    shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)
    SNAPSHOT_DIR.mkdir()
    return SNAPSHOT_DIR


@pytest.fixture
def demo_config(snapshot_dir):
    """The demo configuration with state and modules private to one test."""
    config = load_config(demo=True)
    config.build.state_dir = snapshot_dir / "state"
    config.modules.root = snapshot_dir / "modules"
    return config


@pytest.fixture
def own_demo_config(tui_home, tmp_path):
    """The demo configuration with state and modules in this test's own tmp_path (flow
    tests: the fixed snapshot directory may be emptied by a parallel run of the snapshots)."""
    config = load_config(demo=True)
    config.build.state_dir = tmp_path / "state"
    config.modules.root = tmp_path / "modules"
    return config


def quiet_app(config) -> NixmodApp:
    """No refresh timer: a snapshot must not depend on when a timer fired."""
    return WatchedApp(config, watch_builds=False)


# -- snapshots --------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_browse_start(snap_compare, demo_config, size):
    """First screen: every demo package, the first one's versions on the right."""
    assert snap_compare(quiet_app(demo_config), terminal_size=size, run_before=after())


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_browse_search_by_program(snap_compare, demo_config, size):
    """Typing `rg` finds ripgrep by its program; ↵ opens its versions across both channels."""
    assert snap_compare(quiet_app(demo_config), terminal_size=size,
                        run_before=after("r", "g", "enter", "enter"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_selection(snap_compare, demo_config, size):
    """Two picks (the newest hello, the older samtools) listed on the Selection screen."""
    keys = ("h", "e", "l", "l", "o", "down", "space", "slash", "ctrl+a", "ctrl+k",
            *"samtools", "enter", "enter", "down", "space", "2")
    assert snap_compare(quiet_app(demo_config), terminal_size=size, run_before=after(*keys))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_builds_empty(snap_compare, demo_config, size):
    assert snap_compare(quiet_app(demo_config), terminal_size=size, run_before=after("down", "3"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_modules(snap_compare, demo_config, size):
    """A module whose store path is gone says so, with its exact load line."""
    write_module(demo_config, ModuleRequest(name="hello", version="2.10", description="demo",
                                            outputs={"out": FAKE_STORE_PATH}))
    assert snap_compare(quiet_app(demo_config), terminal_size=size, run_before=after("down", "4"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_help(snap_compare, demo_config, size):
    assert snap_compare(quiet_app(demo_config), terminal_size=size, run_before=after("down", "question_mark"))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_snapshot_no_catalog(snap_compare, snapshot_dir, size):
    """A channel path that does not exist: the reason and the fix on screen, no traceback."""
    config_file = snapshot_dir / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "site"\npath = "{snapshot_dir}/no-such-channel"\n'
                           f'[build]\nstate_dir = "{snapshot_dir}/state"\n'
                           f'[modules]\nroot = "{snapshot_dir}/modules"\n')
    config = load_config(config_file)
    assert snap_compare(quiet_app(config), terminal_size=size, run_before=after())


# -- flows on the local backend with real Nix -------------------------------------------

@pytest.fixture
def build_config(tui_home, tmp_path, test_channels, monkeypatch):
    """tests/channels/builds.nix with a fresh nonce: derivations nobody has built yet."""
    monkeypatch.setenv("NIXMOD_TEST_NONCE", uuid.uuid4().hex)
    monkeypatch.setenv("NIXMOD_TEST_SLEEP", "1")
    channel = tmp_path / "channel"
    channel.mkdir()
    shutil.copy(test_channels / "builds.nix", channel / "default.nix")
    return local_channel_config(tmp_path, monkeypatch, "tests", channel)


def test_search_pick_submit_build_module(build_config):
    asyncio.run(_search_pick_submit_build_module(build_config))


async def _search_pick_submit_build_module(build_config):
    """search -> pick version -> plan -> submit -> build appears -> built -> module shown."""
    app = WatchedApp(build_config, refresh_seconds=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.catalog_error == ""
        await type_query(pilot, "slowpkg")
        browse = app.screen
        assert isinstance(browse, BrowseScreen)
        assert browse.result_names[0] == "slowpkg"
        await keys(pilot, "enter", "enter", "space")   # to the results, to its versions, pick
        await pilot.pause()
        assert [(v.name, v.version) for v in app.selection.items] == [("slowpkg", "3.1")]
        assert "selection 1" in app.sub_title

        await type_query(pilot, "failing")
        await keys(pilot, "down", "space")           # newest failing, from the results list
        assert len(app.selection) == 2

        await keys(pilot, "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.plans)
        plan_text = {p.version.name: p.action for p in app.screen.plans}
        assert plan_text == {"slowpkg": "build", "failing": "build"}
        await keys(pilot, "enter")

        await wait_until(pilot, lambda: app.current_mode == "builds" and record_of(app, "slowpkg"))
        assert len(app.selection) == 0
        await wait_until(pilot, lambda: record_of(app, "slowpkg").state == "built"
                         and record_of(app, "failing").state == "failed")
        await wait_until(pilot, lambda: any("slowpkg 3.1: built" in m for m in notifications(app)))
        await wait_until(pilot, lambda: any("failing 0.9: failed" in m for m in notifications(app)))

        # the log of the highlighted (newest) build follows in the log pane
        await wait_until(pilot, lambda: "building" in app.log_text)

        await keys(pilot, "4")
        await wait_until(pilot, lambda: any(r.module == "nix/slowpkg/3.1" for r in app.module_rows))
        await pilot.pause()
        row = next(r for r in app.module_rows if r.module == "nix/slowpkg/3.1")
        assert row.load_line == "module load nix/slowpkg/3.1"
        assert row.valid and row.path_entries, row
        assert "module load nix/slowpkg/3.1" in screen_text(app)
        await keys(pilot, "y")
        assert app.clipboard == "module load nix/slowpkg/3.1"

        # Browse now tells that this version is a module
        await keys(pilot, "1")
        await type_query(pilot, "slowpkg")
        versions = app.screen.query_one("#versions")
        assert any("module nix/slowpkg/3.1" in str(cell) for cell in versions.get_row_at(0))


def test_cancel_a_running_build(build_config, monkeypatch):
    asyncio.run(_cancel_a_running_build(build_config, monkeypatch))


async def _cancel_a_running_build(build_config, monkeypatch):
    """c asks first: n (or esc) leaves the build running, y cancels it."""
    monkeypatch.setenv("NIXMOD_TEST_SLEEP", "60")
    app = WatchedApp(build_config, refresh_seconds=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_query(pilot, "pkg7")
        await keys(pilot, "down", "space", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.plans)
        await keys(pilot, "enter")
        await wait_until(pilot, lambda: record_of(app, "pkg7") is not None
                         and record_of(app, "pkg7").state == "running")
        await keys(pilot, "c")
        assert isinstance(app.screen, ConfirmScreen), app.screen
        assert "Cancel build #" in screen_text(app) and "pkg7" in screen_text(app)
        await keys(pilot, "n")
        await pilot.pause(1.5)                       # a refresh or two: still running
        assert record_of(app, "pkg7").state == "running"
        await keys(pilot, "c", "y")
        await wait_until(pilot, lambda: record_of(app, "pkg7").state == "cancelled", timeout=30)
        assert any("Cancelled build" in m for m in notifications(app))
        # nothing to cancel any more: a warning, not a crash
        await keys(pilot, "c")
        await pilot.pause()
        assert any("can be cancelled" in m for m in notifications(app))
        assert not isinstance(app.screen, ConfirmScreen)


def test_retry_a_failed_build_and_see_why_it_failed(build_config):
    asyncio.run(_retry_a_failed_build(build_config))


async def _retry_a_failed_build(build_config):
    """A failed build's toast and status line give the cause, not the log's first line;
    r resubmits it from the Builds screen (this crashed with an AttributeError once)."""
    app = WatchedApp(build_config, refresh_seconds=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_query(pilot, "failing")
        await keys(pilot, "down", "space", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.plans)
        await keys(pilot, "enter")
        await wait_until(pilot, lambda: record_of(app, "failing") is not None
                         and record_of(app, "failing").state == "failed")
        cause = "error: failing is built to fail (missing frobnicator)"
        await wait_until(pilot, lambda: any(f"failing 0.9: failed: {cause}" in m for m in notifications(app)))
        assert not any("nixmod: building" in m for m in notifications(app))
        await wait_until(pilot, lambda: f"failed: {cause}" in screen_text(app))
        first_id = record_of(app, "failing").id
        await keys(pilot, "r")
        await wait_until(pilot, lambda: any("Resubmitted failing 0.9" in m for m in notifications(app)))
        assert app.is_running and app.return_code is None
        await wait_until(pilot, lambda: record_of(app, "failing").state in ("pending", "queued", "running"))
        await wait_until(pilot, lambda: record_of(app, "failing").state == "failed")
        assert record_of(app, "failing").id == first_id          # the same build, run again
        await keys(pilot, "1", "escape", "r")            # r elsewhere is not retry: nothing happens
        assert app.is_running


def test_a_store_notice_is_told_on_the_screen(own_demo_config):
    asyncio.run(_store_notice_is_told(own_demo_config))


async def _store_notice_is_told(config):
    """A notice of the core that the CLI prints as a warning on stderr (GC roots of the old
    layout that could not be moved) reaches a TUI user as a notification: the TUI's stderr
    is under its screen. The old root is kept."""
    state = Path(config.build.state_dir)
    roots = state / "gcroots"
    roots.mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    old = roots / "hello-2.10"
    old.symlink_to("/etc")            # not a store path: registering it again fails
    app = WatchedApp(config, watch_builds=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        [told] = [text for text in notifications(app) if "GC roots" in text]
        assert told.startswith(f"GC roots in {roots} could not all be moved to the new layout"), told
        assert "the old ones are kept" in told, told
    assert old.is_symlink()


def test_tui_quits_when_its_terminal_hangs_up(alice):
    """A real user's `nixmod` on a real pty: the terminal goes away with no SIGHUP
    delivered (as under runuser or su), and the app must end, not spin on the dead tty."""
    import select
    import subprocess

    from rig import NIXMOD

    master, slave = os.openpty()
    env = [f"{k}={v}" for k, v in (alice.env() | {"TERM": "xterm-256color"}).items()]
    proc = subprocess.Popen(["runuser", "-u", alice.user, "--", "env", "-i", *env, str(NIXMOD), "--demo"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            cwd=str(alice.home))
    os.close(slave)
    try:
        seen = b""
        while b"Browse" not in seen and proc.poll() is None:
            ready, _w, _x = select.select([master], [], [], 60)
            assert ready, "the TUI drew nothing within a minute"
            seen += os.read(master, 65536)
        assert proc.poll() is None, seen[-500:]
    finally:
        os.close(master)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)   # runuser and the app: the new session's process group
        raise AssertionError("the TUI kept running after its terminal hung up")
    assert code == 0


def test_a_version_that_cannot_name_a_module_is_refused_in_the_plan(tui_home, tmp_path, test_channels,
                                                                      monkeypatch):
    asyncio.run(_version_that_cannot_name_a_module(tui_home, tmp_path, test_channels, monkeypatch))


async def _version_that_cannot_name_a_module(tui_home, tmp_path, test_channels, monkeypatch):
    """Picking a package without a version and pressing s says why it cannot be built,
    in the plan dialog, and nothing is submitted."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "odd"\npath = "{test_channels}/catalog-odd.nix"\n'
                           f'[build]\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    app = WatchedApp(load_config(config_file), watch_builds=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_query(pilot, "noversion")
        await keys(pilot, "down", "space", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen)
                         and "cannot build noversion" in screen_text(app), timeout=20)
        assert not app.screen.plans and "Traceback" not in screen_text(app)
        await keys(pilot, "escape")
        assert app.records == [] and not (tmp_path / "modules").exists()


def test_nix_missing_names_the_machine_not_the_config(tui_home, tmp_path, monkeypatch):
    asyncio.run(_nix_missing_names_the_machine_not_the_config(tmp_path, monkeypatch))


async def _nix_missing_names_the_machine_not_the_config(tmp_path, monkeypatch):
    """A first start with nix-env not on PATH (the nix module not loaded yet)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # nothing cached: must evaluate
    app = WatchedApp(load_config(demo=True), watch_builds=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        # the detail pane (right of the divider), unwrapped
        detail = " ".join(" ".join(line.split("▏", 1)[1] for line in text.splitlines()
                                   if "▏" in line).split())
        assert "'nix-env' not found on PATH; install Nix" in detail, text
        assert "start nixmod again" in detail and "[[channels]]" not in detail, text
        assert "Traceback" not in text


# -- what a new user hit first (issue 10) ------------------------------------------------

def test_versions_cursor_starts_on_the_newest_of_each_package(own_demo_config):
    asyncio.run(_versions_cursor_resets(own_demo_config))


async def _versions_cursor_resets(own_demo_config):
    """numpy ↵ ↵ ↓, then / samtools ↵ ↵ space: the pick is 1.19, the newest the header names."""
    app = quiet_app(own_demo_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_query(pilot, "numpy")
        await keys(pilot, "enter", "enter", "down")
        assert app.screen.query_one("#versions").cursor_row == 1
        await type_query(pilot, "samtools")
        await keys(pilot, "enter", "enter")
        assert "samtools  1.19" in screen_text(app)
        await keys(pilot, "space")
        assert [(v.name, v.version) for v in app.selection.items] == [("samtools", "1.19")]


def test_search_box_takes_text_only_while_focused(own_demo_config):
    asyncio.run(_search_box_model(own_demo_config))


async def _search_box_model(own_demo_config):
    """/ focuses the box, esc and ↵ leave it; in it every key is text and the footer says
    only what works there; outside it the screen keys work and esc never goes back in."""
    app = quiet_app(own_demo_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        search = app.screen.query_one("#search")
        assert app.focused is search
        footer = footer_text(app)
        assert "esc" in footer and "Pick" not in footer and "Submit" not in footer
        assert "q Quit" not in footer and "? Help" not in footer, footer
        await keys(pilot, "1", "q", "question_mark", "s", "space")
        assert search.value == "1q?s " and app.current_mode == "browse" and app.is_running
        await keys(pilot, "ctrl+a", "ctrl+k", *"hel", "escape")
        assert app.focused is app.screen.query_one("#results")
        assert "space Pick" in footer_text(app) and "q Quit" in footer_text(app)
        await keys(pilot, "escape", "slash")              # esc again stays out; / goes in
        assert app.focused is search and search.value == "hel"
        await keys(pilot, "end", *"lo")                  # the text is selected on /: end keeps it
        await settle(pilot)
        await pilot.press("enter", "enter")               # two quick ↵: results, then versions
        await settle(pilot)
        assert app.focused is app.screen.query_one("#versions"), app.focused
        assert search.value == "hello"
        await keys(pilot, "2")
        assert app.current_mode == "selection"
        await keys(pilot, "question_mark")
        assert "esc leaves the box" in screen_text(app) or "esc" in screen_text(app)


#: a channel whose evaluation takes seconds (a long fold before the package set)
SLOW_CHANNEL = """{ system ? builtins.currentSystem }:
let n = builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 4000000);
in if n < 0 then { } else {
  slowpoke = (derivation { name = "slowpoke-1.0"; inherit system; builder = "/bin/sh";
                           args = [ "-c" "echo > $out" ]; }) // { meta.description = "Slow"; };
}
"""


def test_space_while_the_catalog_loads_says_so(tui_home, tmp_path, monkeypatch):
    asyncio.run(_space_while_loading(tmp_path, monkeypatch))


async def _space_while_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # nothing cached: it evaluates
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "default.nix").write_text(SLOW_CHANNEL)
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "slow"\npath = "{tmp_path}/slow"\n'
                           f'[build]\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    app = WatchedApp(load_config(config_file), watch_builds=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "escape", "space")
        assert app.catalog is None, "the catalog was in before the keys: test needs a slower start"
        assert any("still loading" in m for m in notifications(app)), notifications(app)
        assert not any("search for a package first" in m for m in notifications(app))
        await settle(pilot)


def test_selection_clear_is_another_key_and_undoable(own_demo_config):
    asyncio.run(_selection_clear_and_undo(own_demo_config))


async def _selection_clear_and_undo(own_demo_config):
    app = quiet_app(own_demo_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_query(pilot, "hello")
        await keys(pilot, "enter", "space")
        await type_query(pilot, "samtools")
        await keys(pilot, "enter", "space", "2")
        assert len(app.selection) == 2
        await keys(pilot, "c")                            # c is cancel (Builds), not clear
        assert len(app.selection) == 2
        await keys(pilot, "D")
        assert len(app.selection) == 0 and "selection 0" in app.sub_title
        assert any("u undoes" in m for m in notifications(app))
        await keys(pilot, "u")
        assert [v.name for v in app.selection.items] == ["hello", "samtools"]
        await keys(pilot, "d", "u")
        assert len(app.selection) == 2


def test_builds_keep_the_highlighted_build_and_the_log_stays_put(own_demo_config):
    asyncio.run(_builds_highlight_and_log(own_demo_config))


async def _builds_highlight_and_log(own_demo_config):
    """The highlight follows a build, not a row, when builds appear above it; a submit
    from the TUI highlights the new build; the log pane stays where the user scrolled,
    and l shows the whole log."""
    from nixmod import builds
    from nixmod.catalog import Catalog

    catalog = Catalog.load(own_demo_config)
    first = builds.submit(own_demo_config, builds.plan(own_demo_config, [catalog.resolve("broken"),
                                                                 catalog.resolve("hello")]))
    builds.wait(own_demo_config, [r.id for r in first])
    broken = next(r for r in first if r.name == "broken")
    log = Path(broken.log)
    log.write_text(log.read_text() + "".join(f"line {i} of a long log\n" for i in range(300)))
    app = WatchedApp(own_demo_config, refresh_seconds=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "3")
        await wait_until(pilot, lambda: len(app.records) == 2)
        screen = app.screen
        await keys(pilot, "j")                    # newest first: hello, then broken
        await keys(pilot, "k", "G")
        assert screen.highlighted_id == min(r.id for r in first)
        await keys(pilot, "g", "j")
        assert screen.highlighted_id == broken.id
        await wait_until(pilot, lambda: "line 299 of a long log" in app.log_text)
        # a build appears from elsewhere (the CLI): the cursor and the log stay on broken
        more = builds.submit(own_demo_config, builds.plan(own_demo_config, [catalog.resolve("jq-demo")]))
        await wait_until(pilot, lambda: any(r.id == more[0].id for r in app.records))
        await pilot.pause(0.7)
        assert screen.highlighted_id == broken.id and app.followed_build == broken.id
        assert screen.query_one("#builds").cursor_row == 2
        # scroll the log pane back; new lines must not pull it down again
        pane = screen.query_one("#log")
        pane.focus()
        await keys(pilot, "home")
        assert pane.scroll_y == 0
        with log.open("a") as handle:
            handle.write("a new line at the end\n")
        await wait_until(pilot, lambda: "a new line at the end" in app.log_text)
        await pilot.pause(0.7)
        assert pane.scroll_y == 0, "the log pane jumped back to the bottom"
        await keys(pilot, "end")
        with log.open("a") as handle:
            handle.write("another line\n")
        await wait_until(pilot, lambda: "another line" in app.log_text)
        await pilot.pause(0.5)
        assert pane.is_vertical_scroll_end           # at the bottom it follows
        # the whole log, full-screen
        await keys(pilot, "shift+tab", "l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen)
                         and app.screen.query_one("#whole-log").line_count > 300)
        await keys(pilot, "g")
        assert "nixmod: building broken" in screen_text(app)
        await keys(pilot, "escape")
        assert app.screen is screen
        # a submit from the TUI highlights the new build
        await keys(pilot, "1", "slash", *"zlib", "enter", "space", "s")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.plans)
        await keys(pilot, "enter")
        await wait_until(pilot, lambda: app.current_mode == "builds" and record_of(app, "zlib-demo"))
        await pilot.pause(0.5)
        assert app.screen.highlighted_id == record_of(app, "zlib-demo").id
        assert app.followed_build == record_of(app, "zlib-demo").id
        # filter and sort
        await keys(pilot, "slash", *"broken", "enter")
        assert [r.name for r in app.screen.shown] == ["broken"]
        await keys(pilot, "slash", "ctrl+a", "ctrl+k", "escape", "o")
        assert app.screen.sort_key == "name"
        assert [r.name for r in app.screen.shown][0] == "broken"


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_layout_keeps_what_matters_visible(own_demo_config, tmp_path, size):
    asyncio.run(_layout(own_demo_config, tmp_path, size))


async def _layout(own_demo_config, tmp_path, size):
    """Column priorities: description and # (results), state (versions), state, elapsed and
    node (Builds) stay on screen; the header shows the selection with five channels; the
    package count is names (as `catalog info` counts) and matches the list."""
    from dataclasses import replace

    from nixmod import builds
    from nixmod.catalog import Catalog

    catalog = Catalog.load(own_demo_config)
    done = builds.submit(own_demo_config, builds.plan(own_demo_config, [catalog.resolve("broken")]))
    builds.wait(own_demo_config, [r.id for r in done])
    app = WatchedApp(own_demo_config, watch_builds=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = screen_text(app)
        listed = len(app.screen.result_names)
        assert f"{len(catalog)} packages in" in text and listed == len(catalog), text
        header, first = text.splitlines()[3:5]
        assert "name" in header and "#" in header and ("description" in header or "about" in header), header
        assert "version" in header and "2025.01" in first and "A bundle" in first, first
        await type_query(pilot, "samtools")
        await keys(pilot, "enter")
        assert "state" in screen_text(app) and "available" in screen_text(app)
        await keys(pilot, "3")
        text = screen_text(app)
        for column in ("#", "state", "elapsed", "node"):
            assert column in text.splitlines()[3], text
    five = [replace(own_demo_config.channels[i % 2], name=f"nixpkgs-{year}")
            for i, year in enumerate((2021, 2022, 2023, 2024, 2025))]
    wide = replace(own_demo_config, channels=five)
    app = WatchedApp(wide, watch_builds=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        assert "selection 0" in screen_text(app).splitlines()[0]


def test_keys_typed_ahead_of_the_search_act_on_its_result(own_demo_config):
    asyncio.run(_typed_ahead(own_demo_config))


async def _typed_ahead(own_demo_config):
    """A quick typist: `samtools ↵ ↵ space` with no pause opens and picks samtools, never
    the row that was on top before the search came back."""
    app = quiet_app(own_demo_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        from textual import events

        # all at once, as a terminal delivers a burst: no waiting between keys
        for key, char in [*((c, c) for c in "samtools"), ("enter", "\r"), ("enter", "\r"), ("space", " ")]:
            app.post_message(events.Key(key, char))
        await settle(pilot)
        assert [(v.name, v.version) for v in app.selection.items] == [("samtools", "1.19")], (
            app.focused, app.screen.pending, app.screen.shown_query, app.screen.query_one("#search").value,
            notifications(app))
        assert app.focused is app.screen.query_one("#versions")


def test_the_check_now_key_asks_at_most_once_per_five_seconds_and_says_so(own_demo_config):
    """f5 on Builds asks the scheduler now; pressed again within 5 s it says when it may
    ask again instead of asking (a key held down must not become an squeue loop)."""
    async def run() -> None:
        app = WatchedApp(own_demo_config, watch_builds=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await keys(pilot, "down", "3", "f5")   # out of the search box, to Builds
            await wait_until(pilot, lambda: any("Asking the scheduler" in t
                                                for t in notifications(app)))
            await keys(pilot, "f5")
            await wait_until(pilot, lambda: any("f5 asks again in" in t
                                                for t in notifications(app)))
            refused = [t for t in notifications(app) if "f5 asks again in" in t][0]
            assert "at most once per 5 s" in refused, refused
            assert len([t for t in notifications(app) if "Asking the scheduler" in t]) == 1
    asyncio.run(run())
