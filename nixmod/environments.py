"""Environments made, changed, listed and removed (SPEC.md "Environments").

``envplan`` decides what an environment is; here it is instantiated
(``nix.instantiate_expression``) and handed to the same builds machinery as
a package (``builds.planning.plan_derivations``, ``builds.submit``): reuse,
join or build, throttle, every backend. The record's NAME is the
environment's, its version the generation; ``builds.finish`` writes the
module into ``<root>/<env_prefix>/NAME/<generation>.lua``. The generations
are read back from that tree (the modulefile's JSON request), so what
``env list`` says is what ``module load`` finds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from nixmod import envplan, lmod, nix
from nixmod.builds.planning import Plan, plan_derivations
from nixmod.builds.records import check_state, open_store
from nixmod.builds.state import IN_FLIGHT_STATES, BuildRecord
from nixmod.builds.submitting import submit
from nixmod.config import Config
from nixmod.envplan import EnvGeneration, EnvPlan, Lookup
from nixmod.errors import UserError
from nixmod.names import validate_component
from nixmod.packages import PackageVersion

Progress = Callable[[str], None]

__all__ = ["generations", "create", "change", "remove", "check_name", "check_new_name", "forecast"]


def check_name(name: str) -> str:
    """An environment NAME is a module name part and a path component: the module name rules."""
    try:
        return validate_component(name, "name")
    except UserError as exc:
        raise UserError(f"environment {exc}") from None


def generations(config: Config, name: str | None = None) -> list[EnvGeneration]:
    """Every generation of the user's environments (or of ``name``), by NAME then number."""
    tree = lmod.environment_config(config)
    found = []
    for info in lmod.list_modules(tree):
        number = envplan.generation_number(info.version)
        request = lmod.read_request(info.path)
        if number is None or request is None or not request.is_environment:
            continue
        if name is not None and info.name != name:
            continue
        found.append(EnvGeneration(
            name=info.name, generation=number, channel=request.channel,
            channel_pin=request.channel_pin, interpreter=request.interpreter,
            packages=list(request.packages), drv=request.drv, outputs=dict(request.outputs),
            module=info.module, valid=info.valid))
    return sorted(found, key=lambda g: (g.name, g.generation))


def _in_flight(config: Config, name: str) -> list[int]:
    """The generations of ``name`` being built now (their modules are not written yet)."""
    with open_store(config) as store:
        return [int(r.version) for r in store.select(states=IN_FLIGHT_STATES)
                if r.environment and r.name == name and r.version.isdigit()]


def check_new_name(config: Config, name: str) -> None:
    """Refuse (UserError) a NAME that cannot be a new environment: not a module name, or one
    the user has (on disk, or its first generation still being built). ``create`` and the
    TUI's `e` ask this one question."""
    check_name(name)
    if generations(config, name) or _in_flight(config, name):
        raise UserError(f"environment {name} exists; 'nixmod env add {name} SPEC...' makes its "
                        f"next generation, 'nixmod env remove {name}' removes it")


def _next_generation(config: Config, name: str) -> int:
    """One past the newest generation on disk or in flight (a build not finished yet)."""
    numbers = [g.generation for g in generations(config, name)] + _in_flight(config, name)
    return max(numbers, default=0) + 1


def create(config: Config, catalog: Lookup, name: str, specs: Sequence[str], *,
           channel: str | None = None, backend: str | None = None,
           progress: Progress | None = None) -> tuple[EnvPlan, list[BuildRecord]]:
    """``env create NAME SPEC…``: generation 1 of a new environment, planned and submitted."""
    check_new_name(config, name)
    plan = envplan.plan_environment(catalog, specs, [c.name for c in config.channels], channel)
    return plan, _submit(config, name, plan, backend=backend, progress=progress)


def change(config: Config, catalog: Lookup, name: str, *, add: Sequence[str] = (),
           drop: Sequence[str] = (), backend: str | None = None,
           progress: Progress | None = None) -> tuple[EnvPlan, list[BuildRecord]]:
    """``env add`` / ``env drop``: the next generation, from the newest one's packages."""
    check_name(name)
    existing = generations(config, name)
    if not existing:
        raise UserError(f"no environment {name}; 'nixmod env list' shows yours, "
                        f"'nixmod env create {name} SPEC...' makes one")
    newest = existing[-1]
    attrs = [str(p.get("attr") or p.get("name")) for p in newest.packages]
    for word in drop:
        matching = [a for a in attrs if word in (a, a.rsplit(".", 1)[-1])]
        if not matching:
            raise UserError(f"environment {name} has no package {word!r}; it has: "
                            f"{', '.join(attrs)}")
        attrs = [a for a in attrs if a not in matching]
    if not attrs and not add:
        raise UserError(f"dropping {' '.join(drop)} leaves environment {name} empty; "
                        f"'nixmod env remove {name}' removes it")
    plan = envplan.plan_environment(catalog, [*attrs, *add], [c.name for c in config.channels],
                                    newest.channel)
    return plan, _submit(config, name, plan, backend=backend, progress=progress)


def _submit(config: Config, name: str, plan: EnvPlan, *, backend: str | None,
            progress: Progress | None) -> list[BuildRecord]:
    """Instantiate the plan's expression and build it as a package is built."""
    return submit(config, forecast(config, name, plan, backend=backend, progress=progress),
                  backend=backend, progress=progress)


def forecast(config: Config, name: str, plan: EnvPlan, *, backend: str | None = None,
             progress: Progress | None = None, module_root: Path | None = None) -> list[Plan]:
    """Environment ``name`` of ``plan`` as its next generation: instantiated and decided
    (reuse / join / build), nothing submitted.

    What the TUI's plan dialog shows before the user confirms, and what
    ``stack build`` compares with the generation it published; ``builds.submit``
    then submits these plans (deciding again under its lock). ``module_root``:
    the tree whose generations count (a stack's), else ``[modules].root``.
    """
    envplan.require_buildable(config, plan)
    check_state(config, module_root=module_root)
    tree = config if module_root is None else replace(
        config, modules=replace(config.modules, root=Path(module_root)))
    generation = _next_generation(tree, name)
    chosen = config.channel(plan.channel)
    if progress:
        progress(f"evaluating environment {name} (generation {generation}) in {plan.channel}: "
                 f"{' '.join(plan.attrs)}")
    inst = nix.instantiate_expression(chosen.path, plan.expression, chosen.url, chosen.sha256)
    listed = ", ".join(f"{m.attr} {m.version}" for m in plan.members)
    record = PackageVersion(name=name, version=str(generation), channel=plan.channel, attr="",
                            description=f"environment: {listed}")
    return plan_derivations(config, [(record, inst)], backend=backend,
                            environment={"packages": plan.packages(),
                                         "interpreter": plan.interpreter or ""})


def remove(config: Config, target: str) -> list[lmod.ModuleInfo]:
    """``env remove NAME[/GEN]``: one generation, or all of them (modules, shims, GC roots)."""
    name, _, gen = target.partition("/")
    check_name(name)
    existing = generations(config, name)
    if gen:
        existing = [g for g in existing if str(g.generation) == gen]
    if not existing:
        raise UserError(f"no environment {target}; 'nixmod env list' shows yours")
    tree = lmod.environment_config(config)
    return [lmod.remove_module(tree, g.name, str(g.generation)) for g in existing]

