"""Builds: the user's builds, live, with the selected one's log following.

The app refreshes records on a timer in a thread worker (squeue never runs
on the event loop); this screen only lays them out, keeps the cursor on the
same build across refreshes, and follows the log of the build under it.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Log, Static

from nixmod.tui import model
from nixmod.tui.base import NixmodScreen
from nixmod.tui.widgets import state_text


class BuildsScreen(NixmodScreen):
    """Table of builds over the followed log."""

    MODE = "builds"

    BINDINGS = [
        Binding("c", "cancel_build", "Cancel"),
        Binding("r", "retry_build", "Retry"),
        Binding("f5", "refresh", "Refresh"),
        Binding("v", "verify_build", "Verify", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_log = ""

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Vertical(id="builds-pane", classes="pane"):
            yield DataTable(id="builds", cursor_type="row", zebra_stripes=True)
            yield Static(id="builds-status", classes="status")
            yield Log(id="log", max_lines=model.LOG_TAIL_LINES, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#builds", DataTable)
        for column in ("id", "name", "version", "channel", "state", "job", "elapsed", "node"):
            table.add_column(column, key=column)
        self.query_one("#log", Log).border_title = "log"
        self.refresh_view()

    def selected_record(self) -> Any | None:
        table = self.query_one("#builds", DataTable)
        records = self.newest_first()
        if 0 <= table.cursor_row < len(records):
            return records[table.cursor_row]
        return None

    def newest_first(self) -> list[Any]:
        return list(reversed(self.app.records))

    def refresh_view(self) -> None:
        super().refresh_view()
        table = self.query_one("#builds", DataTable)
        selected = self.selected_record()
        records = self.newest_first()
        table.clear()
        now = time.time()
        for record in records:
            table.add_row(Text(str(record.id)), Text(record.name, style="bold"), Text(record.version),
                          Text(record.channel), state_text(record.state), Text(str(record.job or "")),
                          Text(model.elapsed(record, now)), Text(record.node or ""),
                          key=str(record.id))
        ids = [r.id for r in records]
        if selected is not None and selected.id in ids:
            table.move_cursor(row=ids.index(selected.id))
        status = self.query_one("#builds-status", Static)
        if self.app.state_error:
            status.update(Text(f"⚠ {self.app.state_error}"))
            status.add_class("error")
        elif records:
            status.remove_class("error")
            running = sum(1 for r in records if not r.finished)
            status.update(Text(f"{len(records)} build(s), {running} in flight · c cancel · r retry · v verify · "
                               f"the log of the highlighted build follows below"))
        else:
            status.remove_class("error")
            status.update(Text("No builds yet. Pick versions in Browse (1) and press s to submit."))
        self.follow(self.selected_record())

    def follow(self, record: Any | None) -> None:
        """Point the log pane at ``record`` and show what the app last read of it."""
        log = self.query_one("#log", Log)
        build_id = record.id if record is not None else None
        self.app.follow_build(build_id)
        log.border_title = f"log · {record.name} {record.version}" if record is not None else "log"
        text = self.app.log_text if record is not None else ""
        if text == self.shown_log:
            return
        if self.shown_log and text.startswith(self.shown_log):
            log.write(text[len(self.shown_log):])      # the log grew: append only the new part
        else:
            log.clear()
            log.write(text)
        self.shown_log = text

    @on(DataTable.RowHighlighted, "#builds")
    def build_highlighted(self) -> None:
        self.follow(self.selected_record())

    def action_cancel_build(self) -> None:
        record = self.selected_record()
        if record is None or record.finished:
            self.notify("Only a pending, queued or running build can be cancelled", severity="warning")
            return
        self.app.cancel_build(record.id)

    def action_retry_build(self) -> None:
        record = self.selected_record()
        if record is None or record.state not in model.RETRYABLE_STATES:
            self.notify("Only a failed or cancelled build can be retried", severity="warning")
            return
        self.app.retry_build(record)

    def action_verify_build(self) -> None:
        record = self.selected_record()
        if record is None or record.state not in ("built", "reused"):
            self.notify("Only a built package can be verified", severity="warning")
            return
        self.notify(f"Verifying {record.name} {record.version}: rebuilding it to compare",
                    markup=False)
        self.verify_build(record)

    @work(thread=True, group="verify")
    def verify_build(self, record: Any) -> None:
        """``nixmod verify`` of one built package: rebuild with --check, compare."""
        from pathlib import Path

        from nixmod import repro

        try:
            results = repro.verify(self.app.config, [f"{record.name}/{record.version}"],
                                   modules_root=Path(record.module_root) if record.module_root else None)
        except Exception as error:  # noqa: BLE001
            self.app.call_from_thread(self.notify, f"Could not verify {record.name}: "
                                      f"{model.explain(error)}", severity="error", markup=False)
            return
        same = all(r.result == "reproducible" for r in results)
        text = f"{record.name} {record.version}: " + ", ".join(
            f"{r.output} {r.result}" for r in results) + f" (on {results[0].node})"
        self.app.call_from_thread(self.notify, text, title="Verified",
                                  severity="information" if same else "error", markup=False)

    def action_refresh(self) -> None:
        self.app.refresh_state()
