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

import os
import pwd
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable
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
class UsageReport:
    log: Path
    since_days: float | None
    records: list[LoadRecord] = field(default_factory=list)
    skipped: int = 0     # lines that were not usage records

    def by_module(self) -> list[tuple[str, int, int, float]]:
        """(module, loads, distinct users, last load), most loaded first."""
        loads: Counter[str] = Counter(r.module for r in self.records)
        users: dict[str, set[str]] = {}
        last: dict[str, float] = {}
        for record in self.records:
            users.setdefault(record.module, set()).add(record.user)
            last[record.module] = max(last.get(record.module, 0.0), record.when)
        return [(module, count, len(users[module]), last[module])
                for module, count in sorted(loads.items(), key=lambda kv: (-kv[1], kv[0]))]

    def by_user(self) -> list[tuple[str, int]]:
        return _ranked(r.user for r in self.records)

    def by_node(self) -> list[tuple[str, int]]:
        return _ranked(r.node for r in self.records)

    def as_json(self) -> dict:
        nodes: dict[str, Counter[str]] = {}
        users: dict[str, Counter[str]] = {}
        for record in self.records:   # one pass: a year's log has millions of lines
            nodes.setdefault(record.module, Counter())[record.node] += 1
            users.setdefault(record.module, Counter())[record.user] += 1
        return {"log": str(self.log), "since_days": self.since_days, "loads": len(self.records),
                "unverified": sum(not r.verified for r in self.records),
                "modules": [{"module": m, "loads": n, "users": u, "last_load": _iso(t),
                             "nodes": dict(_ranked(nodes[m].elements())),
                             "by_user": dict(_ranked(users[m].elements()))}
                            for m, n, u, t in self.by_module()],
                "users": [{"user": u, "loads": n} for u, n in self.by_user()],
                "nodes": [{"node": h, "loads": n} for h, n in self.by_node()]}


def _ranked(keys: Iterable[str]) -> list[tuple[str, int]]:
    return sorted(Counter(keys).items(), key=lambda kv: (-kv[1], kv[0]))


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


_FIELD = re.compile(r"(\w+)=(\S*)")


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
        try:
            user = pwd.getpwuid(int(fields["uid"])).pw_name
        except KeyError:
            user = f"uid {fields['uid']}"
    return LoadRecord(when=when, user=user, module=module, node=fields.get("node") or
                      fields.get("host", "?"), verified=verified)


def read_log(config: Config, since_days: float | None = None, *,
             now: float | None = None) -> UsageReport:
    """The site's usage log (``[usage] log``, and its last rotation ``.1``), summarised."""
    if since_days is not None and since_days < 0:
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
                    report.records.append(record)
    return report
