"""The CLI's verbs for reproducibility and site operations: lock, export, import, verify,
du, usage, gc. Each is a few lines over core functions (``repro``, ``diskuse``,
``usage``, ``cleanup``), as in ``cli``; each loads what it uses when it runs.
"""

from __future__ import annotations

import argparse

from nixmod.cliout import emit_json, emit_table, progress
from nixmod.config import Config


# -- reproducible elsewhere: lock, export, import, verify (SPEC.md) ----------------------

def cmd_lock(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from nixmod import repro  # startup: loaded by this verb only

    if args.stack:
        from nixmod import stacks  # startup: loaded by this verb only

        lock = stacks.lock_stack(config, Path(args.stack), progress)
    else:
        lock = repro.make_lock(config, args.targets, progress=progress)
    repro.write_lock(lock, args.output)
    if args.output not in (None, "-"):
        progress(f"locked {len(lock.packages)} package(s) and {len(lock.environments)} "
                 f"environment(s) in {args.output}")
    return 0


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from nixmod import repro  # startup: loaded by this verb only

    result = repro.export_bundle(config, Path(args.lock), Path(args.dir), Path(args.key),
                                 progress=progress)
    if args.json:
        emit_json({"directory": str(result.directory), "paths": result.paths, "key": result.key_name})
    else:
        print(f"{result.directory}: {result.paths} store paths signed by {result.key_name}, "
              f"and {repro.LOCK_NAME} (signed too)")
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from nixmod import repro  # startup: loaded by this verb only

    result = repro.import_bundle(config, Path(args.dir),
                                 modules_root=Path(args.modules_root) if args.modules_root else None,
                                 progress=progress)
    if args.json:
        emit_json({"modules": result.modules, "paths": result.paths,
                   "modules_root": str(result.modules_root)})
    else:
        for module in result.modules:
            print(module)
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    from nixmod import repro  # startup: loaded by this verb only

    results = repro.verify(config, args.targets, backend=args.backend, progress=progress)
    if args.json:
        emit_json([r.as_json() for r in results])
    else:
        emit_table([(r.module, r.output, r.result, r.node + (f" (job {r.job})" if r.job else ""),
                     r.path, r.detail) for r in results],
                   ["MODULE", "OUTPUT", "RESULT", "RAN ON", "STORE PATH", "DETAIL"])
    return 0 if all(r.result == "reproducible" for r in results) else 1


# -- operations: disk, usage, cleanup (SPEC.md) ------------------------------------------------

def cmd_du(args: argparse.Namespace, config: Config) -> int:
    from nixmod import diskuse  # startup: loaded by this verb only

    if args.site:
        site = diskuse.site_report()
        if args.json:
            emit_json(site.as_json())
            return 0
        print(f"store: {diskuse.human_size(site.total_size)} in {site.paths} paths")
        emit_table([(g.kind, g.name, g.roots, diskuse.human_size(g.alive_size),
                     diskuse.human_size(g.only_size)) for g in site.groups],
                   ["KIND", "OWNER", "ROOTS", "KEEPS ALIVE", "ONLY THEY KEEP"])
        print(f"held by no root (the next nix-store --gc frees it): "
              f"{diskuse.human_size(site.dead_size)} in {site.dead_paths} paths")
        for note in site.notes:
            progress(f"note: {note}")
        return 0
    report = diskuse.user_report(config)
    if args.json:
        emit_json(report.as_json())
        return 0
    if not report.modules:
        print(f"no modules under {config.modules.root}; 'nixmod build NAME' makes one")
        return 0
    emit_table([(m.module, diskuse.human_size(m.closure_size), diskuse.human_size(m.only_size),
                 diskuse.age(m.last_load), ("default " if m.default else "")
                 + ("" if m.valid else "missing")) for m in report.modules],
               ["MODULE", "CLOSURE", "ONLY IT", "LAST LOAD", ""])
    print(f"total: {diskuse.human_size(report.total_size)} in the closures of "
          f"{len(report.modules)}; {diskuse.human_size(report.only_size)} kept alive only by them")
    for note in report.notes:
        progress(f"note: {note}")
    return 0


def cmd_usage(args: argparse.Namespace, config: Config) -> int:
    from nixmod import diskuse, usage  # startup: loaded by this verb only

    report = usage.read_log(config, args.since)
    if args.json:
        emit_json(report.as_json())
        return 0
    span = f"in the last {args.since:g} days" if args.since is not None else "in the log"
    print(f"{report.loads} loads {span} ({report.log})")
    emit_table([(m, n, u, diskuse.age(t)) for m, n, u, t in report.by_module()],
               ["MODULE", "LOADS", "USERS", "LAST LOAD"])
    print()
    emit_table(report.by_user(), ["USER", "LOADS"])
    print()
    emit_table(report.by_node(), ["NODE", "LOADS"])
    if report.unverified:
        progress(f"note: {report.unverified} line(s) carry no uid from syslog: counted under the user "
                 "they name, which the sender could have typed (README: the rsyslog line)")
    return 0


def cmd_gc(args: argparse.Namespace, config: Config) -> int:
    from nixmod import cleanup, diskuse  # startup: loaded by this verb only

    days = cleanup.check_days(args.unused_for)
    held = diskuse.holdings(config)
    plan = cleanup.plan(config, days, held=held)
    if not args.dry_run:
        plan = cleanup.apply(config, plan, held=held)
    if args.json:
        emit_json(plan.as_json())
        return 0
    verb = "would remove" if args.dry_run else "removed"
    listed = plan.candidates if args.dry_run else [c for c in plan.candidates
                                                   if c.target in plan.removed]
    if listed:
        print(f"{verb} (unused for more than {days:g} days):")
        emit_table([(c.target, c.kind, diskuse.age(c.last_load),
                     diskuse.human_size(c.frees)) for c in listed],
                   ["TARGET", "KIND", "LAST LOAD", "FREES"])
    else:
        print(f"nothing unused for more than {days:g} days")
    for spared in plan.spared:
        print(f"kept {spared.target}: {spared.reason}")
    if listed:
        print(f"together they free {diskuse.human_size(plan.frees)} at the next collection"
              + (" (nothing was changed: --dry-run)" if args.dry_run else ""))
    print(cleanup.STORE_NOTE)
    return 0
