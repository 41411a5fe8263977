"""Submitting: a ``pending`` record for every request first, then reuse, join or one scheduler call.

Records are written *before* anything is submitted, under the submission
lock, so two commands never submit one drv twice and a refused submission
leaves records a ``--retry`` sends. Only ids and paths go to the scheduler
(the manifest); the catalog's text stays in SQLite.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Sequence

from nixmod import lmod, nix
from nixmod.builds.finish import finish
from nixmod.builds.planning import Plan, Progress, _decider
from nixmod.builds.records import named, open_store
from nixmod.builds.registry import BACKENDS
from nixmod.builds.state import (IN_FLIGHT_STATES, RETRYABLE_STATES, BuildRecord, BuildState,
                                  BuildStore)
from nixmod.config import Config, config_files
from nixmod.dirs import ensure_dir
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_write
from nixmod.gcroots import ENVIRONMENTS, environment_gcroot_dir
from nixmod.lmod import check_tree
from nixmod.metadata import metadata
from nixmod.pins import module_channel_pin


class SubmitFailed(OperationFailed):
    """The scheduler refused the submission; the records stay ``pending`` for ``--retry``."""

    def __init__(self, message: str, records: list[BuildRecord]):
        super().__init__(message)
        self.records = records


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
            plans = _number_generations(config, store, plans, module_root)
            records = [store.add(BuildRecord(
                **metadata(p.version), drv=p.drv, out=nix.main_output(p.outputs),
                outputs=p.outputs, backend=backend or config.build.backend,
                module_root=str(module_root) if module_root else None,
                module_default=default or p.default,
                gcroot_dir=_gcroot_dir(config, p, gcroot_dir),
                channel_pin=module_channel_pin(config, p.version.channel),
                environment=dict(p.environment))) for p in plans]
            _dispatch(config, store, records, backend or config.build.backend, progress)
        return records


def _number_generations(config: Config, store: BuildStore, plans: Sequence[Plan],
                        module_root: Path | None) -> list[Plan]:
    """Give each environment's plan its generation number, decided under the submission lock.

    A plan's number was forecast before the lock (the TUI shows it, then the
    user confirms), so two ``env add`` of one environment at the same moment
    would both have taken N+1 and the second module would overwrite the
    first. Under the lock the number is counted again, from the generations
    on disk and every record of that environment not yet ended (pending,
    queued, running, in this tree). A plan for generation 1 (``env create``)
    that finds the name taken meanwhile is refused, as ``env create`` of a
    taken name is.
    """
    if not any(p.environment for p in plans):
        return list(plans)
    root = Path(module_root) if module_root is not None else Path(config.modules.root)
    on_disk = lmod.list_modules(lmod.environment_config(config), root=root)
    unfinished = [r for r in store.select(states=(BuildState.PENDING, *IN_FLIGHT_STATES))
                  if r.environment and Path(r.module_root or config.modules.root) == root]
    numbered: list[Plan] = []
    for plan in plans:
        if not plan.environment:
            numbered.append(plan)
            continue
        name = plan.version.name
        taken = [int(m.version) for m in on_disk if m.name == name and m.version.isdigit()]
        taken += [int(r.version) for r in unfinished if r.name == name and r.version.isdigit()]
        taken += [int(p.version.version) for p in numbered
                  if p.environment and p.version.name == name]
        generation = max(taken, default=0) + 1
        if plan.version.version == "1" and generation != 1:
            raise UserError(f"environment {name} exists (made while this one was planned); "
                            f"'nixmod env add {name} SPEC...' makes its next generation")
        if plan.version.version != str(generation):
            plan = dc_replace(plan, version=dc_replace(plan.version, version=str(generation)))
        numbered.append(plan)
    return numbered


def _gcroot_dir(config: Config, plan: Plan, given: Path | None) -> str | None:
    """Where a plan's GC root goes: the caller's directory, an environment's own, else the
    state dir's (None: ``finish`` takes the store's default).

    An environment's root in the caller's directory (a site stack's) goes into its
    ``.environments`` subdirectory, as a user's do in theirs: environment ``sci``
    generation 1 never shares a root with a package ``sci`` 1 of the same stack,
    and one ``submit`` can carry a stack's packages and environments together.
    """
    if given is not None:
        return str(Path(given) / ENVIRONMENTS) if plan.environment else str(given)
    if plan.environment:
        return str(environment_gcroot_dir(Path(config.build.state_dir)))
    return None


def retry(config: Config, ids: Sequence[int] | None = None, *, backend: str | None = None,
          progress: Progress | None = None) -> list[BuildRecord]:
    """Resubmit pending / failed / cancelled builds (all of them, or those named)."""
    with open_store(config) as store:
        with store.submitting():   # states read under the lock: two retries submit once
            if ids:
                records = named(store, ids)
                stuck = [r for r in records if r.state not in RETRYABLE_STATES]
                if stuck:
                    raise UserError(f"build {stuck[0].id} is {stuck[0].state}; only "
                                    f"{', '.join(RETRYABLE_STATES)} builds can be retried")
            else:
                records = store.select(states=RETRYABLE_STATES)
            for record in records:
                # created = this submission: elapsed counts from the latest attempt
                store.update(record, state=BuildState.PENDING, error=None, job=None, joined=False,
                             joined_at=None, created=time.time())
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
            finish(config, store, record, BuildState.REUSED)
        elif action == "join":
            assert flight is not None  # decide() returns the flight it joins
            store.update(record, state=BuildState.QUEUED, job=flight.job, joined=True,
                         backend=flight.backend, joined_at=flight.since or time.time())
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
            ids = ", ".join(str(r.id) for r in records if r.state == BuildState.PENDING)
            raise SubmitFailed(f"{exc}; kept as pending (id {ids}): fix the cause, then run "
                               "'nixmod build --retry'", records) from None
        if progress:
            jobs = ", ".join(f"{r.id}={r.job}" for r in to_build)
            progress(f"submitted {len(to_build)} build(s) to {backend}: {jobs}")
    for record in duplicates:
        owner = first_of_drv[record.drv]
        store.update(record, state=BuildState.QUEUED, job=owner.job, joined=True, backend=owner.backend,
                     joined_at=time.time())


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
