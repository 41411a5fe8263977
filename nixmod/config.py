"""Configuration: TOML layers merged key by key into typed dataclasses.

Layers, later overriding earlier (SPEC.md): the site file
``/etc/nixmod/config.toml``, the user file under ``$XDG_CONFIG_HOME``, then
``--config``/``NIXMOD_CONFIG``. Tables merge key by key; ``[[channels]]`` is
a list and a later layer that sets it replaces it whole (a channel list is
one decision, not something to splice).

Every mistake is a ``UserError`` naming the file, the line where we can find
it, and the key, because a sysadmin reading "bad config" with no location
would have to bisect the file by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from nixmod.errors import UserError
from nixmod.scheduler_options import reserved_qsub_option, reserved_sbatch_option

SITE_CONFIG = Path("/etc/nixmod/config.toml")
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_CHANNELS = ("demo-2024", "demo-2025")


@dataclass(frozen=True)
class Channel:
    """One pinned package set: a Nix path, a saved dump, or a url + sha256."""

    name: str
    path: Path | None = None
    url: str = ""
    sha256: str = ""
    #: a saved package list of this same channel, read for the catalog instead
    #: of evaluating path/url (which builds still evaluate)
    listing: Path | None = None

    @property
    def is_dump(self) -> bool:
        """A saved package list is read, not evaluated, and cannot be built from."""
        if self.path is None:
            return False
        name = self.path.name
        return name.endswith(".json") or name.endswith(".json.gz")


@dataclass
class SlurmConfig:
    partition: str = "nixbuild"
    account: str = ""
    qos: str = ""
    time: str = "04:00:00"
    cpus_per_task: int = 2
    mem: str = "4G"
    extra_args: list[str] = field(default_factory=list)


@dataclass
class PbsConfig:
    """``[build.pbs]``: the qsub options of the PBS backend (OpenPBS / PBS Pro)."""

    queue: str = "nixbuild"
    account: str = ""
    walltime: str = "04:00:00"
    ncpus: int = 2
    mem: str = "4gb"
    extra_args: list[str] = field(default_factory=list)


@dataclass
class BuildConfig:
    backend: str = "local"
    max_concurrent: int = 2
    state_dir: Path = Path("~/.local/state/nixmod")
    #: a waiting nixmod (--wait, status --watch, the TUI) asks the scheduler at most this often
    #: (SPEC "Gentle on the scheduler"); its own job's end it learns from the job's exit record
    poll_seconds: int = 30
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    pbs: PbsConfig = field(default_factory=PbsConfig)


@dataclass
class ModulesConfig:
    root: Path = Path("~/.local/share/nixmod/modules")
    prefix: str = "nix"
    #: environments are <root>/<env_prefix>/<NAME>/<generation>.lua (SPEC.md)
    env_prefix: str = "nixenv"


@dataclass
class ShimsConfig:
    mode: str = "auto"
    store_dir: Path = Path("/nix/store")
    real_store_dir: Path | None = None


@dataclass
class CatalogConfig:
    #: an index published by staff (``nixmod catalog publish DIR``): channels it
    #: covers are read from there instead of being listed per user
    site_dir: Path | None = None
    #: the account (besides root) whose index users trust; site_dir and its parents
    #: must be writable only by root or this account. Meant for the site config:
    #: a user who sets it in their own config changes only what they themselves trust
    publisher: str = ""


@dataclass
class UsageConfig:
    #: the file the site's syslog writes nixmod's usage records to (tag nixmod-usage);
    #: what `nixmod usage` reads (staff)
    log: Path | None = None


@dataclass
class Config:
    channels: list[Channel] = field(default_factory=list)
    build: BuildConfig = field(default_factory=BuildConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    shims: ShimsConfig = field(default_factory=ShimsConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    usage: UsageConfig = field(default_factory=UsageConfig)
    #: files that were read, in order (for `doctor` and error messages)
    sources: list[Path] = field(default_factory=list)
    #: True when the bundled demo channels are in use (no channels configured, or --demo)
    demo: bool = False
    #: True with --demo: state and modules are in the demo corners, so a command that
    #: acts on them (a module's "Rebuild with") needs --demo too
    demo_forced: bool = False

    @property
    def cache_dir(self) -> Path:
        """Per-user cache (catalog index); never shared, so never locked against others."""
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        sub = "nixmod/demo" if self.demo else "nixmod"
        return Path(base) / sub

    def channel(self, name: str) -> Channel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        known = ", ".join(c.name for c in self.channels) or "none configured"
        raise UserError(f"unknown channel {name!r}; channels: {known}")


# -- the schema ---------------------------------------------------------------
# One table per section: key -> (type, is_path). Kept as data so that the
# validator, the error messages and the docs agree on what is allowed.

_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "build": {
        "backend": (str, False),
        "max_concurrent": (int, False),
        "state_dir": (str, True),
        "poll_seconds": (int, False),
    },
    "build.slurm": {
        "partition": (str, False),
        "account": (str, False),
        "qos": (str, False),
        "time": (str, False),
        "cpus_per_task": (int, False),
        "mem": (str, False),
        "extra_args": (list, False),
    },
    "build.pbs": {
        "queue": (str, False),
        "account": (str, False),
        "walltime": (str, False),
        "ncpus": (int, False),
        "mem": (str, False),
        "extra_args": (list, False),
    },
    "modules": {"root": (str, True), "prefix": (str, False), "env_prefix": (str, False)},
    "shims": {
        "mode": (str, False),
        "store_dir": (str, True),
        "real_store_dir": (str, True),
    },
    "catalog": {"site_dir": (str, True), "publisher": (str, False)},
    "usage": {"log": (str, True)},
}
_CHANNEL_KEYS: dict[str, type] = {"name": str, "path": str, "url": str, "sha256": str,
                                   "listing": str}
_LIST_SUFFIXES = (".json", ".json.gz")
#: every ``[build] backend`` name; ``builds.registry.BACKENDS`` maps each to its module
#: (and refuses to load when the two disagree)
BACKEND_NAMES = ("local", "slurm", "pbs")
_SHIM_MODES = ("auto", "direct", "bwrap", "proot")


def current_user() -> str:
    """Who nixmod runs as: for messages, queue filters and file ownership."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:   # a uid with no passwd entry (some containers)
        return str(os.geteuid())


def expand_path(value: str) -> Path:
    """Expand ``~`` and ``$VARS`` the way a shell user writing the file expects."""
    return Path(os.path.expanduser(os.path.expandvars(value)))


def key_line(text: str, key: str, table: str | None, occurrence: int = 0) -> int | None:
    """Best-effort line number of ``key`` (inside ``[table]`` when given).

    tomllib reports lines only for syntax errors; for schema errors we look
    the key up ourselves so that the message still points at a line. For an
    array of tables (``[[package]]``) ``occurrence`` picks which entry: the
    key of the third package is not the key of the first. ``key == table``
    asks for the header line itself.
    """
    in_table = table is None
    seen = -1
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    keyline = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            name = match.group(1)
            if table is not None and name == table:
                seen += 1
            this_one = seen == occurrence
            header_is_the_key = (name == key and this_one) if key == table else (
                table is None and name.split(".")[0] == key)
            if header_is_the_key:
                return number
            in_table = table is not None and name == table and this_one
            continue
        if in_table and keyline.match(line):
            return number
    return None


class _Layer:
    """One parsed file, with enough of its text kept to name lines in errors."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read config file: {exc}") from None
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: malformed TOML: {exc}") from None

    def fail(self, key: str, table: str | None, what: str) -> UserError:
        line = key_line(self.text, key.rsplit(".", 1)[-1], table)
        where = f"{self.path}:{line}" if line else str(self.path)
        return UserError(f"{where}: {what}")


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", list: "a list of strings"}[kind]


def _check_value(layer: _Layer, table: str, key: str, value: Any, kind: type) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if ok and kind is list:
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        raise layer.fail(
            key, table, f"key '{table}.{key}' must be {_type_name(kind)}, got {value!r}"
        )


def _merge_layer(layer: _Layer, merged: dict[str, Any]) -> None:
    """Validate one file against the schema and fold it into ``merged``."""
    for top, value in layer.data.items():
        if top == "channels":
            merged["channels"] = _parse_channels(layer, value)
            continue
        if top not in ("build", "modules", "shims", "catalog", "usage"):
            raise layer.fail(
                top, None,
                f"unknown key '{top}'; allowed: channels, build, modules, shims, catalog, usage",
            )
        if not isinstance(value, dict):
            raise layer.fail(top, None, f"'{top}' must be a table ([{top}])")
        for key, item in value.items():
            if top == "build" and key in ("slurm", "pbs"):
                if not isinstance(item, dict):
                    raise layer.fail(key, "build", f"'build.{key}' must be a table")
                for skey, sitem in item.items():
                    _merge_key(layer, merged, f"build.{key}", skey, sitem)
                continue
            _merge_key(layer, merged, top, key, item)


def _merge_key(layer: _Layer, merged: dict[str, Any], table: str, key: str, value: Any) -> None:
    schema = _SCHEMA[table]
    if key not in schema:
        allowed = ", ".join(schema)
        raise layer.fail(key, table, f"unknown key '{table}.{key}'; allowed: {allowed}")
    kind, _is_path = schema[key]
    _check_value(layer, table, key, value, kind)
    if table == "build" and key == "backend" and value not in BACKEND_NAMES:
        raise layer.fail(key, table, f"'build.backend' must be one of {', '.join(BACKEND_NAMES)}, got {value!r}")
    if table == "build" and key == "max_concurrent" and value < 1:
        raise layer.fail(key, table, f"'build.max_concurrent' must be at least 1, got {value}")
    if table == "build" and key == "poll_seconds" and value < 1:
        raise layer.fail(key, table, f"'build.poll_seconds' must be at least 1 (seconds between "
                         f"two questions to the scheduler; default 30), got {value}")
    if table == "shims" and key == "mode" and value not in _SHIM_MODES:
        raise layer.fail(key, table, f"'shims.mode' must be one of {', '.join(_SHIM_MODES)}, got {value!r}")
    if table == "build.slurm" and key == "extra_args":
        taken = reserved_sbatch_option(value)
        if taken:
            raise layer.fail(key, table, f"'build.slurm.extra_args' may not set {taken} (sbatch "
                             "reads any unique prefix of a long option as that option): nixmod "
                             "sets it itself to find, throttle and follow its builds")
    if table == "build.pbs" and key == "extra_args":
        problem = reserved_qsub_option(value)
        if problem:
            raise layer.fail(key, table, f"'build.pbs.extra_args' {problem}")
    if table == "modules" and key in ("prefix", "env_prefix") and not _is_path_component(value):
        raise layer.fail(key, table, f"'modules.{key}' must be one directory name (no '/', not '.' or '..'), got {value!r}")
    if table == "catalog" and key == "site_dir" and not expand_path(value).is_absolute():
        raise layer.fail(key, table, f"'catalog.site_dir' must be an absolute path (every user "
                         f"reads it from their own working directory), got {value!r}")
    if table == "catalog" and key == "publisher" and not re.fullmatch(r"([A-Za-z0-9_][A-Za-z0-9_.-]*\$?)?", value):
        raise layer.fail(key, table, f"'catalog.publisher' must be one account name (the staff "
                         f"account whose site index users trust, e.g. \"nixstaff\"), got {value!r}")
    merged.setdefault(table, {})[key] = (value, layer)


def valid_channel_name(name: str) -> bool:
    """A channel name as the config allows it (also what a lock from elsewhere may use)."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) is not None


def _is_path_component(value: str) -> bool:
    return bool(value) and "/" not in value and "\0" not in value and not value.startswith(".")


def _parse_channels(layer: _Layer, value: Any) -> list[tuple[Channel, _Layer]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise layer.fail("channels", "channels", "'channels' must be an array of tables ([[channels]])")
    channels: list[tuple[Channel, _Layer]] = []
    seen: set[str] = set()
    for entry in value:
        for key, item in entry.items():
            if key not in _CHANNEL_KEYS:
                raise layer.fail(key, "channels", f"unknown key 'channels.{key}'; allowed: "
                                 + ", ".join(_CHANNEL_KEYS))
            _check_value(layer, "channels", key, item, _CHANNEL_KEYS[key])
        name = entry.get("name", "")
        if not name:
            raise layer.fail("channels", "channels", "every [[channels]] needs a name = \"...\"")
        if not valid_channel_name(name):
            raise layer.fail("name", "channels", f"channel name {name!r} must be letters, digits and . _ + - only")
        if name in seen:
            raise layer.fail("name", "channels", f"channel {name!r} is defined twice")
        seen.add(name)
        path, url, sha = entry.get("path"), entry.get("url", ""), entry.get("sha256", "")
        if not path and not url and entry.get("listing"):
            raise layer.fail("listing", "channels", f"channel {name!r}: listing needs path or url "
                             "(what builds evaluate); for a catalog-only channel write "
                             "path = \"FILE.json\" instead")
        if bool(path) == bool(url):
            raise layer.fail("name", "channels", f"channel {name!r} needs exactly one of path or url")
        if url and not sha:
            raise layer.fail("url", "channels", f"channel {name!r}: url needs sha256 = \"...\" so that it stays pinned")
        listing = entry.get("listing")
        if listing is not None:
            _check_listing(layer, name, listing, path)
        channel = Channel(name=name, path=expand_path(path) if path else None, url=url, sha256=sha,
                          listing=expand_path(listing) if listing else None)
        channels.append((channel, layer))
    return channels


def _check_listing(layer: _Layer, name: str, listing: str, path: str | None) -> None:
    """``listing`` pairs a buildable path/url with its saved list; alone it would be a dump.

    A listing without path/url is refused rather than read as a dump: the
    writer meant a channel that builds, and a silent catalog-only channel
    would only fail later, at the first build.
    """
    if not listing.endswith(_LIST_SUFFIXES) or listing.endswith("/"):
        raise layer.fail("listing", "channels", f"channel {name!r}: listing must be the path of a "
                         f"saved package list (*.json or *.json.gz), got {listing!r}")
    if path and path.endswith(_LIST_SUFFIXES):
        raise layer.fail("listing", "channels", f"channel {name!r}: path {path!r} is already a saved "
                         "package list; listing pairs with a nixpkgs path or url that builds evaluate")


def config_files(explicit: str | os.PathLike[str] | None = None,
                 environ: dict[str, str] | None = None) -> list[Path]:
    """The layer files in order; missing site/user files are simply skipped later."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    files = [Path(env.get("NIXMOD_SITE_CONFIG", str(SITE_CONFIG))), Path(xdg) / "nixmod" / "config.toml"]
    chosen = explicit or env.get("NIXMOD_CONFIG")
    if chosen:
        files.append(expand_path(str(chosen)))
    return files


def demo_channels() -> list[Channel]:
    return [Channel(name=name, path=DEMO_DIR / name) for name in DEMO_CHANNELS]


def load_config(explicit: str | os.PathLike[str] | None = None, *, demo: bool = False,
                environ: dict[str, str] | None = None) -> Config:
    """Read every layer and return the merged, validated configuration.

    ``explicit`` is ``--config``; it must exist (a typo there should not
    silently fall back to defaults). With ``demo`` the bundled channels and
    the local backend are forced, whatever the files say, and state and
    modules live in their own ``demo`` corners so a demo never mixes with
    real work.
    """
    files = config_files(explicit, environ)
    if explicit and not files[-1].exists():
        raise UserError(f"--config {files[-1]}: no such file")
    merged: dict[str, Any] = {}
    sources: list[Path] = []
    for path in files:
        if not path.is_file():
            continue
        _merge_layer(_Layer(path), merged)
        sources.append(path)

    config = Config(sources=sources)
    for table, target in (("build", config.build), ("build.slurm", config.build.slurm),
                          ("build.pbs", config.build.pbs),
                          ("modules", config.modules), ("shims", config.shims),
                          ("catalog", config.catalog), ("usage", config.usage)):
        for key, (value, _layer) in merged.get(table, {}).items():
            _kind, is_path = _SCHEMA[table][key]
            if is_path:
                value = expand_path(value) if value else None
            setattr(target, key, value)
    config.channels = [channel for channel, _layer in merged.get("channels", [])]

    if demo or not config.channels:
        config.demo = True
        config.channels = demo_channels()
        config.catalog.site_dir = None   # a site index never covers the bundled demo
    if demo:
        config.demo_forced = True
        config.build.backend = "local"
        config.build.state_dir = Path("~/.local/state/nixmod/demo")
        config.modules.root = Path("~/.local/share/nixmod/demo/modules")
    config.build.state_dir = expand_path(str(config.build.state_dir))
    config.modules.root = expand_path(str(config.modules.root))
    if config.shims.store_dir is None:
        config.shims.store_dir = Path("/nix/store")
    return config
