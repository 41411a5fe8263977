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
    "1 Browse: type a name or a command (rg finds ripgrep); ↓ to the results.",
    "  ↵ shows every version with its channel and state; space picks one.",
    "2 Selection: what you picked. s shows what will be reused, joined or built.",
    "3 Builds: states, job ids and the log of the highlighted build, live.",
    "4 Modules: the exact `module load` line; y copies it.",
)

KEYS = (
    ("1 2 3 4", "Browse, Selection, Builds, Modules"),
    ("/", "search (Browse)"),
    ("↑ ↓ ↵", "move, open"),
    ("tab", "next pane"),
    ("space", "pick / unpick a version"),
    ("s", "submit the selection (plan first)"),
    ("d  c", "remove one / clear (Selection)"),
    ("c  r", "cancel / retry a build (Builds)"),
    ("y  u", "copy load / use line (Modules)"),
    ("ctrl+p", "command palette: screens, packages"),
    ("? f1", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    """Keys and the workflow, on one page."""

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

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
