"""The TUI's refresh (``tui.model.refresh_records``) as the user: stdout, [{id, state}]."""

from __future__ import annotations

import json

from nixmod.config import load_config
from nixmod.tui.model import refresh_records

if __name__ == "__main__":
    config = load_config()
    records, _checked = refresh_records(config, config.build.poll_seconds)   # as the TUI asks
    print(json.dumps([{"id": r.id, "state": r.state} for r in records]))
