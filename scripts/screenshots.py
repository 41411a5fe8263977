"""Write SVG screenshots of every TUI screen, from the real app on the demo channels.

    /opt/nixmod/venv/bin/python scripts/screenshots.py [OUT_DIR]   (default: screenshots/)

The demo catalog is evaluated with real Nix into a throwaway HOME, and the
app is driven with Textual's pilot exactly as a user would, so the pictures
in the README are what ``nixmod --demo`` shows (120x36).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

SIZE = (120, 36)
#: file name -> keys pressed after the catalog is in
SHOTS = {
    "browse.svg": (),
    "browse-search.svg": ("r", "g", "enter", "enter"),
    "selection.svg": (*"hello", "down", "space", "slash", "ctrl+a", "ctrl+k", *"samtools",
                      "enter", "enter", "down", "space", "2"),
    "builds.svg": ("down", "3"),
    "modules.svg": ("down", "4"),
    "help.svg": ("down", "question_mark"),
    "environment.svg": (*"numpy", "down", "space", "slash", "ctrl+a", "ctrl+k", *"requests",
                        "down", "space", "2", "e", *"sci", "enter"),
}


async def settle(pilot) -> None:
    app = pilot.app
    while app.catalog is None and not app.catalog_error:
        await pilot.pause(0.05)
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def shoot(config, keys: tuple[str, ...]) -> str:
    from nixmod.tui.app import NixmodApp

    app = NixmodApp(config, watch_builds=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        return app.export_screenshot(title="nixmod --demo")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nixmod-screenshots-") as tmp:
        os.environ.update(HOME=tmp, XDG_CACHE_HOME=f"{tmp}/cache", XDG_CONFIG_HOME=f"{tmp}/config",
                          NIXMOD_SITE_CONFIG=f"{tmp}/no-site.toml")
        os.environ.pop("NIXMOD_CONFIG", None)
        from nixmod import builds
        from nixmod.catalog import Catalog
        from nixmod.config import load_config

        config = load_config(demo=True)
        # two real builds on the local backend (one fails on purpose), so that the
        # Builds and Modules screens show what a user sees after submitting
        catalog = Catalog.load(config)
        versions = [catalog.resolve("hello"), catalog.resolve("broken")]
        records = builds.submit(config, builds.plan(config, versions))
        builds.wait(config, [r.id for r in records])
        for name, keys in SHOTS.items():
            (out / name).write_text(asyncio.run(shoot(config, keys)), encoding="utf-8")
            print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
