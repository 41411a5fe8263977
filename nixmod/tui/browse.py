"""Browse: search as you type, see every version, pick the ones to build.

The results list is capped (model.RESULT_LIMIT rows, ranked) so it paints
in milliseconds whatever the catalog's size; the search itself runs in an
exclusive thread worker, so a new keystroke cancels the stale search and
the newest query always wins.

Keys follow one model (FilterInput): the box takes text only while it has
focus (``/`` gives it focus, ↵ or esc leaves it); everywhere else the
screen's keys work, and the footer and the status line say which keys do
what in the state the user is in.
"""

from __future__ import annotations


from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from nixmod.catalog import Catalog
from nixmod.packages import Package, PackageVersion
from nixmod.tui import envmodel, model
from nixmod.tui.base import NixmodScreen
from nixmod.tui.messages import SearchDone
from nixmod.tui.selection import PlanScreen
from nixmod.tui.widgets import Column, FilterInput, NavTable, detail_text, fit_columns, state_text


class BrowseScreen(NixmodScreen):
    """Search box, ranked results, and the detail of the highlighted package."""

    MODE = "browse"

    BINDINGS = [
        Binding("slash", "focus_search", "Search", key_display="/", tooltip="into the search box"),
        Binding("space", "pick", "Pick", tooltip="pick / unpick the highlighted version (in the results: the "
                "newest, the one the header names)"),
        # when the footer offers no Pick (a browse-only package), space still says why
        Binding("space", "pick_refused", "Pick", show=False),
        Binding("s", "submit", "Submit",
                tooltip="submit the selection: shows what will be reused, joined or built first"),
        Binding("escape", "back", "Back", show=False, tooltip="back from the versions to the results"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.package: Package | None = None
        self.result_names: list[str] = []
        self.result_rows: list[model.ResultRow] = []
        self.searched_catalog: Catalog | None = None   # the catalog the results came from
        self.shown_query: str | None = None  # the query the results list shows now
        self.result_width = 0
        self.fills = 0   # tables filled so far: rows added after a paint belong to the newest fill only
        #: what the detail and versions panes show now (package, rows, width, selection size)
        self.shown_detail: tuple[Package, list[model.VersionRow], list[str], int, int] | None = None
        #: what decided the footer's keys when it was last refreshed (``refresh_footer``)
        self.offered_keys: tuple[bool, bool | None, bool] | None = None
        #: ↵ or space pressed on the results before the search for the typed query came back:
        #: done when it does, on the package the query found (not on a stale row)
        self.pending: list[str] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal(id="browse"):
            with Vertical(id="results-pane"):
                yield FilterInput(placeholder="/ search packages, programs, descriptions…", id="search",
                                  list_id="results")
                yield NavTable(id="results", cursor_type="row", zebra_stripes=True)
                yield Static(id="results-status", classes="status")
            with Vertical(id="detail-pane"):
                yield Static(id="detail")
                yield NavTable(id="versions", cursor_type="row")
                yield Static(id="versions-hint", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#search", FilterInput).focus()
        self.refresh_view()

    # -- drawing ------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Show the catalog's state; search once when it has just become ready."""
        super().refresh_view()
        if self.nixmod_app.catalog is not None and self.searched_catalog is not self.nixmod_app.catalog:
            self.searched_catalog = self.nixmod_app.catalog
            self.run_search(self.query_one("#search", FilterInput).value)
        self.show_status()
        self.show_package(self.package)
        self.refresh_footer()

    def show_status(self) -> None:
        """The line under the results: the catalog's state, the matches, and the keys that work here."""
        status = self.query_one("#results-status", Static)
        status.remove_class("error")
        if self.nixmod_app.catalog_error:
            status.update(Text(f"⚠ {self.nixmod_app.catalog_error}"))
            status.add_class("error")
            return
        if self.nixmod_app.catalog is None:
            status.update(Text(f"⏳ {self.nixmod_app.catalog_status}"))
            return
        query = self.shown_query or ""
        in_box = self.focused is self.query_one("#search", FilterInput)
        keys = ("↵/esc: to the results" if in_box else
                "↵ versions · space pick newest · / search" if self.focused is self.query_one("#results")
                else "space pick this version · esc back · / search")
        if self.shown_query is None:
            text = "⏳ searching…"
        elif not query.strip():
            text = model.catalog_summary(self.nixmod_app.catalog) + (f" · {keys}" if not in_box else "")
        elif self.result_rows:
            more = "+" if len(self.result_rows) >= model.RESULT_LIMIT else ""
            text = f"{len(self.result_rows)}{more} match(es) · {keys}"
        else:
            text = f"No package matches {query!r}; try a program name or fewer letters"
        status.update(Text(text))

    @on(FilterInput.Changed, "#search")
    def search_changed(self, event: FilterInput.Changed) -> None:
        if self.nixmod_app.catalog is not None:
            self.run_search(event.value)

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, query: str) -> None:
        """Rank matches off the loop; a newer keystroke cancels this one."""
        catalog = self.nixmod_app.catalog
        if catalog is None:
            return
        rows = model.search_rows(catalog, query)
        if not get_current_worker().is_cancelled:
            self.post_message(SearchDone(query, rows))

    def on_search_done(self, message: SearchDone) -> None:
        if message.query != self.query_one("#search", FilterInput).value:
            return   # a newer query is on its way
        self.shown_query = message.query
        table = self.query_one("#results", DataTable)
        unchanged = message.rows == self.result_rows and table.size.width == self.result_width
        self.result_rows = message.rows
        self.result_names = [row.name for row in message.rows]
        if unchanged:   # one more letter often ranks the same rows: no new table to draw
            table.move_cursor(row=0)
        else:
            self.fill_results()
        self.show_status()
        self.show_package(self._package_named(self.result_names[0]) if self.result_names else None)
        pending, self.pending = self.pending, []
        for action in pending if self.result_names else []:
            if action == "open":
                self.set_focus(self.query_one("#versions", DataTable))
            else:
                self.action_pick()

    def search_pending(self) -> bool:
        """Has the user typed something the results list does not show yet?"""
        return self.nixmod_app.catalog is not None and self.shown_query != self.query_one("#search", FilterInput).value

    def fill_results(self, through: int = 0) -> None:
        """The results table at the width it has now: name, version, # and description, by priority.

        The rows the table shows (and up to ``through``) go in at once, the rest
        after the next paint: a keystroke's results are on screen without
        waiting for the ~100 rows below the fold (issue 22: 4-14 ms each time).
        """
        table = self.query_one("#results", DataTable)
        rows = self.result_rows
        self.result_width = table.size.width
        width = table.size.width or 40
        # name and version get a share of the width, so the description always has room
        name = min(26, max([4, *(len(r.name) for r in rows)]), max(12, width * (3 if width < 60 else 4) // 10))
        version = min(12, max([7, *(len(r.newest) for r in rows)]), max(7, width // 6))
        count = max([1, *(len(str(r.count)) for r in rows)])
        about = width - name - version - count - 9
        shown = fit_columns(table, width, [
            Column("name", "name", name, 10, 0),
            Column("version", "version", version, 6, 1),
            Column("count", "#", count, 1, 2),
            Column("description", "description" if about >= 11 else "about", 12, 8, 3, flexible=True),
        ])
        self.fills += 1
        first = max(through + 1, table.size.height or 24)
        self._add_results(table, shown, rows[:first])
        if len(rows) > first:
            self.call_after_refresh(self._add_more_results, self.fills, shown, rows[first:])

    def _add_more_results(self, fill: int, shown: list[str], rows: list[model.ResultRow]) -> None:
        """The rows below the fold, unless a newer search or layout has refilled the table."""
        if fill == self.fills:
            self._add_results(self.query_one("#results", DataTable), shown, rows)

    @staticmethod
    def _add_results(table: DataTable, shown: list[str], rows: list[model.ResultRow]) -> None:
        for row in rows:
            cells = {"name": Text(row.name, style="bold", overflow="ellipsis", no_wrap=True),
                     "version": Text(row.newest, overflow="ellipsis", no_wrap=True),
                     "count": Text(str(row.count)),
                     "description": Text(row.description, overflow="ellipsis", no_wrap=True)}
            table.add_row(*(cells[key] for key in shown), key=row.name)

    def on_resize(self, event: events.Resize) -> None:
        # narrow terminals split evenly, so the versions keep their state and channel
        self.query_one("#browse").set_class(event.size.width < 100, "narrow")
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        table = self.query_one("#results", DataTable)
        if table.size.width != self.result_width and self.shown_query is not None:
            highlighted = table.cursor_row
            self.fill_results(through=highlighted)
            if self.result_rows:
                table.move_cursor(row=min(highlighted, len(self.result_rows) - 1))
        self.show_package(self.package)

    def _package_named(self, name: str) -> Package | None:
        if self.nixmod_app.catalog is None:
            return None
        try:
            return self.nixmod_app.catalog.package(name)
        except Exception:  # noqa: BLE001 - a vanished name just shows nothing
            return None

    @on(DataTable.RowHighlighted, "#results")
    def result_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_package(self._package_named(event.row_key.value))

    def placeholder(self) -> Text:
        """The detail pane with no package: the catalog's problems, else how to start."""
        problems = (model.catalog_problems(self.nixmod_app.config, self.nixmod_app.catalog)
                    if self.nixmod_app.catalog is not None else [])
        if problems:
            return Text("\n\n".join(f"⚠ {p}" for p in problems), style="bold")
        return Text("Type to search; ↵ or esc moves to the results.", style="dim")

    def show_package(self, package: Package | None) -> None:
        """The detail and versions of ``package``; the cursor starts on the newest for a new package."""
        same = package is not None and self.package is not None and package.name == self.package.name
        self.package = package
        detail = self.query_one("#detail", Static)
        versions = self.query_one("#versions", DataTable)
        hint = self.query_one("#versions-hint", Static)
        cursor = versions.cursor_row if same else 0
        if package is None or not package.versions:
            self.shown_detail = None
            versions.clear(columns=True)
            detail.update(self.placeholder())
            hint.update("")
            self.refresh_footer()
            return
        browse_only = model.browse_only_channels(self.nixmod_app.config)
        rows = model.version_rows(package, self.nixmod_app.records, self.nixmod_app.module_rows, self.nixmod_app.selection,
                                  browse_only)
        # typing on ("samt", "samto", ...) mostly keeps the same top package: drawing its
        # detail and versions again cost a layout and a repaint per keystroke for nothing
        holding = envmodel.environments_holding(self.nixmod_app.env_rows, package.name)
        drawn = (package, rows, holding, versions.size.width, len(self.nixmod_app.selection))
        if drawn == self.shown_detail:
            self.refresh_footer()
            return
        self.shown_detail = drawn
        detail.update(detail_text(package, holding))
        shown = fit_columns(versions, versions.size.width or 36, [
            Column("picked", " ", 1, 1, 0),
            Column("version", "version", max(len(r.version.version) for r in rows), 8, 1),
            Column("state", "state", max(9, *(len(r.status) for r in rows)), 9, 2),
            Column("channel", "channel", max(7, *(len(r.version.channel) for r in rows)), 6, 3),
        ])
        for index, row in enumerate(rows):
            cells = {"picked": Text("✓" if row.selected else " "),
                     "version": Text(row.version.version, overflow="ellipsis", no_wrap=True),
                     "channel": Text(row.version.channel, overflow="ellipsis", no_wrap=True),
                     "state": state_text(row.status)}
            versions.add_row(*(cells[key] for key in shown), key=str(index))
        versions.move_cursor(row=min(cursor, len(rows) - 1))
        if all(row.status == model.BROWSE_ONLY for row in rows):
            hint.update(Text(f"{len(rows)} version(s) · browse only: these channels are saved package "
                             "lists; a nixpkgs path or url channel can build"))
        else:
            submit = f" · s submit ({len(self.nixmod_app.selection)})" if len(self.nixmod_app.selection) else ""
            hint.update(Text(f"{len(rows)} version(s) · space pick{submit}"))
        self.refresh_footer()

    def refresh_footer(self) -> None:
        """Have the footer offer the keys again, if what ``check_action`` allows has changed.

        Each ``refresh_bindings`` makes Textual's Footer compose all its keys
        anew: done twice per keystroke, it was the largest share of the main
        thread's work while the user typed (issue 22).
        """
        if not self.is_current:   # its footer is not shown: tell it when the screen is back
            self.offered_keys = None
            return
        search = self.query("#search").first() if self.is_mounted else None
        offered = (self.focused is search and search is not None,
                   None if self.package is None else bool(self._buildable(self.package.versions)),
                   bool(self._buildable_channels()))
        if offered != self.offered_keys:
            self.offered_keys = offered
            self.refresh_bindings()

    # -- keys -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers only what works here: nothing but the box's keys while typing."""
        search = self.query("#search").first() if self.is_mounted else None
        if action in ("pick", "submit", "focus_search") and search is not None and self.focused is search:
            return False
        if action == "submit" and not self._buildable_channels():
            return False
        if action == "pick" and self.package is not None and not self._buildable(self.package.versions):
            return False
        if action == "pick_refused":
            return search is None or self.focused is not search
        return True

    def action_pick_refused(self) -> None:
        self.action_pick()

    def _buildable_channels(self) -> list[str]:
        browse_only = model.browse_only_channels(self.nixmod_app.config)
        return [c.name for c in self.nixmod_app.config.channels if c.name not in browse_only]

    def _buildable(self, versions: list[PackageVersion]) -> list[PackageVersion]:
        return [v for v in versions if model.can_build(self.nixmod_app.config, v)]

    def on_descendant_focus(self, _event: events.DescendantFocus) -> None:
        self.show_status()
        self.offered_keys = None   # the focus decides which keys the footer offers
        self.refresh_footer()

    @on(DataTable.RowSelected, "#results")
    def result_chosen(self) -> None:
        if self.search_pending():
            self.pending.append("open")
            return
        self.set_focus(self.query_one("#versions", DataTable))

    @on(DataTable.RowSelected, "#versions")
    def version_chosen(self) -> None:
        self.action_pick()

    def search_for(self, query: str) -> None:
        """Put ``query`` in the search box (the search follows from Input.Changed)."""
        search = self.query_one("#search", FilterInput)
        search.value = query
        search.focus()

    def action_focus_search(self) -> None:
        self.set_focus(self.query_one("#search", FilterInput))

    def action_back(self) -> None:
        """esc outside the box: from the versions back to the results (never into the box)."""
        if self.focused is self.query_one("#versions"):
            self.set_focus(self.query_one("#results", DataTable))

    def chosen_version(self) -> PackageVersion | None:
        """The version under the cursor in the versions list, else the newest (the header's)."""
        if self.package is None or not self.package.versions:
            return None
        versions = self.query_one("#versions", DataTable)
        if self.focused is versions and 0 <= versions.cursor_row < len(self.package.versions):
            return self.package.versions[versions.cursor_row]
        return self.package.versions[0]

    def action_pick(self) -> None:
        if self.nixmod_app.catalog is None and not self.nixmod_app.catalog_error:
            self.notify(f"The catalog is still loading ({self.nixmod_app.catalog_status}); space works once "
                        "it is in", severity="warning", markup=False)
            return
        if self.focused is self.query_one("#results") and self.search_pending():
            self.pending.append("pick")
            return
        version = self.chosen_version()
        if version is None:
            self.notify("Nothing to pick: search for a package first (/)", severity="warning")
            return
        if not model.can_build(self.nixmod_app.config, version):
            self.notify(f"{version.name} {version.version} is in channel {version.channel}, a saved "
                        "package list: browse only, it cannot be built. A nixpkgs path or url channel "
                        "can build it.", title="Browse only", severity="warning", markup=False)
            return
        added = self.nixmod_app.selection.toggle(version)
        verb = "Picked" if added else "Unpicked"
        self.notify(f"{verb} {version.name} {version.version} ({version.channel})", markup=False, timeout=2)
        self.nixmod_app.selection_changed()

    def action_submit(self) -> None:
        if not len(self.nixmod_app.selection):
            self.notify("The selection is empty: press space on a package or version first",
                        severity="warning")
            return
        self.app.push_screen(PlanScreen())
