"""The lock: exactly which derivations and bytes a module set is, and building exactly that.

``make_lock`` writes, for the user's modules (or a stack's, ``lock_tree``),
each drv, its outputs and their NAR hashes, and enough about each channel
to get it again (``pins.channel_pin``: url + sha256, or a path with a
content hash and git revision). ``locked_plans`` evaluates every locked
package again and refuses (exit 2, nothing submitted) when any drv
differs; otherwise the plans go through the normal build path (reuse,
join, build). The derivation is what makes a package exactly itself: two
evaluations that give the same drv build the same thing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from nixmod import builds, lmod, nix
from nixmod.config import Channel, Config
from nixmod.envplan import EnvGeneration
from nixmod.errors import UserError
from nixmod.metadata import about, identity, metadata
from nixmod.packages import PackageVersion
from nixmod.pins import channel_pin, pin_text
from nixmod.repro.envlock import environment_plans, locked_environment, newest_generations
from nixmod.repro.lockdoc import Lock, LockedPackage, LockMismatch, Mismatch, Progress

# -- making a lock ----------------------------------------------------------------------------

def system_and_store() -> tuple[str, str]:
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


def _lock_modules(config: Config, root: Path, names: Sequence[tuple[str, str]],
                  missing_hint: str | None) -> list[lmod.ModuleRequest]:
    """The ModuleRequests of the modules ``names`` (NAME, version) in the tree ``root``."""
    requests = []
    for name, version in names:
        request = lmod.read_request(lmod.module_path(config, name, version, root=root))
        if request is None:
            hint = missing_hint or f"build it first ({lmod.rebuild_command(name, version)})"
            raise UserError(f"no module {lmod.module_name(config, name, version)} under {root}; {hint}")
        requests.append(request)
    if not requests:
        raise UserError(f"no modules under {root} to lock; build something first (nixmod build NAME)")
    return requests


def make_lock(config: Config, targets: Sequence[str] = (), *,
              progress: Progress | None = None) -> Lock:
    """A lock of the user's modules and environments (all, or ``targets``); a stack's is
    ``stacks.lock_stack``. An environment is its newest generation (``<env_prefix>/NAME``)
    or the one named (``<env_prefix>/NAME/GEN``)."""
    root = Path(config.modules.root)
    env_prefix = config.modules.env_prefix + "/"
    env_targets = [t[len(env_prefix):] for t in targets if t.startswith(env_prefix)]
    names = [lmod.parse_target(config, t) for t in targets if not t.startswith(env_prefix)] \
        if targets else [(i.name, i.version) for i in lmod.list_modules(config)]
    generations = newest_generations(config, root, env_targets if targets else None)
    return lock_tree(config, root, names, progress=progress, environments=generations)


def lock_tree(config: Config, root: Path, names: Sequence[tuple[str, str]], *,
              stack: str | None = None, missing_hint: str | None = None,
              progress: Progress | None = None,
              environments: Sequence[EnvGeneration] = ()) -> Lock:
    """A lock of the modules ``names`` and the environment ``environments`` in the tree
    ``root`` (``stack``: the stack that owns it)."""
    requests = _lock_modules(config, root, names, missing_hint) if names or not environments else []
    stack_name = stack
    for generation in environments:
        if not generation.valid or not generation.drv or not generation.outputs:
            raise UserError(f"environment {generation.module}: its outputs are not in the store; "
                            f"build it again ('nixmod env add {generation.name}' or the stack), "
                            "then lock")
    env_paths = [p for g in environments for p in g.outputs.values()]
    paths = [p for r in requests for p in r.outputs.values()]
    valid = nix.valid_paths(paths)
    for request in requests:
        missing = [p for p in request.outputs.values() if p not in valid]
        if missing or not request.drv or not request.outputs:
            raise UserError(f"{request.name} {request.version}: its outputs are not in the store "
                            f"({', '.join(missing) or 'no outputs recorded'}); rebuild it "
                            f"({lmod.rebuild_command(request.name, request.version)}), then lock")
    hashes = store_nar_hashes([*paths, *env_paths])
    channels: dict[str, dict[str, Any]] = {}
    owners = {**{g.channel: g.module for g in environments}, **{r.channel: r.name for r in requests}}
    for name in owners:
        try:
            channel = config.channel(name)
        except UserError:
            raise UserError(f"channel {name!r} (of module {owners[name]}) "
                            "is not configured any more; a lock must say how to get it") from None
        if progress:
            progress(f"hashing channel {name} ({channel.path or channel.url})")
        channels[name] = channel_pin(channel)
    system, store_dir = system_and_store()
    packages = [LockedPackage(**identity(r), drv=r.drv, outputs=dict(r.outputs),
                              nar_hash={o: hashes[p] for o, p in r.outputs.items()},
                              meta={key: str(text) for key, text in about(r).items()})
                for r in requests]
    return Lock(system=system, store_dir=store_dir, channels=channels, packages=packages,
                stack=stack_name,
                environments=[locked_environment(g, hashes) for g in environments])


# -- building exactly a lock --------------------------------------------------------------------

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


def locked_versions(lock: Lock) -> list[PackageVersion]:
    """A catalog PackageVersion per locked package (the lock carries all a build needs)."""
    return [PackageVersion(**metadata(p), outputs=tuple(p.outputs))
            for p in lock.packages]


def check_plans(lock: Lock, plans: Sequence[builds.Plan]) -> None:
    """LockMismatch unless every plan's drv is the locked one (plans in lock order)."""
    mismatches = [Mismatch(p.name, p.version, p.drv, plan.drv)
                  for p, plan in zip(lock.packages, plans) if plan.drv != p.drv]
    if mismatches:
        raise LockMismatch(mismatches)


def locked_plans(config: Config, lock: Lock, progress: Progress | None = None
                 ) -> tuple[Config, list[builds.Plan]]:
    """Evaluate every locked package again; plans only when all drvs equal the lock."""
    config = lock_config(config, lock, progress)
    plans = builds.plan(config, locked_versions(lock), progress=progress) if lock.packages else []
    check_plans(lock, plans)
    return config, plans


def build_locked(config: Config, lock: Lock, *, backend: str | None = None,
                 progress: Progress | None = None) -> list[builds.BuildRecord]:
    """``nixmod build --lock``: exactly the locked drvs, reused, joined or built.

    Environments too: each is evaluated again from its members and becomes the
    next generation of its NAME in the user's tree (none when the newest one
    already holds the locked outputs). Every package and environment whose drv
    differs is named, and nothing is submitted.
    """
    config = lock_config(config, lock, progress)
    plans = builds.plan(config, locked_versions(lock), progress=progress) if lock.packages else []
    mismatches = [Mismatch(p.name, p.version, p.drv, plan.drv)
                  for p, plan in zip(lock.packages, plans) if plan.drv != p.drv]
    env_plans, env_mismatches = environment_plans(config, lock.environments,
                                                  Path(config.modules.root), progress)
    if mismatches or env_mismatches:
        raise LockMismatch([*mismatches, *env_mismatches])
    return builds.submit(config, [*plans, *env_plans], backend=backend, progress=progress)
