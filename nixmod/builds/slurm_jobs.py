"""Reading SLURM's queue: nixmod's build tasks as SLURM's own records show them.

What ``slurm.py`` (the backend: submit, join, poll, cancel) reads, split off
so that the backend's decisions read apart from the squeue / scontrol
plumbing: the tool wrapper (``_run``: bounded, read tolerantly), the task
record (``Task``), the three query forms (the join look ``_tasks``, the
user's own ``_my_tasks``, one job ``_job_task``) and their answers shared
through ``pollcache``, and the one reader of ``scontrol show job``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from nixmod import nix, outside
from nixmod.builds import pollcache
from nixmod.builds.backend import SchedulerUnavailable
from nixmod.builds.state import BuildRecord, BuildState
from nixmod.config import Config, current_user
from nixmod.errors import UserError
from nixmod.scheduler_options import scheduler_seconds

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
