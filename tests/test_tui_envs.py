"""Environments in the TUI with real Nix: e in Selection builds one, Modules lists and removes
it, Browse says which environment holds a package.

In-process (Textual's pilot) as root, on the local backend, as test_tui.py's flows are;
the channel is tests/channels/envs.nix (the demo's nixpkgs shape: python3 with
withPackages, importable python3Packages) with a fresh nonce, so the environment is
really built. The same as a real user in tmux: see the report of issue 20's TUI part.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from nixmod.tui.browse import BrowseScreen
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.envdialog import EnvNameScreen, EnvPlanScreen
from test_tui import tui_home  # noqa: F401 (fixture: a private HOME with the demo catalog cached)
from tui_view import (WatchedApp, keys, local_channel_config, notifications, record_of, screen_text,
                      settle, type_query, wait_until)

pytestmark = pytest.mark.rig


@pytest.fixture
def env_config(tui_home, tmp_path, test_channels, monkeypatch):  # noqa: F811
    """tests/channels/envs.nix with a fresh nonce: an environment nobody has built yet."""
    monkeypatch.setenv("NIXMOD_TEST_NONCE", uuid.uuid4().hex[:12])
    return local_channel_config(tmp_path, monkeypatch, "envtest", test_channels / "envs.nix")


def test_e_builds_an_environment_that_modules_lists_and_browse_names(env_config):
    asyncio.run(_e_builds_an_environment(env_config))


async def _e_builds_an_environment(config):
    """pick numpy-demo, requests-demo and hello; 2 e sci ↵: the plan says python3, where each
    goes and "build: new"; ↵ builds it; Modules lists nixenv/sci/1 with its packages; Browse
    says numpy-demo is in nixenv/sci/1; d y removes it."""
    app = WatchedApp(config, refresh_seconds=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.catalog_error == ""
        for name in ("numpy-demo", "requests-demo", "hello"):
            await type_query(pilot, name)
            await keys(pilot, "enter", "enter", "space")
        assert sorted(v.name for v in app.selection.items) == [
            "hello", "python3Packages.numpy-demo", "python3Packages.requests-demo"]

        await keys(pilot, "2", "e")
        assert isinstance(app.screen, EnvNameScreen)
        await keys(pilot, "s", "c", "i", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, EnvPlanScreen)
                         and app.screen.preview is not None, timeout=120)
        text = screen_text(app)
        assert "interpreter python3" in text and "module nixenv/sci" in text, text
        assert "will build: new" in text, text
        assert any("hello" in line and "beside it (buildEnv)" in line for line in text.splitlines())
        assert any("numpy-demo" in line and "python3.withPackages" in line for line in text.splitlines())
        await keys(pilot, "enter")

        await wait_until(pilot, lambda: app.current_mode == "builds" and record_of(app, "sci"))
        assert len(app.selection) == 0
        await wait_until(pilot, lambda: record_of(app, "sci").state == "built", timeout=300)
        await wait_until(pilot, lambda: any("nixenv/sci 1: built" in m for m in notifications(app)))
        assert "nixenv/sci" in screen_text(app)   # the Builds list names it as an environment
        # v verifies the environment as a package: rebuilt with --check, compared
        await keys(pilot, "v")
        await wait_until(pilot, lambda: any(m.startswith("sci 1: out ") for m in notifications(app)),
                         timeout=300)
        assert any(m.startswith("sci 1: out reproducible") for m in notifications(app)), \
            notifications(app)

        await keys(pilot, "4")
        await wait_until(pilot, lambda: any(r.module == "nixenv/sci/1" for r in app.env_rows))
        row = next(r for r in app.env_rows if r.module == "nixenv/sci/1")
        assert row.valid and row.path_entries, row
        assert [attr for attr, _version in row.packages] == [
            "hello", "python3Packages.numpy-demo", "python3Packages.requests-demo"]
        table = app.screen.query_one("#modules")
        table.move_cursor(row=[r.module for r in app.screen.shown].index("nixenv/sci/1"))
        await settle(pilot)
        text = screen_text(app)
        assert "module load nixenv/sci/1" in text and "python3Packages.requests-demo 2.32.3" in text, text

        await keys(pilot, "1")
        await type_query(pilot, "numpy-demo")
        assert isinstance(app.screen, BrowseScreen)
        await wait_until(pilot, lambda: "in your envs" in screen_text(app))
        assert "nixenv/sci/1" in next(line for line in screen_text(app).splitlines()
                                      if "in your envs" in line)

        await keys(pilot, "escape", "4")
        # L locks what is listed, the environment too
        before = set(Path.home().glob("nixmod-*.lock"))
        await keys(pilot, "L")
        await wait_until(pilot, lambda: set(Path.home().glob("nixmod-*.lock")) - before, timeout=60)
        [lock_file] = set(Path.home().glob("nixmod-*.lock")) - before
        [locked] = json.loads(lock_file.read_text())["environments"]
        assert locked["name"] == "sci" and locked["outputs"] == {"out": row.store_path}
        table = app.screen.query_one("#modules")
        table.move_cursor(row=[r.module for r in app.screen.shown].index("nixenv/sci/1"))
        await keys(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        await keys(pilot, "y")
        await wait_until(pilot, lambda: not app.env_rows)
        assert not (config.modules.root / "nixenv/sci/1.lua").exists()
