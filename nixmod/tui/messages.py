"""Messages that thread workers post back to the event loop.

Workers never touch widgets: they compute in a thread and post one of these;
the handler on the loop only lays the result out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from textual.message import Message

from nixmod.builds import BuildRecord, Plan
from nixmod.catalog import Catalog
from nixmod.tui.envmodel import EnvPreview
from nixmod.tui.model import DiskTotals, ModuleRow, ResultRow


@dataclass
class CatalogProgress(Message):
    """First-run evaluation is under way: what it is doing now."""

    text: str


@dataclass
class CatalogReady(Message):
    catalog: Catalog


@dataclass
class CatalogFailed(Message):
    """No catalog: the one-line reason, which says how to fix it."""

    reason: str


@dataclass
class SearchDone(Message):
    query: str
    rows: list[ResultRow]


@dataclass
class StateRefreshed(Message):
    """Fresh build records and modules (and the followed build's log tail)."""

    records: list[BuildRecord]
    modules: list[ModuleRow]
    error: str = ""
    log_id: int | None = None
    log_text: str = ""
    #: when the scheduler last answered about the builds (epoch; None: not asked lately)
    checked: float | None = None
    #: the generations of the user's environments (``envmodel.environment_rows``)
    environments: list[ModuleRow] = field(default_factory=list)


@dataclass
class PlanReady(Message):
    plans: list[Plan] = field(default_factory=list)
    error: str = ""


@dataclass
class Submitted(Message):
    records: list[BuildRecord] = field(default_factory=list)
    error: str = ""


@dataclass
class ActionDone(Message):
    """A cancel or retry finished: say so (or why not)."""

    text: str
    severity: str = "information"


@dataclass
class Told(Message):
    """Something for the user to read: a worker's result, or a notice of the core's (a
    damaged build database set aside) that the CLI would print as a warning."""

    text: str
    severity: str = "information"
    title: str = ""
    timeout: float | None = None    # seconds shown (None: Textual's default)


@dataclass
class SignaturesChecked(Message):
    """Store path -> "signed by KEY" / "built here" / "untrusted", for the Modules screen."""

    status: dict[str, str]


@dataclass
class WholeLogRead(Message):
    """A build's whole log (its end, when huge), read off the event loop for the log screen."""

    text: str


@dataclass
class DiskUsageReady(Message):
    """The Modules screen's sizes and last loads (``nixmod du``), or why there are none."""

    totals: DiskTotals | None
    error: str = ""


@dataclass
class EnvPlanReady(Message):
    """The plan of an environment of the selection (``envmodel.EnvPreview``), or why there is none."""

    preview: EnvPreview | None = None
    error: str = ""
