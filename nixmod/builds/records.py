"""The user's build records, opened for the core: the store, its GC roots, the ids users type.

``open_store`` is the one way in (the state dir checked, GC roots of the
old layout moved); ``check_state`` refuses an unusable state dir or
modules tree before any evaluation; ``tree_history`` is a stack's history;
``module_requests`` / ``modules_rewritten`` serve ``modules refresh``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nixmod import gcroots
from nixmod.builds.finish import module_request
from nixmod.builds.state import DONE_STATES, BuildRecord, BuildStore, notify
from nixmod.config import Config
from nixmod.errors import NixmodError, UserError
from nixmod.lmod import ModuleInfo, ModuleRequest, check_tree


def open_store(config: Config) -> BuildStore:
    """The user's build records (state dir checked first), GC roots in the current layout."""
    store = BuildStore(config.build.state_dir)
    try:
        migrate_gc_roots(store, store.default_gcroot_dir)
    except BaseException:
        store.close()
        raise
    return store


def check_state(config: Config, *, module_root: Path | None = None) -> None:
    """Refuse (one line) a state dir or modules tree that cannot be used, before any evaluation.

    Opening the store checks the state dir (who can change it, whether the
    records can be written, free space); ``lmod.check_tree`` checks the
    modules tree the builds will write (``module_root``, else ``[modules].root``)
    without creating it: a build refused later (a bad spec) leaves no empty tree.
    """
    with open_store(config):
        pass
    check_tree(Path(module_root) if module_root is not None else Path(config.modules.root),
               create=False)


def migrate_gc_roots(store: BuildStore, directory: Path) -> None:
    """Move the GC roots in ``directory`` (the state dir's, or a stack's) to the current layout.

    Runs whenever nixmod opens the store; costs one directory listing when
    there is nothing to move. The builds whose roots live there are read
    from the records. A failure is reported, not fatal: an old root is only
    removed after its new one is registered, so nothing becomes collectable.
    """
    if not gcroots.has_legacy_gc_roots(directory):
        return
    default = directory == store.default_gcroot_dir
    known = [module_request(r) for r in store.select(states=DONE_STATES)
             if (r.gcroot_dir is None and default) or r.gcroot_dir == str(directory)]
    try:
        gcroots.migrate_gc_roots(directory, known)
    except (NixmodError, OSError) as exc:
        notify(f"GC roots in {directory} could not all be moved to the new layout "
                      f"({exc}); the old ones are kept and it is tried again next time")


def tree_history(config: Config, module_root: Path, gcroot_dir: Path | None = None
                 ) -> dict[str, BuildRecord]:
    """drv -> the newest of this user's builds that wrote (or will write) into ``module_root``.

    A site stack's history: what it built before, what is still in flight and
    what failed with the very same drv. ``gcroot_dir``, the tree's GC roots,
    is moved to the current layout first (as the state dir's are on every open).
    """
    with open_store(config) as store:
        if gcroot_dir is not None:
            migrate_gc_roots(store, gcroot_dir)
        return {record.drv: record for record in store.select()    # oldest first: newest wins
                if record.module_root == str(module_root)}


def module_requests(config: Config) -> list[ModuleRequest]:
    """A ModuleRequest for every built/reused record of the user's own tree.

    ``modules refresh`` rewrites these into ``[modules].root``; builds that a
    site stack published into its own tree (``module_root`` set) belong to
    that stack and are left to ``stack build``; an environment's module is
    in ``[modules] env_prefix``'s tree, not this one.
    """
    with open_store(config) as store:
        return [module_request(r, config) for r in store.select(states=DONE_STATES)
                if not r.module_root and not r.environment]


def modules_rewritten(config: Config, written: Sequence[ModuleInfo]) -> None:
    """After ``modules refresh``: records whose module it (re)wrote get it, and lose a stale error.

    A build whose module could not be written (disk full, permissions)
    keeps ``built`` with an error; once ``modules refresh`` writes that
    module, the record says so instead of keeping the old failure.
    """
    with open_store(config) as store:
        by_key = {(info.name, info.version): info for info in written}
        for record in store.select(states=DONE_STATES):
            info = by_key.get((record.name, record.version))
            if record.module_root or record.environment or info is None or (info.outputs and
                                                      info.outputs != record.outputs):
                continue     # a stack's build, or the module is another build's of that version
            stale = record.error if record.error and "module was not written" in record.error \
                else None
            if record.module != info.module or stale:
                store.update(record, module=info.module, error=None if stale else record.error)


def named(store: BuildStore, ids: Sequence[int]) -> list[BuildRecord]:
    records = store.select(ids=ids)
    missing = sorted(set(ids) - {r.id for r in records})
    if missing:
        raise UserError(f"no build with id {missing[0]}; 'nixmod status' lists your builds")
    return records


def parse_ids(words: Sequence[str]) -> list[int]:
    """Build ids as typed by a user ('3', '#3'); one clear line when one is not an id."""
    ids = []
    for word in words:
        text = word.lstrip("#")
        if not text.isdigit():
            raise UserError(f"{word!r} is not a build id; ids are numbers, see 'nixmod status'")
        ids.append(int(text))
    return ids
