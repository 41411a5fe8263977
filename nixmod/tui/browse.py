"""Browse: search as you type, see every version, pick the ones to build.

The results list is capped (model.RESULT_LIMIT rows, ranked) so it paints
in milliseconds whatever the catalog's size; the search itself runs in an
exclusive thread worker, so a new keystroke cancels the stale search and
the newest query always wins.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from nixmod.catalog import Package, PackageVersion
from nixmod.tui import model
from nixmod.tui.base import NixmodScreen
from nixmod.tui.messages import SearchDone
from nixmod.tui.widgets import detail_text, state_text


class BrowseScreen(NixmodScreen):
    """Search box, ranked results, and the detail of the highlighted package."""

    MODE = "browse"

    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("down", "to_results", "Results", key_display="↓"),
        Binding("space", "pick", "Pick"),
        Binding("s", "submit", "Submit"),
        Binding("escape", "leave_search", "Results", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.package: Package | None = None
        self.result_names: list[str] = []
        self.searched_catalog: Any = None   # the catalog the results came from
        self.shown_query: str | None = None  # the query the results list shows now

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal(id="browse"):
            with Vertical(id="results-pane"):
                yield Input(placeholder="Search packages, programs, descriptions…", id="search")
                yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
                yield Static(id="results-status", classes="status")
            with Vertical(id="detail-pane"):
                yield Static(id="detail")
                yield DataTable(id="versions", cursor_type="row")
                yield Static(id="versions-hint", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        versions = self.query_one("#versions", DataTable)
        versions.add_column(" ", key="picked")
        versions.add_column("version", key="version")
        versions.add_column("channel", key="channel")
        versions.add_column("state", key="state")
        self.query_one("#search", Input).focus()
        self.refresh_view()

    # -- drawing ------------------------------------------------------------------

    def refresh_view(self) -> None:
        super().refresh_view()
        """Show the catalog's state; search once when it has just become ready."""
        status = self.query_one("#results-status", Static)
        if self.app.catalog_error:
            status.update(Text(f"⚠ {self.app.catalog_error}"))
            status.add_class("error")
        elif self.app.catalog is None:
            status.update(Text(f"⏳ {self.app.catalog_status}"))
        elif self.searched_catalog is not self.app.catalog:
            self.searched_catalog = self.app.catalog
            self.run_search(self.query_one("#search", Input).value)
        self.show_package(self.package)

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        if self.app.catalog is not None:
            self.run_search(event.value)

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, query: str) -> None:
        """Rank matches off the loop; a newer keystroke cancels this one."""
        rows = model.search_rows(self.app.catalog, query)
        if not get_current_worker().is_cancelled:
            self.post_message(SearchDone(query, rows))

    def on_search_done(self, message: SearchDone) -> None:
        if message.query != self.query_one("#search", Input).value:
            return   # a newer query is on its way
        table = self.query_one("#results", DataTable)
        self.shown_query = message.query
        self.set_result_columns(table, message.rows)
        self.result_names = [row.name for row in message.rows]
        for row in message.rows:
            table.add_row(Text(row.name, style="bold", overflow="ellipsis", no_wrap=True),
                          Text(row.newest, overflow="ellipsis", no_wrap=True), Text(str(row.count)),
                          Text(row.description, overflow="ellipsis", no_wrap=True), key=row.name)
        status = self.query_one("#results-status", Static)
        if not message.query.strip():
            status.update(Text(model.catalog_summary(self.app.catalog)))
        elif message.rows:
            more = "+" if len(message.rows) >= model.RESULT_LIMIT else ""
            status.update(Text(f"{len(message.rows)}{more} match(es) · ↵ versions · space pick newest"))
        else:
            status.update(Text(f"No package matches {message.query!r}; try a program name or fewer letters"))
        self.show_package(self._package_named(self.result_names[0]) if self.result_names else None)

    @staticmethod
    def set_result_columns(table: DataTable, rows: list[model.ResultRow]) -> None:
        """Fit name and version to these rows; the description takes the rest of the width."""
        table.clear(columns=True)
        name = min(32, max([4, *(len(r.name) for r in rows)]))
        version = min(16, max([7, *(len(r.newest) for r in rows)]))
        count = max([1, *(len(str(r.count)) for r in rows)])
        description = max(10, table.size.width - name - version - count - 9)
        for label, key, width in (("name", "name", name), ("version", "version", version),
                                  ("#", "count", count), ("description", "description", description)):
            table.add_column(label, key=key, width=width)

    def _package_named(self, name: str) -> Package | None:
        try:
            return self.app.catalog.package(name)
        except Exception:  # noqa: BLE001 - a vanished name just shows nothing
            return None

    @on(DataTable.RowHighlighted, "#results")
    def result_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_package(self._package_named(event.row_key.value))

    def placeholder(self) -> Text:
        """The detail pane with no package: the catalog's problems, else how to start."""
        problems = (model.catalog_problems(self.app.config, self.app.catalog)
                    if self.app.catalog is not None else [])
        if problems:
            return Text("\n\n".join(f"⚠ {p}" for p in problems), style="bold")
        return Text("Type to search; ↓ or ↵ moves to the results.", style="dim")

    def show_package(self, package: Package | None) -> None:
        self.package = package
        detail = self.query_one("#detail", Static)
        versions = self.query_one("#versions", DataTable)
        hint = self.query_one("#versions-hint", Static)
        cursor = versions.cursor_row
        versions.clear()
        if package is None or not package.versions:
            detail.update(self.placeholder())
            hint.update("")
            return
        detail.update(detail_text(package))
        rows = model.version_rows(package, self.app.records, self.app.module_rows, self.app.selection)
        for index, row in enumerate(rows):
            versions.add_row(Text("✓" if row.selected else " "), Text(row.version.version),
                             Text(row.version.channel), state_text(row.status), key=str(index))
        if rows:
            versions.move_cursor(row=min(cursor, len(rows) - 1))
        hint.update(Text(f"{len(rows)} version(s) · space pick · s submit selection "
                         f"({len(self.app.selection)})"))

    # -- keys -----------------------------------------------------------------------

    @on(Input.Submitted, "#search")
    def search_submitted(self) -> None:
        self.query_one("#results", DataTable).focus()

    def action_to_results(self) -> None:
        """↓ from the search box (tables use ↓ themselves, so this only fires there)."""
        self.query_one("#results", DataTable).focus()

    @on(DataTable.RowSelected, "#results")
    def result_chosen(self) -> None:
        self.query_one("#versions", DataTable).focus()

    @on(DataTable.RowSelected, "#versions")
    def version_chosen(self) -> None:
        self.action_pick()

    def search_for(self, query: str) -> None:
        """Put ``query`` in the search box (the search follows from Input.Changed)."""
        search = self.query_one("#search", Input)
        search.value = query
        search.focus()

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_leave_search(self) -> None:
        if self.focused is self.query_one("#search", Input):
            self.query_one("#results", DataTable).focus()
        else:
            self.query_one("#search", Input).focus()

    def chosen_version(self) -> PackageVersion | None:
        """The version under the cursor in the versions list, else the newest."""
        if self.package is None or not self.package.versions:
            return None
        versions = self.query_one("#versions", DataTable)
        if self.focused is versions and 0 <= versions.cursor_row < len(self.package.versions):
            return self.package.versions[versions.cursor_row]
        return self.package.versions[0]

    def action_pick(self) -> None:
        version = self.chosen_version()
        if version is None:
            self.notify("Nothing to pick: search for a package first", severity="warning")
            return
        added = self.app.selection.toggle(version)
        verb = "Picked" if added else "Unpicked"
        self.notify(f"{verb} {version.name} {version.version} ({version.channel})", markup=False, timeout=2)
        self.app.selection_changed()

    def action_submit(self) -> None:
        from nixmod.tui.selection import PlanScreen

        if not len(self.app.selection):
            self.notify("The selection is empty: press space on a package or version first",
                        severity="warning")
            return
        self.app.push_screen(PlanScreen())
