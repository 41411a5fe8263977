"""The local backend: a detached worker process per build, throttled by lane locks.

No daemon of ours stays alive: each worker is its own session (so the CLI
can return, and ``cancel`` can kill the worker and its nix-store together),
and the throttle is ``max_concurrent`` lock files in the state dir. A worker
holds one lane's ``flock`` while it builds; the kernel drops the lock when
the worker dies, however it dies, so a crash never leaves a lane taken.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nixmod.builds.backend import CheckRun, verify_here
from nixmod.builds.job import JOB_STEP_MODULE, job_argv
from nixmod.builds.state import BuildRecord, BuildState, BuildStore
from nixmod.config import Config, current_user

NAME = "local"
#: how often a waiting worker looks for a free lane
LANE_POLL_SECONDS = 0.2


def submit(config: Config, store: BuildStore, records: list[BuildRecord], manifest: Path) -> None:
    """Start one detached worker per record; they queue on the lanes themselves."""
    for index, record in enumerate(records):
        with open(store.logs_dir / f"worker-{record.id}.log", "ab") as worker_log:
            proc = subprocess.Popen([*job_argv(manifest), "--index", str(index)],
                                    stdin=subprocess.DEVNULL, stdout=worker_log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=store.state_dir)
        store.update(record, state=BuildState.QUEUED, job=f"local:{proc.pid}")


@contextmanager
def lane(store: BuildStore, max_concurrent: int) -> Iterator[int]:
    """Hold one of ``max_concurrent`` lane locks for the duration of a build."""
    handles = [open(store.lanes_dir / f"lane-{i}", "a") for i in range(max_concurrent)]
    try:
        while True:
            for number, handle in enumerate(handles):
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield number
                return
            time.sleep(LANE_POLL_SECONDS)
    finally:
        for handle in handles:
            handle.close()


def _pid(record: BuildRecord) -> int | None:
    if record.job and record.job.startswith("local:") and record.job[6:].isdigit():
        return int(record.job[6:])
    return None


def _alive(pid: int) -> bool:
    """Is ``pid`` still one of our job workers (and not a recycled pid)?

    Right after ``Popen`` returns, the worker's ``/proc/PID/cmdline`` can
    still read empty (measured: most of 200 spawns): a worker of ours that
    is still starting counts as alive, or a fast ``build --wait`` would call
    a healthy build "vanished".
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text()
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    starting = cmdline == [b""] and owner == os.geteuid()
    return (JOB_STEP_MODULE.encode() in cmdline or starting) and not zombie


def poll(store: BuildStore, records: list[BuildRecord], max_age: float = 0.0
         ) -> dict[int, BuildState | None]:
    """A live worker's record keeps the state it set itself; a dead one's is None.

    No scheduler to spare: the pids are checked every time (``max_age`` is unused).
    """
    states: dict[int, BuildState | None] = {}
    for record in records:
        pid = _pid(record)
        states[record.id] = record.state if pid is not None and _alive(pid) else None
    return states


def ended(record: BuildRecord) -> tuple[BuildState, str]:
    return BuildState.FAILED, "the build worker vanished without an exit record (killed or machine restarted)"


def cancel(record: BuildRecord) -> None:
    """SIGTERM the worker's whole session: the worker records it, nix-store stops the build."""
    pid = _pid(record)
    if pid is not None and _alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def current_job_id() -> str | None:
    return None


def stop_reason(record: BuildRecord) -> tuple[BuildState, str]:
    return BuildState.CANCELLED, "cancelled (the build worker was stopped)"


def queued_drv_hashes(config: Config, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """Nothing to ask: this user's own queued builds are in the state db, and another
    user's build of the same drv makes ours wait on the daemon's lock, then reuse it."""
    return {}


def follow_problems(config: Config, records: list[BuildRecord]) -> dict[int, str]:
    """A local record joins only this user's own workers, which need no proof."""
    return {}


def owner_of(job: str) -> str | None:
    """A local worker is always a process of the user who asks."""
    return current_user()


def submission_of(job: str) -> str:
    """Each worker is its own submission."""
    return job


VERIFY_PLACE = "here"


def verify(config: Config, drv: str) -> CheckRun:
    """A local rebuild runs here."""
    return verify_here(drv)
