"""The lock document: its records, reading it back (every field checked), writing it.

Kept apart from making and building a lock (``repro.lock``) so that the
parts that carry environments (``repro.envlock``) and packages can both
build on one document without importing each other.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from nixmod import nix
from nixmod.config import valid_channel_name
from nixmod.errors import UserError
from nixmod.files import atomic_open
from nixmod.names import validate_component
from nixmod.pkglist import valid_attr_path

Progress = Callable[[str], None]

LOCK_FORMAT = 1
LOCK_NAME = "nixmod.lock"
NIX_COMMAND = ["nix", "--extra-experimental-features", "nix-command"]
_NAR_HASH = re.compile(r"sha256:[0-9a-df-np-sv-z]{52}")


# -- the lock document ------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedPackage:
    """One package of a lock: what it is and exactly which derivation and bytes."""

    name: str
    version: str
    channel: str
    attr: str
    drv: str
    outputs: dict[str, str]
    nar_hash: dict[str, str]
    #: description, homepage, license: so an imported module reads like a built one
    meta: dict[str, str] = field(default_factory=dict)

    # the lock keeps them under "meta"; as properties, a locked package is ``Described``
    @property
    def description(self) -> str:
        return self.meta.get("description", "")

    @property
    def homepage(self) -> str:
        return self.meta.get("homepage", "")

    @property
    def license(self) -> str:
        return self.meta.get("license", "")

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "channel": self.channel,
                "attr": self.attr, "drv": self.drv, "outputs": dict(self.outputs),
                "nar_hash": dict(self.nar_hash), "meta": dict(self.meta)}


@dataclass(frozen=True)
class EnvironmentMember:
    """One package of a locked environment: which attribute, at which version."""

    name: str
    version: str
    attr: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "attr": self.attr}


@dataclass(frozen=True)
class LockedEnvironment:
    """One environment of a lock: its packages, and exactly which derivation and bytes.

    The drv depends only on the channel and the sorted package set (never on
    the NAME), so two sites that evaluate the same members get the same drv;
    the NAME says which module the environment becomes.
    """

    name: str
    channel: str
    packages: tuple[EnvironmentMember, ...]
    drv: str
    outputs: dict[str, str]
    nar_hash: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "channel": self.channel,
                "packages": [p.as_json() for p in self.packages], "drv": self.drv,
                "outputs": dict(self.outputs), "nar_hash": dict(self.nar_hash)}


@dataclass(frozen=True)
class Lock:
    """SPEC.md's lock: system, store dir, channels, packages, environments (and the stack it came from)."""

    system: str
    store_dir: str
    channels: dict[str, dict[str, Any]]
    packages: list[LockedPackage]
    stack: str | None = None
    environments: list[LockedEnvironment] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"nixmod_lock": LOCK_FORMAT, "system": self.system,
                                "store_dir": self.store_dir, "channels": self.channels,
                                "packages": [p.as_json() for p in self.packages],
                                "environments": [e.as_json() for e in self.environments]}
        if self.stack:
            data["stack"] = self.stack
        return data

    def text(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"

    def closure_roots(self) -> list[str]:
        """Every locked output path (packages, then environments), in lock order, once."""
        built: list[LockedPackage | LockedEnvironment] = [*self.packages, *self.environments]
        return list(dict.fromkeys(p for item in built for p in item.outputs.values()))

    def drvs(self) -> list[str]:
        """Every locked derivation (packages, then environments), once."""
        built: list[LockedPackage | LockedEnvironment] = [*self.packages, *self.environments]
        return list(dict.fromkeys(item.drv for item in built))


def _store_path_ok(path: Any, store_dir: str) -> bool:
    return (isinstance(path, str) and path.startswith(store_dir.rstrip("/") + "/")
            and re.fullmatch(r"[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+",
                             path[len(store_dir.rstrip("/")) + 1:]) is not None)


def parse_lock(data: Any, source: str) -> Lock:
    """A Lock from its JSON, every field checked: a lock is input, maybe from another site.

    Each field as the CLI checks it: name, version, output names and the
    stack are single path components (they become module and GC-root
    paths: a stack of ``/tmp/bobgc`` would put the roots in another user's
    directory), channels are config-style names, attributes attribute paths.
    """
    def bad(what: str) -> UserError:
        return UserError(f"{source}: not a usable nixmod lock: {what} "
                         "(make one with 'nixmod lock -o FILE')")

    def component(value: str, what: str, where: str) -> None:
        try:
            validate_component(value, what)
        except UserError as exc:
            raise bad(f"{where}: {exc}") from None

    if not isinstance(data, dict) or data.get("nixmod_lock") != LOCK_FORMAT:
        raise bad(f"'nixmod_lock' must be {LOCK_FORMAT}")
    system, store_dir = data.get("system"), data.get("store_dir")
    if not isinstance(system, str) or not isinstance(store_dir, str) or not store_dir.startswith("/"):
        raise bad("'system' and 'store_dir' must be strings")
    channels = data.get("channels")
    if not isinstance(channels, dict) or not all(isinstance(v, dict) for v in channels.values()):
        raise bad("'channels' must map names to objects")
    for name in channels:
        if not valid_channel_name(name):
            raise bad(f"channel name {name!r} must be letters, digits and . _ + - only")
    raw_packages = data.get("packages")
    raw_environments = data.get("environments", [])
    if not isinstance(raw_packages, list) or not isinstance(raw_environments, list):
        raise bad("'packages' and 'environments' must be lists")
    if not raw_packages and not raw_environments:
        raise bad("'packages' and 'environments' are both empty: nothing is locked")
    packages = []
    for index, raw in enumerate(raw_packages):
        where = f"package #{index + 1}"
        if not isinstance(raw, dict):
            raise bad(f"{where} is not an object")
        keys = ("name", "version", "channel", "attr", "drv")
        texts: dict[str, str] = {key: value for key in keys
                                 if isinstance(value := raw.get(key), str) and value}
        if len(texts) != len(keys):
            raise bad(f"{where} needs name, version, channel, attr and drv as strings")
        component(texts["name"], "name", where)
        component(texts["version"], "version", f"{where} ({texts['name']})")
        if not valid_attr_path(texts["attr"]):
            raise bad(f"{where} ({texts['name']}): attr {texts['attr']!r} is not an attribute "
                      "path (no blanks, '/' or control characters)")
        outputs, hashes = _built(raw, texts["drv"], store_dir, f"{where} ({texts['name']})", bad)
        if texts["channel"] not in channels:
            raise bad(f"{where} ({texts['name']}) names channel {texts['channel']!r}, "
                      "which 'channels' does not describe")
        meta_value = raw.get("meta")
        meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
        packages.append(LockedPackage(
            name=texts["name"], version=texts["version"], channel=texts["channel"],
            attr=texts["attr"], drv=texts["drv"], outputs=dict(outputs), nar_hash=dict(hashes),
            meta={k: v for k, v in meta.items() if isinstance(v, str)}))
    stack = data.get("stack")
    if stack is not None:
        if not isinstance(stack, str):
            raise bad("'stack' must be a string")
        component(stack, "stack", "'stack'")
    environments = [_parse_environment(raw, f"environment #{index + 1}", store_dir, channels, bad)
                    for index, raw in enumerate(raw_environments)]
    names = [e.name for e in environments]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise bad(f"environment {twice!r} is locked twice")
    return Lock(system=system, store_dir=store_dir, channels=dict(channels),
                packages=packages, stack=stack, environments=environments)


def _built(raw: dict[str, Any], drv: str, store_dir: str, where: str,
           bad: Callable[[str], UserError]) -> tuple[dict[str, str], dict[str, str]]:
    """The checked ``outputs`` and ``nar_hash`` of a locked package or environment."""
    outputs, hashes = raw.get("outputs"), raw.get("nar_hash")
    if (not isinstance(outputs, dict) or not outputs or not isinstance(hashes, dict)
            or set(outputs) != set(hashes)):
        raise bad(f"{where} needs 'outputs' and 'nar_hash' for the same outputs")
    for output, path in outputs.items():
        try:
            validate_component(output, "output")
        except UserError as exc:
            raise bad(f"{where}: {exc}") from None
        if not _store_path_ok(path, store_dir) or not isinstance(hashes[output], str) \
                or not _NAR_HASH.fullmatch(hashes[output]):
            raise bad(f"{where} output {output!r}: a store path under "
                      f"{store_dir} and a 'sha256:…' hash are needed")
    if not _store_path_ok(drv, store_dir) or not drv.endswith(".drv"):
        raise bad(f"{where}: drv must be a .drv path under {store_dir}")
    return dict(outputs), dict(hashes)


def _parse_environment(raw: Any, where: str, store_dir: str, channels: dict[str, Any],
                       bad: Callable[[str], UserError]) -> LockedEnvironment:
    """One ``environments`` entry, every field checked as a package's is.

    The name becomes a module directory (``<env_prefix>/NAME``), each
    member's attribute goes into a Nix expression: both are held to the
    rules a package's name and attribute are.
    """
    if not isinstance(raw, dict):
        raise bad(f"{where} is not an object")
    name, channel, drv = raw.get("name"), raw.get("channel"), raw.get("drv")
    if not all(isinstance(v, str) and v for v in (name, channel, drv)):
        raise bad(f"{where} needs name, channel and drv as strings")
    assert isinstance(name, str) and isinstance(channel, str) and isinstance(drv, str)
    try:
        validate_component(name, "name")
    except UserError as exc:
        raise bad(f"{where}: {exc}") from None
    where = f"{where} ({name})"
    if channel not in channels:
        raise bad(f"{where} names channel {channel!r}, which 'channels' does not describe")
    members = raw.get("packages")
    if not isinstance(members, list) or not members:
        raise bad(f"{where} needs 'packages', a non-empty list")
    parsed = []
    for member in members:
        texts = {key: value for key in ("name", "version", "attr")
                 if isinstance(member, dict) and isinstance(value := member.get(key), str) and value}
        if len(texts) != 3:
            raise bad(f"{where}: each package needs name, version and attr as strings")
        if not valid_attr_path(texts["attr"]):
            raise bad(f"{where}: attr {texts['attr']!r} is not an attribute path "
                      "(no blanks, '/' or control characters)")
        parsed.append(EnvironmentMember(**texts))
    outputs, hashes = _built(raw, drv, store_dir, where, bad)
    return LockedEnvironment(name=name, channel=channel, packages=tuple(parsed), drv=drv,
                             outputs=outputs, nar_hash=hashes)


def read_lock(path: Path) -> Lock:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read lock {path}: {exc}") from None
    return lock_from_bytes(content, path)


def lock_from_bytes(content: bytes, path: Path) -> Lock:
    """The lock in ``content`` (read from ``path``): an import checks these very bytes'
    signature, then parses them, so the file cannot change in between."""
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read lock {path}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"{path}: not a usable nixmod lock: malformed JSON ({exc})") from None
    return parse_lock(data, str(path))


def write_lock(lock: Lock, output: str | None, stdout: IO[str] | None = None) -> None:
    """The lock to ``output`` (atomically), or to stdout for None / ``-``."""
    if output in (None, "-"):
        (stdout or sys.stdout).write(lock.text())
        return
    with atomic_open(Path(str(output))) as handle:
        handle.write(lock.text())



# -- a lock that no longer evaluates to itself ------------------------------------------------

@dataclass(frozen=True)
class Mismatch:
    """A locked package whose evaluation now gives another derivation."""

    name: str
    version: str
    locked: str
    evaluated: str

    def __str__(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"{self.name}{version}: locked {self.locked}, evaluated {self.evaluated}"


class LockMismatch(UserError):
    """Some drvs differ from the lock: exit 2, every one named, nothing submitted."""

    def __init__(self, mismatches: list[Mismatch]):
        self.mismatches = mismatches
        count = len(mismatches)
        super().__init__(f"{count} package{'s' if count != 1 else ''} no longer evaluate to the "
                         f"locked derivation: {'; '.join(map(str, mismatches))}; nothing was "
                         "submitted (the channel or an overlay changed since the lock)")
