"""Modules: what the user can `module load` now, and what that puts on PATH.

The user's environments are listed here too, one row per generation
(``nixenv/NAME/GEN``), with their packages in the detail pane: an
environment is a module like any other to `module load`.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from nixmod.tui import envmodel, model
from nixmod.tui.base import NixmodScreen
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.messages import DiskUsageReady, SignaturesChecked, Told
from nixmod.tui.widgets import Column, FilterInput, NavTable, fit_columns


class ModulesScreen(NixmodScreen):
    """The user's modules, with the exact line to load each."""

    MODE = "modules"
    AUTO_FOCUS = "#modules"   # the list, not the filter box: keys work at once

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/", tooltip="into the filter box"),
        Binding("o", "sort", "Sort", tooltip="sort: name, broken first"),
        Binding("y", "copy_line", "Copy load line", tooltip="copy the `module load` line (OSC 52)"),
        Binding("u", "copy_use", "Copy use line", show=False, tooltip="copy the `module use` line"),
        Binding("L", "lock_modules", "Lock these", show=False,
                tooltip="lock the built modules and environments listed, as `nixmod lock`, to a new "
                        "file in HOME"),
        Binding("d,delete", "remove_module", "Remove",
                tooltip="remove the module (or environment generation), as `nixmod modules remove` "
                        "and `nixmod env remove` do (asks first)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: store path -> "signed by KEY" / "built here" / "untrusted" (repro.signature_status)
        self.signatures: dict[str, str] = {}
        self.sort_key = model.MODULE_SORTS[0]
        self.shown: list[model.ModuleRow] = []
        self.highlighted: str | None = None   # the module under the cursor, whatever its row
        self.table_width = 0
        #: sizes and last loads (``nixmod du``) and the modules they were computed for
        self.disk: model.DiskTotals | None = None
        self.disk_error = ""
        self.sized_for: frozenset[str] | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(id="modules-pane", classes="pane"):
            yield FilterInput(placeholder="/ filter modules", id="modules-filter", list_id="modules")
            yield NavTable(id="modules", cursor_type="row", zebra_stripes=True)
            yield Static(id="modules-status", classes="status")
            yield Static(id="module-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#module-detail", Static).border_title = "load it"
        self.query_one("#modules", DataTable).focus()
        self.refresh_view()

    def all_rows(self) -> list[model.ModuleRow]:
        """The user's modules, then the generations of their environments."""
        return [*self.nixmod_app.module_rows, *self.nixmod_app.env_rows]

    def selected(self) -> model.ModuleRow | None:
        for row in self.shown:
            if row.module == self.highlighted:
                return row
        return None

    def refresh_view(self) -> None:
        super().refresh_view()
        self.fill_table()
        self.show(self.selected())
        unknown = [r.store_path for r in self.all_rows()
                   if r.valid and r.store_path and r.store_path not in self.signatures]
        if unknown:
            self.check_signatures(unknown)
        names = frozenset(r.module for r in self.all_rows())
        if names != self.sized_for:
            self.sized_for = names
            self.compute_disk()

    @work(thread=True, exclusive=True, group="diskuse")
    def compute_disk(self) -> None:
        """``nixmod du`` for the sizes and last loads (Nix calls: never on the event loop)."""
        try:
            totals, error = model.module_disk(self.nixmod_app.config), ""
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            totals, error = None, model.explain(exc)
        self.post_message(DiskUsageReady(totals, error))

    def on_disk_usage_ready(self, message: DiskUsageReady) -> None:
        self.disk, self.disk_error = message.totals, message.error
        self.fill_table()

    @work(thread=True, exclusive=True, group="signatures")
    def check_signatures(self, paths: list[str]) -> None:
        """Whether each module's outputs carry a trusted signature (two Nix calls, off the loop)."""
        try:
            status = model.signature_status(paths)
        except Exception as error:  # noqa: BLE001 - shown, not raised
            status = {path: f"unknown ({model.explain(error)})" for path in paths}
        self.post_message(SignaturesChecked(status))

    def on_signatures_checked(self, message: SignaturesChecked) -> None:
        self.signatures.update(message.status)
        self.show(self.selected())

    def action_lock_modules(self) -> None:
        if not any(row.valid for row in self.all_rows()):
            self.notify("No built module to lock yet", severity="warning")
            return
        self.lock_modules()

    @work(thread=True, exclusive=True, group="lock")
    def lock_modules(self) -> None:
        """``nixmod lock`` of the listed (valid) modules, to a new file in HOME."""
        import time
        from pathlib import Path

        targets = [f"{row.name}/{row.version}" for row in self.nixmod_app.module_rows if row.valid]
        targets += [row.module for row in self.nixmod_app.env_rows if row.valid]   # nixenv/NAME/GEN
        path = Path.home() / f"nixmod-{time.strftime('%Y%m%d-%H%M%S')}.lock"
        try:
            model.lock_modules(self.nixmod_app.config, targets, path)
        except Exception as error:  # noqa: BLE001
            self.post_message(Told(f"Could not lock: {model.explain(error)}", severity="error"))
            return
        self.post_message(Told(f"Locked {len(targets)} module(s) in {path}", timeout=8))

    def fill_table(self) -> None:
        table = self.query_one("#modules", DataTable)
        text = self.query_one("#modules-filter", FilterInput).value
        rows = model.sort_modules(model.filter_modules(self.all_rows(), text), self.sort_key, self.disk)
        self.shown = rows
        self.table_width = table.size.width
        shown = fit_columns(table, table.size.width or 78, [
            Column("module", "module", max([6, *(len(r.module) for r in rows)]), 12, 0),
            Column("size", "size", 10, 9, 1),
            Column("state", "state", 16, 5, 2),
            Column("last", "last load", 10, 9, 3),
            Column("store", "store path", max([10, *(len(r.store_path) for r in rows)]), 12, 4,
                   flexible=True),
        ])
        for row in rows:
            size, last = self._disk_cells(row)
            cells = {"module": Text(row.module, style="bold", overflow="ellipsis", no_wrap=True),
                     "size": size, "last": last,
                     "state": Text("ok") if row.valid else Text("gone: rebuild it", style="bold red"),
                     "store": Text(row.store_path or "(unknown)", overflow="ellipsis", no_wrap=True)}
            table.add_row(*(cells[key] for key in shown), key=row.module)
        names = [r.module for r in rows]
        if self.highlighted not in names:
            self.highlighted = names[0] if names else None
        if self.highlighted is not None:
            table.move_cursor(row=names.index(self.highlighted), animate=False)
        status = self.query_one("#modules-status", Static)
        every = self.all_rows()
        gone = sum(1 for r in every if not r.valid)
        envs = len({r.environment for r in self.nixmod_app.env_rows})
        status.update(Text(f"{len(rows)} of {len(every)} module(s)"
                           + (f" ({envs} environment(s))" if envs else "")
                           + (f", {gone} with the store path gone" if gone else "")
                           + f" · {self._total()} · sorted by {self.sort_key}")
                      if every else "")

    def _disk_cells(self, row: model.ModuleRow) -> tuple[Text, Text]:
        """The size and last-load cells: "…" while ``du`` runs, "-" where it has nothing."""
        if self.disk is None:
            return Text("…" if not self.disk_error else "?", style="dim"), Text("…", style="dim")
        disk = self.disk.modules.get(row.module)
        if disk is None or not row.valid:
            return Text("-", style="dim"), Text(model.age(disk.last_load) if disk else "-", style="dim")
        return Text(model.human_size(disk.closure_size), justify="right"), Text(model.age(disk.last_load))

    def _total(self) -> str:
        if self.disk is None:
            return f"sizes: {self.disk_error}" if self.disk_error else "sizes…"
        return (f"total {model.human_size(self.disk.total_size)}, "
                f"{model.human_size(self.disk.only_size)} only yours")

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        if self.query_one("#modules", DataTable).size.width != self.table_width:
            self.fill_table()

    @on(DataTable.RowHighlighted, "#modules")
    def module_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != self.query_one("#modules", DataTable).cursor_row:
            return   # a stale event from a redraw
        self.highlighted = event.row_key.value
        self.show(self.selected())

    @on(FilterInput.Changed, "#modules-filter")
    def filter_changed(self) -> None:
        self.fill_table()
        self.show(self.selected())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        box = self.query("#modules-filter").first() if self.is_mounted else None
        return not (box is not None and self.focused is box)

    def show(self, row: model.ModuleRow | None) -> None:
        detail = self.query_one("#module-detail", Static)
        if row is None:
            empty = ("No module matches the filter (esc, then / to change it)."
                     if self.all_rows() else
                     "No modules yet. A build that finishes becomes a module here.")
            detail.update(Text(f"{empty}\nModules live in {self.nixmod_app.config.modules.root}.", style="dim"))
            return
        lines = [
            Text("Type this in your shell or job script (y copies it):", style="dim"),
            Text(row.load_line, style="bold reverse"),
            *self._environment_lines(row),
            Text(f"If it is not found, first: {row.use_line}  (u copies it)", style="dim"),
            Text(""),
            Text("Puts on PATH:", style="dim"),
            *[Text(f"  {entry}") for entry in row.path_entries or ("(nothing)",)],
            Text(""),
            Text.assemble(("store path: ", "dim"), row.store_path or "(unknown)",
                          ("" if row.valid else "  (gone: build it again)", "bold red")),
        ]
        if row.valid:
            lines += [Text.assemble(("outputs: ", "dim"), self.signatures.get(row.store_path, "…")),
                      Text("L locks these modules to a file (nixmod lock)", style="dim")]
        detail.update(Group(*lines))

    def _environment_lines(self, row: model.ModuleRow) -> list[Text]:
        """An environment's generation: its other generations and its packages."""
        if not row.environment:
            return []
        generations = envmodel.generations_of(self.nixmod_app.env_rows, row.environment)
        lines = [Text(f"Environment {row.environment}, generation {row.version} of "
                      f"{', '.join(generations)} (module load {envmodel.unversioned(row)} loads "
                      "the newest)", style="dim"),
                 Text(f"Packages ({len(row.packages)}):", style="dim")]
        lines += [Text(f"  {attr} {version}") for attr, version in row.packages]
        return lines

    def _copy(self, text: str) -> None:
        """OSC 52: terminals that allow it put the text on the clipboard, even over ssh."""
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied: {text}", markup=False, timeout=3)

    def action_focus_filter(self) -> None:
        self.set_focus(self.query_one("#modules-filter", FilterInput))

    def action_sort(self) -> None:
        sorts = model.MODULE_SORTS
        self.sort_key = sorts[(sorts.index(self.sort_key) + 1) % len(sorts)]
        self.fill_table()

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

    def action_remove_module(self) -> None:
        """What `nixmod modules remove` does, after asking: the module goes, the store path stays."""
        row = self.selected()
        if row is None:
            self.notify("No module to remove", severity="warning")
            return
        question = (f"Remove {row.module}?\n`module load {row.module}` stops working; the store path "
                    "is left to the garbage collector, and a build of it brings the module back.")
        if row.environment:
            question = (f"Remove {row.module}?\n`module load {row.module}` stops working; the other "
                        "generations stay loadable, and the store path is left to the garbage collector.")

        def answered(yes: bool | None) -> None:
            if yes and row.environment:
                self.nixmod_app.remove_environment(row)
            elif yes:
                self.nixmod_app.remove_module(row)

        self.app.push_screen(ConfirmScreen("Remove this module?", question), answered)
