"""The command-line face: parse, call the core, print.

Each ``cmd_*`` handler is a few lines over core functions; no logic lives
here that the TUI would also need (the verbs of reproducibility and site
operations are in ``cliops``, what is printed and how in ``cliout``). Exit status (SPEC.md): 0 success, 1 the
operation failed, 2 bad input, with one line on stderr and no traceback.
With ``--json`` exactly one JSON document goes to stdout; progress and
messages go to stderr so that scripts can pipe the JSON safely.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from nixmod import __version__
from nixmod.clienv import add_env_parser
from nixmod.cliout import build_verb_status, emit_json, emit_table, one_line, progress
from nixmod.config import BACKEND_NAMES, Config, load_config
from nixmod.errors import NixmodError, UserError

if TYPE_CHECKING:  # verbs import what they use, so `nixmod --help` stays quick
    from nixmod.catalog import Catalog


# -- verbs ------------------------------------------------------------------------

def cmd_tui(args: argparse.Namespace, config: Config) -> int:
    from nixmod.tui.app import run_app   # startup: Textual loads only for the TUI

    return run_app(config)


def load_catalog(config: Config, refresh: bool = False) -> Catalog:
    """The catalog, with one stderr line per channel that failed to list."""
    from nixmod.catalog import Catalog  # startup: loaded by this verb only

    catalog = Catalog.load(config, progress, refresh=refresh)
    for error in catalog.errors:
        progress(f"nixmod: channel {error.channel} failed (other channels loaded): {error.message}")
    for warning in catalog.warnings:
        progress(f"nixmod: warning: {warning}")
    return catalog


def cmd_search(args: argparse.Namespace, config: Config) -> int:
    from nixmod.packages import display_version, version_json  # startup: loaded by this verb only

    if args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    if not args.query.strip():
        raise UserError("empty search; give a name, a command (rg) or a word, e.g. 'nixmod search hello'")
    catalog = load_catalog(config)
    hits = catalog.search(args.query, limit=args.limit, channel=args.channel)
    if args.json:
        emit_json([{**version_json(hit.newest), "match": hit.kind,
                    "versions": [{"version": v.version, "channel": v.channel, "attr": v.attr}
                                 for v in hit.package.versions]} for hit in hits])
    else:
        emit_table([(hit.package.name,
                     ", ".join(display_version(v) for v in
                               dict.fromkeys(v.version for v in hit.package.versions)),
                     hit.newest.channel, one_line(hit.newest.description)) for hit in hits],
                   ("NAME", "VERSIONS", "CHANNEL", "DESCRIPTION"))
    if not hits:
        progress(f"no package matches {args.query!r}")
    return 0


def cmd_versions(args: argparse.Namespace, config: Config) -> int:
    from nixmod.packages import display_version, version_json  # startup: loaded by this verb only

    versions = load_catalog(config).versions(args.name, channel=args.channel)
    if args.json:
        emit_json([version_json(v) for v in versions])
    else:
        emit_table([(display_version(v.version), v.channel, v.attr, one_line(v.description))
                    for v in versions],
                   ("VERSION", "CHANNEL", "ATTRIBUTE", "DESCRIPTION"))
    return 0


def cmd_catalog(args: argparse.Namespace, config: Config) -> int:
    from dataclasses import asdict

    if args.action == "publish":
        return _catalog_publish(args, config)
    if args.dir is not None:
        raise UserError(f"'nixmod catalog {args.action}' takes no directory; "
                        "only 'nixmod catalog publish DIR' does")
    catalog = load_catalog(config, refresh=args.action == "refresh")
    info = catalog.info()
    if args.json:
        emit_json({**asdict(info), "age_seconds": round(info.age_seconds)})
    else:
        print(f"cache: {info.cache} (built {info.age_seconds / 60:.0f} min ago)")
        print(f"{info.packages} packages, {info.versions} versions")
        emit_table([(c.name, c.kind, c.packages, c.skipped, c.error.splitlines()[-1] if c.error else "ok",
                     c.source) for c in info.channels],
                   ("CHANNEL", "KIND", "PACKAGES", "SKIPPED", "STATE", "SOURCE"))
    return 1 if catalog.errors and len(catalog.errors) == len(catalog.channels) else 0


def _catalog_publish(args: argparse.Namespace, config: Config) -> int:
    """Staff: list every configured channel once into the site index DIR."""
    from dataclasses import asdict
    from pathlib import Path

    from nixmod.publish import publish  # startup: loaded by this verb only

    if not args.dir:
        raise UserError("nixmod catalog publish: name the site catalog directory, "
                        "e.g. 'nixmod catalog publish /opt/nixmod/catalog'")
    report = publish(config, Path(args.dir), progress)
    if args.json:
        emit_json([asdict(c) for c in report])
    else:
        emit_table([(c.name, c.kind, c.packages,
                     f"FAILED: {c.error.splitlines()[-1]}" if c.error else "published", c.source)
                    for c in report], ("CHANNEL", "KIND", "PACKAGES", "STATE", "SOURCE"))
    return 1 if any(c.error for c in report) else 0


def _print_builds(records: Sequence[Any], as_json: bool) -> None:
    """Build records as SPEC's JSON list, or as a table."""
    if as_json:
        emit_json([r.as_json() for r in records])
        return
    emit_table([(r.id, r.name, r.version, r.channel, r.state, r.job or "-",
                 r.module or (r.error.splitlines()[-1] if r.error else "-")) for r in records],
               ["ID", "NAME", "VERSION", "CHANNEL", "STATE", "JOB", "MODULE / ERROR"])


def cmd_build(args: argparse.Namespace, config: Config) -> int:
    from nixmod import builds  # startup: loaded by this verb only

    try:
        if args.retry and args.lock:
            raise UserError("nixmod build: --retry and --lock do not go together; "
                            "'nixmod build --lock FILE' submits the lock's packages afresh")
        if args.retry:
            records = builds.retry(config, builds.parse_ids(args.specs), backend=args.backend,
                                   progress=progress)
        elif args.lock:
            from pathlib import Path

            from nixmod import repro  # startup: loaded by this verb only

            if args.specs:
                raise UserError("nixmod build: give either packages or --lock FILE, not both")
            records = repro.build_locked(config, repro.read_lock(Path(args.lock)),
                                         backend=args.backend, progress=progress)
        elif not args.specs:
            raise UserError("nixmod build: name at least one package (NAME, NAME@VERSION or "
                            "CHANNEL:NAME), or use --retry")
        else:
            builds.check_state(config)   # an unusable state dir is said before any evaluation
            catalog = load_catalog(config)
            versions = [catalog.resolve(spec) for spec in args.specs]
            plans = builds.plan(config, versions, progress=progress, backend=args.backend)
            records = builds.submit(config, plans, backend=args.backend, progress=progress)
    except builds.SubmitFailed as exc:
        if args.json:   # a script still learns the ids it can --retry
            _print_builds(exc.records, True)
        raise
    warnings: list[str] = []
    if args.wait and records:
        records = builds.wait(config, [r.id for r in records], progress=progress,
                              warnings=warnings)
    _print_builds(records, args.json)
    return build_verb_status(records, warnings, args.wait)


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    from nixmod import builds  # startup: loaded by this verb only

    ids = builds.parse_ids(args.ids) or None
    warnings: list[str] = []
    if args.watch:
        everything = ids or [r.id for r in builds.refresh(config,
                                                          max_age=config.build.poll_seconds)]
        records = builds.wait(config, everything,
                              progress=progress, warnings=warnings)
    else:
        records = builds.refresh(config, ids, warnings=warnings)
    if not records and not warnings and not args.json:   # a bare header would look like a failure
        print(f"no builds yet under {config.build.state_dir}; 'nixmod build NAME' starts one")
        return 0
    _print_builds(records, args.json)   # the last-known states, even when the scheduler is away
    for warning in warnings:
        progress(f"warning: {warning}")
    return 1 if warnings else 0


def cmd_logs(args: argparse.Namespace, config: Config) -> int:
    from nixmod import builds  # startup: loaded by this verb only

    record_id = builds.parse_ids([args.id])[0]
    if args.json:
        text = "".join(builds.follow_log(config, record_id)) if args.follow else _read_log(
            builds.log_path(config, record_id))
        emit_json({"id": record_id, "path": str(builds.log_path(config, record_id)), "text": text})
        return 0
    if args.follow:
        for chunk in builds.follow_log(config, record_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return 0
    path = builds.log_path(config, record_id)
    if not path.exists():
        progress(f"build {record_id} has no log yet (it has not started)")
        return 0
    sys.stdout.write(_read_log(path))
    return 0


def _read_log(path: Any) -> str:
    from nixmod import builds  # startup: loaded by this verb only

    return builds.read_log(path).text


def cmd_cancel(args: argparse.Namespace, config: Config) -> int:
    from nixmod import builds  # startup: loaded by this verb only

    ids = builds.parse_ids(args.ids)
    ended = {r.id: r.state for r in builds.refresh(config, ids) if r.finished}
    records = builds.cancel(config, ids)
    for record_id, state in ended.items():
        progress(f"build {record_id} had already ended ({state}); nothing to cancel")
    _print_builds(records, args.json)
    return 0


def cmd_modules(args: argparse.Namespace, config: Config) -> int:
    from nixmod import lmod  # startup: loaded by this verb only

    if args.action == "list":
        infos = lmod.list_modules(config)
        if args.json:
            emit_json([lmod.info_as_json(info) for info in infos])
        else:
            emit_table([(i.module, "valid" if i.valid else "missing", "default" if i.default else "",
                         i.store_path) for i in infos], ["MODULE", "STATE", "DEFAULT", "STORE PATH"])
        return 0
    if args.action == "remove":
        name, version = lmod.parse_target(config, args.target)
        info = lmod.remove_module(config, name, version)
        progress(f"removed {info.module} (the store path is left to the garbage collector)")
        if args.json:
            emit_json(lmod.info_as_json(info))
        return 0
    # startup: loaded by this verb only
    # startup: loaded by this verb only
    from nixmod.builds import module_requests, modules_rewritten

    result = lmod.refresh_modules(config, module_requests(config))
    modules_rewritten(config, result.written)
    progress(f"rewrote {len(result.written)} module(s), pruned {len(result.pruned)}")
    if args.json:
        emit_json({"written": [lmod.info_as_json(i) for i in result.written],
                   "pruned": [lmod.info_as_json(i) for i in result.pruned]})
    return 0


def cmd_stack(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path

    from nixmod import stacks  # startup: loaded by this verb only
    from nixmod.stackfile import StackInvalid  # startup: loaded by this verb only

    path = Path(args.file)
    if args.lock and args.action != "build":
        raise UserError(f"nixmod stack {args.action}: --lock goes with 'stack build' only")
    if args.action == "check":
        report = stacks.check_stack(config, path, progress=progress)
        if args.json:
            emit_json(report.as_json())
        else:
            for problem in report.problems:
                print(problem)
            if report.ok and report.stack is not None:
                envs = (f", {len(report.environments)} environment"
                        f"{'s' if len(report.environments) != 1 else ''}" if report.environments else "")
                print(f"{path}: ok: stack {report.stack.name}, {len(report.resolved)} packages{envs}, "
                      f"modules under {report.stack.modules_root}")
        return 0 if report.ok else 2
    try:
        if args.action == "build":
            lock = None
            if args.lock:
                from nixmod import repro  # startup: loaded by this verb only

                lock = repro.read_lock(Path(args.lock))
            result = stacks.build_stack(config, path, wait=args.wait, retry=args.retry,
                                        progress=progress, lock=lock)
            items = result.every
        else:
            result, items = None, stacks.stack_status(config, path, progress=progress)
    except StackInvalid as exc:
        for problem in exc.report.problems:
            progress(str(problem))
        raise
    if args.json:
        emit_json(result.as_json() if result else [item.as_json() for item in items])
    else:
        emit_table([(i.name if i.kind == "package" else f"{config.modules.env_prefix}/{i.name}",
                     i.version + (" (default)" if i.default else ""), i.channel, i.state,
                     i.job, i.module, i.out if i.module else "") for i in items],
                   ["NAME", "VERSION", "CHANNEL", "STATE", "JOB", "MODULE", "STORE PATH"])
        if result is not None:
            print(result.summary())
        for item in items:
            if item.state in stacks.ENDED_BADLY:
                print(f"FAILED {item.name} {item.version} (build {item.build_id}, log {item.log}):")
                for line in (item.error or "no error recorded").splitlines():
                    print(f"    {line}")
    return 1 if any(i.state in stacks.ENDED_BADLY for i in items) and result else 0


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from nixmod import doctor  # startup: loaded by this verb only

    checks = doctor.run_checks(config)
    if args.json:
        emit_json(doctor.as_json(checks))
    else:
        for check in checks:
            print(check.line())
    return 1 if doctor.any_required_failed(checks) else 0


def _cliops(name: str) -> Callable[[argparse.Namespace, Config], int]:
    """The handler ``name`` of ``cliops``, imported when its verb runs (not on every start-up)."""
    def handler(args: argparse.Namespace, config: Config) -> int:
        from nixmod import cliops  # startup: loaded by its verbs only

        verb: Callable[[argparse.Namespace, Config], int] = getattr(cliops, name)
        return verb(args, config)

    handler.__name__ = name
    return handler


# -- the parser -------------------------------------------------------------------

class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, at the terminal's width found without ``shutil``.

    argparse builds a formatter for every ``add_argument`` (to check metavars)
    and its default one imports shutil (and with it bz2, lzma) for the width:
    ~3 ms of every start-up, for help that is rarely printed.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)


def _terminal_columns() -> int:
    """``$COLUMNS``, else the terminal's width, else 80: what ``shutil.get_terminal_size`` says."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _common() -> _Parser:
    """Options every verb accepts, before or after the verb (a parent of every verb's parser)."""
    common = _Parser(add_help=False, formatter_class=_Formatter)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="a config file read after the site and user files")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document on stdout")
    common.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                        help="use the bundled demo channels and the local backend")
    return common


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, as SPEC.md wants.

    ``main`` prints every UserError after ``nixmod: ``, so the message names
    only the verb (``build: ...``), never ``nixmod`` a second time.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        verb = self.prog.removeprefix("nixmod").strip()
        raise UserError(f"{verb + ': ' if verb else ''}{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="nixmod", parents=[common], formatter_class=_Formatter,
                     description="Nix without root on HPC clusters. With no verb: the TUI.")
    parser.add_argument("--version", action="version", version=f"nixmod {__version__}")
    parser.set_defaults(handler=cmd_tui)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    def verb(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, parents=[common], help=help, description=help,
                               formatter_class=_Formatter)
        sub.set_defaults(handler=handler)
        return sub

    p = verb("search", cmd_search, "ranked matches: name, version(s), channel, description")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--channel")

    p = verb("versions", cmd_versions, "every version of NAME across channels, newest first")
    p.add_argument("name")
    p.add_argument("--channel")

    p = verb("build", cmd_build, "build SPEC... (NAME, NAME@VERSION, CHANNEL:NAME)")
    p.add_argument("specs", nargs="*", metavar="SPEC")
    p.add_argument("--wait", action="store_true", help="wait until every build ends")
    p.add_argument("--backend", choices=BACKEND_NAMES)
    p.add_argument("--retry", action="store_true",
                   help="resubmit pending/failed/cancelled builds (all, or those named)")
    p.add_argument("--lock", metavar="FILE",
                   help="build exactly the lock's derivations (exit 2 if any evaluates differently)")

    p = verb("status", cmd_status, "the user's builds and their states")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--watch", action="store_true")

    p = verb("logs", cmd_logs, "the build log")
    p.add_argument("id", metavar="ID")
    p.add_argument("--follow", "-f", action="store_true")

    p = verb("cancel", cmd_cancel, "cancel queued or running builds")
    p.add_argument("ids", nargs="+", metavar="ID")

    p = verb("modules", cmd_modules, "the user's generated modules: list, refresh, remove NAME/VERSION")
    p.add_argument("action", choices=["list", "refresh", "remove"])
    p.add_argument("target", nargs="?", metavar="NAME/VERSION")

    p = verb("stack", cmd_stack, "site stacks: check FILE, build FILE [--wait], status FILE")
    p.add_argument("action", choices=["check", "build", "status"])
    p.add_argument("file", metavar="FILE")
    p.add_argument("--wait", action="store_true", help="build: wait until every build ends")
    p.add_argument("--retry", action="store_true",
                   help="build: resubmit packages whose last build of the same derivation failed")
    p.add_argument("--lock", metavar="LOCK",
                   help="build: exactly the lock's packages into the stack's tree")

    p = verb("catalog", cmd_catalog, "refresh: re-evaluate channels; info: what is cached; "
             "publish DIR: (staff) write the site index users read instead of evaluating")
    p.add_argument("action", choices=["refresh", "info", "publish"])
    p.add_argument("dir", nargs="?", metavar="DIR", help="publish: the site catalog directory")

    p = verb("lock", _cliops("cmd_lock"), "a lock (JSON) of your modules, the named ones, or a stack's")
    p.add_argument("targets", nargs="*", metavar="NAME/VERSION")
    p.add_argument("--stack", metavar="FILE", help="lock this stack's packages")
    p.add_argument("-o", "--output", metavar="FILE", help="write here ('-' or none: stdout)")

    p = verb("export", _cliops("cmd_export"), "LOCK DIR --key KEY: a signed file:// binary cache of the lock")
    p.add_argument("lock", metavar="LOCK")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--key", required=True, metavar="SECRET_KEY_FILE")

    p = verb("import", _cliops("cmd_import"), "DIR: a signed bundle's closures, GC roots and modules")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--modules-root", metavar="ROOT", help="write the modules here (a stack's tree)")

    p = verb("verify", _cliops("cmd_verify"), "rebuild NAME/VERSION... with --check: reproducible or differs")
    p.add_argument("targets", nargs="+", metavar="NAME/VERSION")
    p.add_argument("--backend", choices=BACKEND_NAMES)

    p = verb("du", _cliops("cmd_du"), "disk use: your modules' closure sizes and what only each keeps "
             "alive; --site: (staff) the whole store by user and stack")
    p.add_argument("--site", action="store_true", help="the whole store (staff)")

    p = verb("usage", _cliops("cmd_usage"), "(staff) module loads per module, user and node, from [usage] log")
    p.add_argument("--since", type=float, metavar="DAYS", help="only the last DAYS days")

    p = verb("gc", _cliops("cmd_gc"), "remove your modules (and GC roots) not loaded for DAYS days; "
             "never a default")
    p.add_argument("--unused-for", type=float, metavar="DAYS", default=90.0,
                   help="last load (never loaded: the build) more than DAYS days ago; "
                        "0: all (default 90)")
    p.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")

    add_env_parser(verb)

    verb("doctor", cmd_doctor, "check nix, the daemon, SLURM, Lmod, bwrap/proot, paths; say how to fix each")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_job"]:
        # the job step as jobs queued by an earlier nixmod still call it (python -m nixmod _job)
        from nixmod.builds.step import main as job_step   # startup: the CLI never loads it

        return job_step(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        for name in ("config", "json", "demo"):
            if not hasattr(args, name):
                setattr(args, name, None if name == "config" else False)
        config = load_config(args.config, demo=args.demo)
        return args.handler(args, config)
    except NixmodError as exc:
        print(f"nixmod: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (`| head`, `| grep -q`): not a failure of ours. Point
        # stdout at /dev/null so the interpreter's last flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # a filesystem or process problem we did not foresee: one line, not a traceback
        if os.environ.get("NIXMOD_DEBUG"):
            raise
        print(f"nixmod: {exc} (set NIXMOD_DEBUG=1 for details)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nixmod: interrupted; builds already submitted go on ('nixmod status' shows them, "
              "'nixmod cancel ID' stops one)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
