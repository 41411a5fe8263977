"""Modules: what the user can `module load` now, and what that puts on PATH."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from nixmod.tui import model
from nixmod.tui.base import NixmodScreen


class ModulesScreen(NixmodScreen):
    """The user's modules, with the exact line to load each."""

    MODE = "modules"

    BINDINGS = [
        Binding("y", "copy_line", "Copy load line"),
        Binding("u", "copy_use", "Copy use line", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(id="modules-pane", classes="pane"):
            yield DataTable(id="modules", cursor_type="row", zebra_stripes=True)
            yield Static(id="module-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#modules", DataTable)
        table.add_column("module", key="module")
        table.add_column("store path", key="valid")
        self.query_one("#module-detail", Static).border_title = "load it"
        self.refresh_view()

    def selected(self) -> model.ModuleRow | None:
        rows = self.app.module_rows
        cursor = self.query_one("#modules", DataTable).cursor_row
        return rows[cursor] if 0 <= cursor < len(rows) else None

    def refresh_view(self) -> None:
        super().refresh_view()
        table = self.query_one("#modules", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.app.module_rows:
            table.add_row(Text(row.module, style="bold"),
                          Text("valid") if row.valid else Text("gone: rebuild it", style="bold red"),
                          key=row.module)
        if self.app.module_rows:
            table.move_cursor(row=min(cursor, len(self.app.module_rows) - 1))
        self.show(self.selected())

    @on(DataTable.RowHighlighted, "#modules")
    def module_highlighted(self) -> None:
        self.show(self.selected())

    def show(self, row: model.ModuleRow | None) -> None:
        detail = self.query_one("#module-detail", Static)
        if row is None:
            detail.update(Text("No modules yet. A build that finishes becomes a module here.\n"
                               f"Modules live in {self.app.config.modules.root}.", style="dim"))
            return
        lines = [
            Text("Type this in your shell or job script (y copies it):", style="dim"),
            Text(row.load_line, style="bold reverse"),
            Text(f"If it is not found, first: {row.use_line}  (u copies it)", style="dim"),
            Text(""),
            Text("Puts on PATH:", style="dim"),
            *[Text(f"  {entry}") for entry in row.path_entries or ("(nothing)",)],
            Text(""),
            Text.assemble(("store path: ", "dim"), row.store_path or "(unknown)"),
        ]
        detail.update(Group(*lines))

    def _copy(self, text: str) -> None:
        """OSC 52: terminals that allow it put the text on the clipboard, even over ssh."""
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied: {text}", markup=False, timeout=3)

    def action_copy_line(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("No module to copy yet", severity="warning")
            return
        self._copy(row.load_line)

    def action_copy_use(self) -> None:
        row = self.selected()
        if row is not None:
            self._copy(row.use_line)
