"""The SLURM backend: one job array per lane, throttled per user, joinable only when genuine.

* The per-user throttle is ``max_concurrent`` *lanes*: lane L's jobs are
  named ``nixmod-build-L`` and submitted with ``--dependency=singleton``, so
  SLURM runs at most one job of each lane (and so ``max_concurrent`` builds)
  per user at a time, across separate submissions, with no daemon of ours
  alive. A submission of N packages spreads them over the least-loaded lanes:
  one ``sbatch`` (a ``%1`` array) per lane used, so one package is one sbatch
  and a second submission runs beside the first when a lane is free, instead
  of waiting for the whole earlier array (the old ``afterany`` chain).
* The comment lists the drv hashes in task order (``nixmod:<hash>,...``);
  comments are visible to every user, so any user's nixmod can find an
  in-flight build of a drv. Because anyone can set a comment, another user's
  job is joined only when SLURM's own record of it shows that it can really
  build (``joinable``): on the joiner's build partition, not held, not
  waiting for a start time, with a time limit no longer than the joiner's
  own (``joining`` says what is too long), and running nixmod's own batch script (``slurm_job.sh``, a file of
  the installed package, whose path SLURM reports as the job's Command) with
  the same hash list as the comment. The job step itself refuses to build a
  drv other than the one at its index in that list.
* The batch script holds no catalog text: it gets the interpreter, a
  manifest path and the hash list as arguments.
* Build jobs are ``--no-requeue``: after a node failure SLURM would rerun a
  build whose first run may still be going on the lost node (slurmstepd
  outlives slurmd), and a requeued job would keep every joiner and the next
  submission of the lane waiting. The record ends ``failed`` with the reason
  instead, and ``nixmod build --retry`` (or the next joiner) starts it again;
  the daemon's locks make a duplicate harmless anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from nixmod import nix, outside
from nixmod.builds import joining, pollcache
from nixmod.builds.backend import CheckRun
from nixmod.builds.slurm_jobs import (
    JOB_NAME, COMMENT_PREFIX, JOB_SCRIPT, QUEUED, RUNNING, _STUCK_REASONS, ENDED, VANISHED, Task,
    _run, CACHE_KEY, _job_task, _join_look, _followed, _cached_show, _limit_seconds, _show_job,
    _field, _scontrol_field)
from nixmod.builds.state import BuildRecord, BuildState, BuildStore
from nixmod.config import Config, current_user
from nixmod.errors import OperationFailed, UserError

NAME = "slurm"


def _expected_command(hashes: str) -> tuple[str, str]:
    """The prefix and suffix of the Command of a job running nixmod's own job step."""
    return f"{JOB_SCRIPT} {sys.executable} ", f" {hashes}"


def joinable(config: Config, task: Task, drv_hash: str, now: float | None = None,
             limits: dict[str, str | None] | None = None) -> str | None:
    """Why ``task`` must not be joined for ``drv_hash`` (None: it can really build it).

    Everything here is SLURM's own record of the job, which its owner
    cannot fake: the partition, the hold, the pending reason, the time
    limit, and the Command (the path of the batch script file, a file of the
    installed package, with its arguments). A job that passes still gets no
    trust beyond "wait for it": when it ends without a valid output, the
    joiner builds the drv itself.
    """
    hashes = task.hashes()
    if task.state not in QUEUED | RUNNING:
        return f"job {task.job} has ended"
    if task.drv_hash != drv_hash:
        return f"job {task.job}'s comment does not name this derivation"
    if task.partition != config.build.slurm.partition:
        return (f"job {task.job} is on partition {task.partition!r}, not the build partition "
                f"{config.build.slurm.partition!r}")
    prefix, suffix = _expected_command(",".join(hashes))
    if not (task.command.startswith(prefix) and task.command.endswith(suffix)):
        return f"job {task.job} does not run nixmod's job step"
    if task.state in QUEUED and (task.priority == 0 or "Held" in task.reason
                                 or task.reason in _STUCK_REASONS):
        return f"job {task.job} is held or cannot start ({task.reason})"
    array = task.job.partition("_")[0]
    limits = {} if limits is None else limits     # one scontrol per array, not per task
    if array not in limits:
        limits[array] = _show_job(task.job)
    shown = limits[array]
    if task.state in QUEUED:
        # --begin: squeue may not say BeginTime yet right after submission; EligibleTime does
        eligible = _field(shown, "EligibleTime")
        try:
            at = time.mktime(time.strptime(eligible or "", "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            at = None
        if joining.starts_too_late(at, now or time.time()):
            return f"job {task.job} is held or cannot start (waits until {eligible})"
    limit = _field(shown, "TimeLimit")
    if joining.longer_than_mine(_limit_seconds(limit or "UNLIMITED"),
                                _limit_seconds(config.build.slurm.time)):
        return (f"job {task.job}'s time limit ({limit}) is longer than [build.slurm].time "
                f"({config.build.slurm.time})")
    return None


def queued_drv_hashes(config: Config, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """drv hash -> (job ``ARRAY_TASK``, owner) of a joinable nixmod build, for ``wanted`` hashes.

    Without SLURM (a laptop with the local backend), or while the controller
    does not answer, there is nothing to join: building is always safe (the
    daemon's locks keep it from running twice).
    """
    if shutil.which("squeue") is None:
        return {}
    found: dict[str, tuple[str, str]] = {}
    now, limits = time.time(), dict[str, str | None]()
    try:
        for task in _join_look(config):
            drv_hash = task.drv_hash
            if drv_hash is not None and drv_hash in wanted - found.keys() \
                    and joinable(config, task, drv_hash, now, limits) is None:
                found[drv_hash] = (task.job, task.owner)
    except OperationFailed:
        return {}   # the controller went away mid-look: join nothing rather than half
    return found


def owner_of(job: str) -> str | None:
    """Who submitted ``job`` (None when SLURM does not know it now)."""
    value = _scontrol_field(job, "UserId")
    return value.split("(")[0] if value else None


def _lanes(config: Config, records: list[BuildRecord]) -> dict[int, list[BuildRecord]]:
    """Spread ``records`` over the least-loaded of this user's ``max_concurrent`` lanes.

    The load is read from the submission's join look (no question of its own).
    """
    count = config.build.max_concurrent
    load = [0] * count
    for task in _join_look(config):
        if task.owner == current_user():
            suffix = task.name.rpartition("-")[2]
            if suffix.isdigit() and int(suffix) < count:
                load[int(suffix)] += 1
    lanes: dict[int, list[BuildRecord]] = {}
    for record in records:
        lane = min(range(count), key=lambda n: (load[n], n))
        load[lane] += 1
        lanes.setdefault(lane, []).append(record)
    return lanes


def _sbatch_args(config: Config, store: BuildStore, records: list[BuildRecord], lane: int,
                 manifest: Path) -> list[str]:
    slurm = config.build.slurm
    hashes = ",".join(nix.store_hash(r.drv) for r in records)
    args = ["sbatch", "--parsable", "--job-name", f"{JOB_NAME}-{lane}", "--no-requeue",
            "--dependency", "singleton", "--partition", slurm.partition,
            "--time", slurm.time, "--cpus-per-task", str(slurm.cpus_per_task), "--mem", slurm.mem,
            "--array", f"0-{len(records) - 1}%1", "--comment", COMMENT_PREFIX + hashes,
            "--output", str(store.logs_dir / "slurm-%A_%a.out"), "--chdir", str(store.state_dir)]
    if slurm.account:
        args += ["--account", slurm.account]
    if slurm.qos:
        args += ["--qos", slurm.qos]
    return args + list(slurm.extra_args) + [str(JOB_SCRIPT), sys.executable, str(manifest), hashes]


def submit(config: Config, store: BuildStore, records: list[BuildRecord], manifest: Path) -> None:
    """One sbatch per lane used; a record becomes ``queued`` as soon as its lane's job exists.

    The manifest lists every record of the submission; a lane's array gets
    the records' positions through its hash list (the job step looks its
    record up by the hash at its index).
    """
    for lane, mine in sorted(_lanes(config, records).items()):
        proc = _run(_sbatch_args(config, store, mine, lane, manifest))
        if proc.returncode != 0:
            raise OperationFailed(f"sbatch failed: {nix.last_lines(proc.stderr, 1)}")
        pollcache.forget(store.state_dir, CACHE_KEY)   # the queue has changed: not what was seen
        array = proc.stdout.strip().split(";")[0]
        if not array.isdigit():
            raise OperationFailed(f"sbatch printed no job id: {proc.stdout.strip()!r}")
        for index, record in enumerate(mine):
            store.update(record, state=BuildState.QUEUED, job=f"{array}_{index}")


def poll(store: BuildStore, records: list[BuildRecord], max_age: float = 0.0
         ) -> dict[int, BuildState | None]:
    """queued/running for jobs still in the queue (any owner), None for those gone
    and for a job id that now names a task building something else (``Task.builds``).

    ``max_age``: an answer that young, shared with the user's other nixmod
    processes, is used instead of asking (``_followed``). An answer older
    than the record's last change (submitted since, or its job step said
    ``running``) does not move it: a job missing from it is not gone, a
    pending one has not gone back to the queue; the next answer decides.
    Raises SchedulerUnavailable when slurmctld does not answer.
    """
    live = _followed(store.state_dir, records, max_age)
    states: dict[int, BuildState | None] = {}
    for record in records:
        task, asked = live.get(record.job or "", (None, 0.0))
        if asked < record.updated and record.state in ("queued", "running"):
            states[record.id] = record.state
            continue
        states[record.id] = None if task is None or not task.builds(record) \
            else BuildState.QUEUED if task.state in QUEUED else BuildState.RUNNING
    return states


def follow_problems(config: Config, records: list[BuildRecord]) -> dict[int, str]:
    """Joined records whose job can no longer be trusted to build (held since, stuck, ...),
    or that have followed it longer than the build time limit (``joining``)."""
    joined = [r for r in records if r.joined and r.job]
    if not joined:
        return {}
    # the answers poll has just read (or asked for): no question of its own
    state_dir, max_age = config.build.state_dir, float(config.build.poll_seconds)
    tasks = _followed(state_dir, joined, max_age)
    now, limits = time.time(), dict[str, str | None]()
    mine = _limit_seconds(config.build.slurm.time)
    problems: dict[int, str] = {}
    for record in joined:
        task = tasks.get(record.job or "", (None, 0.0))[0]
        if task is not None and task.owner != current_user():   # our own jobs need no proof
            array = task.job.partition("_")[0]
            if array not in limits:
                limits[array] = _cached_show(state_dir, task.job, max_age)
            why = joinable(config, task, nix.store_hash(record.drv), now, limits) \
                or joining.followed_too_long(record, mine, f"[build.slurm].time "
                                             f"{config.build.slurm.time}", now)
            if why:
                problems[record.id] = why
    return problems


def _scontrol_state(job: str) -> str | None:
    """JobState from ``scontrol show job`` while SLURM still remembers the job (MinJobAge).

    None when SLURM has forgotten the job; SchedulerUnavailable when it
    could not be asked (the job's end is then unknown, not "vanished").
    """
    return _field(_show_job(job, strict=True), "JobState")


def ended(record: BuildRecord) -> tuple[BuildState, str]:
    """How a job that left the queue without an exit record ended, as far as SLURM knows."""
    state = _scontrol_state(record.job or "")
    return ENDED.get(state or "", VANISHED)


def cancel(record: BuildRecord) -> None:
    """scancel the record's task, and only it: a job id that now names a task building
    something else (``Task.builds``) is left alone, and the record is simply cancelled."""
    task = _job_task(record.job or "")
    if task is None or not task.builds(record):
        return
    proc = _run(["scancel", record.job or ""])
    if proc.returncode != 0 and "already completing or completed" not in proc.stderr:
        raise OperationFailed(f"scancel {record.job} failed: {nix.last_lines(proc.stderr, 1)}")


def current_job_id() -> str | None:
    """``ARRAY_TASK`` of the job step running now, from SLURM's environment."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else None


def stop_reason(record: BuildRecord) -> tuple[BuildState, str]:
    """Told to stop: at (or past) the job's start + time limit it is the time limit, else a cancel.

    When SLURM sends SIGTERM for the time limit the job still shows as
    RUNNING (TIMEOUT comes later), so the clock is the witness. ``EndTime``
    is not: ``scancel`` sets it to the moment of the cancel (the job shows
    COMPLETING), which would make every cancel look like a timeout.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if job and _reached_time_limit(job):
        return ENDED["TIMEOUT"]
    return ENDED["CANCELLED"]


def _reached_time_limit(job: str) -> bool:
    try:
        line = _show_job(job)
    except OperationFailed:
        return False
    if line is None:
        return False
    if _field(line, "JobState") == "TIMEOUT":
        return True
    start = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", _field(line, "StartTime") or "")
    limit = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", _field(line, "TimeLimit") or "")
    if not start or not limit:
        return False   # UNLIMITED, or nothing to go by: a stop we did not expect is a cancel
    days, hours, minutes, seconds = (int(part or 0) for part in limit.groups())
    deadline = time.mktime(time.strptime(start.group(0), "%Y-%m-%dT%H:%M:%S")) \
        + ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return time.time() >= deadline - 1


def lane(store: BuildStore, max_concurrent: int) -> AbstractContextManager[object]:
    """No lane of ours: SLURM throttles (one running job per ``nixmod-build-L`` lane)."""
    return nullcontext()


def submission_of(job: str) -> str:
    """``ARRAY_TASK`` -> ``ARRAY``."""
    return job.split("_")[0]


VERIFY_PLACE = "on the build partition"


def verify(config: Config, drv: str) -> CheckRun:
    """``nix-store --check`` as one ``srun`` step on the build partition, with the build's limits.

    The step names its node and job on stderr first (``nixmod-verify: node N
    job J``): verify reports where it ran.
    """
    if shutil.which("srun") is None:
        raise UserError("'srun' not found on PATH; verify with the slurm backend needs "
                        "the SLURM client tools (or --backend local)")
    command = nix.check_command(drv)
    slurm = config.build.slurm
    srun = ["srun", "--job-name", "nixmod-verify", "--partition", slurm.partition,
            "--time", slurm.time, "--cpus-per-task", str(slurm.cpus_per_task), "--mem", slurm.mem,
            "--ntasks", "1", "--quiet"]
    if slurm.account:
        srun += ["--account", slurm.account]
    if slurm.qos:
        srun += ["--qos", slurm.qos]
    announce = 'echo "nixmod-verify: node ${SLURMD_NODENAME:-?} job ${SLURM_JOB_ID:-?}" >&2; exec "$@"'
    argv = [*srun, *slurm.extra_args, "/bin/sh", "-c", announce, "sh",
            shutil.which(command[0]) or command[0], *command[1:]]
    proc = outside.run(argv, env=nix.nix_env_vars(), stdin=subprocess.DEVNULL)
    where = re.search(r"^nixmod-verify: node (\S+) job (\S+)$", proc.stderr, re.M)
    if not where:
        raise OperationFailed(f"srun failed: {nix.last_lines(proc.stderr, 1)}")
    return CheckRun(proc.returncode, proc.stderr, where.group(1), where.group(2))
