"""What every nixmod screen has: the header, the tab line, and a redraw on return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static

from nixmod.builds.state import BuildRecord
from nixmod.catalog import Catalog
from nixmod.config import Config
from nixmod.tui import envmodel, model
from nixmod.tui.widgets import nav_text

if TYPE_CHECKING:
    from nixmod.builds.planning import Plan


class NixmodAppApi(Protocol):
    """What the screens use of ``NixmodApp``: its state and the actions it runs in workers.

    The app imports every screen; the screens know the app only by this
    promise (``app.py`` has mypy check that ``NixmodApp`` keeps it), so the
    app and its screens do not import each other in a loop.
    """

    config: Config
    catalog: Catalog | None
    catalog_status: str
    catalog_error: str
    selection: model.Selection
    records: list[BuildRecord]
    module_rows: list[model.ModuleRow]
    env_rows: list[model.ModuleRow]     # the generations of the user's environments
    state_error: str
    followed_build: int | None      # the build whose log the Builds screen follows
    log_text: str
    highlight_build: int | None
    checked: float | None           # when the scheduler last answered about the builds (epoch)

    # the actions; most run as a Textual worker (what they return is not the screens' concern)
    def selection_changed(self) -> object: ...
    def refresh_state(self) -> object: ...
    def check_now(self) -> object: ...
    def submit(self, plans: list[Plan]) -> object: ...
    def create_environment(self, preview: envmodel.EnvPreview) -> object: ...
    def cancel_build(self, build_id: int) -> object: ...
    def remove_module(self, row: model.ModuleRow) -> object: ...
    def remove_environment(self, row: model.ModuleRow) -> object: ...
    def retry_build(self, record: BuildRecord) -> object: ...
    def follow_build(self, build_id: int | None) -> object: ...
    def show_package(self, name: str) -> object: ...


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
    def nixmod_app(self: _HasApp) -> NixmodAppApi:
        return cast(NixmodAppApi, self.app)


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
