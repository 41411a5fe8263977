"""The Textual app: four screens over one shared state, fed by thread workers.

The app owns what every screen needs (the catalog, the selection, the
user's builds and modules) so that switching screens never reloads
anything. Everything slow (evaluating channels, squeue, reading logs and
modulefiles) runs in ``@work(thread=True, exclusive=True)`` workers that
post messages; handlers on the event loop only store results and ask the
visible screen to redraw. A user-caused failure becomes a message on
screen, never a traceback, and the rest of the app keeps working.
"""

from __future__ import annotations

import gc
import select
import sys
import time
from typing import Any, Iterable

from textual import work
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker

from nixmod.builds import BuildRecord, BuildState, Plan
from nixmod.catalog import Catalog
from nixmod.config import Config
from nixmod.tui import envmodel, model
from nixmod.tui.base import NixmodAppApi, NixmodScreen
from nixmod.tui.browse import BrowseScreen
from nixmod.tui.builds import BuildsScreen
from nixmod.tui.help import HelpScreen
from nixmod.tui.messages import (ActionDone, CatalogFailed, CatalogProgress, CatalogReady,
                                 StateRefreshed, Submitted, Told)
from nixmod.tui.modules import ModulesScreen
from nixmod.tui.palette import PackageCommands
from nixmod.tui.selection import SelectionScreen
from nixmod.tui.widgets import FilterInput

#: seconds between refreshes of the build records and modules (the store and the jobs' exit
#: records; the scheduler itself is asked at most every [build] poll_seconds)
REFRESH_SECONDS = 2.0
#: the refresh key asks the scheduler now, at most this often (and says so when pressed sooner)
CHECK_NOW_SECONDS = 5.0
#: seconds between checks that the terminal is still there
HANGUP_CHECK_SECONDS = 1.0


class NixmodApp(App[int]):
    """nixmod's TUI: Browse, Selection, Builds, Modules."""

    CSS_PATH = "nixmod.tcss"
    TITLE = "nixmod"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {PackageCommands}
    MODES = {
        "browse": BrowseScreen,
        "selection": SelectionScreen,
        "builds": BuildsScreen,
        "modules": ModulesScreen,
    }
    DEFAULT_MODE = "browse"
    BINDINGS = [
        # shown on the tab line under the header, so not in the footer
        Binding("1", "switch_mode('browse')", "Browse", show=False),
        Binding("2", "switch_mode('selection')", "Selection", show=False),
        Binding("3", "switch_mode('builds')", "Builds", show=False),
        Binding("4", "switch_mode('modules')", "Modules", show=False),
        # ? and q are letters in a text box: their own actions, hidden from the footer there
        Binding("question_mark", "help_key", "Help", key_display="?",
                tooltip="every key; esc closes it (the border says when there is more below)"),
        Binding("f1", "help", "Help", show=False,
                tooltip="every key; esc closes it (the border says when there is more below)"),
        Binding("q", "quit_key", "Quit", tooltip="quit"),
        # Textual makes ctrl+c "copy" in inputs and a "press ctrl+q" hint elsewhere;
        # a terminal user's ctrl+c means "stop this program", on every screen.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, tooltip="quit"),
    ]

    def __init__(self, config: Config, *, refresh_seconds: float = REFRESH_SECONDS,
                 watch_builds: bool = True) -> None:
        super().__init__()
        self.config = config
        self.refresh_seconds = refresh_seconds
        self.watch_builds = watch_builds
        self.catalog: Catalog | None = None
        self.catalog_status = "Loading the catalog…"
        self.catalog_error = ""
        self.selection = model.Selection()
        self.records: list[BuildRecord] = []
        self.module_rows: list[model.ModuleRow] = []
        self.env_rows: list[model.ModuleRow] = []
        self.state_error = ""
        self.followed_build: int | None = None   # the build whose log the Builds screen follows
        self.log_text = ""
        self._records_seen = False
        #: a build the Builds screen should highlight next (the newest one just submitted)
        self.highlight_build: int | None = None
        #: when the scheduler last answered about the builds (epoch), shown as "checked N s ago"
        self.checked: float | None = None
        self._checked_now_at: float | None = None   # monotonic time of the last "check now"

    # -- start-up ---------------------------------------------------------------

    def on_mount(self) -> None:
        model.route_store_notices(self._told_by_the_core)
        self.sub_title = self._subtitle()
        if self.watch_builds:
            self.set_interval(self.refresh_seconds, self.refresh_state)
        if not self.is_headless:
            self.set_interval(HANGUP_CHECK_SECONDS, self._exit_if_terminal_gone)

    def on_ready(self) -> None:
        """The first frame is on screen: now read the catalog and the builds.

        Started on mount, the workers' Python (unpacking the catalog cache,
        reading the build records) competed for the GIL with Textual composing
        and painting the first screen; from here they cannot delay it. The
        screen says "Loading the catalog…" until the catalog is in.
        """
        self.load_catalog()
        self.refresh_state()

    def _exit_if_terminal_gone(self) -> None:
        """Quit when the terminal hangs up without a SIGHUP reaching us.

        That happens under runuser/su and some batch wrappers; Textual's
        input thread would then spin on the dead tty, and a login node would
        keep a process burning a core for a user who has gone.
        """
        if terminal_hung_up(sys.__stdin__):
            self.exit(0)

    def _subtitle(self) -> str:
        """selection N first: the header is cut at the right, and many channels must not hide it."""
        channels = ", ".join(c.name for c in self.config.channels)
        if len(channels) > 32:
            channels = f"{len(self.config.channels)} channels"
        demo = "demo · " if self.config.demo else ""
        return f"{demo}selection {len(self.selection)} · {self.config.build.backend} · {channels}"

    def selection_changed(self) -> None:
        """The header counts the selection, so every change must say so."""
        self.sub_title = self._subtitle()
        self.redraw()

    # -- workers ----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog")
    def load_catalog(self) -> None:
        """Evaluate (first run) or read (cached) the catalog, reporting progress."""
        def progress(text: str) -> None:
            self.post_message(CatalogProgress(text))

        try:
            catalog = model.load_catalog(self.config, progress=progress)
        except Exception as error:  # noqa: BLE001 - any failure becomes a message, not a traceback
            self.post_message(CatalogFailed(model.explain(error)))
            return
        # The catalog lives as long as the app: keep Python's full garbage collections,
        # about one a second while the user types, from walking it each time (with five
        # real channels each took 40-230 ms, the slowest keystrokes; now 20-60 ms).
        gc.freeze()
        self.post_message(CatalogReady(catalog))

    @work(thread=True, exclusive=True, group="state")
    def refresh_state(self, now: bool = False) -> None:
        """Build states, modules and the followed log, off the event loop.

        The scheduler is asked only when the user's last answer is older than
        ``[build] poll_seconds`` (``now``: than ``CHECK_NOW_SECONDS``).
        """
        worker = get_current_worker()
        errors = []
        checked = self.checked
        max_age = CHECK_NOW_SECONDS if now else float(self.config.build.poll_seconds)
        try:
            records, checked = model.refresh_records(self.config, max_age)
        except Exception as error:  # noqa: BLE001
            records, errors = list(self.records), [model.explain(error)]
        try:
            modules = model.module_rows(self.config)
        except Exception as error:  # noqa: BLE001
            modules = list(self.module_rows)
            errors.append(model.explain(error))
        try:
            environments = envmodel.environment_rows(self.config)
        except Exception as error:  # noqa: BLE001
            environments = list(self.env_rows)
            errors.append(model.explain(error))
        followed = self.followed_build
        log_text = ""
        for record in records:
            if record.id == followed:
                log_text = model.log_tail(record)
        if not worker.is_cancelled:
            self.post_message(StateRefreshed(records, modules, "; ".join(errors), followed, log_text,
                                             checked, environments))

    @work(thread=True, exclusive=True, group="submit")
    def submit(self, plans: list[Plan]) -> None:
        try:
            records = model.submit_plans(self.config, plans)
        except Exception as error:  # noqa: BLE001
            self.post_message(Submitted(error=model.explain(error)))
            return
        self.post_message(Submitted(records=list(records)))

    @work(thread=True, exclusive=True, group="submit")
    def create_environment(self, preview: envmodel.EnvPreview) -> None:
        """Submit the environment the plan dialog showed (reuse, join or build) and write its module."""
        try:
            records = envmodel.create_environment(self.config, preview)
        except Exception as error:  # noqa: BLE001
            self.post_message(Submitted(error=model.explain(error)))
            return
        self.post_message(Submitted(records=list(records)))

    @work(thread=True, group="actions")
    def cancel_build(self, build_id: int) -> None:
        try:
            model.cancel_builds(self.config, [build_id])
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionDone(f"Could not cancel {build_id}: {model.explain(error)}", "error"))
            return
        self.post_message(ActionDone(f"Cancelled build {build_id}"))

    @work(thread=True, group="actions")
    def remove_module(self, row: model.ModuleRow) -> None:
        try:
            model.remove_module(self.config, row)
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionDone(f"Could not remove {row.module}: {model.explain(error)}", "error"))
            return
        self.post_message(ActionDone(f"Removed {row.module} (the store path is left to the garbage "
                                     "collector; a build brings the module back)"))

    @work(thread=True, group="actions")
    def remove_environment(self, row: model.ModuleRow) -> None:
        try:
            envmodel.remove_environment(self.config, row)
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionDone(f"Could not remove {row.module}: {model.explain(error)}", "error"))
            return
        self.post_message(ActionDone(f"Removed {row.module} (the store path is left to the garbage "
                                     "collector; its other generations stay loadable)"))

    @work(thread=True, group="actions")
    def retry_build(self, record: BuildRecord) -> None:
        try:
            model.retry_build(self.config, record.id)
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionDone(f"Could not retry {record.name}: {model.explain(error)}", "error"))
            return
        self.post_message(ActionDone(f"Resubmitted {record.name} {record.version}"))

    # -- messages from workers ----------------------------------------------------

    def on_catalog_progress(self, message: CatalogProgress) -> None:
        self.catalog_status = message.text
        self.redraw()

    def on_catalog_ready(self, message: CatalogReady) -> None:
        self.catalog = message.catalog
        self.catalog_status = ""
        self.redraw()

    def on_catalog_failed(self, message: CatalogFailed) -> None:
        self.catalog_error = message.reason
        self.catalog_status = ""
        self.notify(message.reason, title="No catalog", severity="error", markup=False, timeout=10)
        self.redraw()

    def on_state_refreshed(self, message: StateRefreshed) -> None:
        if self._records_seen:
            for record in model.build_transitions(self.records, message.records):
                failed = record.state in (BuildState.FAILED, BuildState.CANCELLED)
                text = f"{model.record_label(self.config, record)} {record.version}: {record.state}"
                if record.state == BuildState.FAILED and record.error:
                    text += f": {model.failure_cause(record)}"
                self.notify(text, title="Build finished" if not failed else "Build ended",
                            severity="error" if failed else "information", markup=False)
        self._records_seen = True
        self.records = message.records
        self.module_rows = message.modules
        self.env_rows = message.environments
        self.checked = message.checked
        if message.error and message.error != self.state_error:
            self.notify(message.error, title="Cannot read builds", severity="warning", markup=False)
        self.state_error = message.error
        if message.log_id == self.followed_build:
            self.log_text = message.log_text
        self.redraw()

    def on_submitted(self, message: Submitted) -> None:
        if message.error:
            self.notify(message.error, title="Not submitted", severity="error", markup=False, timeout=10)
            return
        self.selection.forget()
        self.selection_changed()
        self.notify(f"Submitted {len(message.records)} build(s)", title="Submitted", markup=False)
        if message.records:
            self.highlight_build = max(r.id for r in message.records)
        self.switch_mode("builds")
        self.refresh_state()

    def _told_by_the_core(self, text: str) -> None:
        """A notice of the core, from any worker thread: a message, then a notification."""
        self.post_message(Told(text, severity="warning", title="nixmod"))

    def on_unmount(self) -> None:
        model.route_store_notices(None)
        gc.unfreeze()   # the process may go on (tests, the benchmark): its objects are collectable again

    def on_told(self, message: Told) -> None:
        self.notify(message.text, title=message.title, markup=False, timeout=message.timeout,
                    severity=message.severity)  # type: ignore[arg-type]

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity=message.severity, markup=False)  # type: ignore[arg-type]
        self.refresh_state()

    # -- actions --------------------------------------------------------------------

    def redraw(self) -> None:
        """Ask the visible screen to lay out the app's state again.

        A screen still being composed (just switched to) is skipped: its
        widgets are not there yet, and its ``on_screen_resume`` lays it out.
        A state refresh that lands while the app is closing (no screen left)
        has nothing to draw.
        """
        try:
            screen = self.screen
        except ScreenStackError:
            return
        if isinstance(screen, NixmodScreen) and screen.is_mounted:
            screen.refresh_view()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_help_key(self) -> None:
        self.action_help()

    async def action_quit_key(self) -> None:
        await self.action_quit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a text box has focus, ? and q are text: the footer must not offer them."""
        if action in ("help_key", "quit_key") and isinstance(self.focused, FilterInput):
            return False
        return True

    def check_now(self) -> None:
        """The refresh key: ask the scheduler now, at most once per ``CHECK_NOW_SECONDS``.

        Pressed sooner, it says when it works again instead of asking: a key
        held down must not become the squeue loop sites forbid.
        """
        at = time.monotonic()
        if self._checked_now_at is not None and at - self._checked_now_at < CHECK_NOW_SECONDS:
            wait = CHECK_NOW_SECONDS - (at - self._checked_now_at)
            self.notify(f"Checked the scheduler {at - self._checked_now_at:.0f} s ago; f5 asks "
                        f"again in {max(1, round(wait))} s (at most once per "
                        f"{CHECK_NOW_SECONDS:.0f} s)", title="Not yet", severity="warning",
                        markup=False)
            return
        self._checked_now_at = at
        self.notify("Asking the scheduler for the builds' states now", markup=False)
        self.refresh_state(now=True)

    def follow_build(self, build_id: int | None) -> None:
        """The Builds screen moved its cursor: follow that log from now on."""
        if build_id != self.followed_build:
            self.followed_build = build_id
            self.log_text = ""
            self.refresh_state()

    def show_package(self, name: str) -> None:
        """Open ``name`` in Browse (from the command palette)."""
        self.switch_mode("browse")

        def search() -> None:
            if isinstance(self.screen, BrowseScreen):
                self.screen.search_for(name)

        self.call_after_refresh(search)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Browse", "Search the catalog and pick versions", lambda: self.switch_mode("browse"))
        yield SystemCommand("Selection", "Review and submit the picked versions", lambda: self.switch_mode("selection"))
        yield SystemCommand("Builds", "Your builds, their states and logs", lambda: self.switch_mode("builds"))
        yield SystemCommand("Modules", "Your modules and how to load them", lambda: self.switch_mode("modules"))
        yield SystemCommand("Refresh builds", "Ask the scheduler for fresh states now "
                            "(at most once per 5 s)", self.check_now)
        yield SystemCommand("Help", "Keys and how nixmod works", self.action_help)
        yield from super().get_system_commands(screen)


def terminal_hung_up(stream: Any) -> bool:
    """Has the terminal behind ``stream`` gone (POLLHUP/POLLERR/POLLNVAL)? One poll, no wait."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):
        return False
    return any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _fd, mask in events)


def run_app(config: Config) -> int:
    """Entry point for ``nixmod`` with no verb."""
    app = NixmodApp(config)
    _promised: NixmodAppApi = app   # mypy checks that the app has what the screens use of it
    return exit_status(app)


def exit_status(app: App, **run_options: Any) -> int:
    """Run ``app``; its exit status. A crash (Textual shows the traceback) is 1, never 0."""
    result = app.run(**run_options)
    if app.return_code:
        return app.return_code
    return result if isinstance(result, int) else 0
