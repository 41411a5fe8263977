"""The TUI as the user drives it to build one package: / NAME ↵ ↵ space s ↵, then wait until
the Builds screen has it built. stdout: {"job", "backend", "screenshot"} of that moment.

For the schedulers' own TUI tests (test_builds_pbs.py), which must run as a real user:
the in-process TUI tests run as root, which no scheduler builds for.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Callable

from textual.worker import WorkerCancelled

from nixmod.config import load_config
from nixmod.tui.app import NixmodApp
from nixmod.tui.selection import PlanScreen


async def build(name: str) -> dict[str, Any]:
    app = NixmodApp(load_config(), refresh_seconds=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        async def until(condition: Callable[[], object], timeout: float = 150) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not condition():
                if loop.time() > deadline:
                    raise SystemExit(f"timed out: {[(r.name, r.state, r.job) for r in app.records]}")
                await pilot.pause(0.2)

        async def press(*keys: str) -> None:
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            for _ in range(3):
                try:
                    await app.workers.wait_for_complete()
                except WorkerCancelled:   # a newer refresh (an exclusive worker) replaced it
                    pass
                await pilot.pause()

        await until(lambda: app.catalog is not None or app.catalog_error)
        await press("slash", "ctrl+a", "ctrl+k", *name)
        await press("enter", "enter", "space", "s")
        await until(lambda: isinstance(app.screen, PlanScreen) and app.screen.plans)
        await press("enter")
        await until(lambda: any(r.name == name and r.state == "built" for r in app.records))
        await pilot.pause(1)
        record = [r for r in app.records if r.name == name][-1]
        return {"job": record.job, "backend": record.backend, "screenshot": app.export_screenshot()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(build(sys.argv[1]))))
