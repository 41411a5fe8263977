"""A stack file (SPEC.md, "Site stack file"): read, with every mistake found at once.

``parse_stack`` returns the ``Stack`` and every ``Problem`` with its line
and its fix; the staff member who runs ``stack check`` wants all of them
(an overnight build that stops at the first typo wastes the night). The
records here (``Stack``, ``StackEntry``, ``CheckReport``) are what
``stacks`` checks against the catalog, builds and reports.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nixmod.config import Config, expand_path, key_line
from nixmod.errors import UserError
from nixmod.gcroots import stack_gcroot_dir
from nixmod.names import validate_component
from nixmod.packages import PackageVersion


_STACK_KEYS: dict[str, type] = {"name": str, "modules_root": str}
_PACKAGE_KEYS: dict[str, type] = {"name": str, "version": str, "channel": str, "default": bool}
_ENVIRONMENT_KEYS: dict[str, type] = {"name": str, "packages": list, "channel": str, "default": bool}
_TOP_KEYS = ("stack", "package", "environment")
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True)
class Problem:
    """One mistake in a stack file: where, what, and how to put it right."""

    file: str
    line: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class StackEntry:
    """One ``[[package]]`` as written (version/channel empty when not given)."""

    name: str
    version: str = ""
    channel: str = ""
    default: bool = False
    line: int | None = None                  # the [[package]] header
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` in this entry, else its header: where the fix goes."""
        return self.key_lines.get(key, self.line)


@dataclass(frozen=True)
class EnvironmentEntry:
    """One ``[[environment]]`` as written: a NAME and its package SPECs (``env create``'s).

    ``default``: this environment's newest generation is what ``module load
    <env_prefix>/NAME`` gives (the stack's ``.modulerc.lua``), as for a package.
    """

    name: str
    packages: tuple[str, ...]
    channel: str = ""
    default: bool = False
    line: int | None = None                  # the [[environment]] header
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` in this entry, else its header: where the fix goes."""
        return self.key_lines.get(key, self.line)


@dataclass
class Stack:
    """A parsed stack file; ``modules_root`` is absolute (relative paths are from the file)."""

    file: Path
    name: str
    modules_root: Path
    entries: list[StackEntry] = field(default_factory=list)
    environments: list[EnvironmentEntry] = field(default_factory=list)

    @property
    def gcroot_dir(self) -> Path:
        """Where this stack's GC roots live (``gcroots.stack_gcroot_dir``)."""
        return stack_gcroot_dir(self.modules_root, self.name)


@dataclass
class Resolved:
    """A stack entry and the catalog version it names."""

    entry: StackEntry
    version: PackageVersion


@dataclass
class ResolvedEnvironment:
    """An ``[[environment]]`` as planned: its channel, interpreter and members (sorted by attr)."""

    entry: EnvironmentEntry
    versions: list[PackageVersion]
    channel: str
    interpreter: str = ""               # "" for an environment with no interpreter


@dataclass
class CheckReport:
    """Everything ``stack check`` found: the stack (if it parsed) and every problem."""

    file: Path
    stack: Stack | None
    resolved: list[Resolved] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    environments: list[ResolvedEnvironment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        stack = None
        if self.stack is not None:
            stack = {"name": self.stack.name, "modules_root": str(self.stack.modules_root),
                     "gcroot_dir": str(self.stack.gcroot_dir)}
        return {
            "file": str(self.file),
            "ok": self.ok,
            "stack": stack,
            "packages": [{"name": r.version.name, "version": r.version.version,
                          "channel": r.version.channel, "default": r.entry.default,
                          "line": r.entry.line} for r in self.resolved],
            "environments": [{"name": e.entry.name, "channel": e.channel, "default": e.entry.default,
                              "line": e.entry.line, "interpreter": e.interpreter or None,
                              "packages": [{"name": v.name, "version": v.version, "attr": v.attr}
                                           for v in e.versions]} for e in self.environments],
            "problems": [asdict(p) for p in self.problems],
        }


class StackInvalid(UserError):
    """A stack file with problems: the message is one line, ``report`` has them all."""

    def __init__(self, report: CheckReport):
        self.report = report
        count = len(report.problems)
        super().__init__(f"{report.file}: {count} problem{'s' if count != 1 else ''} "
                         f"(first: {report.problems[0]}); nothing was done")


# -- parsing --------------------------------------------------------------------------

def closest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a choice is close to ``word``, else ''."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


class _Reader:
    """One stack file's text and data, collecting problems with their lines."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []
        self.text = ""

    def problem(self, message: str, fix: str, *, key: str | None = None,
                table: str | None = None, occurrence: int = 0) -> None:
        line = key_line(self.text, key, table, occurrence) if key else None
        if line is None and table:
            line = key_line(self.text, table, table, occurrence)
        self.problems.append(Problem(str(self.path), line, message, fix))

    def check_keys(self, data: dict[str, Any], allowed: dict[str, type], table: str,
                   occurrence: int = 0) -> None:
        """Unknown keys and wrong types, each with a fix."""
        label = f"[[{table}]]" if table in ("package", "environment") else f"[{table}]"
        for key, value in data.items():
            if key not in allowed:
                hint = closest(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                self.problem(f"unknown key {key!r} in {label}", f"remove it or rename it ({hint})",
                             key=key, table=table, occurrence=occurrence)
                continue
            kind = allowed[key]
            if not isinstance(value, kind):
                shown, example = {bool: ("true or false", "true"),
                                  list: ("a list of strings", '["python3Packages.numpy", "..."]')
                                  }.get(kind, ("a string", '"..."'))
                self.problem(f"{table}.{key} must be {shown}, got {value!r}",
                             f"write {key} = {example}", key=key, table=table, occurrence=occurrence)


def parse_stack(path: Path, config: Config) -> tuple[Stack | None, list[Problem]]:
    """Read the file; return the stack (None if it cannot be read at all) and the problems."""
    reader = _Reader(path)
    try:
        reader.text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read stack file: {exc}") from None
    try:
        data = tomllib.loads(reader.text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        reader.problems.append(Problem(str(path), int(found.group(1)) if found else None,
                                       f"malformed TOML: {exc}", "correct the TOML syntax there"))
        return None, reader.problems

    for key in data:
        if key not in _TOP_KEYS:
            hint = closest(key, _TOP_KEYS) or "a stack file has [stack], [[package]] and [[environment]] tables only"
            reader.problem(f"unknown key {key!r}", f"remove it ({hint})", key=key, table=None)

    head = data.get("stack")
    if not isinstance(head, dict):
        reader.problem("no [stack] table", 'add [stack] with name = "..." and modules_root = "..."')
        head = {}
    reader.check_keys(head, _STACK_KEYS, "stack")
    name_value = head.get("name")
    name = name_value if isinstance(name_value, str) else ""
    if not name:
        reader.problem("[stack] has no name", 'add name = "site-2026a" under [stack]',
                       key="stack", table="stack")
    elif not _STACK_NAME.fullmatch(name):
        reader.problem(f"stack name {name!r} is not a plain name",
                       "use letters, digits and . _ + - only (it names a directory)",
                       key="name", table="stack")
    root_text = head.get("modules_root") if isinstance(head.get("modules_root"), str) else ""
    root = expand_path(root_text) if root_text else config.modules.root
    if not root.is_absolute():
        root = path.resolve().parent / root

    packages = data.get("package", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        reader.problem("'package' must be an array of tables", "write each package as [[package]]",
                       key="package", table=None)
        packages = []
    environments = _environments(reader, data)
    if not packages and not environments and "environment" not in data:
        reader.problem("the stack names no package", 'add [[package]] with name = "..."')
    entries = []
    for index, raw in enumerate(packages):
        reader.check_keys(raw, _PACKAGE_KEYS, "package", index)
        header = key_line(reader.text, "package", "package", index)
        pkg_name = raw.get("name")
        if not isinstance(pkg_name, str) or not pkg_name:
            reader.problems.append(Problem(str(path), header, f"[[package]] #{index + 1} has no name",
                                           'add name = "<attribute path>" (see nixmod search)'))
            continue

        def text(key: str) -> str:
            value = raw.get(key, "")
            return value if isinstance(value, str) else ""

        lines = {key: key_line(reader.text, key, "package", index) for key in raw}
        entries.append(StackEntry(name=pkg_name, version=text("version"), channel=text("channel"),
                                  default=raw.get("default") is True, line=header,
                                  key_lines={k: v for k, v in lines.items() if v}))
    return Stack(file=path, name=name, modules_root=root, entries=entries,
                 environments=environments), reader.problems


def _environments(reader: _Reader, data: dict[str, Any]) -> list[EnvironmentEntry]:
    """Every well-formed ``[[environment]]``; a problem with its line for each mistake.

    An environment's name becomes a module directory (``<env_prefix>/NAME``),
    so it is held to the module name rule; its packages are SPECs as
    ``env create`` takes them, checked against the catalog later (``stacks``).
    """
    raw_list = data.get("environment", [])
    if not isinstance(raw_list, list) or not all(isinstance(e, dict) for e in raw_list):
        reader.problem("'environment' must be an array of tables",
                       "write each environment as [[environment]]", key="environment", table=None)
        return []
    found: list[EnvironmentEntry] = []
    first_line: dict[str, int | None] = {}
    for index, raw in enumerate(raw_list):
        reader.check_keys(raw, _ENVIRONMENT_KEYS, "environment", index)
        header = key_line(reader.text, "environment", "environment", index)
        lines = {key: line for key in raw
                 if (line := key_line(reader.text, key, "environment", index))}
        file = str(reader.path)
        env_name = raw.get("name")
        if not isinstance(env_name, str) or not env_name:
            reader.problems.append(Problem(file, header, f"[[environment]] #{index + 1} has no name",
                                           'add name = "..." (it becomes the module name)'))
            continue
        try:
            validate_component(env_name, "name")
        except UserError:
            reader.problems.append(Problem(file, lines.get("name", header),
                                           f"environment name {env_name!r} is not a plain name",
                                           "use letters, digits and . _ + - only (it names a module)"))
            continue
        if env_name in first_line:
            reader.problems.append(Problem(file, header, f"environment {env_name} is listed twice "
                                           f"(first at line {first_line[env_name]})",
                                           "remove one of the two [[environment]] entries"))
            continue
        first_line[env_name] = header
        specs = raw.get("packages")
        if specs is None:
            reader.problems.append(Problem(file, header, f"environment {env_name} has no packages",
                                           'add packages = ["python3Packages.numpy", ...]'))
            continue
        if not isinstance(specs, list):
            continue   # check_keys said so, with its line
        if not specs or not all(isinstance(s, str) and s.strip() for s in specs):
            reader.problems.append(Problem(file, lines.get("packages", header),
                                           f"environment {env_name}: packages must be a non-empty "
                                           "list of package names",
                                           'write packages = ["python3Packages.numpy", ...]'))
            continue
        channel = raw.get("channel", "")
        found.append(EnvironmentEntry(name=env_name, packages=tuple(s.strip() for s in specs),
                                      channel=channel if isinstance(channel, str) else "",
                                      default=raw.get("default") is True, line=header,
                                      key_lines=lines))
    return found
