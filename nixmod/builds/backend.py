"""The contract between the build core and a scheduler: one module to write per scheduler.

In the spirit of EasyBuild's ``JobBackend``: ``builds/__init__.py`` (plan,
submit, refresh, cancel) and ``builds/job.py`` (the job step) talk to a
scheduler only through ``Backend``; they hold no ``if backend == ...``.
``local.py``, ``slurm.py`` and ``pbs.py`` are modules that satisfy it
(mypy checks a module against a protocol where ``builds.BACKENDS`` is
typed ``dict[str, Backend]``); a Grid Engine backend would be one more such
module and one more entry in ``BACKENDS`` (and in ``config``'s list of names).

What every backend must keep, whatever its scheduler:

* ``submit`` makes every record it is given ``queued`` with its job id (one
  scheduler call per batch where the scheduler allows it), or raises
  ``OperationFailed`` (the core keeps the records ``pending`` for a retry).
* ``poll`` says ``queued`` / ``running`` for jobs still in the queue (of
  any owner: a joined record follows another user's job) and ``None`` for
  jobs that have left it, or whose id now names a job that does not build
  the record's drv (schedulers hand ids out again: a PBS server that lost
  its counter, a SLURM controller that lost its state, recycled pids);
  ``cancel`` stops only such a job of the record's own. ``ended`` then
  says how one ended when its own exit record is missing. A scheduler that does not answer raises
  ``SchedulerUnavailable`` from ``poll``: the core keeps the last-known
  states and says so.
* Gentle on the scheduler (SPEC): ``poll`` asks only about the user's
  jobs and the jobs it joined (server-side filters: user, job ids), and
  shares one answer per ``max_age`` with the user's other nixmod
  processes (``pollcache``); ``follow_problems`` reads that same answer.
* ``queued_drv_hashes`` lists only jobs the scheduler's own record shows
  to be genuine nixmod builds (anyone can fake a comment); a backend with
  no shared queue returns ``{}``.
* The job step's throttle is either the scheduler's (``lane`` is a
  ``nullcontext``) or the backend's own (local: lock files).

This module imports no backend (the backends import it for
``SchedulerUnavailable``), so nothing under ``builds/`` reaches back up.
"""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nixmod import nix
from nixmod.builds.state import BuildRecord, BuildState, BuildStore
from nixmod.config import Config
from nixmod.errors import OperationFailed


class SchedulerUnavailable(OperationFailed):
    """The scheduler did not answer (restarting, down): states are the last known ones."""


@dataclass(frozen=True)
class CheckRun:
    """How a ``nix-store --realise DRV --check`` rebuild ended, and where it ran."""

    returncode: int
    stderr: str
    node: str           # the host the rebuild ran on
    job: str = ""       # its scheduler job, if it ran as one


class Backend(Protocol):
    """What the build core needs from a scheduler (every method derived from a call site)."""

    #: the ``[build] backend`` value that selects it, stored in each record's ``backend``
    NAME: str

    # -- submitting (builds.submit / retry) ------------------------------------------------

    def submit(self, config: Config, store: BuildStore, records: list[BuildRecord],
               manifest: Path) -> None:
        """Submit ``records`` (the manifest lists them by index); each becomes ``queued``."""
        ...

    def queued_drv_hashes(self, config: Config, wanted: set[str]) -> dict[str, tuple[str, str]]:
        """drv hash -> (job, owner) of any user's joinable in-flight build ({} when none can be)."""
        ...

    def owner_of(self, job: str) -> str | None:
        """Who submitted ``job`` (None when the scheduler does not know it now)."""
        ...

    def submission_of(self, job: str) -> str:
        """The submission (array, qsub) a job id belongs to, for messages and stacks."""
        ...

    # -- following (builds.refresh / cancel) -----------------------------------------------

    def poll(self, store: BuildStore, records: list[BuildRecord], max_age: float = 0.0
             ) -> dict[int, BuildState | None]:
        """record id -> ``queued`` / ``running``, or None once its job has left the queue.

        ``max_age``: an answer of the scheduler that young (shared by the user's
        nixmod processes, ``pollcache``) is good enough; 0 asks now.
        """
        ...

    def follow_problems(self, config: Config, records: list[BuildRecord]) -> dict[int, str]:
        """Joined records whose job can no longer be trusted to build, with why ({} if n/a)."""
        ...

    def ended(self, record: BuildRecord) -> tuple[BuildState, str]:
        """(state, error) of a job that left the queue without an exit record."""
        ...

    def cancel(self, record: BuildRecord) -> None:
        """Stop the record's own job (raises OperationFailed when the scheduler refuses)."""
        ...

    # -- the job step (builds.job.run_job) -----------------------------------------------

    def current_job_id(self) -> str | None:
        """The job id of the job step running now (None for a local worker)."""
        ...

    def lane(self, store: BuildStore, max_concurrent: int) -> AbstractContextManager[object]:
        """Held while the job step builds: the throttle, unless the scheduler throttles."""
        ...

    def stop_reason(self, record: BuildRecord) -> tuple[BuildState, str]:
        """(state, error) of a job step told to stop (a cancel, or the time limit)."""
        ...

    # -- verify (repro.verify) -------------------------------------------------------------

    #: where ``verify`` rebuilds, for its progress line ("here", "on the build partition")
    VERIFY_PLACE: str

    def verify(self, config: Config, drv: str) -> CheckRun:
        """Rebuild ``drv`` with ``--check`` where this backend builds (``nix.check_command``)."""
        ...


def verify_here(drv: str) -> CheckRun:
    """``Backend.verify`` for a backend that rebuilds on this host (local; PBS has no
    interactive step for it)."""
    proc = nix.run(nix.check_command(drv), check=False)
    return CheckRun(proc.returncode, proc.stderr, socket.gethostname())
