"""Following: bring records up to date with the schedulers and the store; wait; cancel.

``refresh`` maps what a scheduler says (or, once the job has gone, its
exit marker, the scheduler's own record or the store itself) onto SPEC's
states, and finishes any record whose outputs are valid, whatever its job
says. A joined record that stops following builds the drv itself, once.
"""

from __future__ import annotations

import time
from typing import Iterator, Sequence

from nixmod import nix
from nixmod.builds import pollcache
from nixmod.builds.backend import Backend, SchedulerUnavailable
from nixmod.builds.finish import finish
from nixmod.builds.logs import log_path, read_log
from nixmod.builds.planning import Progress
from nixmod.builds.records import named, open_store
from nixmod.builds.registry import BACKENDS
from nixmod.builds.state import FINAL_STATES, IN_FLIGHT_STATES, BuildRecord, BuildState, BuildStore
from nixmod.builds.submitting import SubmitFailed, _dispatch
from nixmod.config import Config
from nixmod.errors import OperationFailed


#: how long ``wait`` (build --wait, status --watch) goes on while the scheduler does not answer
SCHEDULER_OUTAGE_LIMIT = 300.0


def refresh(config: Config, ids: Sequence[int] | None = None, *,
            warnings: list[str] | None = None,
            progress: Progress | None = None, max_age: float = 0.0) -> list[BuildRecord]:
    """Bring the records up to date with the schedulers and the store.

    ``max_age``: a scheduler answer that young, shared by the user's nixmod
    processes, is used instead of asking (0: ask now, as a plain ``status``
    does once). A waiting caller passes ``[build] poll_seconds``; it still
    sees its own jobs end at once, from the records the job step writes
    (``_ended_by_exit_record``).

    * A record whose outputs are all valid is finished (GC root, module,
      ``built``), whatever its job says: a joined record follows the
      output, not just the job, and a job step killed after its build
      finished still gets its module.
    * A joined record whose job its scheduler no longer shows as a real
      build (held since, stuck, ...), that has followed it longer than the
      build time limit (``joining``), or whose job ended without a valid
      output builds the drv itself, once (``_build_itself``).
    * When a scheduler does not answer, its records keep their last-known
      states and a line goes to ``warnings`` (the caller shows it).
    """
    with open_store(config) as store:
        records = named(store, ids) if ids else store.select()
        live = [r for r in records if r.state in IN_FLIGHT_STATES]
        failed = [r for r in records if r.state == BuildState.FAILED]
        valid = _all_valid(live + failed)
        for record in failed:
            if record.id in valid:   # e.g. its job step was killed, the daemon finished the build
                finish(config, store, record, BuildState.BUILT, after_failure=True)
        for record in live:
            if record.id in valid:
                redundant = record.job if not record.joined and record.state == BuildState.QUEUED else None
                finish(config, store, record, BuildState.BUILT)
                if redundant and record.backend in BACKENDS:
                    _drop_redundant_job(BACKENDS[record.backend], record)
        live = [r for r in live if r.id not in valid and not _ended_by_exit_record(store, r)]
        itself: list[tuple[BuildRecord, str]] = []
        for name in BACKENDS:
            mine = [r for r in live if r.backend == name]
            if not mine:
                continue   # its module stays unimported (status starts quicker)
            backend = BACKENDS[name]
            try:
                states = backend.poll(store, mine, max_age=max_age)
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


def _ended_by_exit_record(store: BuildStore, record: BuildRecord) -> bool:
    """Has the record's own job said how it ended (its exit record), so no scheduler need be asked?

    The job step writes the store and then the exit record (``job.run_job``);
    the record read above may predate both, and the store may not have been
    writable from the build node. A joined record's job is somebody else's:
    its end is learnt from the store (valid outputs) or the scheduler.
    """
    if record.joined or not record.job:
        return False
    marker = store.read_exit_marker(record.id)
    if not marker or marker.get("state") not in FINAL_STATES:
        fresh = store.get(record.id)
        if fresh is None or not fresh.finished:
            return False
        marker = {"state": fresh.state, "error": fresh.error}
    error = marker.get("error")
    store.update_if_in_flight(record, state=marker["state"],
                              error=error if isinstance(error, str) else None)
    return True


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
            store.update(record, state=BuildState.PENDING, joined=False, joined_at=None, job=None,
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
        finish(config, store, record, BuildState.BUILT)
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
        records = refresh(config, ids, warnings=now_warnings, progress=progress,
                          max_age=config.build.poll_seconds)
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
        stuck = orphaned(config, records)
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


def orphaned(config: Config, records: Sequence[BuildRecord]) -> set[int]:
    """Ids of ``pending`` records nobody is submitting: waiting for them would never end."""
    pending = [r.id for r in records if r.state == BuildState.PENDING]
    if not pending:
        return set()
    with open_store(config) as store:
        return store.orphaned(pending)


def cancel(config: Config, ids: Sequence[int]) -> list[BuildRecord]:
    """Cancel queued or running builds; a joined build only stops following (never kills others' jobs)."""
    with open_store(config) as store:
        records = named(store, ids)
        for record in records:
            if record.finished:
                continue
            if record.job and not record.joined and record.state in IN_FLIGHT_STATES:
                BACKENDS[record.backend].cancel(record)
                pollcache.forget(store.state_dir, "")   # the queue seen before is not the queue now
            store.update_if_in_flight(record, state=BuildState.CANCELLED, error="cancelled by the user")
        return records


def follow_log(config: Config, record_id: int, interval: float = 0.5) -> Iterator[str]:
    """The log's text as it grows, until the build has ended (then what is left)."""
    path = log_path(config, record_id)
    offset = 0
    while True:
        record = refresh(config, [record_id], max_age=config.build.poll_seconds)[0]
        ended = record.finished or bool(orphaned(config, [record]))
        read = read_log(path, start=offset)
        chunk, offset = read.text, read.end
        if chunk:
            yield chunk
        if ended:
            return
        time.sleep(interval)
