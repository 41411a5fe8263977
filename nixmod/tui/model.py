"""What the TUI shows, worked out in plain Python (no Textual import).

The screens only lay out what this module computes, so that everything a
user sees can be reasoned about (and tested) without a terminal, and so that
the CLI and the TUI never disagree about what "built" or "queued" means.
Every function here may block (disk, nix, squeue): the app calls them from
thread workers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from nixmod import builds, diskuse, lmod, repro
from nixmod.builds.state import FINAL_STATES, BuildRecord, BuildState, set_notifier
from nixmod.catalog import Catalog
from nixmod.packages import Package, PackageVersion
from nixmod.config import Config
from nixmod.diskuse import age as age, human_size as human_size   # the faces' one format
from nixmod.errors import NixmodError, UserError

from nixmod.builds.planning import Plan
from nixmod.lmod import ModuleInfo

#: the most search results the list shows: a few screenfuls; past that, typing more is quicker
RESULT_LIMIT = 100
#: how much of a build log the log pane follows
LOG_TAIL_LINES = 200
#: the most of a log the full-screen view reads (the file itself has the rest)
WHOLE_LOG_BYTES = 8 * 1024 * 1024
#: what the Builds screen can sort by (o cycles), the first being the default
BUILD_SORTS = ("newest", "name", "state")
#: what the Modules screen can sort by
MODULE_SORTS = ("name", "state", "size", "last load")


# -- records for the screens ----------------------------------------------------

@dataclass(frozen=True)
class ResultRow:
    """One line of the results list."""

    name: str
    newest: str
    count: int
    description: str


@dataclass(frozen=True)
class VersionRow:
    """One version of the shown package, with what the user can do with it."""

    version: PackageVersion
    status: str        # "" = available to build; else module / build state / BROWSE_ONLY
    selected: bool


#: the state of a version whose channel is a saved package list: it can be read, not built
BROWSE_ONLY = "browse only"


@dataclass(frozen=True)
class ModuleRow:
    """One of the user's modules, with the lines the user needs to use it."""

    module: str
    name: str
    version: str
    valid: bool
    store_path: str
    use_line: str      # `module use ROOT` (only needed when the site hook does not)
    load_line: str     # exactly what to type
    path_entries: tuple[str, ...]
    #: an environment's generation (``envmodel.environment_rows``): its NAME ("" for a package's
    #: module, whose ``name``/``version`` are the package's) and its packages (attr, version)
    environment: str = ""
    packages: tuple[tuple[str, str], ...] = ()


@dataclass
class Selection:
    """The versions the user has picked, in the order picked."""

    items: list[PackageVersion] = field(default_factory=list)
    #: the lists before each removal or clear, newest last: what ``undo`` restores
    history: list[list[PackageVersion]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, version: object) -> bool:
        return any(_same(item, version) for item in self.items)

    def toggle(self, version: PackageVersion) -> bool:
        """Add ``version`` or take it out again; True when it is now selected."""
        if version in self:
            self.items = [item for item in self.items if not _same(item, version)]
            return False
        self.items.append(version)
        return True

    def remove_at(self, index: int) -> PackageVersion | None:
        """Take one pick out (undoable); the removed version, or None for a bad index."""
        if 0 <= index < len(self.items):
            self.history.append(list(self.items))
            return self.items.pop(index)
        return None

    def clear(self) -> int:
        """Empty the selection (undoable); how many picks went."""
        count = len(self.items)
        if count:
            self.history.append(list(self.items))
            self.items = []
        return count

    def forget(self) -> None:
        """Empty it for good: the picks were submitted, so there is nothing to undo."""
        self.items = []
        self.history.clear()

    def undo(self) -> bool:
        """Put back what the last removal or clear took; False when there is nothing to undo."""
        if not self.history:
            return False
        self.items = self.history.pop()
        return True


def _same(a: PackageVersion | BuildRecord, b: object) -> bool:
    """One pick per (name, version, channel): the same version seen twice is one pick."""
    return isinstance(b, PackageVersion) and (a.name, a.version, a.channel) == (b.name, b.version, b.channel)


# -- catalog --------------------------------------------------------------------

def load_catalog(config: Config, progress: Callable[[str], None] | None = None) -> Catalog:
    """The catalog, evaluated on first use (progress tells the user what it is doing).

    Its search tables are unpacked here too (``warm_up``), in the loading
    worker: left to the first keystrokes, the first few queries each paid
    30-60 ms for a table they happened to be the first to need.
    """
    catalog = Catalog.load(config, progress=progress)
    warm_up(catalog)
    return catalog


#: a query no package matches: every tier of the search is consulted for it
_NO_MATCH = "zqxjvkw"


def warm_up(catalog: Catalog) -> None:
    """Run the listing and one search through every tier, so each lazily read table is in."""
    catalog.listing(RESULT_LIMIT)
    catalog.search(_NO_MATCH, limit=RESULT_LIMIT)


def search_rows(catalog: Catalog, query: str, limit: int = RESULT_LIMIT) -> list[ResultRow]:
    """The ranked results for ``query``; with nothing typed, the packages in name order."""
    if not query.strip():
        return [result_row(package) for package in catalog.listing(limit)]
    return [result_row(hit.package) for hit in catalog.search(query, limit=limit)]


def catalog_summary(catalog: Catalog) -> str:
    """What an empty search box shows: how much there is to search.

    Packages are distinct names, as ``nixmod catalog info`` counts them (the
    channels' records count each version again).
    """
    total = len(catalog)
    text = f"{total} packages in {len(catalog.channels)} channel(s): type a name, a command (rg) or a word"
    if catalog.errors:
        text = f"⚠ {len(catalog.errors)} channel(s) could not be read (see right) · " + text
    return text


def catalog_problems(config: Config, catalog: Catalog) -> list[str]:
    """Channels that failed, each with where to fix it (the others still work)."""
    files = ", ".join(str(path) for path in config.sources) or "~/.config/nixmod/config.toml"

    def fix(message: str) -> str:
        if "not found on PATH" in message:   # the machine, not the channel, is the problem
            return "Then start nixmod again: a failed channel is listed anew on the next start."
        return f"Fix its [[channels]] entry in {files}, then run 'nixmod catalog refresh'."

    return [f"channel {error.channel} could not be read: {error.message}\n{fix(error.message)}"
            for error in catalog.errors] + list(catalog.warnings)


def result_row(package: Package) -> ResultRow:
    newest = package.versions[0] if package.versions else None
    return ResultRow(
        name=package.name,
        newest=newest.version if newest else "",
        count=len(package.versions),
        description=first_line(newest.description if newest else ""),
    )


def first_line(text: str) -> str:
    """Catalog text can hold newlines; a list row shows only its first line."""
    return text.strip().splitlines()[0] if text and text.strip() else ""


def browse_only_channels(config: Config) -> frozenset[str]:
    """Channels that are saved package lists (dumps): searchable, but nothing in them builds."""
    return frozenset(c.name for c in config.channels if c.is_dump)


def can_build(config: Config, version: PackageVersion) -> bool:
    """"Buildable", the one meaning the faces use: its channel is not a saved package list
    (the name rules are the catalog's: ``resolve`` refuses a name no module can have)."""
    return version.channel not in browse_only_channels(config)


def version_rows(package: Package, records: Sequence[BuildRecord], modules: Sequence[ModuleRow],
                 selection: Selection, browse_only: frozenset[str] = frozenset()) -> list[VersionRow]:
    """Every version of ``package``, newest first, each with its state for this user.

    A version with nothing of the user's yet is ``""`` (available) when its
    channel can build it, and BROWSE_ONLY when the channel is a saved list.
    """
    rows = []
    for v in package.versions:
        status = version_status(v, records, modules)
        if not status and v.channel in browse_only:
            status = BROWSE_ONLY
        rows.append(VersionRow(version=v, status=status, selected=v in selection))
    return rows


def version_status(version: PackageVersion, records: Sequence[BuildRecord], modules: Sequence[ModuleRow]) -> str:
    """What a user would want to know about one version before building it.

    A module beats a build record (it is what the user ends up loading); of
    several records for the same version, the newest one speaks.
    """
    for info in modules:
        if info.name == version.name and info.version == version.version:
            return f"module {info.module}" if info.valid else f"module {info.module} (store path gone)"
    matching = [r for r in records if _same(r, version)]
    if not matching:
        return ""
    record = matching[-1]
    if record.state in (BuildState.QUEUED, BuildState.RUNNING) and record.job:
        return f"{record.state} (job {record.job})"
    return str(record.state)


# -- builds ---------------------------------------------------------------------

def plan_selection(config: Config, selection: Selection) -> list[Plan]:
    """What submitting would do: reuse, join or build, per version (nothing submitted)."""
    if not selection.items:
        raise UserError("the selection is empty; pick a version in Browse (space) first")
    return builds.plan(config, list(selection.items))


def record_label(config: Config, record: BuildRecord) -> str:
    """What a build is called on screen: its NAME, or ``nixenv/NAME`` for an environment's
    (whose version is its generation), so an environment never reads as a package."""
    return f"{config.modules.env_prefix}/{record.name}" if record.environment else record.name


def plan_summary(plan: Plan) -> str:
    """One phrase per plan line: what will happen and why."""
    action = plan.action
    job = plan.job
    if action == "reuse":
        return "reuse: already built"
    if action == "join":
        return f"join: already building (job {job})" if job else "join: already building"
    if action == "build":
        return "build: new"
    return action


def submit_plans(config: Config, plans: Sequence[Plan]) -> list[BuildRecord]:
    return builds.submit(config, list(plans))


def refresh_records(config: Config, max_age: float) -> tuple[list[BuildRecord], float | None]:
    """The user's build records, and when the scheduler last answered about them (epoch).

    The scheduler is asked only when its last answer, shared by the user's
    nixmod processes, is older than ``max_age`` (SPEC "Gentle on the
    scheduler"); a build's end shows sooner, from the job's own records.
    """
    from nixmod.builds import pollcache

    records = list(builds.refresh(config, max_age=max_age))
    return records, pollcache.last_checked(config.build.state_dir)


def checked_ago(checked: float | None, now: float) -> str:
    """"checked 12 s ago" for the Builds status line ("" when the scheduler was not asked)."""
    if checked is None:
        return ""
    seconds = max(0, int(now - checked))
    return f"checked {seconds} s ago" if seconds < 120 else f"checked {seconds // 60} min ago"


def cancel_builds(config: Config, ids: Sequence[int]) -> list[BuildRecord]:
    return list(builds.cancel(config, list(ids)))


def retry_build(config: Config, build_id: int) -> list[BuildRecord]:
    """Resubmit a failed or cancelled build as it was (same drv)."""
    return list(builds.retry(config, [build_id]))


def failure_cause(record: BuildRecord) -> str:
    """Why a build failed, in one line (the core's rule, so the CLI says the same)."""
    return builds.failure_cause(record.error or "") if record.error else ""


def filter_records(records: Sequence[BuildRecord], text: str) -> list[BuildRecord]:
    """Builds whose id, name, version, channel, state, job or node contain every word of ``text``."""
    words = text.lower().split()
    return [r for r in records
            if all(any(w in str(field_value).lower() for field_value in
                       (r.id, r.name, r.version, r.channel, r.state, r.job or "", r.node or ""))
                   for w in words)]


def sort_records(records: Sequence[BuildRecord], key: str) -> list[BuildRecord]:
    """newest first (by id), by name, or by state (in-flight first, then failed, then done)."""
    newest = sorted(records, key=lambda r: r.id, reverse=True)
    if key == "name":
        return sorted(newest, key=lambda r: (r.name.lower(), r.version))
    if key == "state":
        order = (BuildState.RUNNING, BuildState.QUEUED, BuildState.PENDING, BuildState.FAILED,
                 BuildState.CANCELLED, BuildState.BUILT, BuildState.REUSED)
        return sorted(newest, key=lambda r: order.index(r.state) if r.state in order else len(order))
    return newest


@dataclass(frozen=True)
class ModuleDisk:
    """What ``nixmod du`` says of one module."""

    closure_size: int
    only_size: int              # what removing it frees at the site's next collection
    last_load: float | None


@dataclass(frozen=True)
class DiskTotals:
    """``nixmod du`` for the Modules screen: per module, and the totals."""

    modules: dict[str, ModuleDisk]
    total_size: int
    only_size: int


def module_disk(config: Config) -> DiskTotals:
    """Sizes and last loads of the user's modules (Nix calls: run it off the event loop)."""
    report = diskuse.user_report(config)
    return DiskTotals(modules={m.module: ModuleDisk(m.closure_size, m.only_size, m.last_load)
                               for m in report.modules},
                      total_size=report.total_size, only_size=report.only_size)


def filter_modules(rows: Sequence["ModuleRow"], text: str) -> list["ModuleRow"]:
    words = text.lower().split()
    return [r for r in rows if all(w in f"{r.module} {r.store_path}".lower() for w in words)]


def sort_modules(rows: Sequence["ModuleRow"], key: str,
                 disk: DiskTotals | None = None) -> list["ModuleRow"]:
    """By module name; with the broken ones (store path gone) first; the largest closure
    first; or the longest unused first (never loaded before all): what ``gc`` would take."""
    by_name = sorted(rows, key=lambda r: r.module)
    if key == "state":
        return sorted(by_name, key=lambda r: r.valid)
    sizes = disk.modules if disk is not None else {}
    if key == "size":
        return sorted(by_name, key=lambda r: -(sizes[r.module].closure_size
                                               if r.module in sizes else -1))
    if key == "last load":
        return sorted(by_name, key=lambda r: (sizes[r.module].last_load or 0.0)
                      if r.module in sizes else float("inf"))
    return by_name


def build_transitions(before: Sequence[BuildRecord], after: Sequence[BuildRecord]) -> list[BuildRecord]:
    """Records that reached an end state since ``before``: what to notify about."""
    old = {r.id: r.state for r in before}
    return [r for r in after
            if r.state in FINAL_STATES and r.id in old and old[r.id] != r.state]


def log_path(record: BuildRecord) -> Path | None:
    return Path(record.log) if record.log else None


def _log_end(record: BuildRecord, limit: int) -> tuple[str, int, Path | None]:
    """The last ``limit`` bytes of a build's log as text, the log's size, and its path
    (``""``, 0, None when it has no log yet): a huge log is never read whole."""
    path = log_path(record)
    if path is None or not path.is_file():
        return "", 0, None
    read = builds.read_log(path, last=limit)
    return read.text, read.size, path


def log_tail(record: BuildRecord, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` of a build's log; empty when it has none yet."""
    data, _size, _path = _log_end(record, 64 * 1024)
    return "\n".join(data.splitlines()[-lines:])


def whole_log(record: BuildRecord, limit: int = WHOLE_LOG_BYTES) -> str:
    """A build's whole log (its last ``limit`` bytes when it is huge), for the full-screen view."""
    data, size, path = _log_end(record, limit)
    if size > limit:
        data = f"[… the first {size - limit} bytes are in {path} …]\n" + data.split("\n", 1)[-1]
    return data


def elapsed(record: BuildRecord, now: float) -> str:
    """How long a build took (or has taken so far), as 1h02m / 3m05s / 12s."""
    if not record.created:
        return ""
    end = record.updated if record.finished else now
    seconds = max(0, int(end - record.created))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# -- modules --------------------------------------------------------------------

def module_rows(config: Config) -> list[ModuleRow]:
    rows = []
    for info in lmod.list_modules(config):
        rows.append(ModuleRow(
            module=info.module, name=info.name, version=info.version, valid=info.valid,
            store_path=info.store_path,
            use_line=f"module use {config.modules.root}",
            load_line=f"module load {info.module}",
            path_entries=lmod.path_entries(config, info),
        ))
    return rows


def remove_module(config: Config, row: ModuleRow) -> ModuleInfo:
    """What `nixmod modules remove NAME/VERSION` does: modulefile, shims, default and GC roots."""
    return lmod.remove_module(config, row.name, row.version)


# -- reproducibility ------------------------------------------------------------

def verify_build(config: Config, record: BuildRecord) -> list[repro.VerifyResult]:
    """``nixmod verify`` of one built package (its own tree): rebuild with --check, compare.
    An environment's build is verified in the environments' tree (``nixenv/NAME/GEN``)."""
    tree = lmod.environment_config(config) if record.environment else config
    return repro.verify(tree, [f"{record.name}/{record.version}"],
                        modules_root=Path(record.module_root) if record.module_root else None)


def signature_status(paths: list[str]) -> dict[str, str]:
    """Whether each store path carries a trusted signature (two Nix calls)."""
    return repro.signature_status(paths)


def lock_modules(config: Config, targets: list[str], path: Path) -> None:
    """``nixmod lock -o PATH`` of the modules ``targets`` (NAME/VERSION)."""
    repro.write_lock(repro.make_lock(config, targets), str(path))


def route_store_notices(to: Callable[[str], None] | None) -> None:
    """Where the core's notices go (a damaged build database set aside): ``to`` while the
    TUI runs (its stderr is the screen), stderr again with None."""
    set_notifier(to)


# -- errors ---------------------------------------------------------------------

def explain(error: BaseException) -> str:
    """One line for the user: our own errors already say what to do; others get a hint."""
    if isinstance(error, NixmodError):
        return str(error)
    if isinstance(error, ImportError):
        return f"this nixmod build lacks a part ({error}); the CLI verbs may still work"
    if isinstance(error, FileNotFoundError):
        return f"{error.filename or error}: not found; run 'nixmod doctor' to see what is missing"
    if isinstance(error, PermissionError):
        return f"{error.filename or error}: permission denied; run 'nixmod doctor' to check paths"
    return f"{type(error).__name__}: {error} (run 'nixmod doctor' for hints)"


def describe(version: PackageVersion) -> Iterable[tuple[str, str]]:
    """The labelled facts the detail pane shows: short ones first, the long description last."""
    yield "attribute", version.attr
    if version.main_program:
        yield "program", version.main_program
    yield "license", version.license or "(unknown)"
    yield "homepage", version.homepage or "(none)"
    yield "about", version.description or "(none)"
