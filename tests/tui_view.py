"""What a user sees and is told in the TUI, read through Textual's public API only.

``screen_text`` reads the characters on the terminal from
``App.export_screenshot`` (the SVG a snapshot is made of), never from the
compositor; ``WatchedApp`` is the real ``NixmodApp`` that also remembers
every notification it showed (``App.notify`` is public; its queue is not).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from textual.app import App
from textual.notifications import SeverityLevel

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
