"""The TUI's refresh (``tui.model.refresh_records``) as the user: stdout, [{id, state}]."""

from __future__ import annotations

import json

from nixmod.config import load_config
from nixmod.tui.model import refresh_records

if __name__ == "__main__":
    print(json.dumps([{"id": r.id, "state": r.state} for r in refresh_records(load_config())]))
