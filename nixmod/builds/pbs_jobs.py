"""PBS's own record of nixmod's jobs, read through qstat: the PBS backend's eyes.

Which jobs are nixmod's (by name, in the build queue), which drv each
subjob builds (its ``NIXMOD_DRVS`` entry), whether a job runs nixmod's own
job step, and whether another user's job may be joined (``_why_not``, with
the limits of ``joining``). ``pbs.py`` submits, follows and cancels with
these; nothing else imports this module. Everything qstat prints is read
through ``outside``: another user's job may hold any bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nixmod import nix, outside
from nixmod.builds import joining
from nixmod.builds.state import BuildRecord
from nixmod.config import Config, current_user
from nixmod.errors import OperationFailed, UserError
from nixmod.scheduler_options import scheduler_seconds

JOB_NAME = "nixmod-build"
#: the job attribute other users read to join: Variable_List's NIXMOD_DRVS
DRVS_VAR = "NIXMOD_DRVS"
DRVS_PREFIX = "nixmod:"
#: what the job runs (``python -I -c JOB_CODE MANIFEST``); joiners check for exactly this
JOB_CODE = "from nixmod.builds.pbs import job_main; raise SystemExit(job_main())"
#: job_state letters: on the way to running / running / ended (F with history, X a subjob)
QUEUED = {"Q", "H", "W", "T", "S", "U", "M"}
RUNNING = {"R", "E", "B"}
FINISHED = {"F", "X"}
#: ending: the job step has stopped, PBS is cleaning up (a dependency on it may be lost)
EXITING = "E"


# -- finding the tools ----------------------------------------------------------------

def _pbs_exec() -> Path | None:
    """PBS_EXEC from pbs.conf ($PBS_CONF_FILE or /etc/pbs.conf), where PBS's own tools look."""
    conf = Path(os.environ.get("PBS_CONF_FILE") or "/etc/pbs.conf")
    try:
        text = outside.read_text(conf)
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "PBS_EXEC" and value.strip():
            return Path(value.strip())
    return None


def tool_path(name: str) -> str | None:
    """``name`` on PATH, else in ``$PBS_EXEC/bin`` (a site may not put PBS on every PATH)."""
    found = shutil.which(name)
    if found:
        return found
    exec_dir = _pbs_exec()
    candidate = exec_dir / "bin" / name if exec_dir else None
    return str(candidate) if candidate and os.access(candidate, os.X_OK) else None


def _tool(name: str) -> str:
    path = tool_path(name)
    if path is None:
        raise UserError(f"'{name}' not found on PATH or in PBS_EXEC/bin of /etc/pbs.conf; the pbs "
                        "backend needs the PBS client tools (or set [build] backend = \"local\")")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a PBS client tool, read tolerantly (``outside.run``): qstat passes other users'
    job variables and names through byte for byte."""
    try:
        return outside.run([_tool(args[0]), *args[1:]], timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{args[0]} did not answer within 120 s (is the PBS server up?)") from None


# -- reading the queue -----------------------------------------------------------------

@dataclass
class Job:
    """The attributes of one PBS job (or subjob) that nixmod reads, from ``qstat -f -F json``."""

    id: str
    #: the job's attributes exactly as qstat's JSON has them (strings, numbers, nested dicts)
    attrs: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.attrs.get("job_state", ""))

    @property
    def owner(self) -> str:
        return str(self.attrs.get("Job_Owner", "")).split("@")[0]

    @property
    def queue(self) -> str:
        return str(self.attrs.get("queue", ""))

    @property
    def variables(self) -> dict[str, Any]:
        value = self.attrs.get("Variable_List")
        return value if isinstance(value, dict) else {}

    @property
    def exit_status(self) -> int | None:
        value = self.attrs.get("Exit_status")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def array_parent(self) -> str:
        """``123[].server`` for ``123[4].server``; the id itself for a plain job."""
        return submission_of(self.id)


def _parse_jobs(text: str) -> dict[str, Job]:
    data = json.loads(text, strict=False)
    jobs = data.get("Jobs") or {}
    if not isinstance(jobs, dict):
        raise ValueError("'Jobs' is not an object")
    return {job_id: Job(job_id, attrs) for job_id, attrs in jobs.items() if isinstance(attrs, dict)}


def _qstat(operand: str, *, history: bool) -> dict[str, Job]:
    """``qstat -f -F json -t [-x] OPERAND``: one job (an array with its subjobs), or a queue.

    One operand per call: OpenPBS 23.06's ``-F json`` prints only the first
    operand's jobs. A job PBS no longer knows is just missing from the answer.
    """
    proc = _run(["qstat", "-f", "-F", "json", "-t"] + (["-x"] if history else []) + [operand])
    gone = re.search(r"Unknown Job Id|Job has finished|Unknown queue", proc.stderr)
    if proc.returncode != 0 and not gone:
        raise OperationFailed(f"qstat failed: {nix.last_lines(proc.stderr, 1)}")
    try:
        return _parse_jobs(proc.stdout) if proc.stdout.strip() else {}
    except ValueError as exc:
        raise OperationFailed(f"qstat printed JSON nixmod cannot read ({exc})") from None


def _nixmod_jobs(queue: str, user: str | None = None) -> dict[str, Job]:
    """Every nixmod build job (plain jobs and subjobs) waiting or running in ``queue``: one call.

    A queue listing has no array parents, only their subjobs, which carry
    the parent's Variable_List, executable and holds. Another user's job
    with bytes that are not text anywhere in its attributes
    (``outside.garbled``) is left out: what it says cannot be read, so it is
    never joined; the user's own jobs are always listed.
    """
    me = current_user()
    return {job_id: job for job_id, job in _qstat(queue, history=False).items()
            if job.attrs.get("Job_Name") == JOB_NAME and job.state not in FINISHED
            and (user is None or job.owner == user)
            and (job.owner == me or not outside.garbled(job.attrs))}


def _drv_hashes(job: Job) -> list[str]:
    value = str(job.variables.get(DRVS_VAR, ""))
    return value[len(DRVS_PREFIX):].split(":") if value.startswith(DRVS_PREFIX) else []


def _index(job_id: str) -> int | None:
    """4 for subjob ``123[4].server``; None for a plain job."""
    match = re.search(r"\[(\d+)\]", job_id)
    return int(match.group(1)) if match else None


def _drv_hash_of(job_id: str, job: Job) -> str | None:
    """The drv hash this (sub)job builds: its own entry of NIXMOD_DRVS (None: not a build)."""
    hashes, index = _drv_hashes(job), _index(job_id)
    if index is None:
        return hashes[0] if len(hashes) == 1 else None
    return hashes[index] if index < len(hashes) else None


def _builds(job: Job, record: BuildRecord) -> bool:
    """Is ``job`` the one ``record`` was submitted as (or joined)?

    A job id alone does not say: OpenPBS hands its numbers out again after
    a server restart that lost its counter (README "PBS sites"), so a
    record's job may by now be someone else's. It is the record's only when
    it builds the record's drv.
    """
    return _drv_hash_of(job.id, job) == nix.store_hash(record.drv)


def _job_of(record: BuildRecord, *, history: bool) -> Job | None:
    """The record's own job as PBS shows it (None: unknown, or its id now another job's)."""
    job_id = record.job or ""
    job = _qstat(job_id, history=history).get(job_id)
    return job if job is not None and _builds(job, record) else None


def _runs_job_step(job: Job) -> bool:
    """Does PBS say this job runs nixmod's job step (``PYTHON -I -c JOB_CODE MANIFEST``)?"""
    executable = re.fullmatch(r"<jsdl-hpcpa:Executable>(/[^<]*)</jsdl-hpcpa:Executable>",
                              str(job.attrs.get("executable", "")))
    arguments = re.findall(r"<jsdl-hpcpa:Argument>(.*?)</jsdl-hpcpa:Argument>",
                           str(job.attrs.get("argument_list", "")), re.S)
    return bool(executable) and len(arguments) == 4 and arguments[:3] == ["-I", "-c", JOB_CODE] \
        and arguments[3].startswith("/")


def _holds_only_for(job: Job, throttle: set[str]) -> bool:
    """May a waiting job be joined? Not held, or held only by nixmod's throttle.

    The throttle is ``afterany`` on the owner's earlier nixmod jobs, which
    end by themselves. A user, operator or system hold of another kind, or
    a dependency on anything else, could keep it waiting forever.
    """
    holds = str(job.attrs.get("Hold_Types", "n"))
    after = [part for part in str(job.attrs.get("depend", "")).split(",")
             if part.startswith("after")]
    if holds == "n" and not after:
        return job.state != "H"
    if holds not in ("n", "s"):
        return False
    needed = []
    for part in after:
        kind, _, ids = part.partition(":")
        if kind != "afterany":
            return False
        needed += [submission_of(i.split("@")[0]) for i in ids.split(":") if i]
    return bool(needed) and all(i in throttle for i in needed)


#: how PBS writes a time (``Execution_Time``, ``stime``, ``qtime``)
_PBS_TIME = "%a %b %d %H:%M:%S %Y"


def _epoch(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, _PBS_TIME))
    except ValueError:
        return None


def _resources(job: Job) -> dict[str, Any]:
    value = job.attrs.get("Resource_List")
    return value if isinstance(value, dict) else {}


def _largest_node_ncpus() -> int | None:
    """The most cpus any node offers (``pbsnodes -a -F json``; None: PBS would not say)."""
    try:
        proc = _run(["pbsnodes", "-a", "-F", "json"])
        nodes = json.loads(proc.stdout, strict=False).get("nodes") or {}
    except (OperationFailed, UserError, ValueError, AttributeError):
        return None
    counts = [node.get("resources_available", {}).get("ncpus") for node in nodes.values()
              if isinstance(node, dict) and isinstance(node.get("resources_available"), dict)]
    numbers = [n for n in counts if isinstance(n, int) and not isinstance(n, bool)]
    return max(numbers) if numbers else None


def _why_not(config: Config, job: Job, throttle: set[str], now: float,
             node_ncpus: Callable[[], int | None]) -> str | None:
    """Why ``job`` must not be joined, or followed any longer (None: it can really build).

    All of it is PBS's own record of the job, which its owner cannot fake:
    the queue, what it runs, its walltime, and, while it waits, its holds,
    its start time (``qsub -a``, state W), the scheduler's "Can Never Run"
    comment and a cpu request no node can meet (the comment comes only with
    the next scheduling cycle). ``throttle``: the owner's submissions that
    may hold this one (``_holds_only_for``). ``joining`` says what is too long.
    """
    if job.state not in QUEUED | RUNNING:
        return f"job {job.id} has ended"
    if job.queue != config.build.pbs.queue:
        return f"job {job.id} is in queue {job.queue!r}, not the build queue " \
               f"{config.build.pbs.queue!r}"
    if not (_runs_job_step(job) and _drv_hashes(job)):
        return f"job {job.id} does not run nixmod's job step"
    walltime = str(_resources(job).get("walltime", ""))
    if joining.longer_than_mine(_seconds(walltime) if walltime else None,
                                _seconds(config.build.pbs.walltime)):
        return (f"job {job.id}'s walltime ({walltime or 'none'}) is longer than "
                f"[build.pbs].walltime ({config.build.pbs.walltime})")
    if job.state in RUNNING:
        return None     # a hold set now only matters if it is requeued: it runs, bounded
    if not _holds_only_for(job, throttle):
        return f"job {job.id} is held (Hold_Types {job.attrs.get('Hold_Types', '?')})"
    start = str(job.attrs.get("Execution_Time", ""))
    if joining.starts_too_late(_epoch(start) if start else None, now) \
            or (job.state == "W" and not start):
        return f"job {job.id} waits for a start time ({start or 'state W'})"
    comment = str(job.attrs.get("comment", ""))
    if comment.startswith("Can Never Run"):
        return f"job {job.id} can never run (PBS: {comment})"
    ncpus = _resources(job).get("ncpus")
    if isinstance(ncpus, int) and ncpus > config.build.pbs.ncpus:
        largest = node_ncpus()
        if largest is not None and ncpus > largest:
            return f"job {job.id} can never run (asks for {ncpus} cpus; no node has more " \
                   f"than {largest})"
    return None


def _verdicts(config: Config, jobs: dict[str, Job], now: float) -> dict[str, str | None]:
    """job id -> why it must not be joined (None: it can really build), for a build queue
    listing: see the module docstring and ``_why_not``.

    A job held only by a dependency on joinable jobs of the same owner (nixmod's
    throttle) is joinable too: found to a fixpoint.
    """
    largest: list[int | None] = []

    def node_ncpus() -> int | None:   # asked once, and only for a job asking for many cpus
        if not largest:
            largest.append(_largest_node_ncpus())
        return largest[0]

    verdicts: dict[str, str | None] = {}
    changed = True
    while changed:
        changed = False
        for job_id, job in jobs.items():
            if job_id in verdicts and verdicts[job_id] is None:
                continue
            throttle = {submission_of(jid) for jid, why in verdicts.items()
                        if why is None and jobs[jid].owner == job.owner}
            why = _why_not(config, job, throttle, now, node_ncpus)
            changed = changed or (why is None)
            verdicts[job_id] = why
    return verdicts


def submission_of(job: str) -> str:
    """The qsub a (sub)job id came from: ``123[4].server`` -> ``123[].server``."""
    return re.sub(r"\[\d+\]", "[]", job)


def _seconds(text: str) -> int | None:
    """A PBS walltime (``[[HH:]MM:]SS``) in seconds; None when it is not one."""
    return scheduler_seconds(text, bare_unit=1)
