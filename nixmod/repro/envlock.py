"""Environments in a lock: locking them, building exactly them, writing their modules on import.

A locked environment (``lock.LockedEnvironment``) is its NAME, its channel,
its members (attr and version), its drv, outputs and NAR hashes. Building
it again is planning the same members in the same channel (``envplan``:
the channel's own ``withPackages`` / ``rWrapper.override`` / ``buildEnv``)
and comparing the drv with the lock's, as for a package; the NAME only
says which module it becomes (``<env_prefix>/NAME/<generation>``). A tree
whose newest generation of NAME already holds the locked outputs is left
as it is: building a lock twice makes no new generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nixmod import environments, lmod
from nixmod.builds.planning import Plan
from nixmod.config import Config
from nixmod.envplan import EnvGeneration, EnvPlan, environment_expression, role_of
from nixmod.errors import UserError
from nixmod.metadata import identity
from nixmod.packages import PackageVersion
from nixmod.repro.lockdoc import EnvironmentMember, LockedEnvironment, Mismatch

__all__ = ["newest_generations", "locked_environment", "environment_plan", "environment_plans",
           "up_to_date", "module_request"]


def _tree(config: Config, root: Path) -> Config:
    """``config`` whose ``[modules].root`` is ``root`` (a stack's tree, or the user's own)."""
    from dataclasses import replace

    return replace(config, modules=replace(config.modules, root=Path(root)))


def newest_generations(config: Config, root: Path, names: Sequence[str] | None = None,
                       *, missing_hint: str = "") -> list[EnvGeneration]:
    """The newest generation of each environment in tree ``root`` (of ``names``, if given).

    ``NAME/GEN`` in ``names`` picks that generation; a name with none is an error.
    """
    every = environments.generations(_tree(config, root))
    if names is None:
        newest: dict[str, EnvGeneration] = {}
        for generation in every:
            newest[generation.name] = generation   # sorted by NAME, then generation
        return list(newest.values())
    chosen = []
    for wanted in names:
        name, _, number = wanted.partition("/")
        found = [g for g in every if g.name == name and (not number or str(g.generation) == number)]
        if not found:
            raise UserError(f"no environment {wanted} under {root}; "
                            f"{missing_hint or 'nixmod env list shows yours'}")
        chosen.append(found[-1])
    return chosen


def locked_environment(generation: EnvGeneration, hashes: dict[str, str]) -> LockedEnvironment:
    """The lock's record of one generation (``hashes``: store path -> NAR hash)."""
    members = tuple(EnvironmentMember(name=str(p.get("name") or p.get("attr")),
                                      version=str(p.get("version") or ""),
                                      attr=str(p.get("attr") or p.get("name")))
                    for p in generation.packages)
    return LockedEnvironment(name=generation.name, channel=generation.channel, packages=members,
                             drv=generation.drv, outputs=dict(generation.outputs),
                             nar_hash={o: hashes[p] for o, p in generation.outputs.items()})


def environment_plan(locked: LockedEnvironment) -> EnvPlan:
    """The planner's EnvPlan of a locked environment: its members in its channel.

    The interpreter is the members' (``envplan.role_of``, the rule that planned
    them): a lock carries only what it needs to be evaluated again.
    """
    interpreter = next((role_of(m.attr).interpreter for m in locked.packages
                        if role_of(m.attr).interpreter), "") or None
    members = tuple(sorted((PackageVersion(name=m.name, version=m.version, channel=locked.channel,
                                           attr=m.attr) for m in locked.packages),
                           key=lambda member: member.attr))
    return EnvPlan(channel=locked.channel, interpreter=interpreter, members=members,
                   expression=environment_expression(interpreter, [m.attr for m in members]))


def up_to_date(config: Config, root: Path, locked: LockedEnvironment) -> EnvGeneration | None:
    """The newest generation of the locked NAME in ``root``, if it holds exactly the locked
    outputs and they are valid: nothing to build, no generation to add."""
    found = [g for g in environments.generations(_tree(config, root), locked.name)]
    newest = found[-1] if found else None
    if newest is not None and newest.valid and newest.outputs == locked.outputs:
        return newest
    return None


def environment_plans(config: Config, locked: Sequence[LockedEnvironment], root: Path,
                      progress: Any = None) -> tuple[list[Plan], list[Mismatch]]:
    """Each locked environment that ``root`` does not hold yet, evaluated again: its plan
    (the next generation) when the drv is the locked one, else a Mismatch naming it."""
    plans: list[Plan] = []
    mismatches: list[Mismatch] = []
    for environment in locked:
        if up_to_date(config, root, environment) is not None:
            if progress:
                progress(f"{config.modules.env_prefix}/{environment.name}: up to date "
                         f"({environment.outputs.get('out') or next(iter(environment.outputs.values()))})")
            continue
        [plan] = environments.forecast(config, environment.name, environment_plan(environment),
                                       progress=progress, module_root=Path(root))
        if plan.drv != environment.drv:
            mismatches.append(Mismatch(f"environment {environment.name}", "",
                                       environment.drv, plan.drv))
        else:
            plans.append(plan)
    return plans, mismatches


def module_request(locked: LockedEnvironment, generation: int, pin: str) -> lmod.ModuleRequest:
    """The module of a locked environment's ``generation`` as a build would write it."""
    members = [identity(PackageVersion(name=m.name, version=m.version, channel=locked.channel,
                                       attr=m.attr)) for m in locked.packages]
    listed = ", ".join(f"{m.attr} {m.version}" for m in locked.packages)
    return lmod.ModuleRequest(name=locked.name, version=str(generation), channel=locked.channel,
                              description=f"environment: {listed}", drv=locked.drv,
                              outputs=dict(locked.outputs), channel_pin=pin, packages=members,
                              interpreter=environment_plan(locked).interpreter or "")
