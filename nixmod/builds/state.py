"""The per-user build store: one SQLite row per build request.

A row is written before anything is submitted, so a crash, a Ctrl-C or a
failed ``sbatch`` loses nothing. The CLI, the TUI and every build job (on
any node that sees the state dir) open the same file at once: WAL lets
readers go on while one writer commits, and the busy timeout makes a writer
wait for another instead of failing.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from nixmod.dirs import ensure_dir
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_write
from nixmod.gcroots import personal_gcroot_dir

class BuildState(StrEnum):
    """SPEC.md's build states. A ``str`` enum: SQLite rows and ``--json`` keep the same strings."""

    PENDING = "pending"       # recorded, not (yet) accepted by a scheduler
    QUEUED = "queued"
    RUNNING = "running"
    BUILT = "built"
    REUSED = "reused"         # every output was valid already
    FAILED = "failed"
    CANCELLED = "cancelled"


#: states where the build has ended; nothing about it will change by itself
FINAL_STATES = (BuildState.BUILT, BuildState.REUSED, BuildState.FAILED, BuildState.CANCELLED)
#: states a scheduler (or a local worker) is responsible for
IN_FLIGHT_STATES = (BuildState.QUEUED, BuildState.RUNNING)
#: states `build --retry` resubmits
RETRYABLE_STATES = (BuildState.PENDING, BuildState.FAILED, BuildState.CANCELLED)
#: states whose module is (or was) written: the builds ``modules refresh`` rewrites
DONE_STATES = (BuildState.BUILT, BuildState.REUSED)

_BUSY_TIMEOUT_MS = 60_000
#: bytes the job step sets aside at its start for its exit record (a full disk has no room later)
EXIT_RESERVE_BYTES = 4096
#: what to do with a damaged builds.db (status and doctor say the same)
DAMAGED_ADVICE = ("keep it (sqlite3 {path} .recover may save the records) and move it aside to "
                  "start a new one (modules already written are kept)")
#: why a builds.db of 0 bytes is damaged
EMPTY = "0 bytes: truncated?"
#: below this much free space in the state dir's file system, nothing is started: a
#: build whose record cannot be written would be a build nobody follows
MIN_FREE_BYTES = 1 << 20


def _print_notice(message: str) -> None:
    print(f"nixmod: warning: {message}", file=sys.stderr, flush=True)


#: where a notice goes that is not an error (stderr; a full-screen face sets its own)
_notify: Callable[[str], None] = _print_notice


def notify(message: str) -> None:
    """A notice that is not an error (said once, the operation goes on)."""
    _notify(message)


def set_notifier(notify: Callable[[str], None] | None) -> None:
    """Send notices (a damaged database set aside) to ``notify`` instead of stderr (the TUI
    while it runs, ``tui.model.route_store_notices``); None: to stderr again."""
    global _notify
    _notify = notify if notify is not None else _print_notice


@dataclass
class BuildRecord:
    """One build request and everything needed to finish it unattended.

    The SPEC.md fields come first (they are the ``--json`` of build and
    status); the rest lets a job on another node write the module into the
    right tree even after the user logged off.
    """

    id: int = 0
    name: str = ""
    version: str = ""
    channel: str = ""
    attr: str = ""
    drv: str = ""
    out: str = ""
    state: BuildState = BuildState.PENDING
    job: str | None = None
    module: str | None = None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    backend: str = "local"
    #: True when ``job`` is somebody else's job building the same drv
    joined: bool = False
    #: when the request started following that job (``joining.followed_too_long`` counts from it)
    joined_at: float | None = None
    #: the host the build ran on (set by the job step itself: no accounting needed)
    node: str | None = None
    log: str = ""
    description: str = ""
    homepage: str = ""
    license: str = ""
    module_root: str | None = None
    module_default: bool = False
    gcroot_dir: str | None = None
    #: how the channel was pinned when the build was submitted (``pins.module_channel_pin``):
    #: the module shows it, and the job step may run hours later, on a changed checkout
    channel_pin: str = ""
    #: an environment's build (``nixmod.environments``): its packages and interpreter,
    #: ``{"packages": [...], "interpreter": ...}``, which its module lists; {} for a package
    environment: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def action(self) -> str:
        """How the request is met, as submitting decided it (once, under the submission lock):
        ``reuse`` (its outputs were valid), ``join`` (somebody's job builds the drv) or
        ``build`` (a job of its own). A joined record that had to build the drv itself
        says ``build`` from then on."""
        if self.state == BuildState.REUSED:
            return "reuse"
        return "join" if self.joined else "build"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = [f.name for f in fields(BuildRecord)]
_JSON_COLUMNS = {"outputs", "environment"}
_BOOL_COLUMNS = {"joined", "module_default"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL, attr TEXT NOT NULL,
    drv TEXT NOT NULL, out TEXT NOT NULL, state TEXT NOT NULL,
    job TEXT, module TEXT, error TEXT,
    outputs TEXT NOT NULL DEFAULT '{}', backend TEXT NOT NULL, joined INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    homepage TEXT NOT NULL DEFAULT '', license TEXT NOT NULL DEFAULT '',
    module_root TEXT, module_default INTEGER NOT NULL DEFAULT 0, gcroot_dir TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, node TEXT, joined_at REAL,
    channel_pin TEXT NOT NULL DEFAULT '',
    environment TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS builds_state ON builds(state);
CREATE INDEX IF NOT EXISTS builds_drv ON builds(drv);
"""
#: columns added after the first release, with their SQL type: an older
#: state db gains them on open, so an upgrade never loses a user's builds
_ADDED_COLUMNS = {"node": "TEXT", "joined_at": "REAL", "channel_pin": "TEXT NOT NULL DEFAULT ''",
                  "environment": "TEXT NOT NULL DEFAULT '{}'"}


def _to_row(record: BuildRecord) -> dict[str, Any]:
    row = asdict(record)
    for key in _JSON_COLUMNS:
        row[key] = json.dumps(row[key], sort_keys=True)
    for key in _BOOL_COLUMNS:
        row[key] = int(row[key])
    return row


def _from_row(row: sqlite3.Row) -> BuildRecord:
    values = {key: row[key] for key in row.keys() if key in _COLUMNS}
    for key in _JSON_COLUMNS:
        values[key] = json.loads(values[key] or "{}")
    for key in _BOOL_COLUMNS:
        values[key] = bool(values[key])
    values["state"] = BuildState(values["state"])
    return BuildRecord(**values)


def _assignments(record: BuildRecord, changes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The SET clause and its parameters for changing ``changes`` of ``record``."""
    changes["updated"] = time.time()
    row = {k: v for k, v in _to_row(replace(record, **changes)).items() if k in changes}
    return ", ".join(f"{k} = :{k}" for k in row), {**row, "id": record.id}


class BuildStore:
    """The SQLite file under the state dir, and the directories next to it."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        # the manifest a build job acts on and the roots that keep outputs alive live here:
        # a state dir another user can change would let them run code as this user
        ensure_dir(self.state_dir, "state dir", "[build] state_dir", mode=0o700)
        try:
            for sub in (self.logs_dir, self.jobs_dir, self.default_gcroot_dir, self.lanes_dir):
                sub.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:   # a config problem: every verb would meet it (exit 2)
            raise UserError(f"state dir {self.state_dir} cannot be used "
                            f"({exc.strerror or exc}: {exc.filename or self.state_dir}); "
                            "set [build] state_dir to a directory you can write") from None
        self.path = self.state_dir / "builds.db"
        self._check_writable()
        try:
            self._prepare_file()
            self._open()
        except sqlite3.DatabaseError as exc:   # one line, not a traceback
            raise self._failure(exc) from None

    def _check_writable(self) -> None:
        """Refuse, before any evaluation or build, a state dir whose records cannot be written.

        The records are the user's: the advice is to make them writable
        again or to free space, never to start over without them.
        """
        for path, what in ((self.state_dir, "state dir"), (self.path, "build database")):
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                continue   # absent (made below) or out of reach (opening it says so)
            if not os.access(path, os.W_OK | (os.X_OK if what == "state dir" else 0)):
                raise UserError(f"{what} {path} is not writable by you (mode {mode:o}); your "
                                f"build records are there: make it writable again (chmod u+w {path})")
        try:
            fs = os.statvfs(self.state_dir)
        except OSError:
            return
        free = fs.f_bavail * fs.f_frsize
        if free < MIN_FREE_BYTES:
            raise OperationFailed(f"the file system of state dir {self.state_dir} is full "
                                  f"({free // 1024} KiB free); free some space there and run it "
                                  "again (your build records are kept)")

    def _failure(self, exc: sqlite3.DatabaseError) -> OperationFailed:
        """One line for an SQLite error, with the advice that fits its cause."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if code == "SQLITE_FULL" or "disk is full" in text:
            return OperationFailed(f"build database {self.path}: the disk is full ({text}); free "
                                   "some space there and run it again (your build records are kept)")
        if code.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_AUTH")) \
                or "readonly" in text or "unable to open" in text:
            return OperationFailed(f"build database {self.path} cannot be written ({text}); make "
                                   f"it and {self.state_dir} writable by you again "
                                   "(your build records are kept)")
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return OperationFailed(f"build database {self.path} stayed locked by another nixmod "
                                   f"for {_BUSY_TIMEOUT_MS // 1000} s ({text}); try again")
        if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text \
                or "malformed" in text:
            return OperationFailed(f"build database {self.path} is damaged ({text}); "
                                   f"{DAMAGED_ADVICE.format(path=self.path)}")
        return OperationFailed(f"build database {self.path}: {text} (your build records are kept)")

    def _prepare_file(self) -> None:
        """Make sure builds.db exists; refuse an empty (truncated) one as damaged.

        A new database is made under another name and renamed into place, so
        a builds.db of 0 bytes is never one being created: it is damage (a
        full disk, a copy gone wrong). SQLite would silently take it for an
        empty database and the user's builds would vanish from ``status``; it
        is refused like any damaged database (issue 24.6), until the user
        moves it aside, so that it is never read as "no builds yet" and
        nixmod never starts over on its own while jobs of the lost records
        may still be running and writing their ids.
        """
        try:
            if self.path.stat().st_size > 0:
                return
        except FileNotFoundError:
            pass
        with open(self.state_dir / "db.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                size: int | None = self.path.stat().st_size
            except FileNotFoundError:
                size = None
            if size == 0:
                raise OperationFailed(f"build database {self.path} is damaged ({EMPTY}); "
                                      f"{DAMAGED_ADVICE.format(path=self.path)}")
            if size is None:
                fresh = self.path.with_name(f".{self.path.name}.new-{os.getpid()}")
                db = sqlite3.connect(fresh, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(_SCHEMA)
                finally:
                    db.close()
                os.rename(fresh, self.path)

    def _open(self) -> None:
        """Connect, and bring an older or new file to the current schema."""
        self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(builds)")}
        for column, sql_type in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE builds ADD COLUMN {column} {sql_type}")

    def _execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """``execute`` with an SQLite failure (disk full, read-only, damage) as one clear line."""
        try:
            return self._db.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc) from None

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def lanes_dir(self) -> Path:
        return self.state_dir / "lanes"

    @property
    def default_gcroot_dir(self) -> Path:
        return personal_gcroot_dir(self.state_dir)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BuildStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Closed however the block ends: an open WAL connection left behind by an
        exception keeps the -wal file growing and, in a long-lived TUI, a file handle."""
        self.close()

    @contextmanager
    def submitting(self) -> Iterator[None]:
        """Hold the state dir's submission lock from writing ``pending`` rows to dispatching them.

        Two nixmod processes of one user (two ``stack build`` at the same
        moment, a script running ``build`` in parallel) would otherwise both
        decide "build" before either had a job, and submit the same drv
        twice. Under the lock, the second one sees the first one's jobs and joins
        them. It also makes a ``pending`` row read under the lock an orphan
        (see ``orphaned``): no process is about to submit it.
        """
        with open(self.state_dir / "submit.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def orphaned(self, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` are ``pending`` with no submission under way (nothing will move them).

        A failed sbatch, a Ctrl-C or a crash while submitting leaves such
        rows; only ``build --retry`` moves them on, so waiting for them
        would wait forever. The rows are read under the submission lock, so
        a row being submitted right now is never taken for one.
        """
        ids = list(ids)
        with open(self.state_dir / "submit.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return set()
            try:
                return {r.id for r in self.select(ids=ids, states=(BuildState.PENDING,))}
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add(self, record: BuildRecord) -> BuildRecord:
        """Insert a new request; it gets the next short id and its log path."""
        now = time.time()
        record.created = record.updated = now
        row = _to_row(record)
        del row["id"]
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        cursor = self._execute(f"INSERT INTO builds ({names}) VALUES ({marks})", row)
        assert cursor.lastrowid is not None  # an INSERT always sets it
        record.id = cursor.lastrowid
        record.log = str(self.logs_dir / f"{record.id}.log")
        self.update(record, log=record.log)
        return record

    def update(self, record: BuildRecord, **changes: Any) -> BuildRecord:
        """Change some fields of ``record`` here and on disk, in one transaction."""
        assignments, row = _assignments(record, changes)
        self._execute(f"UPDATE builds SET {assignments} WHERE id = :id", row)
        for key, value in changes.items():
            setattr(record, key, value)
        return record

    def update_if_in_flight(self, record: BuildRecord, **changes: Any) -> bool:
        """Change a build that has not ended yet; False if another process ended it first.

        A job step, ``status`` and ``cancel`` can all decide a build's end at
        nearly the same moment; the first one wins and the others see it.
        """
        assignments, row = _assignments(record, changes)
        cursor = self._execute(
            f"UPDATE builds SET {assignments} WHERE id = :id "
            "AND state IN ('pending', 'queued', 'running')", row)
        fresh = self.get(record.id)
        if fresh is not None:
            for key in _COLUMNS:
                setattr(record, key, getattr(fresh, key))
        return cursor.rowcount == 1

    def get(self, record_id: int) -> BuildRecord | None:
        row = self._execute("SELECT * FROM builds WHERE id = ?", (record_id,)).fetchone()
        return _from_row(row) if row else None

    def select(self, ids: Iterable[int] | None = None,
               states: Iterable[str] | None = None) -> list[BuildRecord]:
        """Records by id and/or state, oldest first."""
        where: list[str] = []
        params: list[int | str] = []
        if ids is not None:
            ids = list(ids)
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            params += ids
        if states is not None:
            states = list(states)
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += states
        sql = "SELECT * FROM builds" + (" WHERE " + " AND ".join(where) if where else "")
        return [_from_row(r) for r in self._execute(sql + " ORDER BY id", params)]

    def exit_marker(self, record_id: int) -> Path:
        """The file a job leaves when it ends: the end state, even if SQLite was unreachable."""
        return self.jobs_dir / f"{record_id}.exit"

    def write_exit_marker(self, record_id: int, state: str, error: str | None) -> None:
        atomic_write(self.exit_marker(record_id), json.dumps({"state": state, "error": error}),
                     mode=0o600)

    def _exit_reserve(self, record_id: int) -> Path:
        return self.jobs_dir / f"{record_id}.exit.reserved"

    def reserve_exit_marker(self, record_id: int) -> None:
        """Take the room for the exit record now, while there is room (the job step's start).

        A file system that fills during a build leaves no room for a new
        file, an SQLite page or a log line; the exit record can still be
        written over this reserved file's own blocks (``write_reserved_exit_marker``).
        """
        path = self._exit_reserve(record_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b" " * EXIT_RESERVE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_reserved_exit_marker(self, record_id: int, state: str, error: str) -> bool:
        """The exit record, written over the reserved file in place and renamed: no new
        blocks needed. False when there was no reservation (or even that failed)."""
        path = self._exit_reserve(record_id)
        data = json.dumps({"state": state, "error": error[:EXIT_RESERVE_BYTES // 2]}).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            os.write(fd, data.ljust(EXIT_RESERVE_BYTES))   # trailing spaces: still one JSON
            os.fsync(fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        try:
            os.replace(path, self.exit_marker(record_id))
        except OSError:
            return False
        return True

    def drop_exit_reserve(self, record_id: int) -> None:
        try:
            self._exit_reserve(record_id).unlink()
        except OSError:
            pass

    def read_exit_marker(self, record_id: int) -> dict[str, Any] | None:
        try:
            return json.loads(self.exit_marker(record_id).read_text())
        except (OSError, ValueError):
            return None



def database_damage(path: Path) -> str | None:
    """Why the build database at ``path`` is damaged (None: whole, or not made yet).

    ``PRAGMA quick_check`` on a read-only connection: for ``doctor``, which
    must find what ``status`` would only meet later (a page it does not read
    yet) and must change nothing. A database SQLite cannot open for another
    reason (permissions, a lock) is not called damaged here.
    """
    try:
        if path.stat().st_size == 0:
            return EMPTY
    except OSError:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.DatabaseError:
        return None
    try:
        rows = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorname", "") or ""
        if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in str(exc) \
                or "malformed" in str(exc):
            return str(exc)
        return None
    finally:
        db.close()
    return None if rows == ["ok"] else "; ".join(rows[:2])
