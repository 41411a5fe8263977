"""Environments in the TUI on saved package lists, through Textual's pilot: the fast tier.

`e` in Selection asks a name (a modal input), then shows the environment's
plan: the interpreter, each package and where it goes. Saved lists are
browse only, so the plan says it cannot be built here and nothing can be
submitted; making one for real, the Modules screen's environments and `d`
are test_tui_envs.py's, on the rig. Same setup as test_tui_fast.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dump_channels import DumpHome
from nixmod.config import Config
from nixmod.lmod import ModuleRequest, environment_config, write_module
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.envdialog import EnvNameScreen, EnvPlanScreen
from test_tui_fast import FAKE_STORE_PATH, SIZE_IDS, SIZES, keys, paste_query, pick, quiet_app, wait_until
from tui_view import footer_text, notifications, screen_text, settle


@pytest.fixture
def config(dump_home: DumpHome) -> Config:
    """The demo catalog as saved lists; state and modules private to the test."""
    return dump_home.config()


async def name_it(pilot, name: str) -> None:
    """The name typed into the dialog's box at once (a paste), then ↵."""
    pilot.app.screen.query_one("#env-name").value = name
    await settle(pilot)
    await keys(pilot, "enter")


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_e_asks_a_name_then_shows_the_plan(config, size):
    asyncio.run(_name_then_plan(config, size))


async def _name_then_plan(config, size):
    """e opens the name dialog; a name that cannot be a module is refused in the dialog; a good
    one opens the plan: interpreter, the packages and where each goes, and, over saved lists,
    why it cannot be built; ↵ submits nothing there and esc goes back with the picks kept."""
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pick(app, "python3Packages.numpy-demo", "python3Packages.requests-demo", "jq-demo")
        await keys(pilot, "escape", "2")
        assert "e environment · d remove" in screen_text(app)
        await keys(pilot, "e")
        assert isinstance(app.screen, EnvNameScreen)
        assert "An environment of the 3 pick(s)" in screen_text(app)
        await name_it(pilot, "../sci")
        assert isinstance(app.screen, EnvNameScreen)
        assert "name '../sci' is not usable as a module name" in screen_text(app), screen_text(app)
        await name_it(pilot, "sci")
        assert isinstance(app.screen, EnvPlanScreen)
        await wait_until(pilot, lambda: "cannot be built from it" in screen_text(app))
        text = screen_text(app)
        assert "Make environment sci?" in text and "interpreter python3" in text, text
        assert "module nixenv/sci" in text and "channel demo-2025" in text, text
        rows = {line.split()[1]: line for line in text.splitlines()
                if "Packages." in line or "jq-demo" in line}
        assert "python3.withPackages" in rows["python3Packages.numpy-demo"], rows
        assert "python3.withPackages" in rows["python3Packages.requests-demo"], rows
        assert "beside it (buildEnv)" in rows["jq-demo"], rows
        assert "saved package list" in text and "browse-only" in text, text
        assert "Make it" not in footer_text(app)
        await keys(pilot, "enter")
        assert isinstance(app.screen, EnvPlanScreen) and app.records == []
        await keys(pilot, "escape")
        assert not isinstance(app.screen, (EnvPlanScreen, EnvNameScreen))
        assert len(app.selection) == 3 and app.records == []


def test_picks_of_two_channels_are_refused_naming_both(config):
    asyncio.run(_two_channels(config))


async def _two_channels(config):
    """The plan says, in one line, which two picks name two channels; esc goes back."""
    app = quiet_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pick(app, "demo-2024:python3Packages.numpy-demo", "python3Packages.requests-demo")
        await keys(pilot, "escape", "2", "e")
        await name_it(pilot, "mixed")
        await wait_until(pilot, lambda: "⚠" in screen_text(app))
        text = " ".join(screen_text(app).replace("█", " ").split())   # the dialog wraps the line
        assert "demo-2024:python3Packages.numpy-demo@1.24.0 and demo-2025:" in text, text
        assert "name two channels" in text and "goes into" not in text   # no empty plan table
        await keys(pilot, "escape")
        assert len(app.selection) == 2


def test_e_with_nothing_picked_says_what_to_do(config):
    asyncio.run(_nothing_picked(config))


async def _nothing_picked(config):
    app = quiet_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "escape", "2", "e")
        assert not isinstance(app.screen, EnvNameScreen)
        assert any("pick packages in Browse" in m for m in notifications(app))


# -- the user's environments: Modules lists them, d removes one, Browse says which hold a package

def write_generations(config: Config) -> Path:
    """Two generations of environment sci, as `env create` and `env add` write them (through
    the core's module writer, over a store path that is never valid); the path of the newest."""
    numpy = {"name": "python3Packages.numpy-demo", "version": "2.1.0", "channel": "demo-2025",
             "attr": "python3Packages.numpy-demo"}
    jq = {"name": "jq-demo", "version": "1.7.1", "channel": "demo-2025", "attr": "jq-demo"}
    tree = environment_config(config)
    for generation, members in (("1", [numpy]), ("2", [jq, numpy])):
        write_module(tree, ModuleRequest(name="sci", version=generation, channel="demo-2025",
                                         description="environment", interpreter="python3",
                                         packages=members, outputs={"out": FAKE_STORE_PATH}))
    newest = config.modules.root / config.modules.env_prefix / "sci" / "2.lua"
    assert newest.exists()
    return newest


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_modules_lists_environments_and_d_removes_a_generation(config, size):
    asyncio.run(_modules_environments(config, size))


async def _modules_environments(config, size):
    """Each generation is a row (nixenv/sci/1, nixenv/sci/2); the detail says which generation
    of which, and its packages; d asks, then removes that generation only."""
    newest = write_generations(config)
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        app.refresh_state()
        await keys(pilot, "escape", "4")
        await wait_until(pilot, lambda: len(app.env_rows) == 2)
        await settle(pilot)
        await paste_query(pilot, "sci/2", "#modules-filter")
        await keys(pilot, "enter")
        assert [r.module for r in app.screen.shown] == ["nixenv/sci/2"]
        text = screen_text(app)
        assert "module load nixenv/sci/2" in text, text
        assert "Environment sci, generation 2 of 1, 2" in " ".join(text.split()), text
        assert "jq-demo 1.7.1" in text and "python3Packages.numpy-demo 2.1.0" in text, text
        await keys(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await settle(pilot)
        assert "Remove nixenv/sci/2?" in screen_text(app) and "the other generations stay" in screen_text(app)
        await keys(pilot, "y")
        await wait_until(pilot, lambda: not newest.exists() and len(app.env_rows) == 1)
        assert any("Removed nixenv/sci/2" in m for m in notifications(app))
        assert (newest.parent / "1.lua").exists()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_browse_says_which_environments_hold_a_package(config, size):
    """At 80x24 too: the detail pane is short there, so the line comes first."""
    asyncio.run(_browse_holding(config, size))


async def _browse_holding(config, size):
    write_generations(config)
    app = quiet_app(config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: len(app.env_rows) == 2 and app.catalog is not None)
        await paste_query(pilot, "numpy-demo")
        await keys(pilot, "enter")
        await wait_until(pilot, lambda: "in your envs" in screen_text(app))
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if "in your envs" in line)
        shown = lines[at] + lines[at + 1].split("▏")[-1]   # at 80 columns it wraps once
        assert "nixenv/sci/2," in shown and "nixenv/sci/1" in shown, shown
        await paste_query(pilot, "jq-demo")
        await keys(pilot, "enter")
        await wait_until(pilot, lambda: "in your envs" in screen_text(app))
        line = next(line for line in screen_text(app).splitlines() if "in your envs" in line)
        assert "nixenv/sci/2" in line and "sci/1" not in line, line


def test_a_name_the_user_has_is_refused_in_the_plan(config):
    asyncio.run(_name_taken(config))


async def _name_taken(config):
    """e with the name of an environment the user has: the plan says so, as env create does."""
    write_generations(config)
    app = quiet_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        pick(app, "jq-demo")
        await keys(pilot, "escape", "2", "e")
        await name_it(pilot, "sci")
        await wait_until(pilot, lambda: "⚠" in screen_text(app))
        text = " ".join(screen_text(app).replace("█", " ").split())
        assert "environment sci exists; 'nixmod env add sci SPEC...' makes its next generation" in text
        assert "Make it" not in footer_text(app)
