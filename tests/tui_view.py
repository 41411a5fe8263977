"""What a user sees and is told in the TUI, read through Textual's public API only.

Also the moves every TUI test makes (``settle``, ``keys``, ``type_query``,
``wait_until``), so the rig's TUI tests and the fast tier's drive it alike.

``screen_text`` reads the characters on the terminal from
``App.export_screenshot`` (the SVG a snapshot is made of), never from the
compositor; ``WatchedApp`` is the real ``NixmodApp`` that also remembers
every notification it showed (``App.notify`` is public; its queue is not).
"""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

from rich.cells import cell_len
from textual.app import App
from textual.notifications import SeverityLevel
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerCancelled

from nixmod.builds import BuildRecord
from nixmod.tui import app as app_module
from nixmod.tui.app import NixmodApp

#: one run of text in Rich's SVG export: its x position and its line (from the clip path)
_TEXT = re.compile(r'<text\b[^>]*?\sx="([0-9.]+)"[^>]*?clip-path="url\(#[^)"]*?-line-(\d+)\)"[^>]*>(.*?)</text>',
                   re.S)
#: Rich's export_svg lays characters out 20 px high, 0.61 of that wide
_CHAR_WIDTH = 20 * 0.61


def screen_text(app: App[Any]) -> str:
    """The characters on the terminal right now, one line per terminal row."""
    return svg_text(app.export_screenshot())


def svg_text(svg: str) -> str:
    """The characters of a screenshot (``App.export_screenshot``), one line per terminal row."""
    rows: dict[int, list[str]] = {}
    for x, line, text in _TEXT.findall(svg):
        row = rows.setdefault(int(line), [])
        column = round(float(x) / _CHAR_WIDTH)
        for char in html.unescape(text).replace("\xa0", " "):
            width = cell_len(char)
            if len(row) < column + width:
                row.extend(" " * (column + width - len(row)))
            row[column:column + width] = [char] + [""] * (width - 1)
            column += width
    return "\n".join("".join(rows.get(i, [])).rstrip() for i in range(max(rows, default=-1) + 1))


class WatchedApp(NixmodApp):
    """NixmodApp, plus ``told``: every notification's text, in the order it was shown."""

    #: Textual reads a relative CSS_PATH beside the subclass's module: name nixmod's own
    CSS_PATH = str(Path(app_module.__file__).parent / "nixmod.tcss")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.told: list[str] = []

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        self.told.append(str(message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


# -- driving the app as a person does (shared by test_tui.py and test_tui_fast.py) ---------

async def settle(pilot: Pilot[Any]) -> None:
    """Wait until the catalog is in and every worker (search, refresh) has reported."""
    app = pilot.app
    assert isinstance(app, NixmodApp)
    for _ in range(600):
        if app.catalog is not None or app.catalog_error:
            break
        await pilot.pause(0.05)
    for _ in range(3):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:   # a newer refresh (an exclusive worker) replaced it
            pass
        await pilot.pause()


def steady_cursor(app: App[Any]) -> None:
    """A blinking text cursor is on or off by the clock: a snapshot shows it steady."""
    for screen in app.screen_stack:
        for box in screen.query(Input):
            box.cursor_blink = False


def after(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A run_before for snap_compare: settle, press ``keys``, settle again."""
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        steady_cursor(pilot.app)
        await pilot.pause()
    return run


def notifications(app: App[Any]) -> list[str]:
    """What the app has told the user so far (every app here is a WatchedApp)."""
    assert isinstance(app, WatchedApp)
    return app.told


def record_of(app: NixmodApp, name: str) -> BuildRecord | None:
    """The newest build record of ``name`` the app shows."""
    matching = [r for r in app.records if r.name == name]
    return matching[-1] if matching else None


async def wait_until(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 90.0,
                     poll: float = 0.2) -> None:
    """Let the app run until ``condition()`` holds, looking every ``poll`` seconds; on timeout,
    say what the app showed."""
    app = pilot.app
    assert isinstance(app, NixmodApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out; screen {app.screen}, records "
                                 f"{[(r.name, r.state, r.error) for r in app.records]}, "
                                 f"notifications {notifications(app)}")
        await pilot.pause(poll)


async def keys(pilot: Pilot[Any], *names: str) -> None:
    """Press keys one at a time, letting each one's focus change land (as a person would)."""
    for name in names:
        await pilot.press(name)
        await pilot.pause()


async def type_query(pilot: Pilot[Any], text: str) -> None:
    """/ into the box, clear it, type ``text``, wait for the answer."""
    await keys(pilot, "slash", "ctrl+a", "ctrl+k", *text)
    await settle(pilot)


def footer_text(app: App[Any]) -> str:
    """The footer line: the last line of the screen."""
    return screen_text(app).splitlines()[-1]


def local_channel_config(tmp_path: Path, monkeypatch: Any, name: str, channel: Path) -> Any:
    """A config of one channel ``name`` at ``channel``, built on the local backend, with its
    state, modules and catalog cache all under ``tmp_path``: a TUI test's own world."""
    from nixmod.config import load_config

    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "{name}"\npath = "{channel}"\n'
                           f'[build]\nbackend = "local"\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return load_config(config_file)
