"""Modules: what the user can `module load` now, and what that puts on PATH."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on, work
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
        Binding("L", "lock_modules", "Lock these", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: store path -> "signed by KEY" / "built here" / "untrusted" (repro.signature_status)
        self.signatures: dict[str, str] = {}

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
        unknown = [r.store_path for r in self.app.module_rows
                   if r.valid and r.store_path and r.store_path not in self.signatures]
        if unknown:
            self.check_signatures(unknown)

    @work(thread=True, exclusive=True, group="signatures")
    def check_signatures(self, paths: list[str]) -> None:
        """Whether each module's outputs carry a trusted signature (two Nix calls, off the loop)."""
        from nixmod import repro

        try:
            status = repro.signature_status(paths)
        except Exception as error:  # noqa: BLE001 - shown, not raised
            status = {path: f"unknown ({model.explain(error)})" for path in paths}
        self.app.call_from_thread(self._signatures_checked, status)

    def _signatures_checked(self, status: dict[str, str]) -> None:
        self.signatures.update(status)
        self.show(self.selected())

    def action_lock_modules(self) -> None:
        if not any(row.valid for row in self.app.module_rows):
            self.notify("No built module to lock yet", severity="warning")
            return
        self.lock_modules()

    @work(thread=True, exclusive=True, group="lock")
    def lock_modules(self) -> None:
        """``nixmod lock`` of the listed (valid) modules, to a new file in HOME."""
        import time
        from pathlib import Path

        from nixmod import repro

        targets = [f"{row.name}/{row.version}" for row in self.app.module_rows if row.valid]
        path = Path.home() / f"nixmod-{time.strftime('%Y%m%d-%H%M%S')}.lock"
        try:
            repro.write_lock(repro.make_lock(self.app.config, targets), str(path))
        except Exception as error:  # noqa: BLE001
            self.app.call_from_thread(self.notify, f"Could not lock: {model.explain(error)}",
                                      severity="error", markup=False)
            return
        self.app.call_from_thread(self.notify, f"Locked {len(targets)} module(s) in {path}",
                                  markup=False, timeout=8)

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
        if row.valid:
            lines += [Text.assemble(("outputs: ", "dim"), self.signatures.get(row.store_path, "…")),
                      Text("L locks these modules to a file (nixmod lock)", style="dim")]
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
