"""Moving a lock's builds to another machine, signed: ``export_bundle`` and ``import_bundle``.

``export_bundle`` makes a signed ``file://`` binary cache with ``nix copy``;
``import_bundle`` checks it completely (signatures against nix.conf's
``trusted-public-keys``, content against the NAR hashes, the lock against
the cache) *before* copying anything, so a bad bundle imports nothing; the
daemon checks the signatures once more as it adds the paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from nixmod import gcroots, lmod, nix
from nixmod.config import Config
from nixmod.dirs import ensure_dir, refusal
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_open
from nixmod.metadata import metadata
from nixmod.names import check_module_names
from nixmod.pins import nar_string, nix_base32, pin_text
from nixmod.repro.lock import store_nar_hashes, system_and_store
from nixmod.repro.lockdoc import (LOCK_NAME, NIX_COMMAND, Lock, LockedEnvironment, LockedPackage,
                                  Progress, lock_from_bytes, read_lock)

#: characters that would change the meaning of a ``file://DIR?secret-key=KEY`` store URL
_URL_UNSAFE = re.compile(r"[?&=#%\s]")


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
    for locked, label in _locked(lock):
        for output, path in locked.outputs.items():
            if hashes[path] != locked.nar_hash[output]:
                raise OperationFailed(f"{label} output {output}: the store "
                                      f"holds other bytes ({hashes[path]}) than the lock "
                                      f"({locked.nar_hash[output]}); not exported")
    drvs = sorted(nix.valid_paths(lock.drvs()))
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
        (staging / LOCK_NAME).chmod(0o644)
        # the lock itself as a store path, so the key signs it too (see check_lock_signature)
        signed_lock = nix.run(["nix-store", "--add", str(staging / LOCK_NAME)]).stdout.strip()
        nix.run([*NIX_COMMAND, "copy", "--to", url, signed_lock])
        for item in [staging, *staging.rglob("*")]:
            item.chmod(0o755 if item.is_dir() else 0o644)
        if directory.exists():
            directory.rmdir()
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    count = len(list(directory.glob("*.narinfo"))) - 1   # the lock's own path is not a package's
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


def _lock_nar(content: bytes) -> tuple[str, int]:
    """(sha256 in Nix base-32, size) of the NAR of one plain file holding ``content``:
    what ``nix-store --add`` of the bundle's lock records."""
    nar = bytearray()

    class _Sink:
        def update(self, data: bytes) -> None:
            nar.extend(data)

    for word in (b"nix-archive-1", b"(", b"type", b"regular", b"contents", content, b")"):
        nar_string(_Sink(), word)
    return nix_base32(hashlib.sha256(nar).digest()), len(nar)


def check_lock_signature(directory: Path, content: bytes, store_dir: str) -> str | None:
    """Why the bundle's lock (``content``) is not vouched for by a trusted key; None if it is.

    Nix signs store paths, not files: ``export`` adds the lock to the store
    (``nix-store --add``) and copies that path into the signed cache, so
    its narinfo carries a signature over (path, NAR hash, size, references).
    Here the path and NAR hash are computed from the bytes at hand, and Nix
    checks the bundle's signatures for that path against a narinfo written
    here from those values alone (``nix store verify --no-contents`` with
    the site's ``trusted-public-keys``). Written here, not read: the
    bundle's own narinfo may say ``CA:``, and Nix trusts a content-addressed
    path with no signature at all, which would let anyone vouch for a lock.
    So the name, version, drv, attr, channels and stack of every package
    are as the key holder exported them.
    """
    digest, size = _lock_nar(content)
    path = nix.run(["nix-store", "--print-fixed-path", "--recursive", "sha256", digest,
                    LOCK_NAME]).stdout.strip()
    try:
        text = (directory / f"{nix.store_hash(path)}.narinfo").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    signatures = [line for line in text.splitlines() if line.startswith("Sig: ")]
    if not signatures:
        return (f"{LOCK_NAME} is untrusted: no signature in the bundle covers it (changed "
                "since export, or exported by a nixmod that did not sign locks: export again)")
    with tempfile.TemporaryDirectory(prefix="nixmod-lock-") as scratch:
        (Path(scratch) / "nix-cache-info").write_text(f"StoreDir: {store_dir}\n")
        (Path(scratch) / f"{nix.store_hash(path)}.narinfo").write_text(
            f"StorePath: {path}\nURL: nar/{digest}.nar\nCompression: none\n"
            f"NarHash: sha256:{digest}\nNarSize: {size}\nReferences: \n"
            + "".join(f"{line}\n" for line in signatures))
        proc = nix.run([*NIX_COMMAND, "store", "verify", "--no-contents", "--store",
                        f"file://{_url_path(Path(scratch), 'temporary directory')}", path],
                       check=False, site_config=True)
    if proc.returncode != 0:
        return (f"{LOCK_NAME} is untrusted: it is signed by no key in nix.conf "
                "trusted-public-keys")
    return None


def _derivers(paths: Sequence[str], store: str | None = None) -> dict[str, str]:
    """path -> its deriver as ``store`` (default: this machine's) records it ('' if none)."""
    if not paths:
        return {}
    proc = nix.run([*NIX_COMMAND, "path-info", "--json", *(["--store", store] if store else []),
                    *paths], check=False)
    try:
        entries = json.loads(proc.stdout or "[]")
    except ValueError:
        return {}
    return {str(e.get("path")): str(e.get("deriver") or "") for e in entries
            if isinstance(e, dict)} if isinstance(entries, list) else {}


@dataclass(frozen=True)
class ImportResult:
    modules: list[str]
    paths: list[str]
    modules_root: Path


def _locked(lock: Lock) -> list[tuple[LockedPackage | LockedEnvironment, str]]:
    """Every locked package and environment, with how messages name it."""
    return [*((p, f"{p.name} {p.version}") for p in lock.packages),
            *((e, f"environment {e.name}") for e in lock.environments)]


def check_bundle(directory: Path, lock: Lock, lock_content: bytes) -> list[str]:
    """Every reason this bundle must not be imported ([] when it is sound).

    The lock's own signature first (``lock_content``: the bytes ``lock``
    was parsed from), then the lock against the cache (each locked output
    present, its NarHash the locked one, made by the locked drv: the
    deriver this store has for it, or the one it would record from the
    bundle), then ``nix store verify`` on the whole closure: signatures
    against the system nix.conf's trusted keys (the daemon's; a key the user
    trusts in their own nix.conf does not count) and every NAR against its
    hash. Nothing is added to the store here.
    """
    unsigned = check_lock_signature(directory, lock_content, lock.store_dir)
    if unsigned:
        return [unsigned]
    problems = []
    for item, label in _locked(lock):
        for output, path in item.outputs.items():
            info = _narinfo(directory, path)
            if info is None or info.get("StorePath") != path:
                problems.append(f"{label} output {output} ({path}) is not in the bundle")
            elif info.get("NarHash") != item.nar_hash[output]:
                problems.append(f"{label} output {output}: the bundle holds "
                                f"{info.get('NarHash')}, the lock says {item.nar_hash[output]}")
    if problems:
        return problems
    outputs = lock.closure_roots()
    here = nix.valid_paths(outputs)
    derivers = {**_derivers([p for p in outputs if p not in here], f"file://{directory}"),
                **_derivers([p for p in outputs if p in here])}
    for item, label in _locked(lock):
        for output, path in item.outputs.items():
            if derivers.get(path) != item.drv:
                problems.append(f"{label} output {output} ({path}) is "
                                f"made by {derivers.get(path) or 'an unknown derivation'}, the "
                                f"lock says {item.drv}")
    if problems:
        return problems
    drvs = [drv for drv in lock.drvs() if _narinfo(directory, drv) is not None]
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
    directory = directory.absolute()
    if not (directory / "nix-cache-info").is_file() or not (directory / LOCK_NAME).is_file():
        raise UserError(f"{directory} is not a nixmod bundle (no nix-cache-info or {LOCK_NAME}); "
                        "make one with 'nixmod export LOCK DIR --key KEY'")
    _url_path(directory, "bundle directory")
    try:
        lock_content = (directory / LOCK_NAME).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read lock {directory / LOCK_NAME}: {exc}") from None
    lock = lock_from_bytes(lock_content, directory / LOCK_NAME)
    _system, store_dir = system_and_store()
    if lock.store_dir.rstrip("/") != store_dir.rstrip("/"):
        raise UserError(f"the bundle was made for store {lock.store_dir}, this site's store is "
                        f"{store_dir}; it cannot be imported here")
    for package in lock.packages:
        check_module_names(package.name, package.version)
    if modules_root is not None:
        root = Path(modules_root).absolute()
        gcroot_dir = gcroots.stack_gcroot_dir(root, lock.stack or root.name)
    else:
        root = Path(config.modules.root)
        gcroot_dir = gcroots.personal_gcroot_dir(Path(config.build.state_dir))
    # before anything is copied: a root in a directory another user can change is theirs to remove
    unsafe = refusal(gcroot_dir, "GC root directory", "--modules-root (or [build] state_dir)")
    if unsafe:
        raise unsafe
    problems = check_bundle(directory, lock, lock_content)
    if problems:
        raise OperationFailed(f"bundle {directory} refused, nothing imported: {problems[0]}"
                              + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                              + "; a receiving site imports only bundles signed by a key in "
                              "nix.conf trusted-public-keys, unchanged since")
    roots = lock.closure_roots()
    drvs = [drv for drv in lock.drvs() if _narinfo(directory, drv) is not None]
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
    ensure_dir(gcroot_dir, "GC root directory", "--modules-root (or [build] state_dir)")
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
    written += _import_environments(config, lock, root, gcroot_dir / gcroots.ENVIRONMENTS, progress)
    if modules_root is not None and lmod.spider_cache_dir(root).is_dir():
        lmod.update_spider_cache(root)
    return ImportResult(modules=written, paths=roots, modules_root=root)


def _import_environments(config: Config, lock: Lock, root: Path, gcroot_dir: Path,
                         progress: Progress | None) -> list[str]:
    """GC roots and modules of the lock's environments, as a build of each writes them: the
    next generation of its NAME in ``root`` (none when the newest one holds these outputs)."""
    from nixmod import environments   # startup: imports of packages only do not load it
    from nixmod.repro.envlock import module_request, up_to_date

    written = []
    for environment in lock.environments:
        if up_to_date(config, root, environment) is not None:
            continue
        tree = replace(config, modules=replace(config.modules, root=root))
        generation = max([g.generation for g in environments.generations(tree, environment.name)],
                         default=0) + 1
        ensure_dir(gcroot_dir, "GC root directory", "--modules-root (or [build] state_dir)")
        base = gcroots.gc_root(gcroot_dir, environment.name, str(generation))
        base.parent.mkdir(parents=True, exist_ok=True)
        for output, path in environment.outputs.items():
            nix.run(nix.realise_command(path, gcroots.gc_root_link(base, output)))
        request = module_request(environment, generation, pin_text(lock.channels[environment.channel]))
        info = lmod.write_module(lmod.environment_config(config), request, root=root)
        written.append(info.module)
        if progress:
            progress(f"{info.module}: imported ({request.store_path})")
    return written


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
