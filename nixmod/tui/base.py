"""What every nixmod screen has: the header, the tab line, and a redraw on return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static

from nixmod.tui.widgets import nav_text

if TYPE_CHECKING:  # app.py imports every screen, which import this module
    from nixmod.tui.app import NixmodApp


class _HasApp(Protocol):
    @property
    def app(self) -> App[Any]: ...


class UsesNixmodApp:
    """Mixin for screens and providers that run inside ``NixmodApp``.

    Textual types ``self.app`` as a plain ``App``; ``self.nixmod_app`` is the
    same object typed as ours, so a renamed attribute is a type error rather
    than a crash on the user's screen.
    """

    @property
    def nixmod_app(self: _HasApp) -> NixmodApp:
        return cast("NixmodApp", self.app)


class NixmodScreen(UsesNixmodApp, Screen[None]):
    """Base of the four main screens; ``MODE`` is the app mode it is shown in."""

    MODE = ""

    def compose_top(self) -> ComposeResult:
        yield Header(icon="❄")
        yield Static(id="nav")

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        """Lay out the app's current state; subclasses extend this."""
        self.query_one("#nav", Static).update(nav_text(self.MODE, len(self.nixmod_app.selection)))
