"""The job step: what runs on a build node (a SLURM or PBS job) or as a detached local worker.

``run_job`` realises one record's drv through the shared nix-daemon with a
GC root, writes its module (``finish.py``) and records how it ended, even
when the user has logged off. It learns its scheduler from the manifest and
reaches it only through ``Backend`` (its job id, its throttle lane, why it
was stopped). The entry points hand it the backends: ``nixmod _job`` (local
workers and ``slurm_job.sh``) passes ``builds.BACKENDS``; a PBS job's
``pbs.job_main`` passes its own backend. So this module imports no backend
and not the ``builds`` package.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Mapping

from nixmod import nix
from nixmod.builds.backend import Backend
from nixmod.builds.finish import finish, gcroot_path
from nixmod.builds.logs import NIX_REPEAT, read_log
from nixmod.builds.state import MIN_FREE_BYTES, BuildRecord, BuildState, BuildStore
from nixmod.config import load_config
from nixmod.errors import OperationFailed

#: how many lines of a failed build's log go into the record's ``error``
ERROR_TAIL_LINES = 8


#: the job step's entry point (``step.py``), as ``python -m`` runs it; a local worker is
#: known in /proc by it
JOB_STEP_MODULE = "nixmod.builds.step"


def job_argv(manifest: Path) -> list[str]:
    """The job step's command (without --index): the running interpreter, not a PATH lookup.

    ``-I`` (isolated): the job runs in the state dir (``--chdir``), and
    ``-m`` would otherwise put that directory first on ``sys.path``, so a
    ``nixmod/`` package found there would run as the user. Isolated mode
    also ignores PYTHONPATH and the user site directory: the job imports
    the installed nixmod and nothing else.
    """
    return [sys.executable, "-I", "-m", JOB_STEP_MODULE, "--manifest", str(manifest)]


def this_node() -> str:
    """The node a job step runs on, as the site's tools name it.

    In a SLURM job that is ``$SLURMD_NODENAME``, the name ``squeue``,
    ``sinfo`` and ``scontrol`` show: it may differ from the host name (several
    slurmds on one host, NodeName aliases), and a user looking for the node
    that built something searches for that name. A local worker: the host name.
    """
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def run_job(manifest_path: Path, index: int, hashes: str | None = None, *,
            backends: Mapping[str, Backend]) -> int:
    """Realise one record's drv with its GC root, write its module, record how it ended.

    SIGTERM (scancel, a time limit, ``nixmod cancel`` of a local worker)
    stops the nix-store client, which makes the daemon stop that build, and
    is recorded as cancelled (or as a timeout when SLURM says so).

    A SLURM job passes ``hashes`` (its comment's hash list, from its own
    Command line): the record built is the manifest's record whose drv has
    the hash at ``index``, and none other, so a job's comment (what other
    users join on) always says what it really builds.

    ``backends``: name -> backend, the manifest's ``backend`` chooses (the
    caller's registry: this module imports none, see the module docstring).
    """
    manifest = json.loads(Path(manifest_path).read_text())
    store = BuildStore(Path(manifest["state_dir"]))
    if hashes is not None:
        wanted = hashes.split(",")[index] if index < len(hashes.split(",")) else ""
        ids = [i for i in manifest["records"]
               if (r := store.get(int(i))) is not None and nix.store_hash(r.drv) == wanted]
        if not wanted or not ids:
            raise OperationFailed(f"manifest {manifest_path} has no build of the derivation this "
                                  f"job's comment names at index {index}")
        record = store.get(int(ids[0]))
    else:
        record = store.get(int(manifest["records"][index]))
    if record is None:
        raise OperationFailed(f"manifest {manifest_path}: record {manifest['records'][index]} is gone")
    config = load_config(manifest["config"], demo=manifest["demo"])
    backend = backends[manifest["backend"]]
    lane = backend.lane(store, manifest["max_concurrent"])   # a nullcontext where the scheduler throttles
    scheduled = backend.current_job_id()      # None for a local worker
    my_job = scheduled or record.job

    def still_mine() -> bool:
        """Is the record still this job's? A retry gives it a new job; a step of the old one
        (say, on a node that comes back after a failure) must not speak for the new one.
        (A local worker may start before its pid is recorded: it is always its record's.)"""
        fresh = store.get(record.id)
        return fresh is not None and (scheduled is None or fresh.job == scheduled)

    store.reserve_exit_marker(record.id)
    state: BuildState | None = None
    try:
        with lane:
            if not still_mine() or not store.update_if_in_flight(
                    record, state=BuildState.RUNNING, node=this_node(), job=my_job):
                return 0  # cancelled while it waited, or resubmitted since
            state, error = _realise_logged(store, record, backend)
        if not still_mine():
            return 0 if state == BuildState.BUILT else 1
        if state == BuildState.BUILT:
            finish(config, store, record, BuildState.BUILT)
            state, error = record.state, record.error
        else:
            store.update_if_in_flight(record, state=state, error=error)
        store.write_exit_marker(record.id, state, error)
        return 0 if state == BuildState.BUILT else 1
    except (OSError, OperationFailed) as exc:
        if not _out_of_space(exc, store):
            raise
        if state != BuildState.BUILT:   # a built output is found valid by the next status: no record needed
            store.write_reserved_exit_marker(record.id, BuildState.FAILED, _no_space(store))
        return 1
    finally:
        store.drop_exit_reserve(record.id)


def _out_of_space(exc: BaseException, store: BuildStore) -> bool:
    """Did the state dir's file system fill (a log line, an SQLite page, a file that had no room)?"""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        fs = os.statvfs(store.state_dir)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES


def _no_space(store: BuildStore) -> str:
    """The cause a build stopped by a full state dir records (in its reserved exit record)."""
    return (f"no space left on device in state dir {store.state_dir}: the build's log and record "
            "could not be written; free some space there and run 'nixmod build --retry'")


def _realise_logged(store: BuildStore, record: BuildRecord,
                    backend: Backend) -> tuple[BuildState, str | None]:
    """Run nix-store --realise into the record's log; (end state, error) when it stops."""
    stopped: list[int] = []
    with open(record.log, "a", encoding="utf-8") as log:
        log.write(f"nixmod: building {record.name} {record.version} ({record.drv})\n")
        log.flush()
        proc = subprocess.Popen(nix.realise_command(record.drv, gcroot_path(store, record)),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=nix.nix_env_vars(), preexec_fn=_die_with_parent)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stopped.append(signum)
            proc.terminate()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        code = proc.wait()
    if stopped:
        return backend.stop_reason(record)
    if code != 0:
        return BuildState.FAILED, _log_tail(Path(record.log))
    return BuildState.BUILT, None


def _die_with_parent() -> None:
    """In the nix-store child: get SIGKILL when the job step dies, however it dies.

    A ``kill -9`` of the job step would otherwise leave nix-store building
    outside SLURM's view (proctrack/linuxproc loses reparented processes),
    while the record says the build ended. SIGKILL, not SIGTERM: a client
    blocked reading from the daemon notices SIGTERM only when the build next
    prints a line; a killed client closes its socket at once, and the
    daemon stops the build when its client hangs up.
    """
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _log_tail(log: Path) -> str:
    """The end of a failed build's log, without Nix's repeat of the builder's last lines."""
    lines = [line for line in read_log(log).text.splitlines() if not NIX_REPEAT.match(line)]
    return nix.last_lines("\n".join(lines), ERROR_TAIL_LINES)
