"""Shared set-up for the build tests: a config over tests/channels/builds.nix, fresh drvs."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Mapping

from rig import SCRATCH, UserSession, run_userside


#: ``[build] poll_seconds`` of the tests' users: a waiting nixmod (``--wait``, the TUI) sees
#: a cancel from outside or a lost node within this, not within the default 30 s
TEST_POLL_SECONDS = 2


def user_config(channels: Mapping[str, Path], backend: str, *, build: str = "",
                after: str = "", poll_seconds: int | None = TEST_POLL_SECONDS) -> str:
    """A user's config.toml over test channels (name -> file).

    The ``[[channels]]``, then ``[build]`` with ``backend``, ``poll_seconds``
    (None: the default) and the ``build`` lines, then ``after`` (the
    scheduler's table, ``[shims]``, ...), which ends the file: a test may
    append keys to its last table.
    """
    text = "".join(f'\n[[channels]]\nname = "{name}"\npath = "{path}"\n'
                   for name, path in channels.items())
    poll = f"poll_seconds = {poll_seconds}\n" if poll_seconds is not None else ""
    text += f'\n[build]\nbackend = "{backend}"\n{poll}{build}'
    return text + (f"\n{after}" if after else "")


def slurm_table(partition: str = "nixbuild") -> str:
    """``[build.slurm]`` for the rig: one cpu, small memory, ten minutes."""
    return (f'[build.slurm]\npartition = "{partition}"\ncpus_per_task = 1\nmem = "100M"\n'
            'time = "00:10:00"\n')


def stack_channels(channels: Path) -> dict[str, Path]:
    """The two channels the stack tests build from (an old and a new pin)."""
    return {"stacks-old": channels / "stacks-old.nix", "stacks-new": channels / "stacks-new.nix"}


def setup_builds(session: UserSession, channels: Path, *, backend: str, nonce: str,
                 counter: Path, sleep: float = 2, max_concurrent: int = 2,
                 partition: str = "nixbuild", scheduler: str | None = None,
                 poll_seconds: int | None = TEST_POLL_SECONDS) -> None:
    """Point ``session`` at the builds test channel with the given backend and throttle.

    ``scheduler``: the backend's own table; by default ``[build.slurm]`` on ``partition``.
    ``poll_seconds``: ``[build] poll_seconds`` (None: nixmod's default).
    """
    session.extra_env.update(NIXMOD_TEST_NONCE=nonce, NIXMOD_TEST_COUNTER=str(counter),
                             NIXMOD_TEST_SLEEP=str(sleep))
    session.write_config(user_config(
        {"buildtest": channels / "builds.nix"}, backend,
        build=f"max_concurrent = {max_concurrent}\n", poll_seconds=poll_seconds,
        after=slurm_table(partition) if scheduler is None else scheduler))


def new_counter() -> tuple[str, Path]:
    """A fresh nonce (so drvs are new) and an empty world-writable counter file."""
    nonce = uuid.uuid4().hex[:12]
    counter = SCRATCH / f"counter-{nonce}"
    counter.touch()
    counter.chmod(0o666)
    return nonce, counter


def counter_lines(counter: Path) -> list[str]:
    return [line for line in counter.read_text().splitlines() if line.strip()]


def records(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    assert proc.stdout.strip(), f"no JSON on stdout; stderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def status(session: UserSession, *ids: int) -> list[dict]:
    return records(session.nixmod("status", "--json", *map(str, ids), check=True))


def wait_for_state(session: UserSession, record_id: int, states: set[str],
                   timeout: float = 120) -> dict:
    """Poll ``nixmod status`` until the build is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        record = status(session, record_id)[0]
        if record["state"] in states or time.monotonic() > deadline:
            return record
        time.sleep(0.5)


def cancel_as_the_tui_does(session: UserSession, record_id: int) -> None:
    """Cancel through the TUI's own call (``tui.model.cancel_builds``): it acts on the
    records as last shown, with no refresh first, unlike ``nixmod cancel``."""
    run_userside(session, "tui_cancel", str(record_id), check=True)
