"""Command palette provider: jump to any package from ctrl+p."""

from __future__ import annotations

import asyncio
from functools import partial

from textual.command import Hit, Hits, Provider

from nixmod.tui import model
from nixmod.tui.base import UsesNixmodApp


class PackageCommands(UsesNixmodApp, Provider):
    """Catalog search inside the palette; choosing a hit opens it in Browse."""

    async def search(self, query: str) -> Hits:
        catalog = self.nixmod_app.catalog
        if catalog is None or not query.strip():
            return
        rows = await asyncio.to_thread(model.search_rows, catalog, query, 10)
        for rank, row in enumerate(rows):
            yield Hit(1.0 - rank / 20, f"{row.name} {row.newest}", partial(self.nixmod_app.show_package, row.name),
                      help=row.description or None)
