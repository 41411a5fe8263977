"""Builds: the user's builds, live, with the highlighted one's log following.

The app refreshes records on a timer in a thread worker (squeue never runs
on the event loop); this screen only lays them out. The highlight belongs
to a build (its id), not to a row number, so a build appearing above it
(from the CLI, or a submit) never moves the cursor or the log to another
build; after a submit from the TUI the newest submitted build is
highlighted. The log pane follows new output only while it is scrolled to
the bottom; ``l`` (or ↵) opens the whole log full-screen.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, Static

from nixmod.builds import BuildRecord
from nixmod.builds.state import RETRYABLE_STATES, BuildState
from nixmod.tui import model
from nixmod.tui.base import NixmodScreen, UsesNixmodApp
from nixmod.tui.confirm import ConfirmScreen
from nixmod.tui.messages import Told, WholeLogRead
from nixmod.tui.widgets import Column, FilterInput, NavTable, fit_columns, state_text


class BuildsScreen(NixmodScreen):
    """Filter box, table of builds, and the followed log."""

    MODE = "builds"
    AUTO_FOCUS = "#builds"   # the list, not the filter box: keys work at once

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/", tooltip="into the filter box"),
        Binding("o", "sort", "Sort", tooltip="sort: newest, name, state"),
        Binding("l", "open_log", "Whole log", tooltip="the highlighted build's whole log, full-screen"),
        Binding("c", "cancel_build", "Cancel", tooltip="cancel the highlighted build (asks first: y / n)"),
        Binding("r", "retry_build", "Retry", tooltip="retry a failed or cancelled build"),
        Binding("f5", "refresh", "Check now", show=False,
                tooltip="ask the scheduler for the states now (at most once per 5 s)"),
        Binding("v", "verify_build", "Verify", show=False,
                tooltip="verify: rebuild the highlighted built package and compare, as `nixmod verify`"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_log = ""
        self.highlighted_id: int | None = None   # the build the cursor is on, whatever its row
        self.sort_key = model.BUILD_SORTS[0]
        self.shown: list[BuildRecord] = []                # the records as listed (filtered, sorted)
        self.table_width = 0
        self._log_of: int | None = None           # the build whose text the log pane holds

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(id="builds-pane", classes="pane"):
            yield FilterInput(placeholder="/ filter builds (name, state, job, node…)", id="builds-filter",
                              list_id="builds")
            yield NavTable(id="builds", cursor_type="row", zebra_stripes=True)
            yield Static(id="builds-status", classes="status")
            yield Log(id="log", max_lines=model.LOG_TAIL_LINES, auto_scroll=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#log", Log).border_title = "log"
        self.query_one("#builds", DataTable).focus()
        self.refresh_view()

    def selected_record(self) -> BuildRecord | None:
        for record in self.shown:
            if record.id == self.highlighted_id:
                return record
        return None

    def listed(self) -> list[BuildRecord]:
        text = self.query_one("#builds-filter", FilterInput).value
        return model.sort_records(model.filter_records(self.nixmod_app.records, text), self.sort_key)

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.nixmod_app.highlight_build is not None and any(r.id == self.nixmod_app.highlight_build
                                                        for r in self.nixmod_app.records):
            self.highlighted_id = self.nixmod_app.highlight_build
            self.nixmod_app.highlight_build = None
        self.fill_table()
        self.show_status()
        self.follow(self.selected_record())

    def _label(self, record: BuildRecord) -> str:
        return model.record_label(self.nixmod_app.config, record)

    def fill_table(self) -> None:
        table = self.query_one("#builds", DataTable)
        records = self.listed()
        self.shown = records
        self.table_width = table.size.width
        now = time.time()
        shown = fit_columns(table, table.size.width or 78, [
            Column("id", "#", max([2, *(len(str(r.id)) for r in records)]), 2, 0),
            Column("name", "name", min(24, max([4, *(len(self._label(r)) for r in records)])), 8, 1),
            Column("version", "version", min(16, max([7, *(len(r.version) for r in records)])), 6, 2),
            Column("state", "state", 9, 8, 3),
            Column("elapsed", "elapsed", 7, 6, 4),
            Column("node", "node", max([4, *(len(r.node or "") for r in records)]), 4, 5),
            Column("job", "job", max([3, *(len(str(r.job or "")) for r in records)]), 3, 6),
            Column("channel", "channel", max([7, *(len(r.channel) for r in records)]), 6, 7),
        ])
        for record in records:
            cells = {"id": Text(str(record.id)),
                     "name": Text(self._label(record), style="bold", overflow="ellipsis", no_wrap=True),
                     "version": Text(record.version, overflow="ellipsis", no_wrap=True),
                     "channel": Text(record.channel, overflow="ellipsis", no_wrap=True),
                     "state": state_text(record.state), "job": Text(str(record.job or "")),
                     "elapsed": Text(model.elapsed(record, now)), "node": Text(record.node or "")}
            table.add_row(*(cells[key] for key in shown), key=str(record.id))
        ids = [r.id for r in records]
        if self.highlighted_id not in ids:
            self.highlighted_id = ids[0] if ids else None
        if self.highlighted_id is not None:
            table.move_cursor(row=ids.index(self.highlighted_id), animate=False)

    def show_status(self) -> None:
        status = self.query_one("#builds-status", Static)
        records = self.nixmod_app.records
        status.remove_class("error")
        if self.nixmod_app.state_error:
            status.update(Text(f"⚠ {self.nixmod_app.state_error}"))
            status.add_class("error")
            return
        if not records:
            status.update(Text("No builds yet. Pick versions in Browse (1) and press s to submit."))
            return
        running = sum(1 for r in records if not r.finished)
        text = f"{len(self.shown)} of {len(records)} build(s), {running} in flight · sorted by {self.sort_key}"
        checked = model.checked_ago(self.nixmod_app.checked, time.time())
        if running and checked:
            text += f" · {checked} (f5 now)"
        record = self.selected_record()
        if record is not None and record.state == BuildState.FAILED and record.error:
            text += f" · #{record.id} failed: {model.failure_cause(record)}"
        elif record is not None and record.state in (BuildState.BUILT, BuildState.REUSED):
            text += " · v verify (rebuild and compare)"
        status.update(Text(text))

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        if self.query_one("#builds", DataTable).size.width != self.table_width:
            self.fill_table()

    def follow(self, record: BuildRecord | None) -> None:
        """Point the log pane at ``record`` and show what the app last read of it.

        New lines scroll the pane only while it is at the bottom: a user who
        scrolled back to read stays where they are.
        """
        log = self.query_one("#log", Log)
        build_id = record.id if record is not None else None
        self.nixmod_app.follow_build(build_id)
        log.border_title = (f"log · #{record.id} {self._label(record)} {record.version} · l whole log"
                            if record is not None else "log")
        text = self.nixmod_app.log_text if record is not None and self.nixmod_app.followed_build == build_id else ""
        if text == self.shown_log:
            return
        at_bottom = log.is_vertical_scroll_end or log.max_scroll_y == 0
        if self.shown_log and text.startswith(self.shown_log):
            log.write(text[len(self.shown_log):], scroll_end=at_bottom)   # the log grew: append it
        else:
            same_build = self._log_of == build_id
            keep = log.scroll_y
            log.clear()
            log.write(text, scroll_end=at_bottom or not same_build)
            if same_build and not at_bottom:
                log.scroll_to(y=keep, animate=False, immediate=True)
        self._log_of = build_id
        self.shown_log = text

    @on(DataTable.RowHighlighted, "#builds")
    def build_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#builds", DataTable)
        if event.cursor_row != table.cursor_row or event.row_key.value is None:
            return   # a stale event from a redraw: the highlight stays with its build
        self.highlighted_id = int(event.row_key.value)
        self.show_status()
        self.follow(self.selected_record())

    @on(DataTable.RowSelected, "#builds")
    def build_chosen(self) -> None:
        self.action_open_log()

    @on(FilterInput.Changed, "#builds-filter")
    def filter_changed(self) -> None:
        self.fill_table()
        self.show_status()
        self.follow(self.selected_record())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        box = self.query("#builds-filter").first() if self.is_mounted else None
        if box is not None and self.focused is box and action != "refresh":
            return False
        return True

    def action_focus_filter(self) -> None:
        self.set_focus(self.query_one("#builds-filter", FilterInput))

    def action_sort(self) -> None:
        sorts = model.BUILD_SORTS
        self.sort_key = sorts[(sorts.index(self.sort_key) + 1) % len(sorts)]
        self.fill_table()
        self.show_status()

    def action_open_log(self) -> None:
        record = self.selected_record()
        if record is None:
            self.notify("No build highlighted", severity="warning")
            return
        self.app.push_screen(LogScreen(record))

    def action_cancel_build(self) -> None:
        record = self.selected_record()
        if record is None or record.finished:
            self.notify("Only a pending, queued or running build can be cancelled", severity="warning")
            return
        what = f"build #{record.id} {record.name} {record.version} ({record.state}"
        what += f", job {record.job})" if record.job else ")"
        question = (f"Cancel {what}?\nA running build is stopped and its work is lost; "
                    f"r retries it later.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.nixmod_app.cancel_build(record.id)

        self.app.push_screen(ConfirmScreen("Cancel this build?", question), answered)

    def action_retry_build(self) -> None:
        record = self.selected_record()
        if record is None or record.state not in RETRYABLE_STATES:
            self.notify("Only a failed or cancelled build can be retried", severity="warning")
            return
        self.nixmod_app.retry_build(record)

    def action_verify_build(self) -> None:
        record = self.selected_record()
        if record is None or record.state not in (BuildState.BUILT, BuildState.REUSED):
            self.notify("Only a built package can be verified", severity="warning")
            return
        self.notify(f"Verifying {record.name} {record.version}: rebuilding it to compare",
                    markup=False)
        self.verify_build(record)

    @work(thread=True, group="verify")
    def verify_build(self, record: BuildRecord) -> None:
        """``nixmod verify`` of one built package: rebuild with --check, compare."""
        try:
            results = model.verify_build(self.nixmod_app.config, record)
        except Exception as error:  # noqa: BLE001
            self.post_message(Told(f"Could not verify {record.name}: {model.explain(error)}",
                                   severity="error"))
            return
        same = all(r.result == "reproducible" for r in results)
        text = f"{record.name} {record.version}: " + ", ".join(
            f"{r.output} {r.result}" for r in results) + f" (on {results[0].node})"
        self.post_message(Told(text, title="Verified", severity="information" if same else "error"))

    def action_refresh(self) -> None:
        self.nixmod_app.check_now()


class LogScreen(UsesNixmodApp, Screen[None]):
    """One build's whole log, full-screen: scroll it, search it with the terminal, esc back."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="esc", tooltip="back to Builds"),
        Binding("g,home", "top", "Top", key_display="g", tooltip="top"),
        Binding("G,end", "bottom", "Bottom", key_display="G", tooltip="bottom"),
        Binding("j", "down", "Down", show=False, tooltip="move down"),
        Binding("k", "up", "Up", show=False, tooltip="move up"),
        Binding("f5", "reload", "Reload", tooltip="read the log again"),
    ]

    def __init__(self, record: BuildRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        yield Static(Text(f"⏳ reading {self.record.log or 'the log'}…"), id="whole-log-title",
                     classes="status")
        yield Log(id="whole-log", auto_scroll=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#whole-log", Log).focus()
        self.load()

    @work(thread=True, exclusive=True, group="whole-log")
    def load(self) -> None:
        self.post_message(WholeLogRead(model.whole_log(self.record)))

    def on_whole_log_read(self, message: WholeLogRead) -> None:
        self.show(message.text)

    def show(self, text: str) -> None:
        log = self.query_one("#whole-log", Log)
        log.clear()
        log.write(text or "(the log is empty: the build has not started yet)", scroll_end=True)
        record = self.record
        self.query_one("#whole-log-title", Static).update(Text(
            f"#{record.id} {record.name} {record.version} · {record.state} · {log.line_count} lines "
            f"of {record.log} · ↑↓ PgUp PgDn g G scroll · f5 reload · esc back"))

    def action_top(self) -> None:
        self.query_one("#whole-log", Log).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one("#whole-log", Log).scroll_end(animate=False)

    def action_down(self) -> None:
        self.query_one("#whole-log", Log).scroll_down(animate=False)

    def action_up(self) -> None:
        self.query_one("#whole-log", Log).scroll_up(animate=False)

    def action_reload(self) -> None:
        self.load()
