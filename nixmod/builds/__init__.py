"""Builds: plan, submit, follow and finish, with nothing ever built twice.

The flow for one request (SPEC.md ``build``):

1. ``plan`` instantiates the package (drv + output paths) and says what
   would happen: ``reuse`` (every output already valid), ``join`` (someone's
   job, maybe another user's, is building that drv right now) or ``build``.
2. ``submit`` writes a ``pending`` row for every request *before* anything is
   submitted, then reuses, joins, or hands the rest to a backend in one go
   (``local.py``: detached workers; ``slurm.py``: one job array).
3. A job step (``job.run_job``, the hidden ``nixmod _job`` verb) realises the
   drv through the shared nix-daemon with a GC root, writes the module
   (``finish.py``) and records the end state, even when the user has logged off.
4. ``refresh`` maps what the scheduler says (or, once the job has gone, its
   exit marker, ``scontrol`` or the store itself) onto SPEC's states.

Every scheduler is reached through the ``Backend`` protocol
(``backend.py``); ``BACKENDS`` below is the one place that names them.

The nix-daemon's per-output locks are the last line of "never twice": if
two users race past the queue check, the second realisation waits for the
first and then finds the path valid, so the builder runs once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from nixmod import gcroots, nix
from nixmod.builds.registry import BACKENDS
from nixmod.builds.backend import Backend, SchedulerUnavailable
from nixmod.builds.finish import finish, module_request
from nixmod.builds.state import (FINAL_STATES, IN_FLIGHT_STATES, RETRYABLE_STATES,
                                 BuildRecord, BuildStore, notify)
from nixmod.catalog import PackageVersion
from nixmod.config import Config, config_files, current_user
from nixmod.dirs import ensure_dir
from nixmod.errors import NixmodError, OperationFailed, UserError
from nixmod.files import atomic_write
from nixmod.lmod import check_tree
from nixmod.names import check_module_names
from nixmod.metadata import identity, metadata
from nixmod.pins import module_channel_pin

__all__ = ["BuildRecord", "Plan", "SubmitFailed", "plan", "submit", "retry", "refresh", "wait", "cancel",
           "log_path", "follow_log", "module_requests", "open_store", "tree_history",
           "check_state", "failure_cause", "BACKENDS", "Backend"]

Progress = Callable[[str], None]


class SubmitFailed(OperationFailed):
    """The scheduler refused the submission; the records stay ``pending`` for ``--retry``."""

    def __init__(self, message: str, records: list[BuildRecord]):
        super().__init__(message)
        self.records = records


@dataclass(frozen=True)
class Plan:
    """What submitting one package would do, decided from the drv, the store and the queue.

    A forecast: ``submit`` decides again under the submission lock (a job may
    have ended, or started, since), and each record it returns says what it
    did (``BuildRecord.action``).
    """

    version: PackageVersion
    drv: str
    outputs: dict[str, str]
    action: str                    # "reuse" | "join" | "build"
    job: str | None = None         # the in-flight job a "join" would follow
    owner: str | None = None       # whose job that is (maybe another user)
    #: make this build's module the default of its name (a site stack decides per package)
    default: bool = False

    def as_json(self) -> dict:
        return {**identity(self.version), "drv": self.drv, "outputs": self.outputs, "action": self.action, "job": self.job,
                "owner": self.owner}


@dataclass(frozen=True)
class InFlight:
    """A job somebody submitted that is building a drv right now."""

    job: str
    owner: str
    backend: str


def open_store(config: Config) -> BuildStore:
    """The user's build records (state dir checked first), GC roots in the current layout."""
    store = BuildStore(config.build.state_dir)
    try:
        migrate_gc_roots(store, store.default_gcroot_dir)
    except BaseException:
        store.close()
        raise
    return store


def check_state(config: Config, *, module_root: Path | None = None) -> None:
    """Refuse (one line) a state dir or modules tree that cannot be used, before any evaluation.

    Opening the store checks the state dir (who can change it, whether the
    records can be written, free space); ``lmod.check_tree`` checks the
    modules tree the builds will write (``module_root``, else ``[modules].root``)
    without creating it: a build refused later (a bad spec) leaves no empty tree.
    """
    with open_store(config):
        pass
    check_tree(Path(module_root) if module_root is not None else Path(config.modules.root),
               create=False)


def migrate_gc_roots(store: BuildStore, directory: Path) -> None:
    """Move the GC roots in ``directory`` (the state dir's, or a stack's) to the current layout.

    Runs whenever nixmod opens the store; costs one directory listing when
    there is nothing to move. The builds whose roots live there are read
    from the records. A failure is reported, not fatal: an old root is only
    removed after its new one is registered, so nothing becomes collectable.
    """
    if not gcroots.has_legacy_gc_roots(directory):
        return
    default = directory == store.default_gcroot_dir
    known = [module_request(r) for r in store.select(states=("built", "reused"))
             if (r.gcroot_dir is None and default) or r.gcroot_dir == str(directory)]
    try:
        gcroots.migrate_gc_roots(directory, known)
    except (NixmodError, OSError) as exc:
        notify(f"GC roots in {directory} could not all be moved to the new layout "
                      f"({exc}); the old ones are kept and it is tried again next time")


def tree_history(config: Config, module_root: Path, gcroot_dir: Path | None = None
                 ) -> dict[str, BuildRecord]:
    """drv -> the newest of this user's builds that wrote (or will write) into ``module_root``.

    A site stack's history: what it built before, what is still in flight and
    what failed with the very same drv. ``gcroot_dir``, the tree's GC roots,
    is moved to the current layout first (as the state dir's are on every open).
    """
    with open_store(config) as store:
        if gcroot_dir is not None:
            migrate_gc_roots(store, gcroot_dir)
        return {record.drv: record for record in store.select()    # oldest first: newest wins
                if record.module_root == str(module_root)}


# -- planning -----------------------------------------------------------------------

def plan(config: Config, versions: Sequence[PackageVersion],
         progress: Progress | None = None, *, module_root: Path | None = None,
         backend: str | None = None) -> list[Plan]:
    """Instantiate every version and say, for each, reuse / join / build.

    Evaluation (nix-instantiate) is the slow part; everything after it is
    one ``nix-store --check-validity`` and one listing of the queue the
    builds would go to (``backend``, the configured one by default).
    The state dir and the modules tree (``module_root``, else
    ``[modules].root``) are checked first, so that an unusable one is said
    before the wait, not after it.
    """
    for version in versions:   # all refused before any evaluation or build
        check_module_names(version.name, version.version)
    check_state(config, module_root=module_root)
    instantiated = []
    for version in versions:
        channel = config.channel(version.channel)
        if channel.is_dump:
            raise UserError(f"channel {channel.name!r} is a saved package list ({channel.path}); "
                            "builds need a nixpkgs path or url channel")
        if progress:
            progress(f"evaluating {version.channel}:{version.attr} {version.version}")
        inst = nix.instantiate(channel.path, version.attr, channel.url, channel.sha256)
        instantiated.append((version, inst))
    with open_store(config) as store:
        decide = _decider(config, store, [inst.drv for _v, inst in instantiated],
                          [p for _v, inst in instantiated for p in inst.outputs.values()],
                          backend=backend or config.build.backend)
        plans = []
        for version, inst in instantiated:
            action, flight = decide(inst.drv, inst.outputs)
            plans.append(Plan(version=version, drv=inst.drv, outputs=inst.outputs, action=action,
                              job=flight.job if flight else None,
                              owner=flight.owner if flight else None))
        return plans


def _decider(config: Config, store: BuildStore, drvs: Sequence[str], paths: Sequence[str],
             exclude_ids: Iterable[int] = (), join: bool = True, *, backend: str
             ) -> Callable[[str, dict[str, str]], tuple[str, InFlight | None]]:
    """A function drv -> (action, in-flight job), from one look at the store and the queues.

    The queues first, the store second: a job that ends between the two
    looks has made its outputs valid by the second (reuse), whereas the
    other order would miss it in both (valid too late, gone from the queue)
    and build it again.
    """
    flights = _in_flight(config, store, set(drvs), set(exclude_ids), backend=backend) if join else {}
    valid = nix.valid_paths(list(paths))

    def decide(drv: str, outputs: dict[str, str]) -> tuple[str, InFlight | None]:
        if outputs and all(p in valid for p in outputs.values()):
            return "reuse", None
        if drv in flights:
            return "join", flights[drv]
        return "build", None
    return decide


def _in_flight(config: Config, store: BuildStore, drvs: set[str], exclude_ids: set[int], *,
               backend: str) -> dict[str, InFlight]:
    """drv -> a job building it now: this user's own records, then every user's jobs
    in the queue the builds would go to (``backend``).

    Only that queue is asked. A local build never waits on squeue (seconds
    when slurmctld is down, on a machine where nothing of this user's is on
    SLURM): the user's own queued builds are in the state db, and if another
    user's job is building the same drv, the nix-daemon's output lock makes
    the local build wait for it and then reuse its result, so the builder
    still runs once (the local backend's ``queued_drv_hashes`` is ``{}``).
    Another user's job counts only when the backend says the scheduler's
    own record of it shows a real nixmod build (``slurm.joinable``,
    ``pbs``'s checks). One of our own records that itself joined somebody's
    job names that job's owner, as its scheduler knows it.
    """
    found: dict[str, InFlight] = {}
    for record in store.select(states=IN_FLIGHT_STATES):
        if record.drv in drvs and record.id not in exclude_ids and record.job:
            owner = current_user()
            followed = BACKENDS.get(record.backend)
            if record.joined and followed is not None:
                owner = followed.owner_of(record.job) or "another user"
            found.setdefault(record.drv, InFlight(record.job, owner, record.backend))
    by_hash = {nix.store_hash(drv): drv for drv in drvs if drv not in found}
    if not by_hash:
        return found
    queued = BACKENDS[backend].queued_drv_hashes(config, set(by_hash))
    for drv_hash, (job, owner) in queued.items():
        if drv_hash in by_hash:
            found.setdefault(by_hash[drv_hash], InFlight(job, owner, backend))
    return found


# -- submitting -----------------------------------------------------------------------

def submit(config: Config, plans: Sequence[Plan], *, backend: str | None = None,
           module_root: Path | None = None, default: bool = False,
           gcroot_dir: Path | None = None, progress: Progress | None = None) -> list[BuildRecord]:
    """Record every plan as a build, then reuse, join or submit (one scheduler call for all).

    Each record returned says what was done with it (``record.action``: reuse,
    join or build); callers show that, not the plan's forecast.
    ``module_root``, ``default`` and ``gcroot_dir`` are stored in each record
    so that the job's finish step, possibly hours later on another node,
    writes the module into the tree the caller meant (a site stack's).
    """
    # the tree the jobs will write into, refused before anything is recorded or submitted
    check_tree(Path(module_root) if module_root is not None else Path(config.modules.root))
    if gcroot_dir is not None:
        ensure_dir(Path(gcroot_dir), "GC root directory", "the stack's modules_root")
    with open_store(config) as store:
        with store.submitting():
            records = [store.add(BuildRecord(
                **metadata(p.version), drv=p.drv, out=nix.main_output(p.outputs),
                outputs=p.outputs, backend=backend or config.build.backend,
                module_root=str(module_root) if module_root else None,
                module_default=default or p.default,
                gcroot_dir=str(gcroot_dir) if gcroot_dir else None,
                channel_pin=module_channel_pin(config, p.version.channel))) for p in plans]
            _dispatch(config, store, records, backend or config.build.backend, progress)
        return records


def retry(config: Config, ids: Sequence[int] | None = None, *, backend: str | None = None,
          progress: Progress | None = None) -> list[BuildRecord]:
    """Resubmit pending / failed / cancelled builds (all of them, or those named)."""
    with open_store(config) as store:
        with store.submitting():   # states read under the lock: two retries submit once
            if ids:
                records = _named(store, ids)
                stuck = [r for r in records if r.state not in RETRYABLE_STATES]
                if stuck:
                    raise UserError(f"build {stuck[0].id} is {stuck[0].state}; only "
                                    f"{', '.join(RETRYABLE_STATES)} builds can be retried")
            else:
                records = store.select(states=RETRYABLE_STATES)
            for record in records:
                # created = this submission: elapsed counts from the latest attempt
                store.update(record, state="pending", error=None, job=None, joined=False,
                             created=time.time())
            _dispatch(config, store, records, backend or config.build.backend, progress)
        return records


def _dispatch(config: Config, store: BuildStore, records: list[BuildRecord], backend: str,
              progress: Progress | None, join: bool = True) -> None:
    """Reuse what is valid, join what is in flight, submit the rest to ``backend`` at once.

    ``join=False`` builds every drv that is not valid (a record that stopped
    following somebody's job builds it itself, once, and joins nobody again).
    """
    decide = _decider(config, store, [r.drv for r in records],
                      [p for r in records for p in r.outputs.values()],
                      exclude_ids=[r.id for r in records], join=join, backend=backend)
    to_build: list[BuildRecord] = []
    first_of_drv: dict[str, BuildRecord] = {}
    duplicates: list[BuildRecord] = []
    for record in records:
        action, flight = decide(record.drv, record.outputs)
        if action == "reuse":
            finish(config, store, record, "reused")
        elif action == "join":
            assert flight is not None  # decide() returns the flight it joins
            store.update(record, state="queued", job=flight.job, joined=True,
                         backend=flight.backend)
            if progress:
                progress(f"[{record.id}] {record.name} {record.version}: joining job "
                         f"{flight.job} of {flight.owner}")
        elif record.drv in first_of_drv:
            duplicates.append(record)
        else:
            first_of_drv[record.drv] = record
            to_build.append(record)
        if action == "reuse" and progress:
            progress(f"[{record.id}] {record.name} {record.version}: already built, reused")
    if to_build:
        for record in to_build:
            store.update(record, backend=backend)
            # an earlier attempt's exit record must not speak for this one
            store.exit_marker(record.id).unlink(missing_ok=True)
        manifest = _write_manifest(config, store, to_build, backend)
        try:
            BACKENDS[backend].submit(config, store, to_build, manifest)
        except OperationFailed as exc:
            ids = ", ".join(str(r.id) for r in records if r.state == "pending")
            raise SubmitFailed(f"{exc}; kept as pending (id {ids}): fix the cause, then run "
                               "'nixmod build --retry'", records) from None
        if progress:
            jobs = ", ".join(f"{r.id}={r.job}" for r in to_build)
            progress(f"submitted {len(to_build)} build(s) to {backend}: {jobs}")
    for record in duplicates:
        owner = first_of_drv[record.drv]
        store.update(record, state="queued", job=owner.job, joined=True, backend=owner.backend)


def submission_of(record: BuildRecord) -> str:
    """The scheduler submission a record's job is part of (a SLURM array, a PBS job).

    Each backend says how its job ids group (``ARRAY_TASK`` -> ``ARRAY`` for
    SLURM).
    """
    job = record.job or ""
    backend = BACKENDS.get(record.backend)
    return backend.submission_of(job) if backend is not None else job.split("_")[0]


def _write_manifest(config: Config, store: BuildStore, records: list[BuildRecord],
                    backend: str) -> Path:
    """The file a job reads to learn which record it builds: index -> record id.

    Only ids and paths go to the scheduler; the catalog's text stays in
    SQLite, so no shell ever sees it.
    """
    manifest = store.jobs_dir / f"manifest-{uuid.uuid4().hex[:12]}.json"
    atomic_write(manifest, json.dumps({
        "state_dir": str(store.state_dir),
        "records": [r.id for r in records],
        "backend": backend,
        "max_concurrent": config.build.max_concurrent,
        "config": _explicit_config(config),
        "demo": config.demo_forced,
    }), mode=0o600)
    return manifest


def _explicit_config(config: Config) -> str | None:
    """The --config / NIXMOD_CONFIG file this config came from, for the job to read again."""
    layered = set(config_files(None)[:2])
    extra = [p for p in config.sources if p not in layered]
    return str(extra[-1]) if extra else None


# -- finishing --------------------------------------------------------------------------

def module_requests(config: Config) -> list:
    """A ModuleRequest for every built/reused record of the user's own tree.

    ``modules refresh`` rewrites these into ``[modules].root``; builds that a
    site stack published into its own tree (``module_root`` set) belong to
    that stack and are left to ``stack build``.
    """
    with open_store(config) as store:
        return [module_request(r, config) for r in store.select(states=("built", "reused"))
                if not r.module_root]


def modules_rewritten(config: Config, written: Sequence) -> None:
    """After ``modules refresh``: records whose module it (re)wrote get it, and lose a stale error.

    A build whose module could not be written (disk full, permissions)
    keeps ``built`` with an error; once ``modules refresh`` writes that
    module, the record says so instead of keeping the old failure.
    """
    with open_store(config) as store:
        by_key = {(info.name, info.version): info for info in written}
        for record in store.select(states=("built", "reused")):
            info = by_key.get((record.name, record.version))
            if record.module_root or info is None or (info.outputs and
                                                      info.outputs != record.outputs):
                continue     # a stack's build, or the module is another build's of that version
            stale = record.error if record.error and "module was not written" in record.error \
                else None
            if record.module != info.module or stale:
                store.update(record, module=info.module, error=None if stale else record.error)


# -- following -------------------------------------------------------------------------------

def _named(store: BuildStore, ids: Sequence[int]) -> list[BuildRecord]:
    records = store.select(ids=ids)
    missing = sorted(set(ids) - {r.id for r in records})
    if missing:
        raise UserError(f"no build with id {missing[0]}; 'nixmod status' lists your builds")
    return records


def parse_ids(words: Sequence[str]) -> list[int]:
    """Build ids as typed by a user ('3', '#3'); one clear line when one is not an id."""
    ids = []
    for word in words:
        text = word.lstrip("#")
        if not text.isdigit():
            raise UserError(f"{word!r} is not a build id; ids are numbers, see 'nixmod status'")
        ids.append(int(text))
    return ids


#: how long ``wait`` (build --wait, status --watch) goes on while the scheduler does not answer
SCHEDULER_OUTAGE_LIMIT = 300.0


def refresh(config: Config, ids: Sequence[int] | None = None, *,
            warnings: list[str] | None = None,
            progress: Progress | None = None) -> list[BuildRecord]:
    """Bring the records up to date with the schedulers and the store.

    * A record whose outputs are all valid is finished (GC root, module,
      ``built``), whatever its job says: a joined record follows the
      output, not just the job, and a job step killed after its build
      finished still gets its module.
    * A joined record whose job SLURM no longer shows as a real build (held
      since, stuck, ...) or whose job ended without a valid output builds
      the drv itself, once (``_build_itself``).
    * When a scheduler does not answer, its records keep their last-known
      states and a line goes to ``warnings`` (the caller shows it).
    """
    with open_store(config) as store:
        records = _named(store, ids) if ids else store.select()
        live = [r for r in records if r.state in IN_FLIGHT_STATES]
        failed = [r for r in records if r.state == "failed"]
        valid = _all_valid(live + failed)
        for record in failed:
            if record.id in valid:   # e.g. its job step was killed, the daemon finished the build
                finish(config, store, record, "built", after_failure=True)
        for record in live:
            if record.id in valid:
                redundant = record.job if not record.joined and record.state == "queued" else None
                finish(config, store, record, "built")
                if redundant and record.backend in BACKENDS:
                    _drop_redundant_job(BACKENDS[record.backend], record)
        live = [r for r in live if r.id not in valid]
        itself: list[tuple[BuildRecord, str]] = []
        for name, backend in BACKENDS.items():
            mine = [r for r in live if r.backend == name]
            if not mine:
                continue
            try:
                states = backend.poll(store, mine)
                problems = backend.follow_problems(config, mine)
                for record in mine:
                    now = states.get(record.id)
                    if now is not None and record.id in problems:
                        itself.append((record, problems[record.id]))
                    elif now is not None:
                        if now != record.state:
                            store.update_if_in_flight(record, state=now)
                    else:
                        why = _conclude(config, store, record, backend)
                        if why:
                            itself.append((record, why))
            except SchedulerUnavailable as exc:
                if warnings is not None:
                    warnings.append(f"{name} did not answer ({exc}); the states shown are the "
                                    "last known ones")
        if itself:
            _build_itself(config, store, itself, progress)
        return records


def _drop_redundant_job(backend: Backend, record: BuildRecord) -> None:
    """Cancel our own job that has not started, now that its output is valid without it.

    It would only find the path valid; while it waits it holds a place in
    the user's lane (the singleton dependency) for nothing.
    """
    try:
        backend.cancel(record)
    except OperationFailed:
        pass   # it will run, find the output valid and end; nothing is lost


def _all_valid(records: Sequence[BuildRecord]) -> set[int]:
    """Ids of the records whose every output is valid in the store (one nix-store call)."""
    paths = [p for r in records for p in r.outputs.values()]
    if not paths:
        return set()
    try:
        valid = nix.valid_paths(paths)
    except OperationFailed:
        return set()
    return {r.id for r in records if r.outputs and set(r.outputs.values()) <= valid}


def _build_itself(config: Config, store: BuildStore, items: list[tuple[BuildRecord, str]],
                  progress: Progress | None) -> None:
    """Stop following somebody's job and submit our own build of the drv (joining nobody).

    "Once": the record is no longer joined, so if our own build fails the
    record ends ``failed`` like any build of ours.
    """
    with store.submitting():
        records = []
        for record, why in items:
            fresh = store.get(record.id)
            if fresh is None or fresh.state not in IN_FLIGHT_STATES or not fresh.joined \
                    or fresh.job != record.job:
                continue     # another process already moved it on
            if progress:
                progress(f"[{record.id}] {record.name} {record.version}: not following job "
                         f"{record.job} any more ({why}); building it itself")
            store.update(record, state="pending", joined=False, job=None,
                         error=f"stopped following job {record.job}: {why}")
            records.append(record)
        if not records:
            return
        try:
            _dispatch(config, store, records, config.build.backend, progress, join=False)
        except SubmitFailed as exc:
            for record in records:
                store.update_if_in_flight(record, error=str(exc))


def _conclude(config: Config, store: BuildStore, record: BuildRecord,
              backend: Backend) -> str | None:
    """The job has left the queue: find out how it ended, from the best witness there is.

    Returns why a joined record must build the drv itself (its job ended
    without a valid output), or None when the record is settled.
    """
    fresh = store.get(record.id)
    if fresh is not None and fresh.finished:
        for key, value in vars(fresh).items():
            setattr(record, key, value)
        return None
    marker = store.read_exit_marker(record.id) if not record.joined else None
    if marker and marker.get("state") in FINAL_STATES:
        store.update_if_in_flight(record, state=marker["state"], error=marker.get("error"))
        return None
    if record.outputs and nix.valid_paths(list(record.outputs.values())) == set(record.outputs.values()):
        finish(config, store, record, "built")
        return None
    state, error = backend.ended(record)
    if record.joined:
        # a duplicate of one of our own requests ends as that request did (no second attempt)
        own = [r for r in store.select(states=FINAL_STATES)
               if r.job == record.job and not r.joined and r.drv == record.drv]
        if own:
            store.update_if_in_flight(record, state=own[0].state, error=own[0].error)
            return None
        return f"the job ended without producing {record.out} ({error})"
    store.update_if_in_flight(record, state=state, error=error)
    return None


def wait(config: Config, ids: Sequence[int], progress: Progress | None = None,
         interval: float = 1.0, warnings: list[str] | None = None,
         outage_limit: float = SCHEDULER_OUTAGE_LIMIT) -> list[BuildRecord]:
    """Refresh until every named build has ended, reporting each change of state.

    A scheduler that does not answer (slurmctld restarting) does not end the
    wait: it goes on with the last-known states for up to ``outage_limit``
    seconds, then returns what it knows and puts the reason in ``warnings``.
    """
    seen: dict[int, str] = {}
    outage_since: float | None = None
    while True:
        now_warnings: list[str] = []
        records = refresh(config, ids, warnings=now_warnings, progress=progress)
        if now_warnings:
            if outage_since is None:
                outage_since = time.monotonic()
                if progress:
                    progress(f"{now_warnings[0]}; waiting up to {int(outage_limit)} s for it")
            elif time.monotonic() - outage_since > outage_limit:
                if warnings is not None:
                    warnings.append(f"{now_warnings[0]}; gave up waiting after "
                                    f"{int(outage_limit)} s (the builds go on: 'nixmod status' "
                                    "later)")
                return records
        elif outage_since is not None:
            outage_since = None
            if progress:
                progress("the scheduler answers again")
        stuck = _orphaned(config, records)
        for record in records:
            if progress and seen.get(record.id) != record.state:
                job = f" (job {record.job})" if record.job else ""
                extra = f": {record.error.splitlines()[-1]}" if record.error else ""
                if record.id in stuck:
                    extra = f": never submitted; 'nixmod build --retry {record.id}' sends it"
                progress(f"[{record.id}] {record.name} {record.version}: {record.state}{job}{extra}")
            seen[record.id] = record.state
        if all(r.finished or r.id in stuck for r in records):
            return records
        time.sleep(interval)


def _orphaned(config: Config, records: Sequence[BuildRecord]) -> set[int]:
    """Ids of ``pending`` records nobody is submitting: waiting for them would never end."""
    pending = [r.id for r in records if r.state == "pending"]
    if not pending:
        return set()
    with open_store(config) as store:
        return store.orphaned(pending)


def cancel(config: Config, ids: Sequence[int]) -> list[BuildRecord]:
    """Cancel queued or running builds; a joined build only stops following (never kills others' jobs)."""
    with open_store(config) as store:
        records = _named(store, ids)
        for record in records:
            if record.finished:
                continue
            if record.job and not record.joined and record.state in IN_FLIGHT_STATES:
                BACKENDS[record.backend].cancel(record)
            store.update_if_in_flight(record, state="cancelled", error="cancelled by the user")
        return records


def log_path(config: Config, record_id: int) -> Path:
    with open_store(config) as store:
        record = _named(store, [record_id])[0]
        return Path(record.log)


def follow_log(config: Config, record_id: int, interval: float = 0.5) -> Iterator[str]:
    """The log's text as it grows, until the build has ended (then what is left)."""
    path = log_path(config, record_id)
    offset = 0
    while True:
        record = refresh(config, [record_id])[0]
        ended = record.finished or bool(_orphaned(config, [record]))
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            yield chunk
        if ended:
            return
        time.sleep(interval)


#: lines of a build log that are Nix's or nixmod's own narration, never the cause of a failure
_NARRATION = re.compile(
    r"\s*(>|For full logs|last \d+ log lines|nixmod: |this derivation|these \d+ derivations|"
    r"building '|/nix/store/\S+$|error: builder for|error: build of|error: \d+ dependenc|"
    r"error: cannot build derivation|note: keeping build directory)")
#: "error:" with what names it ("configure: error: …", "foo.c:3:1: error: …")
_ERROR_AT = re.compile(r"(?:[\w.+/-][\w.+/:-]*: )?(?:fatal )?error: .*", re.I)


def failure_cause(log_text: str) -> str:
    """The line of a failed build's log that says why it failed, for a one-line report.

    A failed log starts with nixmod's "building X" line and ends with Nix's
    "builder for … failed" wrapper; neither says what went wrong. The cause
    is the builder's last line that mentions an error (cut to the error
    itself: ``configure: error: missing frobnicator``), else the builder's
    last line, else Nix's own message. Every face (toast, status line,
    ``status``) uses this one rule.
    """
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    builder = [line for line in lines if not _NARRATION.match(line)]
    for line in reversed(builder):
        found = _ERROR_AT.search(line)
        if found:
            cause = found.group(0)
            if cause.endswith(")") and cause.count(")") > cause.count("("):
                cause = cause[:-1]   # "… (configure: error: x)": the bracket was around it
            return cause.strip()
    if builder:
        return builder[-1]
    return lines[-1] if lines else ""


