"""`?`: every key, and the four steps from "I need X" to `module load`."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

STEPS = (
    "1 Browse: / and type a name or a command (rg finds ripgrep); ↵ to the results.",
    "  ↵ shows every version with its channel and state; space picks one.",
    "2 Selection: what you picked. s shows what will be reused, joined or built.",
    "3 Builds: states, job ids and the log of the highlighted build, live.",
    "4 Modules: the exact `module load` line; y copies it.",
)

KEYS = (
    ("1 2 3 4", "Browse, Selection, Builds, Modules"),
    ("/", "search (Browse) or filter (Builds, Modules)"),
    ("  in the box", "keys are text; ↵ applies, esc leaves the box"),
    ("esc", "leave the box; back to the results; close a dialog"),
    ("↑↓ j k g G", "move, top, bottom"),
    ("↵ tab", "open, next pane"),
    ("space", "pick / unpick a version (Browse)"),
    ("s", "submit the selection (the plan first)"),
    ("d  D  u", "remove one / clear all / undo (Selection)"),
    ("l  ↵", "the whole log, full-screen (Builds)"),
    ("c  r", "cancel (asks first) / retry a build (Builds)"),
    ("f5", "ask the scheduler now, once per 5 s (Builds)"),
    ("o", "sort (Builds, Modules)"),
    ("y  u", "copy load / use line (Modules)"),
    ("d", "remove a module, asks first (Modules)"),
    ("ctrl+p", "command palette: screens, packages"),
    ("? f1", "this help (f1 also in a box)"),
    ("q ctrl+c", "quit (ctrl+c also in a box)"),
)


class HelpScreen(ModalScreen[None]):
    """Keys and the workflow, on one page; the border says when there is more below."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
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
