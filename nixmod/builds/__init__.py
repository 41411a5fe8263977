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
(``backend.py``); ``registry.BACKENDS`` is the one place that names them.

The modules, each one job: ``state`` (the SQLite record store),
``records`` (opening it for the core, ids), ``planning``, ``submitting``,
``following`` (refresh, wait, cancel), ``logs``, ``finish`` (GC root +
module + end state), ``job`` (the job step) and ``step`` (its entry point),
``backend`` / ``registry`` and one module per scheduler.

The nix-daemon's per-output locks are the last line of "never twice": if
two users race past the queue check, the second realisation waits for the
first and then finds the path valid, so the builder runs once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nixmod.builds.state import (DONE_STATES, FINAL_STATES, IN_FLIGHT_STATES, RETRYABLE_STATES,
                                     BuildRecord, BuildState)
    from nixmod.builds.backend import Backend
    from nixmod.builds.registry import BACKENDS
    from nixmod.builds.records import (check_state, module_requests, modules_rewritten,
                                       open_store, parse_ids, tree_history)
    from nixmod.builds.planning import Plan, plan
    from nixmod.builds.submitting import SubmitFailed, retry, submission_of, submit
    from nixmod.builds.following import cancel, follow_log, refresh, wait
    from nixmod.builds.logs import LogText, failure_cause, log_path, read_log

__all__ = ["BuildRecord", "BuildState", "DONE_STATES", "FINAL_STATES", "IN_FLIGHT_STATES",
           "RETRYABLE_STATES", "Backend", "BACKENDS", "check_state", "module_requests",
           "modules_rewritten", "open_store", "parse_ids", "tree_history", "Plan", "plan",
           "SubmitFailed", "retry", "submission_of", "submit", "cancel", "refresh", "wait",
           "failure_cause", "follow_log", "log_path", "LogText", "read_log"]

#: where each name of the package lives. The package imports a module on the first use
#: of one of its names, not on import: ``nixmod.builds.state`` (every ``status``) and the
#: job step (``nixmod.builds.step``, on a build node) load only the modules they use,
#: while the faces keep writing ``builds.plan(...)``. mypy reads the imports above.
_HOMES = {
    "BuildRecord": "state",
    "BuildState": "state",
    "DONE_STATES": "state",
    "FINAL_STATES": "state",
    "IN_FLIGHT_STATES": "state",
    "RETRYABLE_STATES": "state",
    "Backend": "backend",
    "BACKENDS": "registry",
    "check_state": "records",
    "module_requests": "records",
    "modules_rewritten": "records",
    "open_store": "records",
    "parse_ids": "records",
    "tree_history": "records",
    "Plan": "planning",
    "plan": "planning",
    "SubmitFailed": "submitting",
    "retry": "submitting",
    "submission_of": "submitting",
    "submit": "submitting",
    "cancel": "following",
    "refresh": "following",
    "wait": "following",
    "failure_cause": "logs",
    "follow_log": "following",
    "log_path": "logs",
    "LogText": "logs",
    "read_log": "logs",
}

if not TYPE_CHECKING:   # hidden from mypy, which would otherwise take any name as Any
    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'nixmod.builds' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"nixmod.builds.{home}"), name)
        globals()[name] = value
        return value
