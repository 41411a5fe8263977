"""Small presentation helpers shared by the screens: model records -> Rich Text.

Catalog text is hostile until proven otherwise: it always goes into
``Text(...)`` (never markup), so a description holding ``[bold]`` or
``$(…)`` shows verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable, Input

from nixmod.packages import Package
from nixmod.tui import model

#: state word -> style; the words themselves carry the meaning without colour
STATE_STYLES = {
    "built": "bold green", "reused": "green", "module": "bold green",
    "queued": "yellow", "pending": "yellow", "running": "bold cyan",
    "failed": "bold red", "cancelled": "red", "browse": "dim italic",
}


def state_text(status: str) -> Text:
    """A build/module state, styled by its first word (plain words when there is no colour)."""
    if not status:
        return Text("available", style="dim")
    return Text(status, style=STATE_STYLES.get(status.split()[0], ""))


def detail_text(package: Package, environments: Sequence[str] = ()) -> Group:
    """The header of the detail pane: name and the newest version's facts, and the user's
    ``environments`` (module names) that hold the package."""
    newest = package.versions[0]
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
    if environments:   # first: a short pane (80x24) must still show it
        facts.add_row("in your envs", Text(", ".join(environments), style="bold"))
    for label, value in model.describe(newest):
        facts.add_row(label, Text(value))
    title = Text.assemble((package.name, "bold"), "  ", (newest.version, "bold"),
                          (f"  newest of {len(package.versions)}", "dim"))
    return Group(title, facts)


#: the four screens, in the order of their number keys
SCREENS = (("browse", "Browse"), ("selection", "Selection"), ("builds", "Builds"), ("modules", "Modules"))


def nav_text(current: str, selected: int) -> Text:
    """The tab line under the header: number keys, the current screen in reverse video."""
    text = Text()
    for number, (mode, label) in enumerate(SCREENS, start=1):
        if mode == "selection" and selected:
            label = f"{label} ({selected})"
        style = "bold reverse" if mode == current else ""
        text.append(f" {number} {label} ", style=style)
        text.append(" ")
    return text


class NavTable(DataTable):
    """A row table that also moves the way k9s, lazygit and htop users expect: j k g G."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, tooltip="move down"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="move up"),
        Binding("g", "scroll_top", "Top", show=False, tooltip="top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, tooltip="bottom"),
    ]


class FilterInput(Input):
    """The one search/filter box model of every screen (as in k9s and lazygit).

    ``/`` (a screen binding) focuses it; while it has focus every printable
    key is text; ↵ applies and returns to the list; esc returns to the list
    too. Esc never goes *into* the box, so esc then ``/`` never types a ``/``.
    The footer shows only these keys while the box has focus.
    """

    # priority: the app runs these as each key arrives, so in a burst of keys
    # (`samtools ↵ ↵ space` typed at once) the keys after ↵ already go to the list
    BINDINGS = [
        Binding("enter", "apply", "Apply", key_display="↵", priority=True,
                tooltip="apply and move to the list (in the box every other key is text)"),
        Binding("escape", "leave", "Leave box", key_display="esc", priority=True,
                tooltip="leave the box for the list (esc never goes into it)"),
        Binding("down", "leave", "Leave box", show=False, priority=True,
                tooltip="leave the box for the list (esc never goes into it)"),
        Binding("f1", "app.help", "Help", tooltip="every key"),
        Binding("ctrl+c", "app.quit", "Quit", key_display="^c", tooltip="quit"),
    ]

    def __init__(self, *, list_id: str, placeholder: str, id: str) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.list_id = list_id

    def _leave(self) -> None:
        # set now, not on the next idle: a second key pressed at once must
        # already reach the list (two quick ↵ open the versions, not ↵ the box twice)
        self.screen.set_focus(self.screen.query_one(f"#{self.list_id}"))

    async def action_apply(self) -> None:
        await self.action_submit()
        self._leave()

    def action_leave(self) -> None:
        self._leave()


@dataclass(frozen=True)
class Column:
    """One column of a table: shown by priority (0 first) and squeezed down to ``least``."""

    key: str
    label: str
    natural: int          # the width its content wants
    least: int            # the narrowest it may get before it is dropped
    priority: int         # lower stays longer when the terminal is narrow
    flexible: bool = False  # takes whatever width is left over


def fit_columns(table: DataTable, width: int, columns: list[Column]) -> list[str]:
    """Lay out ``columns`` in ``width`` cells: drop the least important until the rest fit.

    Each column costs its width plus the table's cell padding; the scrollbar
    takes one more. Returns the keys shown, in order, so rows can be built
    from the same list.
    """
    pad = 2 * table.cell_padding
    usable = max(0, width - 1)
    shown = sorted(columns, key=lambda c: c.priority)
    while shown and sum(c.least + pad for c in shown) > usable:
        shown.pop()
    keep = {c.key for c in shown}
    shown = [c for c in columns if c.key in keep]
    widths = {c.key: c.least for c in shown}
    spare = usable - sum(widths[c.key] + pad for c in shown)
    for column in sorted(shown, key=lambda c: c.priority):   # give each its natural width, in order
        grow = min(spare, max(0, column.natural - widths[column.key]))
        widths[column.key] += grow
        spare -= grow
    flexible = [c for c in shown if c.flexible]
    if flexible and spare > 0:
        widths[flexible[0].key] += spare
    table.clear(columns=True)
    for column in shown:
        table.add_column(column.label, key=column.key, width=widths[column.key])
    return [c.key for c in shown]
