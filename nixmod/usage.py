"""Who loads which module, where and when (SPEC.md "Operations: disk, usage, cleanup").

Two records of every ``module load`` of a nixmod module, both written by
``lua/SitePackage.lua`` (the site hook) when a modulefile calls
``nixmod_record_load``:

* syslog, tag ``nixmod-usage``, as Lmod's usage-tracking recipe does (loads
  collected while Lmod runs, one ``logger`` per module from its exit hook).
  The site's rsyslog files them into one log; staff point ``[usage] log`` at
  it and ``nixmod usage`` summarises it. Any user can send a line with that
  tag and any ``user=`` in it, so the user counted is the one rsyslog's
  imuxsock saw on the socket (``uid=`` from ``$!uid``, which the kernel
  checked); a line without it is counted under its ``user=`` and marked
  unverified.
* the user's own last loads: one small file per module under
  ``<state_dir>/usage/``, replaced atomically at each load, so that ``du``
  and ``gc`` work without any access to the site's log. Only the user's own
  modules name that directory in their modulefile (a stack's module, loaded
  by anyone, is in syslog only).

This module reads both; it never imports the faces (cli, tui).
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote

from nixmod.config import Config
from nixmod.errors import UserError

#: the syslog tag of every usage record (README "Disk and usage" gives the rsyslog rule)
TAG = "nixmod-usage"
_SAFE = "._+-"   # besides letters and digits, what a usage file name keeps as is
_DAY = 86400.0


def usage_dir(config: Config) -> Path:
    """Where the user's own last loads live: ``<state_dir>/usage``."""
    return Path(config.build.state_dir) / "usage"


def usage_file_name(module: str) -> str:
    """``nix/hello/2.12.1`` -> ``nix%2Fhello%2F2.12.1`` (one file per module; the hook
    in lua/SitePackage.lua encodes the same way)."""
    return quote(module, safe=_SAFE)


def modulefile_lines(usage_directory: Path | None, quote_lua: Callable[[str], str]) -> list[str]:
    """The lines a modulefile carries to have its loads recorded.

    ``usage_directory``: the owner's ``usage_dir`` for the user's own
    modules, None for a stack's (syslog only). The function is looked up at
    run time: without the site hook the module loads as before. ``quote_lua``
    is ``lmod.lua_string`` (passed in: lmod imports this module).
    """
    args = f"usage_dir = {quote_lua(str(usage_directory))}" if usage_directory else ""
    return ["-- lua/SitePackage.lua defines this: records the load (syslog; the owner's last loads)",
            "if nixmod_record_load then",
            f"  nixmod_record_load{{{args}}}",
            "end"]


def last_loads(config: Config) -> dict[str, float]:
    """module -> the time of its last load by this user (from ``usage_dir``).

    The file holds ``<epoch> <node>``; a file whose text is unreadable falls
    back to its mtime (it was replaced at the load).
    """
    loads: dict[str, float] = {}
    try:
        entries = list(os.scandir(usage_dir(config)))
    except OSError:
        return loads
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue   # a temp file of a load in progress, or something not ours
        try:
            with open(entry.path, encoding="utf-8", errors="replace") as handle:
                when = float(handle.read(64).split()[0])
        except (OSError, ValueError, IndexError):
            try:
                when = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
        module = unquote(entry.name)
        loads[module] = max(when, loads.get(module, 0.0))
    return loads


# -- the site's log (staff) -------------------------------------------------------------------

@dataclass(frozen=True)
class LoadRecord:
    """One line of the usage log."""

    when: float          # the time syslog received it (not the sender's claim)
    user: str
    module: str
    node: str
    verified: bool       # the user comes from the kernel-checked uid


@dataclass
class _ModuleLoads:
    loads: int = 0
    last: float = 0.0
    nodes: Counter[str] = field(default_factory=Counter)
    users: Counter[str] = field(default_factory=Counter)


@dataclass
class UsageReport:
    """The log summarised as it is read: a year of loads is millions of lines, and only
    the counts are kept, never the lines."""

    log: Path
    since_days: float | None
    loads: int = 0
    unverified: int = 0  # lines whose user is only what the sender typed
    skipped: int = 0     # lines that were not usage records
    modules: dict[str, _ModuleLoads] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)
    nodes: Counter[str] = field(default_factory=Counter)

    def add(self, record: LoadRecord) -> None:
        self.loads += 1
        self.unverified += not record.verified
        entry = self.modules.setdefault(record.module, _ModuleLoads())
        entry.loads += 1
        entry.last = max(entry.last, record.when)
        entry.nodes[record.node] += 1
        entry.users[record.user] += 1
        self.users[record.user] += 1
        self.nodes[record.node] += 1

    def by_module(self) -> list[tuple[str, int, int, float]]:
        """(module, loads, distinct users, last load), most loaded first."""
        return [(module, entry.loads, len(entry.users), entry.last)
                for module, entry in sorted(self.modules.items(),
                                            key=lambda kv: (-kv[1].loads, kv[0]))]

    def by_user(self) -> list[tuple[str, int]]:
        return _ranked(self.users)

    def by_node(self) -> list[tuple[str, int]]:
        return _ranked(self.nodes)

    def as_json(self) -> dict:
        return {"log": str(self.log), "since_days": self.since_days, "loads": self.loads,
                "unverified": self.unverified,
                "modules": [{"module": m, "loads": n, "users": u, "last_load": _iso(t),
                             "nodes": dict(_ranked(self.modules[m].nodes)),
                             "by_user": dict(_ranked(self.modules[m].users))}
                            for m, n, u, t in self.by_module()],
                "users": [{"user": u, "loads": n} for u, n in self.by_user()],
                "nodes": [{"node": h, "loads": n} for h, n in self.by_node()]}


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


_FIELD = re.compile(r"(\w+)=(\S*)")


@functools.lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    """One passwd lookup per uid, not per line (a year's log has millions of lines)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def parse_line(line: str) -> LoadRecord | None:
    """A usage record from one log line (README's template), or None.

    The line is ``<rfc3339 time> uid=<uid> host=<host> user=… module=… node=…``:
    the first three are rsyslog's (trusted), the rest the sender's.
    """
    stamp, _, rest = line.strip().partition(" ")
    try:
        when = datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(rest):
        fields.setdefault(key, value)   # the template's uid= comes first: a sent one cannot win
    module = fields.get("module", "")
    if not module:
        return None
    user, verified = fields.get("user", "") or "?", False
    if fields.get("uid", "").isdigit():
        verified = True
        user = _user_name(int(fields["uid"]))
    return LoadRecord(when=when, user=user, module=module, node=fields.get("node") or
                      fields.get("host", "?"), verified=verified)


def read_log(config: Config, since_days: float | None = None, *,
             now: float | None = None) -> UsageReport:
    """The site's usage log (``[usage] log``, and its last rotation ``.1``), summarised."""
    if since_days is not None and not since_days >= 0:   # negative, or NaN
        raise UserError(f"--since must be a number of days, 0 or more, got {since_days:g}")
    log = config.usage.log
    if log is None:
        raise UserError("no usage log configured: staff set [usage] log = \"FILE\" in "
                        "/etc/nixmod/config.toml to the file syslog writes tag "
                        f"{TAG} to (README, \"Disk and usage\")")
    cutoff = None if since_days is None else (now or time.time()) - since_days * _DAY
    report = UsageReport(log=Path(log), since_days=since_days)
    rotated = Path(f"{log}.1")
    for path in ([rotated] if rotated.is_file() else []) + [Path(log)]:
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            if path == Path(log):
                raise UserError(f"[usage] log {log} does not exist: is syslog filing tag {TAG} "
                                "there? (README, \"Disk and usage\")") from None
            continue
        except PermissionError:
            raise UserError(f"cannot read [usage] log {log}: permission denied; the usage "
                            "log is for staff (its group can read it)") from None
        with handle:
            for line in handle:
                record = parse_line(line)
                if record is None:
                    report.skipped += 1
                elif cutoff is None or record.when >= cutoff:
                    report.add(record)
    return report
