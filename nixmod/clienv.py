"""``nixmod env``: the CLI face of environments (``nixmod.environments``), kept out of ``cli``."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from nixmod.cliout import build_verb_status, emit_json, emit_table, progress
from nixmod.config import BACKEND_NAMES, Config
from nixmod.errors import UserError

__all__ = ["add_env_parser", "cmd_env"]


def add_env_parser(verb: Callable[[str, Callable[..., int], str], argparse.ArgumentParser]) -> None:
    p = verb("env", cmd_env, "environments (several packages, one module): create NAME SPEC..., "
             "add NAME SPEC..., drop NAME PKG..., list, show NAME, remove NAME[/GEN]")
    p.add_argument("action", choices=["create", "add", "drop", "list", "show", "remove"])
    p.add_argument("words", nargs="*", metavar="NAME SPEC")
    p.add_argument("--channel", help="create: build from this channel")
    p.add_argument("--wait", action="store_true", help="wait until the build ends")
    p.add_argument("--backend", choices=BACKEND_NAMES)


def cmd_env(args: argparse.Namespace, config: Config) -> int:
    from nixmod import environments  # startup: loaded by this verb only

    words = list(args.words)
    if args.action == "list":
        found = environments.generations(config)
        if not found and not args.json:   # a bare header would look like a failure
            print("no environments yet; 'nixmod env create NAME SPEC...' makes one")
            return 0
        return _show(found, args.json)
    if not words:
        raise UserError(f"nixmod env {args.action}: name the environment, e.g. "
                        f"'nixmod env {args.action} sci'")
    if args.action == "show":
        found = environments.generations(config, environments.check_name(words[0]))
        if not found:
            raise UserError(f"no environment {words[0]}; 'nixmod env list' shows yours")
        return _show(found, args.json)
    if args.action == "remove":
        for info in environments.remove(config, words[0]):
            progress(f"removed {info.module} (the store path is left to the garbage collector)")
        return 0
    return _build(args, config, words[0], words[1:])


def _build(args: argparse.Namespace, config: Config, name: str, specs: list[str]) -> int:
    from nixmod import builds, environments  # startup: loaded by this verb only
    from nixmod.catalog import Catalog  # startup: loaded by this verb only

    if not specs:
        raise UserError(f"nixmod env {args.action} {name}: name at least one package, e.g. "
                        f"'nixmod env {args.action} {name} python3Packages.numpy'")
    if args.channel and args.action != "create":
        raise UserError("--channel goes with 'env create'; an environment keeps its channel")
    environments.check_name(name)
    builds.check_state(config)
    catalog = Catalog.load(config, progress)
    for error in catalog.errors:
        progress(f"nixmod: channel {error.channel} failed (other channels loaded): {error.message}")
    try:
        if args.action == "create":
            plan, records = environments.create(config, catalog, name, specs,
                                                channel=args.channel, backend=args.backend,
                                                progress=progress)
        else:
            key = "add" if args.action == "add" else "drop"
            plan, records = environments.change(config, catalog, name, backend=args.backend,
                                                progress=progress, **{key: specs})
    except builds.SubmitFailed as exc:
        if args.json:   # a script still learns the ids it can --retry
            emit_json({"name": name, "builds": [r.as_json() for r in exc.records]})
        raise
    progress(f"environment {name}: {plan.channel}, "
             f"{'interpreter ' + plan.interpreter + ', ' if plan.interpreter else ''}"
             f"{' '.join(plan.attrs)}")
    warnings: list[str] = []
    if args.wait and records:
        records = builds.wait(config, [r.id for r in records], progress=progress, warnings=warnings)
    if args.json:
        emit_json({**plan.as_json(), "name": name, "builds": [r.as_json() for r in records]})
    else:
        emit_table([(r.id, r.name, r.version, r.channel, r.state, r.job or "-",
                     r.module or (r.error.splitlines()[-1] if r.error else "-")) for r in records],
                   ["ID", "NAME", "GENERATION", "CHANNEL", "STATE", "JOB", "MODULE / ERROR"])
    return build_verb_status(records, warnings, args.wait)


def _show(found: list[Any], as_json: bool) -> int:
    if as_json:
        emit_json([g.as_json() for g in found])
        return 0
    emit_table([(g.module, g.channel, g.interpreter or "-",
                 ", ".join(f"{p.get('attr')} {p.get('version')}" for p in g.packages),
                 g.store_path) for g in found],
               ["MODULE", "CHANNEL", "INTERPRETER", "PACKAGES", "STORE PATH"])
    return 0
