"""`?`: every key, and the four steps from "I need X" to `module load`.

The key list is made from the screens' own ``BINDINGS`` (each binding's
``tooltip`` says what it does), so a key bound is a key listed: it was kept
by hand in three places once, and `v` and `L` went missing from two.
README's key table is checked against ``key_table_markdown`` by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nixmod.tui.builds import LogScreen
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.envdialog import EnvNameScreen, EnvPlanScreen
from nixmod.tui.selection import PlanScreen
from nixmod.tui.widgets import FilterInput, NavTable

STEPS = (
    "1 Browse: / and type a name or a command (rg finds ripgrep); ↵ to the results.",
    "  ↵ shows every version with its channel and state; space picks one.",
    "2 Selection: what you picked. s shows what will be reused, joined or built;",
    "  e makes one environment of them (a Python that imports them all: one module).",
    "3 Builds: states, job ids and the log of the highlighted build, live.",
    "4 Modules: the exact `module load` line; y copies it.",
)

#: how a key is written for people (Textual's names otherwise)
KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "↵", "up": "↑",
             "down": "↓", "pageup": "PgUp", "pagedown": "PgDn", "delete": "del"}
#: the moves every list inherits from Textual's DataTable that nixmod relies on, and what they
#: do here (DataTable's own bindings carry no description)
LIST_MOVES = {"cursor_down": "move down", "cursor_up": "move up",
              "select_cursor": "open: a package's versions, a build's whole log",
              "page_down": "a page down", "page_up": "a page up"}


@dataclass(frozen=True)
class KeyRow:
    """One line of the key list: where it applies, the keys, what they do."""

    where: str
    keys: tuple[str, ...]
    what: str


def _bindings(declared: Iterable[BindingType]) -> list[Binding]:
    return [b for b in declared if isinstance(b, Binding)]


def _mode_bindings(app_class: type[App[Any]], mode: str) -> list[Binding]:
    return _bindings(getattr(app_class.MODES[mode], "BINDINGS", []))


def key_sections(app_class: type[App[Any]]) -> list[tuple[str, list[Binding]]]:
    """(where, bindings) in the order the help and README list them: the app's own
    bindings, each screen's and dialog's, and the widgets every screen shares."""
    palette = Binding(app_class.COMMAND_PALETTE_BINDING, "command_palette", "Palette",
                      tooltip="command palette: screens, packages")
    list_moves = [replace(b, tooltip=LIST_MOVES[b.action]) for b in _bindings(DataTable.BINDINGS)
                  if b.action in LIST_MOVES]
    return [
        ("everywhere", [*_bindings(app_class.BINDINGS), palette]),
        ("search box", _bindings(FilterInput.BINDINGS)),
        ("lists", [*list_moves, *_bindings(NavTable.BINDINGS)]),
        ("Browse", _mode_bindings(app_class, "browse")),
        ("Selection", _mode_bindings(app_class, "selection")),
        ("plan", _bindings(PlanScreen.BINDINGS)),
        ("environment name", _bindings(EnvNameScreen.BINDINGS)),
        ("environment plan", _bindings(EnvPlanScreen.BINDINGS)),
        ("Builds", _mode_bindings(app_class, "builds")),
        ("whole log", _bindings(LogScreen.BINDINGS)),
        ("Modules", _mode_bindings(app_class, "modules")),
        ("questions", _bindings(ConfirmScreen.BINDINGS)),
        ("help", _bindings(HelpScreen.BINDINGS)),
    ]


def key_rows(app_class: type[App[Any]]) -> list[KeyRow]:
    """Every bound key, one row per thing it does: bindings with the same text (``?`` and
    ``f1``), or of one action and no text of their own (``1``-``4``), share a row; a key bound
    twice on one screen (space: pick, or say why not) is listed once."""
    rows: list[KeyRow] = []
    for where, bindings in key_sections(app_class):
        groups: dict[str, tuple[list[str], list[str]]] = {}
        seen: set[str] = set()
        for binding in bindings:
            keys = [KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(",")]
            keys = [k for k in keys if k not in seen]
            if not keys:
                continue
            seen.update(keys)
            what = binding.tooltip or binding.description
            # bindings told apart only by their argument (switch_mode('browse')) share a row
            action = what if binding.tooltip else binding.action.split("(")[0]
            group = next((g for g, (_k, texts) in groups.items() if what in texts), action)
            group_keys, texts = groups.setdefault(group, ([], []))
            group_keys.extend(keys)
            if what not in texts:
                texts.append(what)
        for index, (group_keys, texts) in enumerate(groups.values()):
            rows.append(KeyRow(where if index == 0 else "", tuple(group_keys), ", ".join(texts)))
    return rows


def key_table_markdown(app_class: type[App[Any]]) -> str:
    """README's key table (Where | Key | What it does), made from the bindings."""
    lines = ["| Where | Key | What it does |", "|---|---|---|"]
    for row in key_rows(app_class):
        where = f" {row.where} " if row.where else " "
        keys = " ".join(f"`{key}`" for key in row.keys)
        lines.append(f"|{where}| {keys} | {row.what} |")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Keys and the workflow, on one page; the border says when there is more below."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", tooltip="close this help")]

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for row in key_rows(type(self.app)):
            keys.add_row(row.where, " ".join(row.keys), row.what)
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(Text("nixmod: from \"I need X\" to `module load`", style="bold"),
                         classes="dialog-title")
            yield Static(Text("\n".join(STEPS)))
            yield Static(keys, id="help-keys")
            yield Static(Text("esc closes this help", style="dim"))

    def on_mount(self) -> None:
        dialog = self.query_one("#help-dialog", VerticalScroll)
        self.watch(dialog, "scroll_y", self._show_more, init=False)
        self.watch(dialog, "max_scroll_y", self._show_more, init=False)
        self.call_after_refresh(self._show_more)

    def _show_more(self, *_args: object) -> None:
        """A sign in the border while part of the help is below the fold."""
        dialog = self.query_one("#help-dialog", VerticalScroll)
        if dialog.max_scroll_y > 0 and dialog.scroll_y < dialog.max_scroll_y:
            dialog.border_subtitle = "↓ more: ↓ / PgDn"
        elif dialog.max_scroll_y > 0:
            dialog.border_subtitle = "↑ PgUp for the top · esc closes"
        else:
            dialog.border_subtitle = "esc closes"

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
