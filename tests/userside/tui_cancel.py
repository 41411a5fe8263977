"""Cancel builds through the TUI's own call (``tui.model.cancel_builds``): it acts on the
records as last shown, with no refresh first, unlike ``nixmod cancel``. Args: build ids."""

from __future__ import annotations

import sys

from nixmod.config import load_config
from nixmod.tui.model import cancel_builds

if __name__ == "__main__":
    cancel_builds(load_config(), [int(arg) for arg in sys.argv[1:]])
