"""A yes/no question before anything that cannot be taken back (cancel a build, remove a module)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks ``question``; dismisses with True only on y (or ↵ on the named action)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="yes"),
        Binding("n,escape", "answer(False)", "No", key_display="n/esc", tooltip="no"),
    ]

    def __init__(self, title: str, question: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(Text(self.question))
            yield Footer()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
