"""Environments in the TUI on saved package lists, through Textual's pilot: the fast tier.

`e` in Selection asks a name (a modal input), then shows the environment's
plan: the interpreter, each package and where it goes. Saved lists are
browse only, so the plan says it cannot be built here and nothing can be
submitted; making one for real, the Modules screen's environments and `d`
are test_tui_envs.py's, on the rig. Same setup as test_tui_fast.py.
"""

from __future__ import annotations

import asyncio

import pytest

from dump_channels import DumpHome
from nixmod.config import Config
from nixmod.tui.envdialog import EnvNameScreen, EnvPlanScreen
from test_tui_fast import SIZE_IDS, SIZES, keys, pick, quiet_app, wait_until
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
        assert "e one environment of them" in screen_text(app)
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
        assert "name two channels" in text
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
