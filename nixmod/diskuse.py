"""What the store holds for whom (SPEC.md "Operations": ``du`` and ``du --site``).

Every size comes from the store's own data, never from walking files: the
narSize and references of each path (``nix path-info --json -r``, the data
``nix path-info -S`` sums), the closure those references span, and the GC
roots the daemon knows (``nix-store --gc --print-roots``, which an
unprivileged user may ask through the daemon). What no root holds is what
the daemon itself says the next collection deletes (``--print-dead``).

A module's "only it" size is the size of the paths in its closure that no
other root holds: not another of the user's modules, not another user's or
a stack's root, not a running process. That is what removing it frees at
the site's next ``nix-store --gc``, and no more: removing it deletes nothing
by itself.

The calls are batched (one ``path-info`` for every module's closure, one
``--requisites`` for every other root's), so 500 modules take a few
seconds (tests/bench/bench_diskuse.py). Environments are modules under
``[modules] env_prefix`` and are counted the same way.

This module only reads; ``nixmod.cleanup`` acts on what it finds.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from nixmod import gcroots, lmod, nix
from nixmod.config import Config
from nixmod.errors import OperationFailed, UserError
from nixmod.usage import last_loads

#: paths per command line: far below the argv limit (a store path is ~60 bytes)
_CHUNK = 1000
_NIX_COMMAND = ["--extra-experimental-features", "nix-command"]


# -- the user's modules ----------------------------------------------------------------------

@dataclass(frozen=True)
class OwnedModule:
    """One of the user's own modules or environments, with when it was last used."""

    info: lmod.ModuleInfo
    kind: str                 # "module" or "environment"
    built: float              # its build (GC root's time, else the modulefile's)
    last_load: float | None   # from <state_dir>/usage; None: never loaded (since it was recorded)

    @property
    def module(self) -> str:
        return self.info.module

    @property
    def last_used(self) -> float:
        """The last load, or the build for a module never loaded: what ``gc`` ages by."""
        return self.last_load if self.last_load is not None else self.built


def prefix_config(config: Config, prefix: str) -> Config:
    """``config`` with modules under ``prefix`` (the env_prefix tree read as modules)."""
    return replace(config, modules=replace(config.modules, prefix=prefix))


def owned_modules(config: Config) -> list[OwnedModule]:
    """The user's modules (``[modules] prefix``) and environments (``env_prefix``)."""
    loads = last_loads(config)
    owned = []
    for kind, prefix in (("module", config.modules.prefix),
                         ("environment", config.modules.env_prefix)):
        if kind == "environment" and prefix == config.modules.prefix:
            continue
        tree = prefix_config(config, prefix)
        for info in lmod.list_modules(tree):
            owned.append(OwnedModule(info=info, kind=kind, last_load=loads.get(info.module),
                                     built=_built(lmod.own_gcroot_dir(tree), info)))
    return owned


def _built(roots_dir: Path, info: lmod.ModuleInfo) -> float:
    """When a module was built: its GC root was made then (a rewrite by ``modules
    refresh`` keeps it), else the modulefile's own time."""
    try:
        return os.lstat(gcroots.gc_root(roots_dir, info.name, info.version)).st_mtime
    except (OSError, UserError):
        try:
            return info.path.stat().st_mtime
        except OSError:
            return 0.0


def stack_of(config: Config, info: lmod.ModuleInfo) -> str | None:
    """The stack that published ``info`` into the user's own tree (a stack file without
    ``modules_root`` publishes into ``[modules] root``), from its GC root
    (``lmod.stack_gcroot_dir``); None for the user's own build."""
    stacks = Path(config.modules.root).parent / "gcroots"
    try:
        for found in stacks.glob(f"*/{info.name}/{info.version}/result"):
            if found.is_symlink():
                return found.parent.parent.parent.name
    except OSError:
        return None
    return None


def own_root_links(config: Config, info: lmod.ModuleInfo) -> set[str]:
    """The GC root links the build of ``info`` has in the user's state dir (both spellings:
    as given to the daemon and with symlinks resolved)."""
    try:
        tree = lmod.environment_config(config) \
            if info.module.startswith(f"{config.modules.env_prefix}/") else config
        root = gcroots.gc_root(lmod.own_gcroot_dir(tree), info.name, info.version)
    except UserError:
        return set()
    links = set()
    for link in gcroots.gc_root_links(root, info.outputs):
        links |= {str(link), os.path.join(os.path.realpath(link.parent), link.name)}
    return links


# -- the store's data -----------------------------------------------------------------------

@dataclass
class StoreGraph:
    """narSize and references of a set of store paths (closed under references)."""

    size: dict[str, int] = field(default_factory=dict)
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def closure(self, paths: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = [p for p in paths if p in self.size]
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            stack.extend(r for r in self.refs.get(path, ()) if r not in seen)
        return seen

    def total(self, paths: Iterable[str]) -> int:
        return sum(self.size.get(p, 0) for p in paths)


def store_graph(paths: Sequence[str] | None) -> StoreGraph:
    """The closure of ``paths`` (or, None, of the whole store) with sizes and references,
    in one ``nix path-info --json`` call per thousand paths. Invalid paths are skipped."""
    graph = StoreGraph()
    if paths is None:
        _add_path_info(graph, ["--all"])
        return graph
    paths = sorted(set(paths))
    for start in range(0, len(paths), _CHUNK):
        valid = sorted(nix.valid_paths(paths[start:start + _CHUNK]))
        if valid:
            _add_path_info(graph, ["-r", *valid])
    return graph


def _add_path_info(graph: StoreGraph, args: list[str]) -> None:
    proc = nix.run(["nix", *_NIX_COMMAND, "path-info", "--json", *args], check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"nix path-info failed: {nix.last_lines(proc.stderr)}")
    for item in json.loads(proc.stdout or "[]"):
        if "path" in item and item.get("valid", True):
            graph.size[item["path"]] = int(item.get("narSize") or 0)
            graph.refs[item["path"]] = tuple(r for r in item.get("references") or ()
                                             if r != item["path"])


def requisites(paths: Sequence[str]) -> set[str]:
    """The union of the closures of ``paths`` (membership only: no sizes needed)."""
    found: set[str] = set()
    paths = sorted(set(paths))
    for start in range(0, len(paths), _CHUNK):
        valid = sorted(nix.valid_paths(paths[start:start + _CHUNK]))
        if valid:
            found |= set(nix.run(["nix-store", "-q", "--requisites", *valid]).stdout.split())
    return found


@dataclass(frozen=True)
class GcRoot:
    link: str     # where the root is ("{censored}" or "/proc/…" for a process's)
    target: str   # the store path it holds


@dataclass
class RootList:
    roots: list[GcRoot]
    complete: bool     # the daemon listed every root; False: only what this user can read
    note: str = ""


def gc_roots() -> RootList:
    """Every GC root, as the daemon lists them to any user (``--print-roots``).

    Where that is refused, the roots under /nix/var/nix/{gcroots,profiles}
    this user can read; roots of running processes and of unreadable
    directories then need root to see, and the note says so.
    """
    proc = nix.run(["nix-store", "--gc", "--print-roots"], check=False)
    if proc.returncode == 0:
        roots = []
        for line in proc.stdout.splitlines():
            link, sep, target = line.rpartition(" -> ")
            if sep and target.startswith("/"):
                roots.append(GcRoot(link=link, target=target))
        return RootList(roots=roots, complete=True)
    roots, unreadable = _walk_roots()
    return RootList(roots=roots, complete=False, note=(
        f"nix-store --gc --print-roots was refused ({nix.last_lines(proc.stderr, 1)}): shown are "
        "the roots this user can read under /nix/var/nix; roots of running processes"
        + (f" and under {len(unreadable)} unreadable directories" if unreadable else "")
        + " need root to see"))


def _walk_roots(base: Path = Path("/nix/var/nix")) -> tuple[list[GcRoot], list[str]]:
    roots: list[GcRoot] = []
    unreadable: list[str] = []
    store = "/nix/store/"
    for top in (base / "gcroots", base / "profiles"):
        for directory, dirnames, filenames in os.walk(top, onerror=lambda e: unreadable.append(
                str(e.filename))):
            for name in dirnames + filenames:
                link = os.path.join(directory, name)
                if not os.path.islink(link):
                    continue
                target = os.path.realpath(link)
                if target.startswith(store):
                    # an auto/ root points at the user's own link: name that one
                    first = os.readlink(link)
                    holder = first if os.path.isabs(first) and not first.startswith(store) else link
                    roots.append(GcRoot(link=holder,
                                        target=store + target[len(store):].split("/", 1)[0]))
    return roots, unreadable


# -- the user's report ------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleSize:
    module: str
    kind: str
    store_path: str
    valid: bool
    default: bool
    closure_size: int    # bytes in its closure
    only_size: int       # bytes only it keeps alive: what removing it frees
    last_load: float | None
    built: float

    def as_json(self) -> dict:
        return {"module": self.module, "kind": self.kind, "store_path": self.store_path,
                "valid": self.valid, "default": self.default, "closure_size": self.closure_size,
                "only_size": self.only_size, "last_load": iso_time(self.last_load),
                "built": iso_time(self.built)}


def orphan_roots(config: Config, modules: Sequence[OwnedModule]) -> dict[str, str]:
    """link -> store path of the user's own GC roots that no module of theirs names
    (a module removed by hand, roots of the old flat layout kept under ``.legacy``)."""
    named = set().union(*(own_root_links(config, m.info) for m in modules)) if modules else set()
    top = gcroots.personal_gcroot_dir(Path(config.build.state_dir))
    found: dict[str, str] = {}
    for directory, _dirs, files in os.walk(top):
        for name in files + _dirs:
            link = os.path.join(directory, name)
            if os.path.islink(link) and link not in named:
                target = os.readlink(link)
                if target.startswith("/"):
                    found[link] = target
    return found


@dataclass
class Holdings:
    """Which of the user's modules (and stray roots) hold which paths, and what
    everything else holds."""

    modules: list[OwnedModule]
    orphans: dict[str, str]                # the user's GC roots that no module names
    graph: StoreGraph
    closures: dict[str, set[str]]          # module (or stray root's link) -> its closure
    external: set[str]                     # held by a root that is none of the above
    roots: RootList
    _holders: Counter[str] | None = None   # path -> how many of ``closures`` hold it

    def only_size(self, key: str) -> int:
        """Bytes only ``key`` keeps alive (= ``freed_by([key])``, in time linear in its closure)."""
        if self._holders is None:
            self._holders = Counter()
            for closure in self.closures.values():
                self._holders.update(closure)
        holders = self._holders
        return self.graph.total(p for p in self.closures[key]
                                if holders[p] == 1 and p not in self.external)

    def freed_by(self, removed: Iterable[str]) -> int:
        """Bytes the next collection frees once ``removed`` (modules, stray roots) are gone."""
        removed = set(removed)
        gone = set().union(*(self.closures[m] for m in removed)) if removed else set()
        kept = set().union(*(c for m, c in self.closures.items() if m not in removed))
        return self.graph.total(gone - kept - self.external)


def holdings(config: Config) -> Holdings:
    modules = owned_modules(config)
    orphans = orphan_roots(config, modules)
    own_links = set(orphans).union(*(own_root_links(config, m.info) for m in modules))
    graph = store_graph([p for m in modules for p in m.info.outputs.values()] + list(orphans.values()))
    closures = {m.module: graph.closure(m.info.outputs.values()) for m in modules}
    closures.update({link: graph.closure([target]) for link, target in orphans.items()})
    roots = gc_roots()
    others = [r.target for r in roots.roots if r.link not in own_links]
    return Holdings(modules=modules, orphans=orphans, graph=graph, closures=closures,
                    external=requisites(others), roots=roots)


@dataclass
class DiskReport:
    modules: list[ModuleSize]
    total_size: int      # the union of every closure
    only_size: int       # what removing every module frees
    notes: list[str]

    def as_json(self) -> dict:
        return {"modules": [m.as_json() for m in self.modules],
                "total": {"closure_size": self.total_size, "only_size": self.only_size},
                "notes": self.notes}


def user_report(config: Config) -> DiskReport:
    """``nixmod du``: each of the user's modules and environments, and the totals."""
    held = holdings(config)
    sizes: list[ModuleSize] = []
    for owned in held.modules:
        sizes.append(ModuleSize(module=owned.module, kind=owned.kind,
                                store_path=owned.info.store_path, valid=owned.info.valid,
                                default=owned.info.default,
                                closure_size=held.graph.total(held.closures[owned.module]),
                                only_size=held.only_size(owned.module), last_load=owned.last_load,
                                built=owned.built))
    for link, target in sorted(held.orphans.items()):
        sizes.append(ModuleSize(module=link, kind="gc root", store_path=target,
                                valid=target in held.graph.size, default=False,
                                closure_size=held.graph.total(held.closures[link]),
                                only_size=held.only_size(link), last_load=None,
                                built=_lstat_time(link)))
    union = set().union(*held.closures.values()) if held.closures else set()
    notes = ["sizes are what the next site collection (nix-store --gc) frees; removing a "
             "module deletes nothing from the store by itself"]
    if held.roots.note:
        notes.append(held.roots.note)
    return DiskReport(modules=sizes, total_size=held.graph.total(union),
                      only_size=held.graph.total(union - held.external), notes=notes)


def _lstat_time(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


# -- the site's report (staff) --------------------------------------------------------------

@dataclass(frozen=True)
class RootGroup:
    kind: str        # "user", "stack", "process", "unknown"
    name: str
    roots: int
    alive_size: int  # its roots' closures
    only_size: int   # held by no other group

    def as_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "roots": self.roots,
                "alive_size": self.alive_size, "only_size": self.only_size}


@dataclass
class SiteReport:
    total_size: int
    paths: int
    groups: list[RootGroup]
    dead_size: int
    dead_paths: int
    notes: list[str]

    def as_json(self) -> dict:
        return {"total_size": self.total_size, "paths": self.paths,
                "groups": [g.as_json() for g in self.groups],
                "dead": {"size": self.dead_size, "paths": self.dead_paths},
                "notes": self.notes}


_STACK_ROOT = re.compile(r"(.*)/gcroots/([^/]+)/[^/]+/[^/]+/result[^/]*$")


def classify_root(link: str) -> tuple[str, str]:
    """(kind, name) of the owner of one root: a stack (by the layout
    ``lmod.stack_gcroot_dir`` gives), a user (the link's owner), a process."""
    if link.startswith("/proc/") or link.startswith("{"):
        return "process", "running processes"
    match = _STACK_ROOT.match(link)
    if match and not os.path.exists(os.path.join(match.group(1), "builds.db")):
        return "stack", match.group(2)
    try:
        uid = os.lstat(link).st_uid
    except OSError:
        return "unknown", "not readable (needs root)"
    import pwd

    try:
        return "user", pwd.getpwuid(uid).pw_name
    except KeyError:
        return "user", f"uid {uid}"


def site_report() -> SiteReport:
    """``nixmod du --site``: the store's total, what each user's and stack's roots keep
    alive, and what no root holds (the daemon's own ``--print-dead``)."""
    graph = store_graph(None)
    listed = gc_roots()
    groups: dict[tuple[str, str], list[str]] = {}
    for root in listed.roots:
        groups.setdefault(classify_root(root.link), []).append(root.target)
    closures = {key: graph.closure(targets) for key, targets in groups.items()}
    counts: Counter[str] = Counter()
    for closure in closures.values():
        counts.update(closure)
    result = [RootGroup(kind=kind, name=name, roots=len(groups[(kind, name)]),
                        alive_size=graph.total(closure),
                        only_size=graph.total(p for p in closure if counts[p] == 1))
              for (kind, name), closure in closures.items()]
    result.sort(key=lambda g: (-g.alive_size, g.kind, g.name))
    notes = []
    proc = nix.run(["nix-store", "--gc", "--print-dead"], check=False)
    if proc.returncode == 0:
        dead = [p for p in proc.stdout.split() if p in graph.size]
    else:
        alive = set().union(*closures.values()) if closures else set()
        dead = [p for p in graph.size if p not in alive]
        notes.append(f"nix-store --gc --print-dead was refused ({nix.last_lines(proc.stderr, 1)}): "
                     "the dead size is estimated from the roots shown (derivations kept by "
                     "keep-derivations count as dead)")
    if listed.note:
        notes.append(listed.note)
    if any(g.kind == "unknown" for g in result):
        notes.append("some roots are in directories this user cannot read: their owner "
                     "needs root to see (run as root for the full picture)")
    notes.append("nothing is deleted: the site's nix-store --gc frees the dead paths")
    return SiteReport(total_size=graph.total(graph.size), paths=len(graph.size), groups=result,
                      dead_size=graph.total(dead), dead_paths=len(dead), notes=notes)


# -- for the faces ------------------------------------------------------------------------------

def iso_time(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB' (what du -h would say, in binary units)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def age(when: float | None, now: float | None = None) -> str:
    """'never', 'today', '3 days ago'."""
    if when is None:
        return "never"
    days = int(((now or time.time()) - when) // 86400)
    return "today" if days <= 0 else f"{days} day{'s' if days != 1 else ''} ago"
