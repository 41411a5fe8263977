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

import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from nixmod import nix, outside
from nixmod.builds import joining, pollcache
from nixmod.builds.backend import CheckRun, SchedulerUnavailable
from nixmod.builds.state import BuildRecord, BuildState, BuildStore
from nixmod.config import Config, current_user
from nixmod.errors import OperationFailed, UserError
from nixmod.scheduler_options import scheduler_seconds

NAME = "slurm"
#: every nixmod build job's name starts so; lane L's jobs are ``nixmod-build-L``
JOB_NAME = "nixmod-build"
_JOB_NAME_RE = re.compile(r"nixmod-build(-\d{1,4})?")
COMMENT_PREFIX = "nixmod:"
_HASHES_RE = re.compile(r"[0-9a-z]{32}(,[0-9a-z]{32})*")
#: nixmod's batch script: its path is what `Command` must show for a job to be joined
JOB_SCRIPT = Path(__file__).resolve().with_name("slurm_job.sh")
#: squeue states in which the job is still on its way to running
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED",
          "CONFIGURING"}
#: states in which it runs (COMPLETING: the step ended, SLURM is cleaning up)
RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED", "RESIZING"}
#: pending reasons that mean the job will not start by itself
_STUCK_REASONS = {"BeginTime", "DependencyNeverSatisfied", "JobHeldUser", "JobHeldAdmin",
                  "PartitionDown", "PartitionInactive", "InvalidAccount", "InvalidQOS",
                  "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit"}
#: how a job that left the queue ended, when its own exit record is missing
ENDED = {
    "CANCELLED": (BuildState.CANCELLED, "the job was cancelled (scancel)"),
    "TIMEOUT": (BuildState.FAILED, "the job reached its time limit ([build.slurm].time)"),
    "NODE_FAIL": (BuildState.FAILED, "the build node failed (node failure); 'nixmod build --retry' "
                  "starts it again"),
    "BOOT_FAIL": (BuildState.FAILED, "the build node failed to boot"),
    "OUT_OF_MEMORY": (BuildState.FAILED, "the job ran out of memory ([build.slurm].mem)"),
    "PREEMPTED": (BuildState.FAILED, "the job was preempted"),
    "DEADLINE": (BuildState.FAILED, "the job missed its deadline"),
    "FAILED": (BuildState.FAILED, "the job failed before recording how"),
    "COMPLETED": (BuildState.FAILED, "the job completed but the output is not valid"),
}
VANISHED = (BuildState.FAILED, "job vanished without an exit record (node died or killed)")
#: seconds a query (squeue, scontrol) may take: a healthy slurmctld answers in
#: milliseconds, an unreachable one makes the tools retry for 9-18 s
QUERY_TIMEOUT = 5.0
#: seconds an action (sbatch, scancel) may take before we give up and say so
ACTION_TIMEOUT = 20.0


@dataclass(frozen=True)
class Task:
    """One task of a nixmod build job, as SLURM's own record (``squeue --json``) shows it."""

    job: str             # ARRAY_TASK
    state: str
    owner: str
    name: str
    partition: str
    comment: str
    command: str
    reason: str
    priority: int

    @property
    def index(self) -> int:
        return int(self.job.partition("_")[2] or 0)

    def hashes(self) -> list[str]:
        """The comment's hash list ([] when the comment is not nixmod's format)."""
        body = self.comment[len(COMMENT_PREFIX):] if self.comment.startswith(COMMENT_PREFIX) else ""
        return body.split(",") if _HASHES_RE.fullmatch(body) else []

    @property
    def drv_hash(self) -> str | None:
        """The drv hash this task says it builds: its own entry of the comment's list."""
        hashes = self.hashes()
        return hashes[self.index] if self.index < len(hashes) else None

    def builds(self, record: BuildRecord) -> bool:
        """Is this the task ``record`` was submitted as (or joined)? Not a job id reused
        since (a controller that lost its state starts again at FirstJobId)."""
        return self.drv_hash == nix.store_hash(record.drv)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"'{name}' not found on PATH; the slurm backend needs the SLURM client "
                        "tools (or set [build] backend = \"local\")")
    return path


def _run(args: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client tool, bounded: one that does not answer in time means slurmctld is away.

    Its answer is read tolerantly (``outside.run``): squeue and scontrol pass
    other users' comments and names through byte for byte.
    """
    timeout = ACTION_TIMEOUT if args[0] in ("sbatch", "scancel") else QUERY_TIMEOUT
    try:
        return outside.run([_tool(args[0]), *args[1:]], input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SchedulerUnavailable(f"{args[0]} did not answer within {timeout:.0f} s; is slurmctld "
                                   "up? ('scontrol ping' says; [build] backend = \"local\" needs "
                                   "no SLURM)") from None


def _number(value: object) -> int | None:
    """An integer field of squeue's JSON in any of its versions' shapes (plain or {set, number})."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    if isinstance(value, list):   # newer SLURM: job_state is a list of flags
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _indexes(spec: str) -> list[int]:
    """Task ids of an array's pending part, e.g. ``0-2%1`` or ``1,3-5``."""
    out: list[int] = []
    for part in spec.split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (high.isdigit() or not high):
            out += range(int(low), int(high or low) + 1)
    return out


def _tasks(partition: str) -> list[Task]:
    """Every nixmod build task on ``partition``, of every user (one ``squeue --json``).

    The join look: a submission's one look at other users' jobs (SPEC
    "Gentle on the scheduler"). JSON, not a ``-o`` format: other users'
    comments and commands are user text and may hold any separator. SLURM
    has no server-side filter for "jobs of any user with this name": a
    name or partition filter is applied by squeue after slurmctld sent
    every job (measured: one REQUEST_JOB_INFO either way, README "Load on
    the scheduler"), and SLURM 22.05's ``--json`` prints the whole queue
    whatever the filter; the partition is passed so that a SLURM that
    filters JSON prints only it.
    Another user's job with bytes that are not text anywhere in its record
    (``outside.garbled``) is left out: what it says cannot be read, so it is
    never joined; the user's own jobs are always listed (``Task.builds``
    still decides whether one is a record's).
    """
    proc = _run(["squeue", "--json", "--partition", partition])
    if proc.returncode != 0:
        raise SchedulerUnavailable(f"squeue failed: {nix.last_lines(proc.stderr, 2)}")
    try:
        answer = json.loads(proc.stdout)
        jobs, errors = answer.get("jobs", []), answer.get("errors") or []
    except (ValueError, AttributeError):
        raise SchedulerUnavailable("squeue --json printed no job list") from None
    if errors:   # squeue --json exits 0 with an empty list when slurmctld is unreachable
        first = errors[0] if isinstance(errors[0], dict) else {}
        raise SchedulerUnavailable(f"squeue failed: {first.get('description') or first}")
    tasks = []
    me = current_user()
    for job in jobs:
        if not isinstance(job, dict) or \
                (_text(job.get("user_name")) != me and outside.garbled(job)):
            continue
        name = _text(job.get("name"))
        state = _text(job.get("job_state"))
        if not _JOB_NAME_RE.fullmatch(name) or state not in QUEUED | RUNNING:
            continue
        array = _number(job.get("array_job_id")) or 0
        task_id = _number(job.get("array_task_id"))
        pending = _text(job.get("array_task_string"))
        if not array:
            continue     # nixmod's jobs are arrays
        ids = _indexes(pending) if pending else ([task_id] if task_id is not None else [])
        for index in ids:
            tasks.append(Task(job=f"{array}_{index}", state=state,
                              owner=_text(job.get("user_name")), name=name,
                              partition=_text(job.get("partition")),
                              comment=_text(job.get("comment")),
                              command=_text(job.get("command")),
                              reason=_text(job.get("state_reason")),
                              priority=_number(job.get("priority")) or 0))
    return tasks


#: ``squeue -o``: the fields a follower reads, the user's own text last (``_parse_task``)
_FORMAT = "%i|%T|%u|%P|%Q|%r|%j|%k|%o"
#: one task in ``_FORMAT``: system fields, then a nixmod job name and a nixmod comment (neither
#: can hold ``|`` or a newline), then the command, the rest of the text
_TASK_RE = re.compile(r"(\d+_\d+)\|([A-Z_]+)\|([^|\n]*)\|([^|\n]*)\|(\d*)\|([^|\n]*)\|"
                      r"(nixmod-build(?:-\d{1,4})?)\|(nixmod:[0-9a-z,]*)\|(.*)", re.S)
#: key prefix of this backend's answers in the shared cache (``pollcache``)
CACHE_KEY = "slurm:"


def _parse_task(text: str) -> Task | None:
    """A nixmod task from one ``_FORMAT`` record (None when it is not one)."""
    match = _TASK_RE.fullmatch(text)
    if match is None:
        return None
    job, state, owner, partition, priority, reason, name, comment, command = match.groups()
    return Task(job=job, state=state, owner=owner, name=name, partition=partition,
                comment=comment, command=command, reason=reason,
                priority=int(priority) if priority else 0)


def _squeue_format(args: list[str]) -> str:
    """``squeue --local -h -r -o _FORMAT ARGS``: one line per task (arrays spelt out).

    ``--local``: the jobs of this cluster, as squeue shows by default, without
    first asking slurmctld whether it is in a federation (one RPC less).
    """
    proc = _run(["squeue", "--local", "-h", "-r", "-o", _FORMAT, *args])
    if proc.returncode != 0:
        if "invalid job id" in proc.stderr.lower():
            return ""    # SLURM has forgotten the job: it is not in the queue
        raise SchedulerUnavailable(f"squeue failed: {nix.last_lines(proc.stderr, 2)}")
    return proc.stdout


def _my_tasks() -> list[Task]:
    """This user's nixmod tasks: ``squeue --me``, which slurmctld filters itself.

    ``--me`` is answered with REQUEST_JOB_USER_INFO (the user's jobs only),
    where the ``--json`` form, a name or a partition filter is answered with
    every job of the cluster (README "Load on the scheduler"). The text is
    the user's own; a line that is not a nixmod task is skipped.
    """
    tasks = (_parse_task(line) for line in _squeue_format(["--me"]).splitlines())
    return [t for t in tasks if t is not None and t.state in QUEUED | RUNNING]


def _job_task(job: str) -> Task | None:
    """One task by its id (``squeue -j ARRAY_TASK``: REQUEST_JOB_INFO_SINGLE), any owner.

    The whole answer is one record, so another user's comment or command
    cannot add a line that looks like a second job; None when the job is
    not a nixmod task in the queue, or is another user's whose record holds
    bytes that are not text (``outside.garbled``: what it says cannot be read).
    """
    if not re.fullmatch(r"\d+_\d+", job):
        return None
    text = _squeue_format(["-j", job]).removesuffix("\n")
    task = _parse_task(text)
    if task is None or task.job != job or task.state not in QUEUED | RUNNING:
        return None
    return task if task.owner == current_user() or not outside.garbled(text) else None


def _job_tasks(job: str) -> list[Task]:
    task = _job_task(job)
    return [task] if task is not None else []


def _task_row(task: Task) -> dict[str, object]:
    return {name: getattr(task, name) for name in Task.__dataclass_fields__}


def _valid_row(row: dict[str, object]) -> bool:
    """A cached task: every field of ``Task`` with its type, nothing else."""
    fields = Task.__dataclass_fields__
    return set(row) == set(fields) and all(
        isinstance(row[name], int) and not isinstance(row[name], bool)
        if name == "priority" else isinstance(row[name], str) for name in fields)


def _cached_tasks(state_dir: Path, key: str, max_age: float, query: Callable[[], list[Task]],
                  share_failure: bool = True) -> tuple[list[Task], float]:
    """``query``'s tasks, shared for ``max_age`` seconds by the user's nixmod processes."""
    answer = pollcache.ask(state_dir, CACHE_KEY + key, max_age,
                           lambda: [_task_row(t) for t in query()], _valid_row,
                           share_failure=share_failure)
    return [Task(**row) for row in answer.rows], answer.time


def _join_look(config: Config) -> list[Task]:
    """Every user's nixmod tasks on the build partition: one look per submission.

    ``plan``, the submission's second decision under its lock and its lane
    choice read the same answer (for up to ``poll_seconds``); our own
    ``sbatch`` and ``scancel`` drop it.
    """
    partition = config.build.slurm.partition
    return _cached_tasks(config.build.state_dir, f"join:{partition}", config.build.poll_seconds,
                         lambda: _tasks(partition), share_failure=False)[0]


def _followed(state_dir: Path, records: list[BuildRecord], max_age: float
              ) -> dict[str, tuple[Task | None, float]]:
    """job -> (its task or None, when SLURM said so) for every record's job.

    Our own jobs: one ``squeue --me``. A joined job of another user: one
    ``squeue -j`` each. Both shared through ``pollcache`` for ``max_age``.
    """
    found: dict[str, tuple[Task | None, float]] = {}
    jobs = {r.job for r in records if r.job}
    if any(r.job and not r.joined for r in records):
        mine, asked = _cached_tasks(state_dir, "mine", max_age, _my_tasks)
        listed = {t.job: t for t in mine}
        for record in records:
            if record.job and not record.joined:
                found[record.job] = (listed.get(record.job), asked)
        found.update((job, (listed[job], asked)) for job in jobs if job in listed)
    for job in sorted(jobs - found.keys()):
        tasks, asked = _cached_tasks(state_dir, f"job:{job}", max_age, partial(_job_tasks, job))
        found[job] = (tasks[0] if tasks and tasks[0].job == job else None, asked)
    return found


def _cached_show(state_dir: Path, job: str, max_age: float) -> str | None:
    """``_show_job(job)``'s line, shared like the tasks (joinable's time limit, begin time)."""
    answer = pollcache.ask(state_dir, f"{CACHE_KEY}show:{job}", max_age,
                           lambda: [{"line": line} for line in [_show_job(job)] if line],
                           lambda row: set(row) == {"line"} and isinstance(row["line"], str))
    return str(answer.rows[0]["line"]) if answer.rows else None


def _minutes(limit: str) -> int | None:
    """A SLURM time in whole minutes (a started minute counts); None = unlimited."""
    seconds = scheduler_seconds(limit, bare_unit=60)
    return None if seconds is None else -(-seconds // 60)


def _limit_seconds(limit: str) -> float | None:
    """A SLURM time limit in seconds (None: unlimited), as ``joining`` compares them."""
    minutes = _minutes(limit)
    return None if minutes is None else minutes * 60.0


def _show_job(job: str, *, strict: bool = False) -> str | None:
    """``scontrol -o show job JOB``: the job's one line, None when SLURM does not show it.

    The one place nixmod runs and reads ``scontrol show job``. ``strict``:
    a failure other than "invalid job id" (SLURM has forgotten the job)
    raises SchedulerUnavailable instead of reading as "not shown".
    """
    proc = _run(["scontrol", "-o", "show", "job", job])
    if proc.returncode != 0 and strict and "invalid job id" not in proc.stderr.lower():
        raise SchedulerUnavailable(f"scontrol failed: {nix.last_lines(proc.stderr, 1)}")
    return proc.stdout if proc.returncode == 0 else None


def _field(line: str | None, key: str) -> str | None:
    """One field of a ``_show_job`` line, taken from its first occurrence.

    Only fields that come before any user text (JobName is checked
    separately; Command, Comment and WorkDir come last) are safe to read so.
    """
    match = re.search(rf"(?:^| ){key}=(\S+)", line) if line is not None else None
    return match.group(1) if match else None


def _scontrol_field(job: str, key: str) -> str | None:
    """One field of ``scontrol -o show job`` (None when SLURM does not show the job)."""
    return _field(_show_job(job), key)


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
