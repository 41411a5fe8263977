"""Selection: the picked versions, editable, and the plan shown before submitting.

Submitting never happens blind: PlanScreen asks the core what each version
would do (reuse a valid store path, join someone's build in flight, or
build anew) and submits only when the user confirms.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from nixmod.tui import model
from nixmod.tui.base import NixmodScreen, UsesNixmodApp
from nixmod.tui.envdialog import EnvNameScreen, EnvPlanScreen
from nixmod.tui.messages import PlanReady
from nixmod.tui.widgets import NavTable, state_text


class SelectionScreen(NixmodScreen):
    """The picked versions, with their current state, ready to submit."""

    MODE = "selection"

    BINDINGS = [
        Binding("s", "submit", "Submit", tooltip="submit the selection (the plan first)"),
        Binding("d,delete", "remove", "Remove", tooltip="remove the highlighted pick"),
        # not c: c cancels a build on the Builds screen; clearing is undoable (u)
        Binding("D", "clear", "Clear all", key_display="D", tooltip="clear all (u undoes it)"),
        Binding("u", "undo", "Undo", tooltip="undo the last removal or clear"),
        Binding("e", "environment", "Environment",
                tooltip="one environment (one module) of the picks: asks a name, shows the plan"),
    ]

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(id="selection-pane", classes="pane"):
            yield NavTable(id="selection", cursor_type="row", zebra_stripes=True)
            yield Static(id="selection-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#selection", DataTable)
        for column in ("name", "version", "channel", "state"):
            table.add_column(column, key=column)
        self.refresh_view()

    def refresh_view(self) -> None:
        super().refresh_view()
        table = self.query_one("#selection", DataTable)
        cursor = table.cursor_row
        table.clear()
        for index, version in enumerate(self.nixmod_app.selection.items):
            status = model.version_status(version, self.nixmod_app.records, self.nixmod_app.module_rows)
            table.add_row(Text(version.name, style="bold"), Text(version.version),
                          Text(version.channel), state_text(status), key=str(index))
        if self.nixmod_app.selection.items:
            table.move_cursor(row=min(cursor, len(self.nixmod_app.selection) - 1))
            # one line at 80 columns: the plan dialogs say the rest
            text = (f"{len(self.nixmod_app.selection)} picked · s submit (plan first) · "
                    "e environment · d remove · D clear")
        else:
            text = "Nothing picked yet. In Browse (1), press space on a package or a version."
        if self.nixmod_app.selection.history:
            text += " · u undo"
        self.query_one("#selection-status", Static).update(Text(text))

    def action_remove(self) -> None:
        removed = self.nixmod_app.selection.remove_at(self.query_one("#selection", DataTable).cursor_row)
        if removed is not None:
            self.notify(f"Removed {removed.name} {removed.version} · u undoes", markup=False, timeout=3)
        self.nixmod_app.selection_changed()

    def action_clear(self) -> None:
        count = self.nixmod_app.selection.clear()
        if count:
            self.notify(f"Cleared {count} pick(s) · u undoes", markup=False, timeout=5)
        self.nixmod_app.selection_changed()

    def action_undo(self) -> None:
        if not self.nixmod_app.selection.undo():
            self.notify("Nothing to undo", severity="warning")
            return
        self.notify(f"Undone: {len(self.nixmod_app.selection)} picked", markup=False, timeout=3)
        self.nixmod_app.selection_changed()

    def action_submit(self) -> None:
        if not len(self.nixmod_app.selection):
            self.notify("The selection is empty: pick versions in Browse (1) first", severity="warning")
            return
        self.app.push_screen(PlanScreen())

    def action_environment(self) -> None:
        """A name first (modal), then the environment's plan; submitted only from the plan."""
        if not len(self.nixmod_app.selection):
            self.notify("The selection is empty: pick packages in Browse (1) first", severity="warning")
            return

        def named(name: str | None) -> None:
            if name:
                self.app.push_screen(EnvPlanScreen(name))

        self.app.push_screen(EnvNameScreen(len(self.nixmod_app.selection)), named)


class PlanTable(DataTable, can_focus=False):
    """The plan is read, not navigated: ↵ belongs to the dialog and means "submit"."""


class PlanScreen(UsesNixmodApp, ModalScreen[None]):
    """What submitting will do, per version, before anything is submitted."""

    BINDINGS = [
        Binding("enter,y", "confirm", "Submit", key_display="↵/y", tooltip="submit what the plan shows"),
        Binding("escape,n", "dismiss_plan", "Back", tooltip="back; nothing is submitted"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plans: list = []

    def compose(self) -> ComposeResult:
        with Vertical(id="plan-dialog", classes="dialog"):
            yield Static(Text("Submit the selection?", style="bold"), classes="dialog-title")
            yield PlanTable(id="plan", cursor_type="row", show_cursor=False)
            yield Static(Text("⏳ Working out what is already built or building…"), id="plan-status",
                         classes="status")
            yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#plan", DataTable)
        for column in ("name", "version", "channel", "will"):
            table.add_column(column, key=column)
        self.make_plan()

    @work(thread=True, exclusive=True, group="plan")
    def make_plan(self) -> None:
        """nix-instantiate and squeue: slow, so off the loop. Browse-only picks are not planned."""
        config = self.nixmod_app.config
        buildable = model.Selection([v for v in self.nixmod_app.selection.items if model.can_build(config, v)])
        if not buildable.items:
            self.post_message(PlanReady())
            return
        try:
            plans = model.plan_selection(config, buildable)
        except Exception as error:  # noqa: BLE001 - shown in the dialog
            self.post_message(PlanReady(error=model.explain(error)))
            return
        self.post_message(PlanReady(plans=list(plans)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No Submit in the footer until there is something it would submit."""
        return bool(self.plans) if action == "confirm" else True

    @on(PlanReady)
    def show_plan(self, message: PlanReady) -> None:
        status = self.query_one("#plan-status", Static)
        table = self.query_one("#plan", DataTable)
        config = self.nixmod_app.config
        browse_only = [v for v in self.nixmod_app.selection.items if not model.can_build(config, v)]
        for version in browse_only:
            table.add_row(Text(version.name, style="bold"), Text(version.version), Text(version.channel),
                          Text("browse only: not built", style="dim"))
        if message.error:
            status.update(Text(f"⚠ {message.error} · esc back"))
            status.add_class("error")
            return
        if not message.plans:
            status.update(Text(f"Nothing here can be built: {', '.join(sorted({v.channel for v in browse_only}))}"
                               " is a saved package list (browse only). Builds need a nixpkgs path or "
                               "url channel. · esc back"))
            status.add_class("error")
            self.refresh_bindings()
            return
        self.plans = message.plans
        self.refresh_bindings()
        counts: dict[str, int] = {}
        for plan in message.plans:
            action = plan.action
            counts[action] = counts.get(action, 0) + 1
            version = plan.version
            table.add_row(Text(version.name, style="bold"), Text(version.version),
                          Text(version.channel), Text(model.plan_summary(plan)))
        summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
        if browse_only:
            summary += f"; {len(browse_only)} browse only (a saved package list cannot build)"
        status.update(Text(f"{summary} · ↵/y submit · esc back"))

    def action_confirm(self) -> None:
        if not self.plans:
            return
        self.nixmod_app.submit(self.plans)
        self.dismiss()

    def action_dismiss_plan(self) -> None:
        self.dismiss()
