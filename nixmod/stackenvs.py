"""The environments of a site stack (``[[environment]]``): where they live, what is published.

A stack's environment is built as a user's is (``environments.forecast``,
then ``builds.submit``, in the same submission as the stack's packages)
into the stack's own tree: ``<modules_root>/<env_prefix>/NAME/<generation>.lua``,
rooted in ``<gcroot_dir>/.environments``. A ``stack build`` whose file
gives an environment the same packages again finds its newest generation
up to date and submits nothing; other packages make the next generation
(the earlier ones stay loadable). ``default = true`` makes the generation
this file describes what ``module load <env_prefix>/NAME`` loads, even
after a newer one appears; without it Lmod's rule (the highest generation)
holds. ``stacks`` decides per item (up to date, in flight, failed earlier);
this module knows the tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from nixmod import environments, gcroots, lmod
from nixmod.builds.planning import Plan
from nixmod.config import Config
from nixmod.envplan import EnvPlan, environment_expression
from nixmod.lmod import ModuleInfo
from nixmod.repro.envlock import environment_plan
from nixmod.repro.lockdoc import Lock, LockMismatch, Mismatch
from nixmod.stackfile import EnvironmentEntry, ResolvedEnvironment, Stack

Progress = Callable[[str], None]


def tree_config(config: Config, stack: Stack) -> Config:
    """``config`` whose module tree is the stack's environments' (``lmod.environment_config``)."""
    return lmod.environment_config(replace(config, modules=replace(config.modules, root=stack.modules_root)))


def gcroot_dir(stack: Stack) -> Path:
    """Where the GC roots of the stack's environments live (``builds.submit`` puts them there)."""
    return stack.gcroot_dir / gcroots.ENVIRONMENTS


def env_plan(resolved: ResolvedEnvironment) -> EnvPlan:
    """The planner's EnvPlan of a checked ``[[environment]]`` (``stack check`` planned it)."""
    interpreter = resolved.interpreter or None
    members = tuple(resolved.versions)
    return EnvPlan(channel=resolved.channel, interpreter=interpreter, members=members,
                   expression=environment_expression(interpreter, [m.attr for m in members]))


def published(config: Config, stack: Stack) -> dict[str, list[ModuleInfo]]:
    """NAME -> the generations the stack's tree holds, oldest first."""
    found: dict[str, list[ModuleInfo]] = {}
    for info in lmod.list_modules(tree_config(config, stack)):
        if info.version.isdigit():
            found.setdefault(info.name, []).append(info)
    for generations in found.values():
        generations.sort(key=lambda info: int(info.version))
    return found


@dataclass
class EnvForecast:
    """One ``[[environment]]``: the plan of its next generation and the newest one published."""

    resolved: ResolvedEnvironment
    plan: Plan
    newest: ModuleInfo | None

    @property
    def name(self) -> str:
        return self.resolved.entry.name


def forecasts(config: Config, stack: Stack, resolved: Sequence[ResolvedEnvironment],
              progress: Progress | None = None) -> list[EnvForecast]:
    """Each environment instantiated and decided (reuse / join / build), nothing submitted."""
    generations = published(config, stack)
    found = []
    for environment in resolved:
        name = environment.entry.name
        [plan] = environments.forecast(config, name, env_plan(environment), progress=progress,
                                       module_root=stack.modules_root)
        newest = generations.get(name, [None])[-1]
        found.append(EnvForecast(resolved=environment,
                                 plan=replace(plan, default=environment.entry.default), newest=newest))
    return found


def keep_default(config: Config, stack: Stack, forecast: EnvForecast, generation: str) -> bool:
    """Make ``generation`` the default of an environment marked ``default`` (True if changed)."""
    if not forecast.resolved.entry.default:
        return False
    if forecast.newest is not None and forecast.newest.version == generation and forecast.newest.default:
        return False
    lmod.set_default(tree_config(config, stack), forecast.name, generation)
    return True


def clear_defaults(config: Config, stack: Stack, names: Sequence[str]) -> list[str]:
    """Drop the defaults of environments ``names`` (the file no longer marks them)."""
    tree = tree_config(config, stack)
    return [name for name in names if lmod.clear_default(tree, name)]


def remove_unlisted(config: Config, stack: Stack, keep: set[str],
                    progress: Progress | None = None) -> list[str]:
    """Remove every generation of the environments the file no longer names.

    Only what this stack published is touched: generations with a GC root in
    the stack's own environments' root directory, as for packages.
    """
    removed = []
    tree = tree_config(config, stack)
    for name, generations in published(config, stack).items():
        if name in keep:
            continue
        for info in generations:
            targets = set(info.outputs.values())
            roots = [link for link in gcroots.gc_root_links(
                         gcroots.gc_root(gcroot_dir(stack), info.name, info.version), info.outputs)
                     if link.is_symlink() and os.readlink(link) in targets]
            if not roots:
                continue
            lmod.remove_module(tree, info.name, info.version, gcroot_dir=gcroot_dir(stack))
            removed.append(info.module)
            if progress:
                progress(f"{info.module}: removed (no longer in {stack.file.name})")
    return removed


def from_lock(stack: Stack, lock: Lock) -> list[ResolvedEnvironment]:
    """The lock's environments as the stack file's would resolve (``stack build --lock``):
    the lock's members and channel, the file's ``default``."""
    defaults = {entry.name for entry in stack.environments if entry.default}
    found = []
    for locked in lock.environments:
        plan = environment_plan(locked)
        entry = EnvironmentEntry(name=locked.name, packages=tuple(plan.attrs), channel=locked.channel,
                                 default=locked.name in defaults)
        found.append(ResolvedEnvironment(entry=entry, versions=list(plan.members), channel=plan.channel,
                                         interpreter=plan.interpreter or ""))
    return found


def check_locked(lock: Lock, planned: Sequence[EnvForecast]) -> None:
    """LockMismatch (exit 2, nothing submitted) naming each environment whose drv is not the lock's."""
    locked = {environment.name: environment.drv for environment in lock.environments}
    mismatches = [Mismatch(f"environment {f.name}", "", locked[f.name], f.plan.drv)
                  for f in planned if f.name in locked and locked[f.name] != f.plan.drv]
    if mismatches:
        raise LockMismatch(mismatches)
