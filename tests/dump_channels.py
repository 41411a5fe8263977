"""The fast tier's catalog: saved package lists (nix-env --json) in tests/dumps/.

``nixmod`` reads a ``*.json`` / ``*.json.gz`` channel and evaluates nothing
(SPEC "Configuration"), so tests of the faces (TUI, search, versions, the
CLI) run on these without Nix, a daemon, SLURM or root. ``demo-2024.json``
and ``demo-2025.json`` are ``nix-env -qaP --json --meta`` of the bundled
demo channels (``nixmod/demo``), ``catalog-tie.json`` and
``catalog-odd.json`` of tests/channels' files of those names: the same
packages the rig tests evaluate, so both tiers speak of the same catalog.
Regenerate one with ``nix-env -f nixmod/demo/demo-2024 -qaP --json --meta``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nixmod.config import Config, load_config

DUMPS = Path(__file__).resolve().parent / "dumps"
#: the demo catalog as saved lists, oldest channel first (as the demo configures them)
DEMO = (("demo-2024", DUMPS / "demo-2024.json"), ("demo-2025", DUMPS / "demo-2025.json"))


def channels_config(*channels: tuple[str, str | os.PathLike[str]]) -> str:
    """``[[channels]]`` tables for ``(name, path)`` pairs, in the order given (newest last)."""
    return "".join(f'[[channels]]\nname = "{name}"\npath = "{path}"\n\n' for name, path in channels)


@dataclass
class DumpHome:
    """A private HOME for one test: XDG dirs, a config over saved lists, state and modules.

    Everything nixmod writes (cache, build records, modules, lock files) lands
    under ``base``, which is pytest's ``tmp_path``: nothing is shared
    between tests or with the machine.
    """

    base: Path

    @property
    def config_file(self) -> Path:
        return self.base / "config" / "nixmod" / "config.toml"

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def modules_root(self) -> Path:
        return self.base / "modules"

    def env(self) -> dict[str, str]:
        """The environment of a user whose HOME and XDG dirs are all under ``base``."""
        return {
            "HOME": str(self.base / "home"),
            "XDG_CACHE_HOME": str(self.base / "cache"),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_STATE_HOME": str(self.base / "xdg-state"),
            "XDG_DATA_HOME": str(self.base / "data"),
            # no site layer: /etc/nixmod/config.toml of the machine must not leak in
            "NIXMOD_SITE_CONFIG": str(self.base / "no-site-config.toml"),
        }

    def write_config(self, *channels: tuple[str, str | os.PathLike[str]], extra: str = "") -> Path:
        """The user's config.toml: ``channels`` (default: the demo dumps), state and modules here."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            channels_config(*(channels or DEMO))
            + f'[build]\nbackend = "local"\nstate_dir = "{self.state_dir}"\n\n'
            + f'[modules]\nroot = "{self.modules_root}"\n\n' + extra)
        return self.config_file

    def config(self) -> Config:
        """The config a user with this HOME gets (``write_config`` first)."""
        return load_config(environ=os.environ | self.env())

    def nixmod(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``nixmod ARGS`` as a subprocess of this Python (the venv's), in this HOME, with a
        PATH that holds no Nix and no scheduler: whatever works here needs neither."""
        empty_bin = self.base / "empty-bin"
        empty_bin.mkdir(exist_ok=True)
        env = self.env() | {"PATH": str(empty_bin), "LANG": "C.UTF-8"}
        return subprocess.run([sys.executable, "-I", "-m", "nixmod", *args], capture_output=True,
                              text=True, env=env, cwd=self.base, input=stdin, timeout=60)
