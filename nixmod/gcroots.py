"""GC roots: what keeps a build's store paths alive, named in one scheme.

Roots follow one scheme (``gc_root``): ``<gcroots>/<NAME>/<version>/result``
for output ``out`` and ``.../result-<output>`` for the others (nix-build's
names), a directory per NAME and version because neither can contain
``/``: the old flat ``<NAME>-<version>`` let ``gx`` 1-2 and ``gx-1`` 2
share one root, and the collector then deleted the other output.
``migrate_gc_roots`` moves roots of the old layout.

The builds register roots (``nix-store --realise --add-root``), modules and
stacks remove them, imports add them again: all name them here. This
module knows nothing of modulefiles, so the record store can say where a
user's roots live without importing Lmod's code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Protocol

from nixmod import nix
from nixmod.errors import UserError
from nixmod.names import validate_component

__all__ = ["gc_root", "personal_gcroot_dir", "environment_gcroot_dir", "ENVIRONMENTS", "stack_gcroot_dir", "gc_root_link", "gc_root_links",
           "remove_gc_roots", "has_legacy_gc_roots", "migrate_gc_roots", "LEGACY_ROOTS"]


class RootedBuild(Protocol):
    """What ``migrate_gc_roots`` reads of a build (an ``lmod.ModuleRequest`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def outputs(self) -> Mapping[str, str]: ...


def gc_root(directory: Path, name: str, version: str) -> Path:
    """The ``--add-root`` path of one build in ``directory``: ``<NAME>/<version>/result``.

    The one place the scheme lives (builds register roots with it, modules
    and stacks remove them with it, ``migrate_gc_roots`` moves old ones to
    it). NAME and version are single path components (``validate_component``),
    so two builds never share a root, whatever their names.
    """
    return Path(directory) / validate_component(name, "name") / \
        validate_component(version, "version") / "result"


def personal_gcroot_dir(state_dir: Path) -> Path:
    """Where the GC roots of a user's own builds live: ``<state_dir>/gcroots``."""
    return Path(state_dir) / "gcroots"


#: the directory of a user's environments' roots inside their GC root dir: NAME never starts
#: with '.', so environment ``sci`` generation 1 never shares a root with package ``sci`` 1
ENVIRONMENTS = ".environments"


def environment_gcroot_dir(state_dir: Path) -> Path:
    """Where the GC roots of a user's environments live: ``<state_dir>/gcroots/.environments``."""
    return personal_gcroot_dir(state_dir) / ENVIRONMENTS


def stack_gcroot_dir(modules_root: Path, stack: str) -> Path:
    """Where the GC roots of what a stack published into ``modules_root`` live.

    ``<modules_root>/../gcroots/<stack>``: one directory staff can list to see
    what the stack keeps alive, beside the tree (not in it, so that Lmod never
    walks store symlinks). Builds, stack removal and imports all name it here.
    """
    return Path(modules_root).parent / "gcroots" / stack


def gc_root_link(root: Path, output: str) -> Path:
    """The link ``nix-store --realise DRV --add-root ROOT`` makes for one output:
    ROOT for ``out``, ``ROOT-<output>`` for the others."""
    return root if output == "out" else root.with_name(f"{root.name}-{output}")


def gc_root_links(root: Path, outputs: Iterable[str]) -> list[Path]:
    """Every link a build's roots may have (``out`` always, whether it has one or not)."""
    return [gc_root_link(root, output) for output in dict.fromkeys(["out", *outputs])]


def remove_gc_roots(directory: Path, name: str, version: str, outputs: Iterable[str]) -> None:
    """Unlink one build's roots in ``directory`` and the directories the scheme made for them."""
    root = gc_root(directory, name, version)
    for link in gc_root_links(root, outputs):
        link.unlink(missing_ok=True)
    for empty in (root.parent, root.parent.parent):
        try:
            empty.rmdir()
        except OSError:
            break   # not empty: another version (or output) of NAME keeps it


def has_legacy_gc_roots(directory: Path) -> bool:
    """Does ``directory`` hold roots of the old flat layout (symlinks directly in it)?"""
    try:
        return any(entry.is_symlink() for entry in os.scandir(directory))
    except OSError:
        return False


def _legacy_gc_root(directory: Path, name: str, version: str) -> Path:
    """Where roots were before ``gc_root``'s scheme: ``<NAME>-<version>``, flat (could collide)."""
    return Path(directory) / re.sub(r"[^A-Za-z0-9._+-]", "_", f"{name}-{version}").lstrip(".")


#: where ``migrate_gc_roots`` keeps old roots it cannot attribute to a build (NAME never
#: starts with '.', so no build's directory is called that)
LEGACY_ROOTS = ".legacy"


def migrate_gc_roots(directory: Path, known: Iterable[RootedBuild]) -> list[Path]:
    """Move GC roots of the old flat layout in ``directory`` to ``gc_root``'s; the new links.

    ``known`` are the builds whose roots live in ``directory`` (from the
    build records). Each old link that points at one of a build's outputs
    is registered again at its new place (``nix-store --add-root``: a
    renamed link would leave the daemon's indirect root pointing nowhere)
    and only then removed. A build that lost its root to a collision gets
    one again if its output is still valid. Old links that no build
    explains are moved under ``.legacy/`` (still registered): nothing that
    was alive before is left to the collector.
    """
    directory = Path(directory)
    try:
        old = {entry.name: Path(entry.path) for entry in os.scandir(directory)
               if entry.is_symlink()}
    except FileNotFoundError:
        return []
    if not old:
        return []
    known = [request for request in known if request.outputs]
    paths = sorted({p for request in known for p in request.outputs.values()})
    valid = nix.valid_paths(paths) if paths else set()
    made: list[Path] = []
    for request in known:
        legacy = _legacy_gc_root(directory, request.name, request.version)
        try:
            new_root = gc_root(directory, request.name, request.version)
        except UserError:
            continue   # a name no module can have (recorded before names were checked)
        for output, new_link in zip(dict.fromkeys(["out", *request.outputs]),
                                    gc_root_links(new_root, request.outputs)):
            target = request.outputs.get(output)
            old_link = legacy if output == "out" else legacy.with_name(f"{legacy.name}-{output}")
            if target is None or target not in valid:
                continue
            claimed = old_link.name in old and os.readlink(old_link) == target
            if not new_link.is_symlink():
                _add_root(new_link, target)
                made.append(new_link)
            if claimed:
                old_link.unlink()
                del old[old_link.name]
    for name, link in old.items():
        target = os.readlink(link)
        if os.path.exists(target):
            _add_root(directory / LEGACY_ROOTS / name, target)
        link.unlink()
    return made


def _add_root(link: Path, store_path: str) -> None:
    """Register ``link`` as an indirect GC root of a valid ``store_path`` (nothing is built)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    nix.run(nix.realise_command(store_path, link))
