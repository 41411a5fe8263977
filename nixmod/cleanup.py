"""``nixmod gc``: remove the user's own modules (and GC roots) nobody has loaded for a while.

What goes: the user's own modules and environments whose last load (never
loaded: their build) is more than DAYS days ago, and the user's own GC roots
that no module names any more. What never goes: a default that
``.modulerc.lua`` names (a stack's, or one set in the user's tree), a module
loaded within DAYS, a module a stack published into the user's own tree (a
stack file without ``modules_root``; its GC root is the stack's), anything
outside the user's own tree and state dir (another user's roots, a stack's
modules_root). A removal is
``lmod.remove_module``'s (the modulefile, its shims, its GC roots), the
same as ``nixmod modules remove``.

Nothing is deleted from the store here: that stays the daemon's, at the
site's ``nix-store --gc``, which then frees what the plan says (``frees``
comes from ``nixmod.diskuse``, so it is exactly what ``du`` would say).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from nixmod import gcroots, lmod
from nixmod.config import Config
from nixmod.diskuse import Holdings, OwnedModule, holdings, iso_time, prefix_config, stack_of
from nixmod.errors import UserError
from nixmod.usage import last_loads, usage_dir, usage_file_name

DEFAULT_UNUSED_DAYS = 90
_DAY = 86400.0


@dataclass(frozen=True)
class Candidate:
    """One thing ``gc`` removes (or, with --dry-run, would remove)."""

    target: str          # module name, or a stray GC root's link
    kind: str            # "module", "environment" or "gc root"
    last_load: float | None
    last_used: float     # the last load, or the build when never loaded
    frees: int           # bytes the site's next collection frees once it alone is gone

    def as_json(self) -> dict:
        return {"target": self.target, "kind": self.kind, "last_load": iso_time(self.last_load),
                "last_used": iso_time(self.last_used), "frees": self.frees}


@dataclass(frozen=True)
class Spared:
    target: str
    reason: str

    def as_json(self) -> dict:
        return {"target": self.target, "reason": self.reason}


@dataclass
class GcPlan:
    unused_for_days: float
    candidates: list[Candidate] = field(default_factory=list)
    spared: list[Spared] = field(default_factory=list)
    frees: int = 0       # all candidates together (paths they share count once)
    removed: list[str] = field(default_factory=list)   # after apply: what really went

    def as_json(self) -> dict:
        return {"unused_for_days": self.unused_for_days,
                "candidates": [c.as_json() for c in self.candidates],
                "spared": [s.as_json() for s in self.spared], "frees": self.frees,
                "removed": self.removed, "store": STORE_NOTE}


#: said by every gc, in the output as in the JSON
STORE_NOTE = ("nixmod deletes nothing from the Nix store: the paths go at the site's next "
              "nix-store --gc, run by the daemon's administrators")


def check_days(days: float) -> float:
    if days != days or days < 0:   # NaN or negative
        raise UserError(f"--unused-for must be a number of days, 0 or more, got {days:g}")
    return days


def plan(config: Config, unused_for_days: float = DEFAULT_UNUSED_DAYS, *,
         now: float | None = None, held: Holdings | None = None) -> GcPlan:
    """What ``gc --unused-for DAYS`` removes, and what it spares and why. Changes nothing."""
    check_days(unused_for_days)
    now = time.time() if now is None else now
    held = held or holdings(config)
    result = GcPlan(unused_for_days=unused_for_days)

    def stale(when: float) -> bool:
        return unused_for_days == 0 or now - when > unused_for_days * _DAY

    for owned in held.modules:
        stack = stack_of(config, owned.info)
        if stack is not None:
            result.spared.append(Spared(owned.module, f"published by stack {stack} "
                                        "(nixmod stack build manages it)"))
        elif owned.info.default:
            result.spared.append(Spared(owned.module, "the default (.modulerc.lua)"))
        elif not stale(owned.last_used):
            what = "loaded" if owned.last_load is not None else "built"
            result.spared.append(Spared(owned.module, f"{what} within {unused_for_days:g} days"))
        else:
            result.candidates.append(Candidate(owned.module, owned.kind, owned.last_load,
                                               owned.last_used, held.only_size(owned.module)))
    for link in sorted(held.orphans):
        try:
            made = os.lstat(link).st_mtime
        except OSError:
            continue
        if stale(made):
            result.candidates.append(Candidate(link, "gc root", None, made, held.only_size(link)))
        else:
            result.spared.append(Spared(link, f"made within {unused_for_days:g} days"))
    result.frees = held.freed_by(c.target for c in result.candidates)
    return result


def apply(config: Config, gc_plan: GcPlan, *, held: Holdings) -> GcPlan:
    """Remove what ``gc_plan`` lists, and nothing else; one loaded since the plan stays."""
    loads = last_loads(config)
    owned = {m.module: m for m in held.modules}
    for candidate in gc_plan.candidates:
        if candidate.kind == "gc root":
            _remove_root(config, Path(candidate.target))
        else:
            module = owned[candidate.target]
            if loads.get(module.module, 0.0) > (candidate.last_load or 0.0):
                gc_plan.spared.append(Spared(module.module, "loaded while gc ran"))
                continue
            _remove_module(config, module)
        gc_plan.removed.append(candidate.target)
    return gc_plan


def _remove_module(config: Config, owned: OwnedModule) -> None:
    prefix = owned.module.split("/", 1)[0]
    lmod.remove_module(prefix_config(config, prefix), owned.info.name, owned.info.version)
    (usage_dir(config) / usage_file_name(owned.module)).unlink(missing_ok=True)


def _remove_root(config: Config, link: Path) -> None:
    """Unlink a stray root of the user's and the directories it leaves empty."""
    top = gcroots.personal_gcroot_dir(Path(config.build.state_dir))
    link.unlink(missing_ok=True)
    parent = link.parent
    while parent != top and top in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
