"""What every nixmod screen has: the header, the tab line, and a redraw on return."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static

from nixmod.tui.widgets import nav_text


class NixmodScreen(Screen):
    """Base of the four main screens; ``MODE`` is the app mode it is shown in."""

    MODE = ""

    def compose_top(self) -> ComposeResult:
        yield Header(icon="❄")
        yield Static(id="nav")

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        """Lay out the app's current state; subclasses extend this."""
        self.query_one("#nav", Static).update(nav_text(self.MODE, len(self.app.selection)))
