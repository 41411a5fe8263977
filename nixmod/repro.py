"""Reproducible elsewhere: lock a module set, rebuild it exactly, move it signed, verify it.

SPEC.md "Reproducible elsewhere". The derivation (drv) is what makes a
package exactly itself: two evaluations that give the same drv build the same
thing. So:

* ``make_lock`` writes, for the user's modules (or a stack's), each drv, its
  outputs and their NAR hashes, and enough about each channel to get it
  again (url + sha256, or a path with a content hash and git revision).
* ``locked_plans`` evaluates every locked package again and refuses (exit 2,
  nothing submitted) when any drv differs; otherwise the plans go through
  the normal build path (reuse, join, build).
* ``export_bundle`` makes a signed ``file://`` binary cache with ``nix copy``;
  ``import_bundle`` checks it completely (signatures against nix.conf's
  ``trusted-public-keys``, content against the NAR hashes, the lock against
  the cache) *before* copying anything, so a bad bundle imports nothing;
  the daemon checks the signatures once more as it adds the paths.
* ``verify`` rebuilds with ``--check`` and compares.

No Textual here: the CLI and the TUI call these functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from nixmod import gcroots, nix
from nixmod.config import Channel, Config
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_open
from nixmod.metadata import about, identity, metadata
from nixmod.names import check_module_names
from nixmod.pins import channel_pin, pin_text

Progress = Callable[[str], None]

LOCK_FORMAT = 1
LOCK_NAME = "nixmod.lock"
NIX_COMMAND = ["nix", "--extra-experimental-features", "nix-command"]
#: characters that would change the meaning of a ``file://DIR?secret-key=KEY`` store URL
_URL_UNSAFE = re.compile(r"[?&=#%\s]")
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
class Lock:
    """SPEC.md's lock: system, store dir, channels, packages (and the stack it came from)."""

    system: str
    store_dir: str
    channels: dict[str, dict[str, Any]]
    packages: list[LockedPackage]
    stack: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"nixmod_lock": LOCK_FORMAT, "system": self.system,
                                "store_dir": self.store_dir, "channels": self.channels,
                                "packages": [p.as_json() for p in self.packages]}
        if self.stack:
            data["stack"] = self.stack
        return data

    def text(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"

    def closure_roots(self) -> list[str]:
        """Every locked output path, in lock order, once."""
        return list(dict.fromkeys(p for pkg in self.packages for p in pkg.outputs.values()))


def _store_path_ok(path: Any, store_dir: str) -> bool:
    return (isinstance(path, str) and path.startswith(store_dir.rstrip("/") + "/")
            and re.fullmatch(r"[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+",
                             path[len(store_dir.rstrip("/")) + 1:]) is not None)


def parse_lock(data: Any, source: str) -> Lock:
    """A Lock from its JSON, every field checked: a lock is input, maybe from another site."""
    def bad(what: str) -> UserError:
        return UserError(f"{source}: not a usable nixmod lock: {what} "
                         "(make one with 'nixmod lock -o FILE')")

    if not isinstance(data, dict) or data.get("nixmod_lock") != LOCK_FORMAT:
        raise bad(f"'nixmod_lock' must be {LOCK_FORMAT}")
    system, store_dir = data.get("system"), data.get("store_dir")
    if not isinstance(system, str) or not isinstance(store_dir, str) or not store_dir.startswith("/"):
        raise bad("'system' and 'store_dir' must be strings")
    channels = data.get("channels")
    if not isinstance(channels, dict) or not all(isinstance(v, dict) for v in channels.values()):
        raise bad("'channels' must map names to objects")
    raw_packages = data.get("packages")
    if not isinstance(raw_packages, list) or not raw_packages:
        raise bad("'packages' must be a non-empty list")
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
        outputs, hashes = raw.get("outputs"), raw.get("nar_hash")
        if (not isinstance(outputs, dict) or not outputs or not isinstance(hashes, dict)
                or set(outputs) != set(hashes)):
            raise bad(f"{where} ({texts['name']}) needs 'outputs' and 'nar_hash' for the same outputs")
        for output, path in outputs.items():
            if not _store_path_ok(path, store_dir) or not isinstance(hashes[output], str) \
                    or not _NAR_HASH.fullmatch(hashes[output]):
                raise bad(f"{where} ({texts['name']}) output {output!r}: a store path under "
                          f"{store_dir} and a 'sha256:…' hash are needed")
        if not _store_path_ok(texts["drv"], store_dir) or not texts["drv"].endswith(".drv"):
            raise bad(f"{where} ({texts['name']}): drv must be a .drv path under {store_dir}")
        if texts["channel"] not in channels:
            raise bad(f"{where} ({texts['name']}) names channel {texts['channel']!r}, "
                      "which 'channels' does not describe")
        meta_value = raw.get("meta")
        meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
        packages.append(LockedPackage(
            name=texts["name"], version=texts["version"], channel=texts["channel"],
            attr=texts["attr"], drv=texts["drv"], outputs=dict(outputs), nar_hash=dict(hashes),
            meta={k: v for k, v in meta.items() if isinstance(v, str)}))
    stack = data.get("stack") if isinstance(data.get("stack"), str) else None
    return Lock(system=system, store_dir=store_dir, channels=dict(channels),
                packages=packages, stack=stack)


def read_lock(path: Path) -> Lock:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read lock {path}: {exc}") from None
    try:
        data = json.loads(text)
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


# -- making a lock ----------------------------------------------------------------------------

def _system_and_store() -> tuple[str, str]:
    proc = nix.run(["nix-instantiate", "--eval", "--json", "--strict", "-E",
                    "{ system = builtins.currentSystem; store = builtins.storeDir; }",
                    *nix.OFFLINE_OPTIONS])
    data = json.loads(proc.stdout)
    return str(data["system"]), str(data["store"])


def store_nar_hashes(paths: Sequence[str]) -> dict[str, str]:
    """path -> ``sha256:<base32>`` NAR hash as the store records it (``nix-store -q --hash``)."""
    found: dict[str, str] = {}
    for path in paths:
        found[path] = nix.run(["nix-store", "--query", "--hash", path]).stdout.strip()
    return found


def _lock_modules(config: Config, targets: Sequence[str], stack_file: Path | None,
                  progress: Progress | None) -> tuple[list[Any], str | None]:
    """The ModuleRequests to lock: named modules, a stack's, or all of the user's."""
    from nixmod import lmod

    if stack_file is not None:
        from nixmod import stacks

        report = stacks.load_stack(config, stack_file, progress=progress)
        assert report.stack is not None
        root, names = report.stack.modules_root, [(r.version.name, r.version.version)
                                                   for r in report.resolved]
        stack_name: str | None = report.stack.name
    else:
        root, stack_name = config.modules.root, None
        names = [lmod.parse_target(config, t) for t in targets] if targets else [
            (i.name, i.version) for i in lmod.list_modules(config)]
    requests = []
    for name, version in names:
        request = lmod.read_request(lmod.module_path(config, name, version, root=root))
        if request is None:
            hint = f"run 'nixmod stack build {stack_file}' first" if stack_file else \
                f"build it first ({lmod.rebuild_command(name, version)})"
            raise UserError(f"no module {lmod.module_name(config, name, version)} under {root}; {hint}")
        requests.append(request)
    if not requests:
        raise UserError(f"no modules under {root} to lock; build something first (nixmod build NAME)")
    return requests, stack_name


def make_lock(config: Config, targets: Sequence[str] = (), *, stack_file: Path | None = None,
              progress: Progress | None = None) -> Lock:
    """A lock of the user's modules (all, or ``targets``), or of a stack's packages."""
    from nixmod import lmod

    requests, stack_name = _lock_modules(config, targets, stack_file, progress)
    paths = [p for r in requests for p in r.outputs.values()]
    valid = nix.valid_paths(paths)
    for request in requests:
        missing = [p for p in request.outputs.values() if p not in valid]
        if missing or not request.drv or not request.outputs:
            raise UserError(f"{request.name} {request.version}: its outputs are not in the store "
                            f"({', '.join(missing) or 'no outputs recorded'}); rebuild it "
                            f"({lmod.rebuild_command(request.name, request.version)}), then lock")
    hashes = store_nar_hashes(paths)
    channels: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.channel for r in requests):
        try:
            channel = config.channel(name)
        except UserError:
            raise UserError(f"channel {name!r} (of module {next(r.name for r in requests if r.channel == name)}) "
                            "is not configured any more; a lock must say how to get it") from None
        if progress:
            progress(f"hashing channel {name} ({channel.path or channel.url})")
        channels[name] = channel_pin(channel)
    system, store_dir = _system_and_store()
    packages = [LockedPackage(**identity(r), drv=r.drv, outputs=dict(r.outputs),
                              nar_hash={o: hashes[p] for o, p in r.outputs.items()},
                              meta={key: str(text) for key, text in about(r).items()})
                for r in requests]
    return Lock(system=system, store_dir=store_dir, channels=channels, packages=packages,
                stack=stack_name)


# -- building exactly a lock --------------------------------------------------------------------

@dataclass(frozen=True)
class Mismatch:
    """A locked package whose evaluation now gives another derivation."""

    name: str
    version: str
    locked: str
    evaluated: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}: locked {self.locked}, evaluated {self.evaluated}"


class LockMismatch(UserError):
    """Some drvs differ from the lock: exit 2, every one named, nothing submitted."""

    def __init__(self, mismatches: list[Mismatch]):
        self.mismatches = mismatches
        count = len(mismatches)
        super().__init__(f"{count} package{'s' if count != 1 else ''} no longer evaluate to the "
                         f"locked derivation: {'; '.join(map(str, mismatches))}; nothing was "
                         "submitted (the channel or an overlay changed since the lock)")


def lock_config(config: Config, lock: Lock, progress: Progress | None = None) -> Config:
    """``config`` with every channel the lock needs: a url channel comes from the lock itself.

    A path channel must be configured here under the same name (the lock
    cannot carry a directory); its content hash is compared, for the user's
    information only: the drv comparison decides.
    """
    channels = list(config.channels)
    known = {c.name: c for c in channels}
    for name, pin in lock.channels.items():
        if name in known:
            here = known[name]
            if progress and here.path is not None and pin.get("nar_hash") and here.path.exists():
                try:
                    now = channel_pin(here).get("nar_hash")
                except (OSError, UserError):
                    now = None
                if now and now != pin["nar_hash"]:
                    progress(f"channel {name}: content differs from the lock's ({now}, locked "
                             f"{pin['nar_hash']}); comparing derivations")
            continue
        if isinstance(pin.get("url"), str) and isinstance(pin.get("sha256"), str) and pin["url"]:
            channels.append(Channel(name=name, url=pin["url"], sha256=pin["sha256"]))
        elif any(p.channel == name for p in lock.packages):
            raise UserError(f"the lock needs channel {name!r} ({pin_text(pin)}), which is not "
                            "configured here; add a [[channels]] entry of that name with that path")
    return replace(config, channels=channels)


def locked_versions(lock: Lock) -> list[Any]:
    """A catalog PackageVersion per locked package (the lock carries all a build needs)."""
    from nixmod.catalog import PackageVersion

    return [PackageVersion(**metadata(p), outputs=tuple(p.outputs))
            for p in lock.packages]


def check_plans(lock: Lock, plans: Sequence[Any]) -> None:
    """LockMismatch unless every plan's drv is the locked one (plans in lock order)."""
    mismatches = [Mismatch(p.name, p.version, p.drv, plan.drv)
                  for p, plan in zip(lock.packages, plans) if plan.drv != p.drv]
    if mismatches:
        raise LockMismatch(mismatches)


def locked_plans(config: Config, lock: Lock, progress: Progress | None = None
                 ) -> tuple[Config, list[Any]]:
    """Evaluate every locked package again; plans only when all drvs equal the lock."""
    from nixmod import builds

    config = lock_config(config, lock, progress)
    plans = builds.plan(config, locked_versions(lock), progress=progress)
    check_plans(lock, plans)
    return config, plans


def build_locked(config: Config, lock: Lock, *, backend: str | None = None,
                 progress: Progress | None = None) -> list[Any]:
    """``nixmod build --lock``: exactly the locked drvs, reused, joined or built."""
    from nixmod import builds

    config, plans = locked_plans(config, lock, progress)
    return builds.submit(config, plans, backend=backend, progress=progress)


# -- export: a signed file:// binary cache ---------------------------------------------------------

def _url_path(path: Path, what: str) -> str:
    text = str(path)
    if _URL_UNSAFE.search(text):
        raise UserError(f"{what} {text!r} has a character (? & = # % or a space) that a Nix store "
                        "URL cannot carry; use another path")
    return text


def _check_key(key: Path) -> None:
    try:
        text = key.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read secret key {key}: {exc}") from None
    if not re.fullmatch(r"[^:\s]+:[A-Za-z0-9+/]+=*", text):
        raise UserError(f"{key} is not a Nix secret key (NAME:BASE64, as "
                        "'nix-store --generate-binary-cache-key' writes)")


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    paths: int
    key_name: str


def export_bundle(config: Config, lock_path: Path, directory: Path, key: Path,
                  progress: Progress | None = None) -> ExportResult:
    """DIR becomes a signed binary cache of every locked closure (outputs and drvs) + the lock.

    Written into a sibling temp dir and renamed at the end: a failed export
    leaves no half bundle. Outputs whose bytes differ from the lock (built
    differently here) are refused: the bundle would not match its lock.
    """
    lock = read_lock(lock_path)
    key = key.absolute()
    directory = directory.absolute()
    _check_key(key)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserError(f"{directory} exists and is not an empty directory; export into a new one")
    _url_path(directory, "bundle directory")
    _url_path(key, "key file")
    if key.stat().st_mode & 0o077 and progress:
        progress(f"warning: secret key {key} is readable by others (chmod 600 it)")
    paths = lock.closure_roots()
    valid = nix.valid_paths(paths)
    missing = [p for p in paths if p not in valid]
    if missing:
        raise UserError(f"{missing[0]} (locked) is not in this store; 'nixmod build --lock "
                        f"{lock_path} --wait' brings it back, then export")
    hashes = store_nar_hashes(paths)
    for package in lock.packages:
        for output, path in package.outputs.items():
            if hashes[path] != package.nar_hash[output]:
                raise OperationFailed(f"{package.name} {package.version} output {output}: the store "
                                      f"holds other bytes ({hashes[path]}) than the lock "
                                      f"({package.nar_hash[output]}); not exported")
    drvs = [p.drv for p in lock.packages]
    drvs = sorted(nix.valid_paths(drvs))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        os.chmod(staging, 0o755)
        url = f"file://{_url_path(staging, 'bundle directory')}?secret-key={key}&compression=zstd"
        if progress:
            progress(f"copying {len(paths)} output closure(s) into {directory}, signed")
        nix.run([*NIX_COMMAND, "copy", "--to", url, *paths])
        if drvs:
            nix.run([*NIX_COMMAND, "copy", "--derivation", "--to", url, *drvs])
        with atomic_open(staging / LOCK_NAME) as handle:
            handle.write(lock.text())
        for item in [staging, *staging.rglob("*")]:
            item.chmod(0o755 if item.is_dir() else 0o644)
        if directory.exists():
            directory.rmdir()
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    count = len(list(directory.glob("*.narinfo")))
    return ExportResult(directory=directory, paths=count,
                        key_name=key.read_text(encoding="ascii").split(":", 1)[0])


# -- import ---------------------------------------------------------------------------------------

def _narinfo(directory: Path, path: str) -> dict[str, str] | None:
    try:
        text = (directory / f"{nix.store_hash(path)}.narinfo").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            info.setdefault(key, value)
    return info


@dataclass(frozen=True)
class ImportResult:
    modules: list[str]
    paths: list[str]
    modules_root: Path


def check_bundle(directory: Path, lock: Lock) -> list[str]:
    """Every reason this bundle must not be imported ([] when it is sound).

    The lock against the cache (each locked output present, its NarHash the
    locked one), then ``nix store verify`` on the whole closure: signatures
    against the system nix.conf's trusted keys (the daemon's; a key the user
    trusts in their own nix.conf does not count) and every NAR against its
    hash. Nothing is added to the store here.
    """
    problems = []
    for package in lock.packages:
        for output, path in package.outputs.items():
            info = _narinfo(directory, path)
            if info is None or info.get("StorePath") != path:
                problems.append(f"{package.name} {package.version} output {output} ({path}) is "
                                "not in the bundle")
            elif info.get("NarHash") != package.nar_hash[output]:
                problems.append(f"{package.name} {package.version} output {output}: the bundle holds "
                                f"{info.get('NarHash')}, the lock says {package.nar_hash[output]}")
    if problems:
        return problems
    drvs = [p.drv for p in lock.packages if _narinfo(directory, p.drv) is not None]
    # the site's keys, as the daemon will check them, not the user's own extra ones
    proc = nix.run([*NIX_COMMAND, "store", "verify", "--store", f"file://{directory}",
                    "--recursive", *lock.closure_roots(), *drvs], check=False, site_config=True)
    if proc.returncode != 0:
        found = [line.strip() for line in proc.stderr.splitlines()
                 if re.search(r"untrusted|modified|error", line)]
        problems += found or [nix.last_lines(proc.stderr, 1)]
    return problems


def import_bundle(config: Config, directory: Path, *, modules_root: Path | None = None,
                  progress: Progress | None = None) -> ImportResult:
    """Copy a bundle's closures in through the daemon, then GC roots and modules as a build.

    Refuses (exit 1, nothing imported, no module written) when a signature
    is missing or untrusted, a NAR was changed, or the bundle does not match
    its lock. With ``modules_root`` (a stack's tree) the GC roots go beside
    it, where ``stack build`` looks for the roots of what it published.
    """
    from nixmod import lmod

    directory = directory.absolute()
    if not (directory / "nix-cache-info").is_file() or not (directory / LOCK_NAME).is_file():
        raise UserError(f"{directory} is not a nixmod bundle (no nix-cache-info or {LOCK_NAME}); "
                        "make one with 'nixmod export LOCK DIR --key KEY'")
    _url_path(directory, "bundle directory")
    lock = read_lock(directory / LOCK_NAME)
    _system, store_dir = _system_and_store()
    if lock.store_dir.rstrip("/") != store_dir.rstrip("/"):
        raise UserError(f"the bundle was made for store {lock.store_dir}, this site's store is "
                        f"{store_dir}; it cannot be imported here")
    for package in lock.packages:
        check_module_names(package.name, package.version)
    problems = check_bundle(directory, lock)
    if problems:
        raise OperationFailed(f"bundle {directory} refused, nothing imported: {problems[0]}"
                              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                              + "; a receiving site imports only bundles signed by a key in "
                              "nix.conf trusted-public-keys, unchanged since")
    roots = lock.closure_roots()
    drvs = [p.drv for p in lock.packages if _narinfo(directory, p.drv) is not None]
    if progress:
        progress(f"copying {len(roots)} output closure(s) from {directory} through the daemon")
    proc = nix.run([*NIX_COMMAND, "copy", "--from", f"file://{directory}", *roots], check=False)
    if proc.returncode == 0 and drvs:
        proc = nix.run([*NIX_COMMAND, "copy", "--derivation", "--from", f"file://{directory}",
                        *drvs], check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"bundle {directory} refused by the nix-daemon: "
                              f"{nix.last_lines(proc.stderr, 1)}")

    if modules_root is not None:
        os.umask(0o022)   # a shared tree: readable by everyone
        root = Path(modules_root).absolute()
        gcroot_dir = gcroots.stack_gcroot_dir(root, lock.stack or root.name)
    else:
        root = Path(config.modules.root)
        gcroot_dir = gcroots.personal_gcroot_dir(Path(config.build.state_dir))
    written = []
    for package in lock.packages:
        base = gcroots.gc_root(gcroot_dir, package.name, package.version)
        base.parent.mkdir(parents=True, exist_ok=True)
        for output, path in package.outputs.items():
            # the names a build's roots have, so removing the module finds these too
            nix.run(nix.realise_command(path, gcroots.gc_root_link(base, output)))
        request = lmod.ModuleRequest(**metadata(package), drv=package.drv,
                                     outputs=dict(package.outputs))
        info = lmod.write_module(config, replace(request, channel_pin=pin_text(
            lock.channels[package.channel])), root=root)
        written.append(info.module)
        if progress:
            progress(f"{info.module}: imported ({request.store_path})")
    if modules_root is not None and lmod.spider_cache_dir(root).is_dir():
        lmod.update_spider_cache(root)
    return ImportResult(modules=written, paths=roots, modules_root=root)


# -- signatures -------------------------------------------------------------------------------------

def trusted_keys() -> list[str]:
    """Key names in the system nix.conf's ``trusted-public-keys`` (the daemon's, not a user's)."""
    proc = nix.run([*NIX_COMMAND, "show-config", "--json"], check=False, site_config=True)
    try:
        value = json.loads(proc.stdout)["trusted-public-keys"]["value"]
    except (ValueError, KeyError, TypeError):
        return []
    return [str(key).split(":", 1)[0] for key in value]


def signature_status(paths: Sequence[str]) -> dict[str, str]:
    """path -> ``signed by KEY`` | ``built here`` | ``untrusted`` | ``missing``.

    ``nix store verify --no-contents`` decides trust (a signature by a key in
    ``trusted-public-keys``, or a path this store built itself); ``nix
    path-info`` says which it is. Two Nix calls for any number of paths.
    """
    paths = list(dict.fromkeys(paths))
    if not paths:
        return {}
    valid = nix.valid_paths(paths)
    status = {p: "missing" for p in paths if p not in valid}
    present = [p for p in paths if p in valid]
    if not present:
        return status
    info = json.loads(nix.run([*NIX_COMMAND, "path-info", "--json", *present]).stdout or "[]")
    check = nix.run([*NIX_COMMAND, "store", "verify", "--no-contents", *present], check=False,
                    site_config=True)
    untrusted = set(re.findall(r"path '([^']+)' is untrusted", check.stderr))
    trusted = set(trusted_keys())
    for entry in info if isinstance(info, list) else []:
        path = entry.get("path", "")
        keys = [sig.split(":", 1)[0] for sig in entry.get("signatures", [])]
        if path in untrusted:
            status[path] = "untrusted"
        elif any(k in trusted for k in keys):
            status[path] = "signed by " + ", ".join(k for k in dict.fromkeys(keys) if k in trusted)
        else:
            status[path] = "built here"
    for path in present:
        status.setdefault(path, "untrusted" if path in untrusted else "built here")
    return status


# -- verify ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyResult:
    """How one output of one module compared with a fresh build of it."""

    module: str
    output: str
    path: str
    result: str                 # reproducible | differs | not compared | failed
    detail: str = ""
    node: str = ""              # where the check build ran (a SLURM node, or this host)
    job: str = ""               # its SLURM job, if any

    def as_json(self) -> dict[str, str]:
        return {"module": self.module, "output": self.output, "path": self.path,
                "result": self.result, "detail": self.detail, "node": self.node, "job": self.job}


def check_command(config: Config, drv: str, backend: str) -> list[str]:
    """``nix-store --realise DRV --check``, run where ``backend`` builds (slurm: on the build partition)."""
    from nixmod.builds import BACKENDS

    command = ["nix-store", "--realise", drv, "--check", *nix.OFFLINE_OPTIONS]
    return BACKENDS[backend].verify_command(config, command)


def verify(config: Config, targets: Sequence[str], *, backend: str | None = None,
           modules_root: Path | None = None, progress: Progress | None = None) -> list[VerifyResult]:
    """Rebuild each named module's drv with ``--check``; per output: reproducible or differs."""
    from nixmod import lmod

    if not targets:
        raise UserError("nixmod verify: name at least one module as NAME/VERSION "
                        "('nixmod modules list' shows them)")
    backend = backend or config.build.backend
    requests = []
    for target in targets:
        name, version = lmod.parse_target(config, target)
        request = lmod.read_request(lmod.module_path(config, name, version, root=modules_root))
        if request is None:
            raise UserError(f"no module {lmod.module_name(config, name, version)}; "
                            "'nixmod modules list' shows the modules")
        requests.append(request)
    for request in requests:
        wanted = [request.drv, *request.outputs.values()]
        valid = nix.valid_paths(wanted)
        missing = [p for p in wanted if p not in valid]
        if missing:
            raise UserError(f"{request.name} {request.version}: {missing[0]} is not in the store; "
                            f"verify needs the built outputs and their derivation "
                            f"({lmod.rebuild_command(request.name, request.version)})")
    results: list[VerifyResult] = []
    for request in requests:
        module = lmod.module_name(config, request.name, request.version)
        argv = check_command(config, request.drv, backend)
        if progress:
            place = "here" if argv[0] == "nix-store" else "on the build partition"
            progress(f"{module}: rebuilding {request.drv} {place} to compare (--check)")
        if argv[0] == "srun":
            if shutil.which("srun") is None:
                raise UserError("'srun' not found on PATH; verify with the slurm backend needs "
                                "the SLURM client tools (or --backend local)")
            proc = subprocess.run(argv, capture_output=True, text=True, env=nix.nix_env_vars(),
                                  stdin=subprocess.DEVNULL)
        else:
            proc = nix.run(argv, check=False)
        where = re.search(r"^nixmod-verify: node (\S+) job (\S+)$", proc.stderr, re.M)
        node, job = (where.group(1), where.group(2)) if where else (socket.gethostname(), "")
        if argv[0] == "srun" and not where:
            raise OperationFailed(f"srun failed: {nix.last_lines(proc.stderr, 1)}")
        differing = set(re.findall(r"output '([^']+)' differs", proc.stderr))
        for output, path in request.outputs.items():
            if proc.returncode == 0:
                result, detail = "reproducible", ""
            elif path in differing:
                result, detail = "differs", "a fresh build gave other bytes"
            elif differing:
                result, detail = "not compared", "the check stopped at a differing output"
            else:
                result, detail = "failed", nix.last_lines(proc.stderr, 1)
            results.append(VerifyResult(module, output, path, result, detail, node, job))
    return results


def shell_line(argv: Sequence[str]) -> str:
    """A command as a user would type it (for messages)."""
    return " ".join(shlex.quote(a) for a in argv)
