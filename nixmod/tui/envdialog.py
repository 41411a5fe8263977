"""`e` in Selection: an environment of the picks. A name first, then the plan, then submit.

``EnvNameScreen`` asks the name (an environment becomes the module
``<env_prefix>/NAME``); ``EnvPlanScreen`` shows what the core plans
(interpreter, each package and where it goes, reuse / join / build) and
submits only when the user confirms, as the package plan dialog does.
Planning evaluates (nix-instantiate), so it runs in a thread worker.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from nixmod.tui import envmodel, model
from nixmod.tui.base import UsesNixmodApp
from nixmod.tui.messages import EnvPlanReady


class EnvNameScreen(ModalScreen[str | None]):
    """Asks the environment's name; dismisses with it (checked), or None on esc."""

    BINDINGS = [
        Binding("enter", "accept", "Next: the plan", key_display="↵", priority=True,
                tooltip="take the name and show the environment's plan"),
        Binding("escape", "cancel", "Back", key_display="esc", priority=True,
                tooltip="back; no environment is made"),
    ]

    def __init__(self, picks: int, suggestion: str = "") -> None:
        super().__init__()
        self.picks = picks
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(id="env-name-dialog", classes="dialog"):
            yield Static(Text(f"An environment of the {self.picks} pick(s): one module that "
                              "holds them all", style="bold"), classes="dialog-title")
            yield Static(Text("Its name (the module becomes nixenv/NAME; letters, digits, . _ + -):"))
            yield Input(value=self.suggestion, placeholder="e.g. sci", id="env-name")
            yield Static(id="env-name-status", classes="status")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#env-name", Input).focus()

    @on(Input.Changed, "#env-name")
    def name_changed(self) -> None:
        status = self.query_one("#env-name-status", Static)
        status.update("")
        status.remove_class("error")

    def action_accept(self) -> None:
        name = self.query_one("#env-name", Input).value.strip()
        why = envmodel.check_env_name(name)
        if why:
            status = self.query_one("#env-name-status", Static)
            status.update(Text(f"⚠ {why}"))
            status.add_class("error")
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EnvPlanTable(DataTable, can_focus=False):
    """The plan is read, not navigated: ↵ belongs to the dialog and means "submit"."""


class EnvPlanScreen(UsesNixmodApp, ModalScreen[None]):
    """What making environment NAME of the selection will do, before anything is submitted."""

    BINDINGS = [
        Binding("enter,y", "confirm", "Make it", key_display="↵/y",
                tooltip="submit the environment the plan shows"),
        Binding("escape,n", "back", "Back", key_display="esc/n",
                tooltip="back; nothing is submitted"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.env_name = name
        self.preview: envmodel.EnvPreview | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="env-plan-dialog", classes="dialog"):
            yield Static(Text(f"Make environment {self.env_name}?", style="bold"), classes="dialog-title")
            yield Static(id="env-plan-head")
            yield EnvPlanTable(id="env-plan", cursor_type="row", show_cursor=False)
            yield Static(Text("⏳ Planning: which interpreter, and what is already built or building…"),
                         id="env-plan-status", classes="status")
            yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#env-plan", DataTable)
        for column in ("package", "version", "goes into"):
            table.add_column(column, key=column)
        self.make_plan()

    @work(thread=True, exclusive=True, group="envplan")
    def make_plan(self) -> None:
        """The planner, then the core's reuse / join / build forecast (nix-instantiate): off the loop."""
        app = self.nixmod_app
        if app.catalog is None:
            self.post_message(EnvPlanReady(error="the catalog is still loading; try again in a moment"))
            return
        try:
            preview = envmodel.plan_from_selection(app.config, app.catalog, self.env_name,
                                                   list(app.selection.items))
        except Exception as error:  # noqa: BLE001 - shown in the dialog
            self.post_message(EnvPlanReady(error=model.explain(error)))
            return
        self.post_message(EnvPlanReady(preview=preview))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No "Make it" in the footer until the plan says there is something to submit."""
        if action == "confirm":
            return self.preview is not None and not self.preview.blocked
        return True

    @on(EnvPlanReady)
    def show_plan(self, message: EnvPlanReady) -> None:
        status = self.query_one("#env-plan-status", Static)
        if message.error or message.preview is None:
            self.query_one("#env-plan", DataTable).display = False   # no plan: no empty table
            status.update(Text(f"⚠ {message.error} · esc back"))
            status.add_class("error")
            return
        preview = self.preview = message.preview
        self.query_one("#env-plan-head", Static).update(Text.assemble(
            ("interpreter ", "dim"), (preview.interpreter_text, "bold"),
            ("  channel ", "dim"), preview.plan.channel,
            ("  module ", "dim"), f"{self.nixmod_app.config.modules.env_prefix}/{preview.name}"))
        table = self.query_one("#env-plan", DataTable)
        for member in preview.members:
            table.add_row(Text(member.name, style="bold"), Text(member.version), Text(member.goes_into))
        if preview.blocked:
            status.update(Text(f"⚠ {preview.blocked} · esc back"))
            status.add_class("error")
        else:
            status.update(Text(f"{len(preview.members)} package(s), one module · will {preview.will}"
                               " · ↵/y make it · esc back"))
        self.refresh_bindings()

    def action_confirm(self) -> None:
        if self.preview is None or self.preview.blocked:
            return
        self.nixmod_app.create_environment(self.preview)
        self.dismiss()

    def action_back(self) -> None:
        self.dismiss()
