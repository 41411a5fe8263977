"""Start-up: each verb loads only what it uses (issue 22).

A login node runs hundreds of ``nixmod search`` a day; every module a verb
imports without using it is paid for at every start. The real ``nixmod``
runs as a subprocess (``python -I -X importtime -m nixmod ...``, as the
fast tier's user of ``DumpHome``) and the modules it imported are read from
Python's own import log on stderr: what the process really loaded, not what
a test in this process happens to have imported already.
"""

from __future__ import annotations

import subprocess
import sys

from dump_channels import DumpHome

#: what a search never needs: the TUI (Textual, Rich), the schedulers, the build records' SQLite
NOT_FOR_SEARCH = ("textual", "rich", "nixmod.tui", "nixmod.builds", "sqlite3")
#: the scheduler backends: a verb loads one only for a build that uses it
BACKENDS = ("nixmod.builds.slurm", "nixmod.builds.pbs", "nixmod.builds.local")


def imported(home: DumpHome, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``nixmod ARGS`` as the fast tier's user; its result and every module it imported."""
    empty_bin = home.base / "empty-bin"
    empty_bin.mkdir(exist_ok=True)
    env = home.env() | {"PATH": str(empty_bin), "LANG": "C.UTF-8"}
    proc = subprocess.run([sys.executable, "-I", "-X", "importtime", "-m", "nixmod", *args],
                          capture_output=True, text=True, env=env, cwd=home.base, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "nixmod.cli" in modules, proc.stderr[-2000:]   # the log was read at all
    return proc, modules


def loaded(modules: set[str], families: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that are one of ``families`` or inside one."""
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in families))


def test_search_loads_no_tui_no_scheduler_no_state(dump_home: DumpHome) -> None:
    cold, modules = imported(dump_home, "search", "rg")   # lists the dumps, writes the cache
    assert cold.returncode == 0 and "ripgrep" in cold.stdout, cold.stderr[-2000:]
    assert loaded(modules, NOT_FOR_SEARCH) == []
    warm, modules = imported(dump_home, "search", "rg")   # from the cache: what users wait for
    assert warm.returncode == 0 and warm.stdout == cold.stdout
    assert loaded(modules, NOT_FOR_SEARCH) == []
    # a warm search runs no tool and writes nothing: no subprocess, no --json encoder
    assert loaded(modules, ("subprocess", "nixmod.cliops")) == []


def test_versions_loads_what_search_loads(dump_home: DumpHome) -> None:
    proc, modules = imported(dump_home, "versions", "hello")
    assert proc.returncode == 0 and "2.12.1" in proc.stdout, proc.stderr[-2000:]
    assert loaded(modules, NOT_FOR_SEARCH) == []


def test_help_loads_neither_the_catalog_nor_the_builds(dump_home: DumpHome) -> None:
    proc, modules = imported(dump_home, "--help")
    assert proc.returncode == 0 and "search" in proc.stdout
    assert loaded(modules, ("nixmod.catalog", "nixmod.builds", "nixmod.tui", "textual",
                            "shutil", "json")) == []


def test_status_loads_no_scheduler_backend_without_builds(dump_home: DumpHome) -> None:
    proc, modules = imported(dump_home, "status")
    assert proc.returncode == 0 and proc.stdout.startswith("no builds yet"), proc.stderr[-2000:]
    assert loaded(modules, ("textual", "nixmod.tui", "nixmod.catalog", *BACKENDS)) == []
