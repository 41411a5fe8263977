"""Site stacks: support staff pre-build a whole software stack from one TOML file.

A stack file names packages (SPEC.md, "Site stack file"); nixmod resolves
them against the catalog, builds what is missing in ONE throttled
submission, and publishes the modules under the stack's own modules root,
readable by everyone. The stack owns that root: a module there that the
file no longer names is removed on the next build, so the file stays the
single description of what users see.

The staff member who runs ``stack check`` wants every mistake at once with
its line and its fix (an overnight build that stops at the first typo wastes
the night), so checking collects ``Problem``s instead of raising on the first.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nixmod import builds, dirs, gcroots, lmod, nix, shims, stackenvs
from nixmod.config import Config, current_user, key_line
from nixmod.dirs import ensure_dir
from nixmod.errors import UserError
from nixmod.stackfile import (CheckReport, EnvironmentEntry, Problem, Resolved, ResolvedEnvironment, Stack,
                              StackEntry, StackInvalid, closest, parse_stack)

from nixmod.builds.state import BuildRecord, BuildState
from nixmod.lmod import ModuleInfo
from nixmod.packages import PackageVersion

if TYPE_CHECKING:  # loaded where used, for start-up time: `stack check` plans no build
    from nixmod.builds.planning import Plan
    from nixmod.catalog import Catalog
    from nixmod.repro.lockdoc import Lock

Progress = Callable[[str], None]

# -- checking against the catalog and the filesystem ------------------------------------

def _resolve_entry(catalog: Catalog, entry: StackEntry, file: str
                   ) -> tuple[PackageVersion | None, Problem | None]:
    """The catalog version an entry names (the catalog's own SPEC rules), or the problem."""
    spec = (f"{entry.channel}:" if entry.channel else "") + entry.name + \
        (f"@{entry.version}" if entry.version else "")
    try:
        return catalog.resolve(spec), None
    except UserError as exc:
        said = str(exc) if entry.name in str(exc) else f"{entry.name}: {exc}"
        key, fix = _fix_for(catalog, entry)
        return None, Problem(file, entry.line_of(key), said, fix)


def _fix_for(catalog: Catalog, entry: StackEntry) -> tuple[str, str]:
    """The key at fault and the nearest thing the catalog does have (a channel, a version)."""
    known = [c.name for c in catalog.channels]
    if entry.channel and entry.channel not in known:
        hint = closest(entry.channel, known) or f"channels: {', '.join(known)}"
        return "channel", f"set channel to a configured one ({hint})"
    try:
        versions = catalog.versions(entry.name)
    except UserError:
        return "name", "set name to the attribute path that `nixmod search` shows"
    inside = [v for v in versions if not entry.channel or v.channel == entry.channel]
    if not inside:
        return "channel", f"use a channel that has it: {', '.join(sorted({v.channel for v in versions}))}"
    choices = [v.version for v in inside]
    near = difflib.get_close_matches(entry.version, choices, n=1, cutoff=0.0)
    return "version", f"use version = {near[0]!r}" if near else f"use one of: {', '.join(choices)}"


def check_stack(config: Config, path: Path, catalog: Catalog | None = None,
                progress: Progress | None = None) -> CheckReport:
    """Parse and validate a stack file; every problem at once, none raised."""
    stack, problems = parse_stack(path, config)
    report = CheckReport(file=path, stack=stack, problems=problems)
    if stack is None:
        return report
    file = str(path)
    for directory, what in ((stack.modules_root, "modules_root"), (stack.gcroot_dir, "GC root directory")):
        ok, detail = dirs.writable_dir(directory)
        if not ok:
            line = key_line(path.read_text(encoding="utf-8"), "modules_root", "stack")
            report.problems.append(Problem(file, line, f"{what} {directory} is not writable: {detail}",
                                           "set modules_root to a directory you can write "
                                           "(its parent holds gcroots/)"))
            break  # the GC root directory is next to modules_root: one fix for both
    for directory, what in ((stack.modules_root, "modules_root"),
                            (shims.shims_root(stack.modules_root), "shims directory"),
                            (lmod.spider_cache_dir(stack.modules_root), "Lmod spider cache"),
                            (stack.gcroot_dir, "GC root directory")):
        why = dirs.problem(directory)
        if why:
            line = key_line(path.read_text(encoding="utf-8"), "modules_root", "stack")
            report.problems.append(Problem(file, line, f"{what} {directory} is not safe: {why}",
                                           "remove it, or set modules_root to a directory only "
                                           "you can write"))
    if catalog is None:
        from nixmod.catalog import Catalog  # startup: loaded (and channels evaluated) only when needed
        catalog = Catalog.load(config, progress=progress)

    first_seen: dict[tuple[str, str], StackEntry] = {}
    default_of: dict[str, StackEntry] = {}
    for entry in stack.entries:
        version, problem = _resolve_entry(catalog, entry, file)
        if version is None:
            assert problem is not None
            report.problems.append(problem)
            continue
        key = (version.name, version.version)
        if key in first_seen:
            report.problems.append(Problem(
                file, entry.line, f"{version.name} {version.version} is listed twice "
                f"(first at line {first_seen[key].line})", "remove one of the two [[package]] entries"))
            continue
        first_seen[key] = entry
        if entry.default:
            if version.name in default_of:
                report.problems.append(Problem(
                    file, entry.line_of("default"), f"two defaults for {version.name} "
                    f"(the other at line {default_of[version.name].line_of('default')})",
                    "keep default = true on one of them only"))
                continue
            default_of[version.name] = entry
        report.resolved.append(Resolved(entry=entry, version=version))
    for environment in stack.environments:
        resolved_env, env_problems = _resolve_environment(catalog, environment, file)
        report.problems += env_problems
        if resolved_env is not None:
            report.environments.append(resolved_env)
    report.problems.sort(key=lambda problem: problem.line or 0)
    return report


def _resolve_environment(catalog: Catalog, entry: EnvironmentEntry, file: str
                         ) -> tuple[ResolvedEnvironment | None, list[Problem]]:
    """The environment as ``env create`` would plan it (``envplan``), or its problems.

    An unknown channel is named with the nearest configured one; every
    package SPEC that names nothing gets its own line (all of them in one
    ``stack check``); then the planner's own refusal (two interpreters, two
    channels, a package outside its interpreter's set), in its words.
    """
    from nixmod.envplan import plan_environment   # startup: a stack without environments plans none

    known = [c.name for c in catalog.channels]
    if entry.channel and entry.channel not in known:
        hint = closest(entry.channel, known) or f"channels: {', '.join(known)}"
        return None, [Problem(file, entry.line_of("channel"), f"environment {entry.name}: unknown "
                              f"channel {entry.channel!r}", f"set channel to a configured one ({hint})")]
    problems = []
    for spec in entry.packages:
        try:
            catalog.resolve(spec)
        except UserError as exc:
            problems.append(Problem(file, entry.line_of("packages"), f"environment {entry.name}: {exc}",
                                    "list packages by the attribute path `nixmod search` shows"))
    if problems:
        return None, problems
    try:
        plan = plan_environment(catalog, entry.packages, known, entry.channel or None)
    except UserError as exc:
        return None, [Problem(file, entry.line_of("packages"), f"environment {entry.name}: {exc}",
                              "make the packages one interpreter's and one channel's")]
    return ResolvedEnvironment(entry=entry, versions=list(plan.members), channel=plan.channel,
                               interpreter=plan.interpreter or ""), []


def load_stack(config: Config, path: Path, progress: Progress | None = None) -> CheckReport:
    """A stack with no problems, or StackInvalid (exit 2) carrying all of them."""
    report = check_stack(config, path, progress=progress)
    if not report.ok:
        raise StackInvalid(report)
    return report


def lock_stack(config: Config, path: Path, progress: Progress | None = None) -> Lock:
    """``nixmod lock --stack FILE``: a lock of the packages and environments the stack published
    (each environment's newest generation in the stack's tree)."""
    from nixmod.repro.lock import lock_tree   # startup: `stack check` loads no builds code

    from nixmod.repro.envlock import newest_generations   # startup, as above

    report = load_stack(config, path, progress=progress)
    assert report.stack is not None
    hint = f"run 'nixmod stack build {path}' first"
    generations = newest_generations(config, report.stack.modules_root,
                                     [e.entry.name for e in report.environments], missing_hint=hint)
    return lock_tree(config, report.stack.modules_root,
                     [(r.version.name, r.version.version) for r in report.resolved],
                     stack=report.stack.name, missing_hint=hint, progress=progress,
                     environments=generations)


def locked_stack_report(config: Config, path: Path, lock: Lock) -> CheckReport:
    """The stack file's name, tree and defaults, with the lock's packages instead of the catalog's.

    A year later the catalog may no longer resolve the file's names to the
    same versions; the lock says which ones, the file says where they go.
    """
    from nixmod.repro.lock import locked_versions   # startup: `stack check` loads no builds code

    stack, problems = parse_stack(path, config)
    report = CheckReport(file=path, stack=stack, problems=problems)
    if stack is None or problems:
        raise StackInvalid(report) if problems else UserError(f"{path}: cannot read the stack")
    defaults = {entry.name: entry for entry in stack.entries if entry.default}
    for version in locked_versions(lock):
        named = defaults.get(version.name)
        default = named is not None and named.version in ("", version.version)
        report.resolved.append(Resolved(entry=StackEntry(name=version.name, version=version.version,
                                                         channel=version.channel, default=default),
                                        version=version))
    report.environments = stackenvs.from_lock(stack, lock)
    return report


# -- building ---------------------------------------------------------------------------

#: what ``stack build`` did with one package (``action``), beyond the build states
UP_TO_DATE = "up to date"      # valid, module published: nothing to do
IN_FLIGHT = "in flight"        # an earlier stack build of this drv is still queued or running
FAILED_EARLIER = "failed earlier"  # the same drv failed before: not resubmitted without --retry
#: the build states of an item that ended without its module
ENDED_BADLY = (BuildState.FAILED, BuildState.CANCELLED)


@dataclass
class StackItem:
    """One package of the stack and what became of it."""

    name: str
    version: str
    channel: str
    default: bool
    action: str                 # up to date | in flight | failed earlier | reuse | join | build
    state: str                  # SPEC.md build state (built/reused/failed/queued/...)
    build_id: int | None = None
    job: str | None = None
    module: str | None = None
    out: str = ""
    error: str | None = None
    log: str = ""
    kind: str = "package"       # or "environment": NAME is the environment's, version its generation

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackBuildResult:
    """What one ``stack build`` did, for the summary and ``--json``."""

    stack: Stack
    items: list[StackItem]
    removed: list[str]          # module names removed because the file no longer names them
    arrays: list[str]           # SLURM job arrays (or local batches) this run submitted
    seconds: float
    environments: list[StackItem] = field(default_factory=list)   # one per [[environment]]

    @property
    def every(self) -> list[StackItem]:
        """The packages, then the environments."""
        return [*self.items, *self.environments]

    def count(self, *states: str) -> int:
        return sum(1 for item in self.every if item.state in states)

    @property
    def failed(self) -> list[StackItem]:
        return [item for item in self.every if item.state in ENDED_BADLY]

    @property
    def submitted(self) -> int:
        return sum(1 for item in self.every if item.action in ("build", "join", "reuse"))

    def summary(self) -> str:
        jobs = len({i.build_id for i in self.every if i.action == "build"})
        envs = f", {len(self.environments)} environments" if self.environments else ""
        parts = [f"stack {self.stack.name}: {len(self.items)} packages{envs}",
                 f"{self.count('built')} built", f"{self.count('reused')} reused",
                 f"{sum(1 for i in self.every if i.action == 'join')} joined",
                 f"{self.count('failed', 'cancelled')} failed",
                 f"{self.count('pending', 'queued', 'running')} in progress"]
        if self.arrays:
            calls = f"{len(self.arrays)} submission{'s' if len(self.arrays) != 1 else ''}"
            parts.append(f"{jobs} build jobs in {calls} (job {', '.join(self.arrays)})")
        else:
            parts.append("nothing submitted")
        if self.removed:
            parts.append(f"{len(self.removed)} module(s) removed")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"

    def as_json(self) -> dict[str, Any]:
        return {"stack": self.stack.name, "modules_root": str(self.stack.modules_root),
                "gcroot_dir": str(self.stack.gcroot_dir),
                "packages": [item.as_json() for item in self.items],
                "environments": [item.as_json() for item in self.environments],
                "removed": self.removed, "arrays": self.arrays,
                "submitted": self.submitted, "seconds": round(self.seconds, 3),
                "ok": not self.failed}


def _item(entry: StackEntry, version: PackageVersion, action: str, record: BuildRecord | None = None, *,
          state: str = "", out: str = "", module: str | None = None) -> StackItem:
    item = StackItem(name=version.name, version=version.version, channel=version.channel,
                     default=entry.default, action=action, state=state, out=out, module=module)
    if record is not None:
        _take(item, record)
    return item


def _take(item: StackItem, record: BuildRecord) -> None:
    """Copy what a build record knows into the item."""
    item.build_id, item.state, item.job = record.id, record.state, record.job
    item.module = record.module or item.module
    item.out, item.error, item.log = record.out or item.out, record.error, record.log


def _readable_by_all(*roots: Path) -> None:
    """a+rX on a published tree: users who are not staff must read every module and shim.

    Symlinks are skipped: they point into the store, which is not ours to chmod.
    """
    for root in roots:
        if not root.is_dir():
            continue
        for path in [root, *root.rglob("*")]:
            try:
                if path.is_symlink():
                    continue
                mode = path.stat().st_mode
                wanted = mode | 0o444 | (0o111 if path.is_dir() else 0)
                if wanted != mode and path.owner() == current_user():
                    path.chmod(wanted)
            except FileNotFoundError:
                continue  # a job renamed a temp file into place meanwhile: its own mode is fine


def _remove_unlisted(config: Config, stack: Stack, keep: set[tuple[str, str]],
                     progress: Progress | None) -> list[str]:
    """Remove the modules (and GC roots) of packages the file no longer names.

    Only modules this stack published are touched: those with a GC root in
    the stack's own GC root directory. A stack without ``modules_root``
    publishes into ``[modules].root``, the staff member's own tree, and the
    modules built there with ``nixmod build`` (rooted in the state dir) are
    not the stack's to remove.
    """
    removed = []
    for info in lmod.list_modules(config, root=stack.modules_root):
        if (info.name, info.version) in keep:
            continue
        # the roots nix-store --add-root made for this build: named after it, pointing at its outputs
        targets = set(info.outputs.values())
        roots = [link for link in gcroots.gc_root_links(
                     gcroots.gc_root(stack.gcroot_dir, info.name, info.version), info.outputs)
                 if link.is_symlink() and os.readlink(link) in targets]
        if not roots:
            continue
        # the stack's own roots only: the staff member's personal root of the same
        # NAME/version (in the state dir) keeps their own module's store path alive
        lmod.remove_module(config, info.name, info.version, root=stack.modules_root,
                           gcroot_dir=stack.gcroot_dir)
        removed.append(info.module)
        if progress:
            progress(f"{info.module}: removed (no longer in {stack.file.name})")
    return removed


def _standing(plan: Plan, module: ModuleInfo | None, earlier: BuildRecord | None, *,
              retry: bool) -> str | None:
    """What the stack already has of a package, when that makes submitting it needless.

    ``UP_TO_DATE``: its module is published with these very outputs.
    ``IN_FLIGHT``: an earlier ``stack build`` of this drv is still queued or
    running (followed, not joined again: a rerun adds no records).
    ``FAILED_EARLIER``: this drv failed before and ``retry`` was not asked.
    None: submit it; ``builds.submit`` then reuses, joins or builds it.
    """
    if (plan.action == "reuse" and module is not None and module.valid
            and module.outputs == plan.outputs):
        return UP_TO_DATE
    if earlier is None or plan.action == "reuse":
        return None
    if earlier.state in (BuildState.PENDING, BuildState.QUEUED, BuildState.RUNNING):
        return IN_FLIGHT
    if earlier.state in ENDED_BADLY and plan.action == "build" and not retry:
        return FAILED_EARLIER
    return None


def build_stack(config: Config, path: Path, *, wait: bool = False, retry: bool = False,
                progress: Progress | None = None, lock: Lock | None = None) -> StackBuildResult:
    """Check, plan, publish what is valid, submit the rest at once, remove what left the file.

    Idempotent: a package whose module is published and valid is left alone,
    one already in flight from an earlier run is followed rather than
    resubmitted, and one that failed with this very derivation is reported,
    not rebuilt (a deterministic failure would only fail again overnight),
    unless ``retry``.

    With ``lock`` (a ``repro.Lock``) the packages are the lock's, not the
    catalog's: each is evaluated again and nothing is submitted unless every
    drv equals the locked one (``repro.LockMismatch``, exit 2).
    """
    import time

    started = time.monotonic()
    # SLURM jobs inherit the submitter's umask: what they publish is readable by all
    os.umask(0o022)
    plans: list[Plan] | None = None
    if lock is None:
        report = load_stack(config, path, progress=progress)
    else:
        from nixmod.repro.lock import locked_plans   # startup, as above

        report = locked_stack_report(config, path, lock)
        config, plans = locked_plans(config, lock, progress)
    stack = report.stack
    assert stack is not None
    # everyone's `module load` runs what is published here: no other user may change it
    lmod.check_tree(stack.modules_root)
    ensure_dir(stack.gcroot_dir, "GC root directory", "the stack's modules_root")

    if plans is None:
        plans = builds.plan(config, [r.version for r in report.resolved], progress=progress,
                            module_root=stack.modules_root)
    published = {(m.name, m.version): m for m in lmod.list_modules(config, root=stack.modules_root)}
    history = builds.tree_history(config, stack.modules_root, stack.gcroot_dir)
    items: list[StackItem] = []
    to_submit: list[tuple[StackItem, Plan]] = []
    followed: list[StackItem] = []
    for resolved, plan in zip(report.resolved, plans):
        entry, version = resolved.entry, resolved.version
        module = published.get((version.name, version.version))
        earlier = history.get(plan.drv)
        standing = _standing(plan, module, earlier, retry=retry)
        if standing is None:
            item = _item(entry, version, plan.action, state=BuildState.PENDING,
                         out=nix.main_output(plan.outputs))
            to_submit.append((item, replace(plan, default=entry.default)))
        elif standing == UP_TO_DATE:
            assert module is not None   # _standing says up to date only of a published module
            if entry.default and not module.default:
                lmod.set_default(config, version.name, version.version, root=stack.modules_root)
            item = _item(entry, version, UP_TO_DATE, state=earlier.state if earlier and
                         earlier.state in (BuildState.BUILT, BuildState.REUSED) else BuildState.BUILT,
                         out=module.store_path, module=module.module)
            if earlier is not None:
                item.build_id, item.job, item.log = earlier.id, earlier.job, earlier.log
        else:
            item = _item(entry, version, standing, earlier)
            if standing == IN_FLIGHT:
                followed.append(item)
        items.append(item)
        if progress and standing is not None:
            note = {IN_FLIGHT: f" (build {item.build_id}, job {item.job})",
                    FAILED_EARLIER: f" (build {item.build_id}); not resubmitted, "
                                    "add --retry to build it again"}.get(standing, "")
            progress(f"{version.name} {version.version}: {standing}{note}")

    env_items = _environment_items(config, stack, report, history, to_submit, followed,
                                   retry=retry, progress=progress, lock=lock)
    keep = {(r.version.name, r.version.version) for r in report.resolved}
    removed = _remove_unlisted(config, stack, keep, progress)
    if report.environments or stackenvs.published(config, stack):
        removed += stackenvs.remove_unlisted(config, stack, {e.entry.name for e in report.environments},
                                             progress)
        unmarked = [e.entry.name for e in report.environments if not e.entry.default]
        for name in stackenvs.clear_defaults(config, stack, unmarked):
            if progress:
                progress(f"{config.modules.env_prefix}/{name}: no default any more (the newest loads)")
    with_default = {r.version.name for r in report.resolved if r.entry.default}
    for name in sorted({name for name, _version in keep} - with_default):
        if lmod.clear_default(config, name, root=stack.modules_root) and progress:
            progress(f"{name}: no default any more (none marked in {stack.file.name})")

    arrays: list[str] = []
    if to_submit:
        records = builds.submit(config, [plan for _item_, plan in to_submit],
                                module_root=stack.modules_root, gcroot_dir=stack.gcroot_dir,
                                progress=progress)
        for (item, _plan), record in zip(to_submit, records):
            _take(item, record)
            item.action = record.action   # what submit did, which may differ from the plan
            followed.append(item)
        arrays = sorted({builds.submission_of(r) for r in records
                         if r.action == "build" and r.job})
    elif progress:
        progress(f"stack {stack.name}: nothing to submit")

    if wait and followed:
        ids = [item.build_id for item in followed if item.build_id is not None]
        finals = {r.id: r for r in builds.wait(config, ids, progress=progress)}
        for item in followed:
            if item.build_id in finals:
                _take(item, finals[item.build_id])
    _readable_by_all(stack.modules_root, shims.shims_root(stack.modules_root), stack.gcroot_dir)
    if all(item.state not in (BuildState.PENDING, BuildState.QUEUED, BuildState.RUNNING)
           for item in [*items, *env_items]):
        lmod.update_spider_cache(stack.modules_root)
    return StackBuildResult(stack=stack, items=items, removed=removed, arrays=arrays,
                            seconds=time.monotonic() - started, environments=env_items)


def _environment_items(config: Config, stack: Stack, report: CheckReport,
                       history: dict[str, BuildRecord], to_submit: list[tuple[StackItem, Plan]],
                       followed: list[StackItem], *, retry: bool,
                       progress: Progress | None, lock: Lock | None = None) -> list[StackItem]:
    """The stack's environments, decided as its packages are (``_standing``); what needs
    submitting joins ``to_submit``, what an earlier run has in flight joins ``followed``.
    With ``lock``, each must evaluate to its locked drv (LockMismatch before anything is
    submitted)."""
    items = []
    planned = stackenvs.forecasts(config, stack, report.environments, progress)
    if lock is not None:
        stackenvs.check_locked(lock, planned)
    for forecast in planned:
        entry, plan, newest = forecast.resolved.entry, forecast.plan, forecast.newest
        earlier = history.get(plan.drv)
        standing = _standing(plan, newest, earlier, retry=retry)
        item = StackItem(name=entry.name, version=plan.version.version, channel=plan.version.channel,
                         default=entry.default, action=standing or plan.action,
                         state=BuildState.PENDING, kind="environment")
        if standing is None:
            to_submit.append((item, plan))
        elif standing == UP_TO_DATE:
            assert newest is not None
            stackenvs.keep_default(config, stack, forecast, newest.version)
            item.version, item.state, item.module, item.out = (newest.version, BuildState.BUILT,
                                                                newest.module, newest.store_path)
        else:
            assert earlier is not None
            _take(item, earlier)
            item.version = earlier.version
            if standing == IN_FLIGHT:
                followed.append(item)
        if progress and standing is not None:
            progress(f"{config.modules.env_prefix}/{entry.name}/{item.version}: {standing}")
        items.append(item)
    return items



# -- status ------------------------------------------------------------------------------

def stack_status(config: Config, path: Path, progress: Progress | None = None) -> list[StackItem]:
    """Every package of the stack: version, state, job, module, store path.

    Read from the stack's build records (refreshed against the scheduler) and
    from the published tree, without evaluating anything: status must be
    quick to run in a loop while an overnight build goes on.
    """
    report = load_stack(config, path, progress=progress)
    stack = report.stack
    assert stack is not None
    builds.refresh(config)
    published = {(m.name, m.version): m for m in lmod.list_modules(config, root=stack.modules_root)}
    latest: dict[tuple[str, str, str], BuildRecord] = {}
    for candidate in builds.tree_history(config, stack.modules_root).values():
        key = (candidate.name, candidate.version, candidate.channel)
        if key not in latest or candidate.id > latest[key].id:
            latest[key] = candidate
    items = []
    for resolved in report.resolved:
        version = resolved.version
        module = published.get((version.name, version.version))
        record = latest.get((version.name, version.version, version.channel))
        item = _item(resolved.entry, version, "", record)
        if module is not None and module.valid:
            item.module, item.out = module.module, module.store_path
            if item.state not in (BuildState.BUILT, BuildState.REUSED):
                item.state = BuildState.BUILT if record is None or record.finished else item.state
        elif record is None:
            item.state = "not built"
        item.action = item.state
        items.append(item)
    generations = stackenvs.published(config, stack) if report.environments else {}
    for environment in report.environments:
        name = environment.entry.name
        newest = generations.get(name, [None])[-1]
        ran = [r for r in latest.values() if r.environment and r.name == name]
        record = max(ran, key=lambda r: r.id) if ran else None
        item = StackItem(name=name, version=newest.version if newest else "", channel=environment.channel,
                         default=environment.entry.default, action="", state="not built",
                         kind="environment")
        if record is not None and (newest is None or int(record.version or 0) >= int(newest.version)):
            _take(item, record)
            item.version = record.version
        if newest is not None and newest.valid and item.version == newest.version:
            item.module, item.out = newest.module, newest.store_path
            if item.state not in (BuildState.BUILT, BuildState.REUSED):
                item.state = BuildState.BUILT if record is None or record.finished else item.state
        item.action = item.state
        items.append(item)
    return items
