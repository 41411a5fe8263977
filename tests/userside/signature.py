"""``repro.signature_status`` of store paths, as the user sees it: one line per path,
``PATH STATUS``."""

from __future__ import annotations

import sys

from nixmod import repro

if __name__ == "__main__":
    for path, status in repro.signature_status(sys.argv[1:]).items():
        print(path, status)
