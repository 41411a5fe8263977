"""The user's catalog (``Catalog.load(load_config())``) asked one question, answered in JSON.

``resolve SPEC...``: {spec: [version, channel] or "error: <the UserError>"};
``versions NAME``: [[version, channel], ...]; ``skipped``: [[channel, attr, reason], ...];
``tui-problems``: the catalog's problems as the TUI lists them (``tui.model.catalog_problems``).
"""

from __future__ import annotations

import json
import sys

from nixmod.catalog import Catalog
from nixmod.config import load_config
from nixmod.errors import UserError
from nixmod.tui.model import catalog_problems, load_catalog


def resolved(catalog: Catalog, spec: str) -> list[str] | str:
    try:
        version = catalog.resolve(spec)
    except UserError as exc:
        return f"error: {exc}"
    return [version.version, version.channel]


def main(argv: list[str]) -> object:
    question, *args = argv
    if question == "tui-problems":
        config = load_config()
        return catalog_problems(config, load_catalog(config))
    catalog = Catalog.load(load_config())
    if question == "resolve":
        return {spec: resolved(catalog, spec) for spec in args}
    if question == "versions":
        return [[v.version, v.channel] for v in catalog.versions(args[0])]
    if question == "skipped":
        return [[s.channel, s.attr, s.reason] for s in catalog.skipped()]
    raise SystemExit(f"catalog_query: unknown question {question!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
