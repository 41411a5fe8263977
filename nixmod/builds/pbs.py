"""The PBS backend (OpenPBS / PBS Pro): one qsub per submission, throttled, findable by anyone.

The same contract as ``slurm.py``, in PBS's words:

* **One batch, one qsub.** N packages are one job array
  ``-J 0-(N-1)%max_concurrent`` (PBS runs at most ``max_concurrent`` of its
  subjobs at once); a single package is a plain job, because a PBS array
  needs at least two subjobs.
* **The limit holds across commands.** A new submission depends
  (``-W depend=afterany:ID``) on the user's nixmod jobs still in the queue,
  so two of a user's batches never run side by side.
* **Joining across users.** The drv hashes, in subjob order, travel in the
  job's ``Variable_List`` as ``NIXMOD_DRVS=nixmod:<hash>:<hash>...``. Every
  user reads that attribute with ``qstat -f -F json`` (the server must have
  ``query_other_jobs = True``, see README "PBS sites"). A job is only
  joined when it can really build (``_why_not``): it is in the configured
  build queue, its walltime is no longer than the joiner's, it is not held
  (a dependency hold on other such jobs of the same owner is the throttle,
  and fine), does not wait for a start time, is not one PBS says can never
  run, and it runs nixmod's own job step, which PBS shows
  as the job's ``executable`` / ``argument_list``: the job is submitted as
  ``qsub ... -- PYTHON -I -c JOB_CODE MANIFEST``, not as a script PBS would
  keep to itself. The same is checked again on every ``status`` and wait
  (``follow_problems``), with ``joining``'s bound on how long to follow.
* **The environment stays private.** sbatch exports the submitter's
  environment into the job; ``qsub -V`` would do the same but publishes it
  in ``Variable_List`` to everyone who may query jobs. The environment goes
  instead into a 0600 file beside the manifest, which the job step reads.
* **States.** ``qstat -x -f -F json`` (job history must be enabled) gives
  queued / running / finished; how a job ended comes from the job step's
  own exit record first, then from PBS's ``Exit_status`` (walltime,
  ``qdel``, memory). A record follows its job id only while that job builds
  the record's drv (its own entry of ``NIXMOD_DRVS``): PBS can hand a
  number out again after a restart, and ``status`` or ``cancel`` must not
  take a stranger's job for the build.

The module's public surface is ``builds.backend.Backend`` (the module
itself satisfies it), plus ``job_main``, the job's entry point.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Mapping

from nixmod import nix
from nixmod.builds import joining, pollcache
from nixmod.builds.backend import CheckRun, verify_here
from nixmod.builds.job import run_job
from nixmod.builds.pbs_jobs import JOB_CODE as JOB_CODE   # what a PBS job runs (tests read it here)
from nixmod.builds.pbs_jobs import (DRVS_PREFIX, DRVS_VAR, EXITING, FINISHED, JOB_NAME,
                                    RUNNING, Job, _builds, _drv_hash_of, _job_of,
                                    _largest_node_ncpus, _nixmod_jobs, _qstat, _run, _seconds,
                                    _verdicts, _why_not)
from nixmod.builds.pbs_jobs import submission_of as submission_of
from nixmod.builds.pbs_jobs import tool_path as tool_path
from nixmod.builds.state import BuildRecord, BuildState, BuildStore
from nixmod.config import Config, current_user
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_write

NAME = "pbs"
#: how long a submission waits for jobs it depends on to finish exiting (they take < 1 s)
STALE_HOLD_WAIT = 10.0
#: PBS Exit_status values that say why PBS ended a job (src/include/job.h)
EXIT_WALLTIME, EXIT_MEM, EXIT_VMEM, EXIT_CPUT = -29, -27, -26, -28
#: 256 + signal: PBS's Exit_status for a job killed by a signal (qdel sends SIGTERM, then SIGKILL)
EXIT_SIGNALLED = 256
TIMEOUT = (BuildState.FAILED, "the job reached its walltime ([build.pbs].walltime)")
CANCELLED = (BuildState.CANCELLED, "the job was deleted (qdel)")
VANISHED = (BuildState.FAILED, "job vanished without an exit record (node died or killed)")
#: environment variables the job keeps from PBS rather than from the submitter
_PBS_OWNED_ENV = ("TMPDIR", "ENVIRONMENT", "HOSTNAME")


def queued_drv_hashes(config: Config, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """drv hash -> (job id, owner) for every user's joinable nixmod build in the build queue.

    The job id is the subjob (``123[4].server``) for an array, the job for a
    plain one. Only a user of the pbs backend looks (the build queue to trust
    is in their ``[build.pbs]``); without PBS there is nothing to join.
    ``wanted`` is not needed to narrow the one queue listing: every hash found is returned.
    """
    if config.build.backend != NAME or tool_path("qstat") is None:
        return {}
    try:
        jobs = _join_look(config)
    except (OperationFailed, UserError):
        return {}
    found: dict[str, tuple[str, str]] = {}
    for job_id, why in _verdicts(config, jobs, time.time()).items():
        drv_hash = _drv_hash_of(job_id, jobs[job_id]) if why is None else None
        if drv_hash is not None:
            found.setdefault(drv_hash, (job_id, jobs[job_id].owner))
    return found


def _join_look(config: Config) -> dict[str, Job]:
    """Every user's nixmod jobs in the build queue (``qstat`` by queue): one look per submission.

    ``plan`` and the submission's second decision under its lock read the
    same answer (for up to ``poll_seconds``, ``pollcache``); our own qsub
    drops it. The submission's own throttle (``submit``) lists the queue
    afresh: it must see the jobs still there now.
    """
    queue = config.build.pbs.queue
    answer = pollcache.ask(config.build.state_dir, f"pbs:join:{queue}", config.build.poll_seconds,
                           partial(_queue_rows, queue), _valid_row, share_failure=False)
    return {str(row["id"]): Job(str(row["id"]), dict(row["attrs"])) for row in answer.rows}


def _queue_rows(queue: str) -> list[dict[str, Any]]:
    return [{"id": job_id, "attrs": job.attrs} for job_id, job in _nixmod_jobs(queue).items()]


# -- submitting -------------------------------------------------------------------------

def job_argv(manifest: Path) -> list[str]:
    """The job's command: the running interpreter, isolated (-I: no cwd, no user site)."""
    return [sys.executable, "-I", "-c", JOB_CODE, str(manifest)]


def _env_file(manifest: Path) -> Path:
    return manifest.with_suffix(".env.json")


def _private_environment() -> dict[str, str]:
    """The submitter's environment, as sbatch would export it, without PBS's own variables."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith("PBS_") and key not in _PBS_OWNED_ENV
            and not key.startswith("BASH_FUNC_")}


def _qsub_args(config: Config, store: BuildStore, records: list[BuildRecord], manifest: Path,
               depend_on: list[str]) -> list[str]:
    pbs = config.build.pbs
    hashes = ":".join(nix.store_hash(r.drv) for r in records)
    stem = manifest.stem
    args = ["qsub", "-N", JOB_NAME, "-q", pbs.queue, "-l", f"walltime={pbs.walltime}",
            "-l", f"select=1:ncpus={pbs.ncpus}:mem={pbs.mem}", "-j", "oe",
            "-v", f"{DRVS_VAR}={DRVS_PREFIX}{hashes}"]
    if len(records) > 1:
        args += ["-J", f"0-{len(records) - 1}%{config.build.max_concurrent}",
                 "-o", str(store.logs_dir / f"pbs-{stem}.^array_index^.out")]
    else:
        args += ["-o", str(store.logs_dir / f"pbs-{stem}.out")]
    if pbs.account:
        args += ["-A", pbs.account]
    if depend_on:
        args += ["-W", "depend=afterany:" + ":".join(depend_on)]
    return args + list(pbs.extra_args) + ["--", *job_argv(manifest)]


def submit(config: Config, store: BuildStore, records: list[BuildRecord], manifest: Path) -> None:
    """One qsub for all ``records``, after this user's nixmod jobs still in the queue.

    A job already exiting (state E) is not waited for: its build is over, and
    PBS may lose the release of a dependency registered in that state
    (``_release_if_stale``), which the new job is checked for at once.
    """
    atomic_write(_env_file(manifest), json.dumps(_private_environment()), mode=0o600)
    for attempt in range(2):
        depend_on = sorted({job.array_parent for job in
                            _nixmod_jobs(config.build.pbs.queue, current_user()).values()
                            if job.state != EXITING})
        proc = _run(_qsub_args(config, store, records, manifest, depend_on))
        # a job we depend on may end between the listing and qsub: look again once
        if proc.returncode == 0 or attempt or not re.search(
                r"depend|Unknown Job Id|finished", proc.stderr, re.I):
            break
    if proc.returncode != 0:
        raise OperationFailed(f"qsub failed: {nix.last_lines(proc.stderr, 1)}")
    job = proc.stdout.strip().splitlines()[-1].strip() if proc.stdout.strip() else ""
    if not re.fullmatch(r"\d+(\[\])?(\.[\w.-]+)?", job):
        raise OperationFailed(f"qsub printed no job id: {proc.stdout.strip()!r}")
    pollcache.forget(store.state_dir, "pbs:")   # the queue has changed: not what was seen
    for index, record in enumerate(records):
        store.update(record, state=BuildState.QUEUED,
                     job=job.replace("[]", f"[{index}]") if len(records) > 1 else job)
    if depend_on:
        # the jobs depended on may have been exiting as qsub ran: wait for them to finish
        # (seconds), then make sure PBS let go of the new one
        deadline = time.monotonic() + STALE_HOLD_WAIT
        while time.monotonic() < deadline:
            listed = _qstat(job, history=True).get(job)
            if listed is None or _release_if_stale(listed) != "exiting":
                break
            time.sleep(0.2)


def _release_if_stale(job: Job, known: Mapping[str, Job] | None = None) -> str:
    """Release our job if PBS holds it for ``afterany`` on jobs that have all ended.

    OpenPBS 23.06 can lose the release of a dependency registered while the
    job depended on was exiting: on the rig, 1 in 8 submissions racing a
    job's end stayed held for ever, and every one made while a job stayed
    exiting for seconds (a slow end-of-job hook) did; the user's builds
    wait with it. ``qalter`` with the same, now finished, jobs makes the server look
    again and release it (the owner may; ``qrls`` of a system hold may not).
    Returns ``released``, ``exiting`` (a job depended on is still ending:
    ask again shortly) or ``""`` (nothing to do: not held, or held for
    something real). ``known``: jobs just listed (``poll``'s), not asked again.
    """
    if job.state != "H" or str(job.attrs.get("Hold_Types", "n")) != "s":
        return ""
    waits_for = []
    for part in str(job.attrs.get("depend", "")).split(","):
        kind, _, ids = part.partition(":")
        if kind.startswith("before") or not ids:
            continue
        if kind != "afterany":
            return ""     # afterok & co. are the user's own: not ours to touch
        waits_for += [i.split("@")[0] for i in ids.split(":") if i]
    for other_id in waits_for:
        other = (known or {}).get(other_id) or _qstat(other_id, history=True).get(other_id)
        if other is not None and other.state == EXITING:
            return "exiting"
        if other is not None and other.state not in FINISHED:
            return ""     # a real wait: PBS releases it when that job ends
    if not waits_for:
        return ""
    proc = _run(["qalter", "-W", "depend=afterany:" + ":".join(waits_for), job.id])
    return "released" if proc.returncode == 0 else ""




# -- following ------------------------------------------------------------------------------

def poll(store: BuildStore, records: list[BuildRecord], max_age: float = 0.0
         ) -> dict[int, BuildState | None]:
    """queued/running for jobs PBS still runs or queues (any owner), None for ended ones
    and for a job id that PBS has given to another job since (``_builds``).

    One ``qstat -x`` per submission (an array with all its subjobs: the
    server looks up those ids only), shared with the user's other nixmod
    processes for ``max_age`` seconds (``pollcache``). An answer older than
    the record's last change does not move it (the next answer decides). A submission of ours that PBS forgot to release is
    released on the way (``_release_if_stale``).
    """
    jobs: dict[str, Job] = {}
    asked: dict[str, float] = {}
    submissions = sorted({submission_of(r.job) for r in records if r.job})
    for submission in submissions:
        answer = pollcache.ask(store.state_dir, CACHE_KEY + submission, max_age,
                               partial(_submission_rows, submission), _valid_row)
        jobs.update((str(row["id"]), Job(str(row["id"]), dict(row["attrs"])))
                    for row in answer.rows)
        asked[submission] = answer.time
    unseen = {r.id: r.state for r in records if r.job and r.state in ("queued", "running")
              and asked.get(submission_of(r.job), 0.0) < r.updated}
    followed = {r.id: r.job for r in records
                if r.job and r.job in jobs and _builds(jobs[r.job], r)}
    me = current_user()
    for submission in sorted({submission_of(job) for job in followed.values()}):
        mine = jobs.get(submission)   # usually waiting for another of these: already listed
        if mine is not None and mine.owner == me and \
                _release_if_stale(mine, jobs) == "released":
            jobs.update(_qstat(submission, history=True))   # what it is now that PBS let go
    states: dict[int, BuildState | None] = {}
    for record in records:
        job = jobs.get(followed.get(record.id) or "")
        if record.id in unseen:
            states[record.id] = unseen[record.id]
        elif job is None or job.state in FINISHED:
            states[record.id] = None
        elif job.state in RUNNING:
            states[record.id] = BuildState.RUNNING
        else:
            states[record.id] = BuildState.QUEUED
    return states


#: key prefix of this backend's answers in the shared cache (``pollcache``)
CACHE_KEY = "pbs:job:"


def _submission_rows(submission: str) -> list[dict[str, Any]]:
    """What ``qstat -x`` says of one submission, as rows for ``pollcache``."""
    return [{"id": job_id, "attrs": job.attrs}
            for job_id, job in _qstat(submission, history=True).items()]


def _valid_row(row: dict[str, Any]) -> bool:
    return set(row) == {"id", "attrs"} and isinstance(row["id"], str) \
        and isinstance(row["attrs"], dict)


def _explain(job: Job | None) -> tuple[BuildState, str]:
    """How a finished job ended, from PBS's history (``qstat -x``)."""
    if job is None:
        return VANISHED
    status = job.exit_status
    if status is None:
        # finished without ever running: deleted while queued (or its array was)
        return (BuildState.CANCELLED, "the job was deleted before it ran (qdel)")
    if status == EXIT_WALLTIME:
        return TIMEOUT
    if status in (EXIT_MEM, EXIT_VMEM):
        return (BuildState.FAILED, "the job ran out of memory ([build.pbs].mem)")
    if status == EXIT_CPUT:
        return (BuildState.FAILED, "the job reached its cpu time limit")
    if status == EXIT_SIGNALLED + signal.SIGTERM:
        return CANCELLED          # what qdel sends a running job first
    if status > EXIT_SIGNALLED:
        return (BuildState.FAILED, f"the job was killed by signal {status - EXIT_SIGNALLED} "
                          "(qdel -W force, out of memory, or the node)")
    if status < 0:
        return (BuildState.FAILED, f"PBS could not run the job (Exit_status {status}: see tracejob "
                          f"{job.id})")
    return (BuildState.FAILED, f"the job ended (exit {status}) without recording how")


def ended(record: BuildRecord) -> tuple[BuildState, str]:
    """How a job that left the queue without an exit record ended, as far as PBS knows."""
    try:
        return _explain(_job_of(record, history=True))
    except OperationFailed:
        return VANISHED


def cancel(record: BuildRecord) -> None:
    """qdel the record's job, and only it: a job id PBS has given to another job since
    (``_builds``) is left alone, and the record is then simply cancelled."""
    if _job_of(record, history=False) is None:
        return
    proc = _run(["qdel", record.job or ""])
    if proc.returncode != 0 and not re.search(r"Unknown Job Id|has finished|Job has finished",
                                              proc.stderr, re.I):
        raise OperationFailed(f"qdel {record.job} failed: {nix.last_lines(proc.stderr, 1)}")


def current_job_id() -> str | None:
    """The (sub)job id of the job step running now, from PBS's environment."""
    return os.environ.get("PBS_JOBID") or None


def stop_reason(record: BuildRecord) -> tuple[BuildState, str]:
    """Told to stop: at (or past) start + walltime it is the walltime, else a qdel.

    The mom sends SIGTERM in both cases; the job's Exit_status (-29 for the
    walltime) is only set after the job has gone, so the clock is the witness.
    """
    job_id = os.environ.get("PBS_JOBID")
    try:
        job = _qstat(job_id, history=True).get(job_id) if job_id else None
    except OperationFailed:
        job = None
    if job is not None and _reached_walltime(job):
        return TIMEOUT
    return CANCELLED




def _reached_walltime(job: Job) -> bool:
    limits = job.attrs.get("Resource_List") or {}
    limit = _seconds(str(limits.get("walltime", ""))) if isinstance(limits, dict) else None
    started = str(job.attrs.get("stime", ""))
    if limit is None or not started:
        return False
    try:
        start = time.mktime(time.strptime(started, "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return False
    return time.time() >= start + limit - 1


# -- the job's entry point ----------------------------------------------------------------

def job_main() -> int:
    """What a PBS job runs: restore the submitter's environment, then the common job step.

    ``sys.argv`` is ``['-c', MANIFEST]``. PBS's own variables (PBS_JOBID,
    PBS_ARRAY_INDEX, TMPDIR) win over the saved ones.
    """
    manifest = Path(sys.argv[-1])
    saved = json.loads(_env_file(manifest).read_text())
    mine = {key: value for key, value in os.environ.items()
            if key.startswith("PBS_") or key in _PBS_OWNED_ENV}
    os.environ.clear()
    os.environ.update(saved)
    os.environ.update(mine)
    home = os.environ.get("HOME")
    if home and os.path.isdir(home):
        os.chdir(home)
    index = int(os.environ.get("PBS_ARRAY_INDEX") or 0)
    return run_job(manifest, index, backends={NAME: sys.modules[__name__]})


def owner_of(job: str) -> str | None:
    """Who submitted ``job``, from ``qstat`` (None when PBS does not know it now)."""
    try:
        found = _qstat(job, history=False).get(job)
    except (OperationFailed, UserError):
        return None
    return (found.owner or None) if found is not None else None


def follow_problems(config: Config, records: list[BuildRecord]) -> dict[int, str]:
    """Joined records whose job can no longer be trusted to build (held since, moved, ...),
    or that have followed it longer than the build time limit (``joining``).

    The same rules as joining (``_verdicts`` over the build queue), checked on
    every ``status`` and wait. A job that has ended is not a problem here: ``poll``
    says so and the core looks for its output.
    """
    me = current_user()
    joined = [r for r in records if r.joined and r.job]
    if not joined:
        return {}
    now = time.time()
    queue: dict[str, Job] | None = None
    verdicts: dict[str, str | None] = {}
    problems: dict[int, str] = {}
    for record in joined:
        try:   # the answers poll has just read and the submission's look: shared (pollcache)
            job = _followed_job(config, record)
            if job is None or job.state in FINISHED or job.owner == me:   # ours need no proof
                continue
            if queue is None:
                queue = _join_look(config)
                verdicts = _verdicts(config, queue, now)
        except OperationFailed:
            break    # PBS did not answer: nothing is known against the jobs, ask next time
        why = verdicts[job.id] if job.id in verdicts else \
            _why_not(config, job, set(), now, _largest_node_ncpus)
        why = why or joining.followed_too_long(
            record, _seconds(config.build.pbs.walltime),
            f"[build.pbs].walltime {config.build.pbs.walltime}", now)
        if why:
            problems[record.id] = why
    return problems


def _followed_job(config: Config, record: BuildRecord) -> Job | None:
    """The record's job as ``poll`` last saw it (its shared answer, for up to ``poll_seconds``);
    None when PBS does not show it or the id now names another job (``_builds``)."""
    submission = submission_of(record.job or "")
    answer = pollcache.ask(config.build.state_dir, CACHE_KEY + submission,
                           config.build.poll_seconds, partial(_submission_rows, submission),
                           _valid_row)
    row = next((r for r in answer.rows if r["id"] == record.job), None)
    job = Job(str(row["id"]), dict(row["attrs"])) if row is not None else None
    return job if job is not None and _builds(job, record) else None


def lane(store: BuildStore, max_concurrent: int) -> AbstractContextManager[object]:
    """No lane of ours: PBS throttles (the array's ``%max_concurrent`` and ``afterany``)."""
    return nullcontext()


VERIFY_PLACE = "here"


def verify(config: Config, drv: str) -> CheckRun:
    """A PBS user's rebuild runs here (nixmod has no interactive PBS step for it)."""
    return verify_here(drv)
