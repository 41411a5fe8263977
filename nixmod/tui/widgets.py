"""Small presentation helpers shared by the screens: model records -> Rich Text.

Catalog text is hostile until proven otherwise: it always goes into
``Text(...)`` (never markup), so a description holding ``[bold]`` or
``$(…)`` shows verbatim.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from nixmod.catalog import Package
from nixmod.tui import model

#: state word -> style; the words themselves carry the meaning without colour
STATE_STYLES = {
    "built": "bold green", "reused": "green", "module": "bold green",
    "queued": "yellow", "pending": "yellow", "running": "bold cyan",
    "failed": "bold red", "cancelled": "red",
}


def state_text(status: str) -> Text:
    """A build/module state, styled by its first word (plain words when there is no colour)."""
    if not status:
        return Text("available", style="dim")
    return Text(status, style=STATE_STYLES.get(status.split()[0], ""))


def detail_text(package: Package) -> Group:
    """The header of the detail pane: name and the newest version's facts."""
    newest = package.versions[0]
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
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
