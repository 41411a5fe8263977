"""Lmod modulefiles for built store paths.

A build becomes ``<root>/<prefix>/<NAME>/<version>.lua`` (SPEC.md), whose
PATH entry is the build's shim directory (see ``nixmod.shims`` for where
shims live and why), never a store path. Everything else a module sets comes
from what the store paths contain, so a library with ``lib/pkgconfig`` gets
PKG_CONFIG_PATH and a tool without man pages does not get MANPATH.

Choices, and why:

* Every modulefile and shim is written atomically (temp file + rename):
  jobs on other nodes read these files at any moment.
* Strings from a catalog go into Lua as double-quoted literals with every
  backslash, quote and control character escaped (``lua_string``): unlike a
  long bracket, that also keeps ``\\r`` verbatim (Lua folds line endings
  inside long brackets).
* The first lines of each modulefile carry the ``ModuleRequest`` it was made
  from as one JSON comment line, so ``list``/``remove``/``refresh`` read the
  tree itself and never parse Lua.
* Never LD_LIBRARY_PATH (store binaries use RPATH; the variable breaks host
  programs, which is why Spack dropped it), never a store path on PATH.
* Defaults only through ``.modulerc.lua`` ``module_version(..., "default")``:
  one mechanism, since mixing it with ``default`` symlinks confuses Lmod.
* A missing store path on load: modulefiles call ``nixmod_require_store``,
  which ``lua/SitePackage.lua`` registers when a site installs the hook; it
  raises an LmodError naming the path and the ``nixmod build`` that brings it
  back. Without the hook the module loads and the shim prints the same
  message when the program is run.
* GC roots are named by ``nixmod.gcroots``. ``remove_module`` deletes the
  roots of the tree it changes and leaves the store path to the collector.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Iterable

from nixmod import envtext, nix, outside, shims, usage
from nixmod.config import Config
from nixmod.dirs import ensure_dir, refusal
from nixmod.errors import OperationFailed, UserError
from nixmod.files import atomic_write
from nixmod.gcroots import environment_gcroot_dir, personal_gcroot_dir, remove_gc_roots
from nixmod.metadata import Identity
from nixmod.names import validate_component


@dataclass(frozen=True)
class ModuleRequest:
    """Everything a modulefile says, independent of where it came from (build or stack)."""

    name: str                       # attribute path (SPEC.md NAME)
    version: str
    description: str = ""
    homepage: str = ""
    license: str = ""
    channel: str = ""
    attr: str = ""
    drv: str = ""
    outputs: dict[str, str] = field(default_factory=dict)   # output name -> store path
    #: how the channel was pinned when the build was submitted (``pins.module_channel_pin``),
    #: one line for the module's help; kept in the request so a rewrite keeps it
    channel_pin: str = ""
    #: an environment's packages (``envplan.EnvPlan.packages``), sorted by attribute; empty
    #: for a package's module. The module lists them (``extensions``, whatis, help)
    packages: list[Identity] = field(default_factory=list)
    #: an environment's interpreter attribute (``python312``, ``rWrapper``), "" for none
    interpreter: str = ""

    @property
    def is_environment(self) -> bool:
        return bool(self.packages)

    @property
    def store_path(self) -> str:
        """The path a user thinks of as "the package" (``nix.main_output``)."""
        return nix.main_output(self.outputs)


@dataclass(frozen=True)
class ModuleInfo:
    """A modulefile on disk."""

    module: str        # e.g. "nix/hello/2.12.1" (what `module load` takes)
    name: str
    version: str
    path: Path         # the .lua file
    store_path: str = ""
    valid: bool = True  # is the store path still valid?
    outputs: dict[str, str] = field(default_factory=dict)
    default: bool = False  # named by a module_version(..., "default") in .modulerc.lua


@dataclass(frozen=True)
class RefreshResult:
    """What ``refresh_modules`` did: modules rewritten, and modules pruned."""

    written: list[ModuleInfo]
    pruned: list[ModuleInfo]


_HEADER = "-- nixmod-request: "
#: escapes that keep help text readable in the file; other controls become \\ddd
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RC = ".modulerc.lua"
#: seconds Lmod's spider may take to index a stack's tree (thousands of modules take a few)
SPIDER_TIMEOUT = 600

#: Search paths set from what a store path contains (cf. Spack's
#: prefix_inspections and EasyBuild's module generator). PATH is absent on
#: purpose: the shim dir goes there. Order: variable, then subdirectories.
_INSPECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("MANPATH", ("share/man", "man")),
    ("INFOPATH", ("share/info", "info")),
    ("PKG_CONFIG_PATH", ("lib/pkgconfig", "lib64/pkgconfig", "share/pkgconfig")),
    ("ACLOCAL_PATH", ("share/aclocal",)),
    ("CPATH", ("include",)),
)
#: variables whose empty element means "and the built-in defaults"
_KEEP_DEFAULTS = ("MANPATH", "INFOPATH")
#: CMake finds a package by its prefix, so the prefix goes on CMAKE_PREFIX_PATH
#: when it ships CMake config files
_CMAKE_DIRS = ("lib/cmake", "lib64/cmake", "share/cmake")
#: share/ subdirectories that other variables already cover, or that XDG
#: consumers never look at; share/ goes on XDG_DATA_DIRS only for the rest
_NOT_XDG = {"man", "info", "doc", "aclocal", "pkgconfig", "cmake", "locale", "licenses"}


# -- names and places -----------------------------------------------------------------

def modules_root(config: Config, root: Path | None = None) -> Path:
    return Path(root) if root is not None else Path(config.modules.root)


def environment_config(config: Config) -> Config:
    """``config`` whose module tree is the environments' (``[modules] env_prefix``).

    An environment's generation is a module like a build's, under another
    prefix: every function here (write, list, remove, defaults) works on it
    through this config, as ``diskuse.prefix_config`` does for ``du`` and ``gc``.
    """
    return replace(config, modules=replace(config.modules, prefix=config.modules.env_prefix))


def module_name(config: Config, name: str, version: str) -> str:
    """What ``module load`` takes: ``nix/hello/2.12.1``."""
    return f"{config.modules.prefix}/{name}/{version}"


def module_path(config: Config, name: str, version: str, *, root: Path | None = None) -> Path:
    validate_component(name, "name")
    validate_component(version, "version")
    return modules_root(config, root) / config.modules.prefix / name / f"{version}.lua"


def env_root_variable(name: str) -> str:
    """``NIXMOD_<NAME>_ROOT`` with NAME upper-cased and other characters as ``_`` (SPEC.md)."""
    return "NIXMOD_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_ROOT"


def module_rebuild(config: Config, request: ModuleRequest) -> str:
    """The command that brings ``request``'s store paths back (``envtext`` for an environment)."""
    if request.is_environment:
        return envtext.environment_rebuild(request.name, request.packages, config.demo_forced)
    return rebuild_command(request.name, request.version, config.demo_forced)


def rebuild_command(name: str, version: str, demo: bool = False) -> str:
    """The command that builds this module again; ``demo``: it lives in --demo's corner."""
    return ("nixmod --demo build " if demo else "nixmod build ") + shlex.quote(f"{name}@{version}")


# -- Lua text --------------------------------------------------------------------------

def lua_string(text: str) -> str:
    """A Lua string literal that reads back as exactly ``text``.

    Lone surrogates (possible in JSON from a catalog) cannot be written as
    UTF-8; they become U+FFFD rather than failing the whole module.
    """
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 32 or code == 127:
            out.append(f"\\{code:03d}")  # three digits: a following digit cannot join it
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _prefix_paths(outputs: dict[str, str]) -> list[tuple[str, str]]:
    """(variable, directory) pairs for the search paths the outputs provide."""
    found: list[tuple[str, str]] = []
    for path in outputs.values():
        base = Path(path)
        for variable, subdirs in _INSPECTIONS:
            found += [(variable, str(base / s)) for s in subdirs if (base / s).is_dir()]
        if any((base / s).is_dir() for s in _CMAKE_DIRS):
            found.append(("CMAKE_PREFIX_PATH", path))
        share = base / "share"
        if share.is_dir() and any(e.name not in _NOT_XDG for e in share.iterdir()):
            found.append(("XDG_DATA_DIRS", str(share)))
    return found


def _help_text(request: ModuleRequest, module: str, programs: list[str], shim_bin: Path,
               rebuild: str, demo: bool = False) -> str:
    lines = [f"{module}: {request.description}" if request.description else module, ""]
    origin = f"Built by nixmod from channel {request.channel or '(unknown)'}"
    lines.append(origin + (f", attribute {request.attr}." if request.attr else "."))
    lines += envtext.store_lines((("Homepage", request.homepage), ("License", request.license),
                                  ("Derivation", request.drv), ("Channel pin", request.channel_pin)),
                                 request.outputs, programs, shim_bin)
    lines.append(f"Rebuild with: {rebuild}")
    hint = envtext.environment_hint(request.attr or request.name, demo)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def render_modulefile(config: Config, request: ModuleRequest, shim_bin: Path,
                      programs: list[str], usage_dir: Path | None = None) -> str:
    """The modulefile text for ``request`` whose shims are in ``shim_bin``.

    ``request.channel_pin`` (url + sha256, path + content hash, git revision) and the
    drv go into ``module show`` / ``module help``: what says exactly which
    build this is (SPEC.md "Reproducible elsewhere").
    """
    module = module_name(config, request.name, request.version)
    rebuild = rebuild_command(request.name, request.version, config.demo_forced)
    header = json.dumps(asdict(request), sort_keys=True)
    if request.is_environment:
        return _render_environment(config, request, module, header, shim_bin, programs, usage_dir)
    fields = [("Name", request.name), ("Version", request.version),
              ("Description", request.description), ("Homepage", request.homepage),
              ("License", request.license), ("Channel", request.channel),
              ("Attribute", request.attr or request.name), ("Channel pin", request.channel_pin),
              ("Derivation", request.drv), ("Store path", request.store_path),
              ("Keywords", ", ".join(dict.fromkeys(["nix", request.name, *programs])))]
    whatis = [f"{label}: {value}" for label, value in fields if value]
    lines = ["-- nixmod module (generated; `nixmod modules refresh` rewrites it)",
             _HEADER + header]
    lines += [f"whatis({lua_string(text)})" for text in whatis]
    help_text = _help_text(request, module, programs, shim_bin, rebuild, config.demo_forced)
    lines.append(f"help({lua_string(help_text)})")
    return "\n".join(lines + _body(config, request, shim_bin, programs, usage_dir, rebuild,
                                   request.name)) + "\n"


def _render_environment(config: Config, request: ModuleRequest, module: str, header: str,
                        shim_bin: Path, programs: list[str], usage_dir: Path | None) -> str:
    """An environment's modulefile: its packages in whatis, help and ``extensions()``.

    ``extensions("numpy/2.1.0", …)`` is Lmod's way to say a module provides
    packages of its own, so ``module spider numpy`` names the environment.
    """
    listed = ", ".join(f"{p.get('attr') or p.get('name')} {p.get('version', '')}".strip()
                       for p in request.packages)
    fields = [("Name", f"{config.modules.prefix}/{request.name}"),
              ("Generation", request.version), ("Description", request.description),
              ("Channel", request.channel), ("Interpreter", request.interpreter),
              ("Packages", listed), ("Channel pin", request.channel_pin),
              ("Derivation", request.drv), ("Store path", request.store_path),
              ("Keywords", ", ".join(dict.fromkeys(["nix", "environment", request.name, *programs])))]
    lines = ["-- nixmod environment (generated by `nixmod env`)", _HEADER + header]
    lines += [f"whatis({lua_string(f'{label}: {value}')})" for label, value in fields if value]
    lines.append(f"help({lua_string(envtext.environment_help(request, module, programs, shim_bin))})")
    extensions = [envtext.extension(p) for p in request.packages]
    if extensions:
        lines.append("extensions(" + ", ".join(lua_string(e) for e in extensions) + ")")
    rebuild = module_rebuild(config, request)
    return "\n".join(lines + _body(config, request, shim_bin, programs, usage_dir, rebuild,
                                   f"{config.modules.prefix}_{request.name}")) + "\n"


def _body(config: Config, request: ModuleRequest, shim_bin: Path, programs: list[str],
          usage_dir: Path | None, rebuild: str, root_name: str) -> list[str]:
    """What a module does on load: the store check, usage, PATH (shims), search paths, ROOT."""
    lines: list[str] = []
    paths = ", ".join(lua_string(p) for p in request.outputs.values())
    lines += [
        "-- lua/SitePackage.lua defines this: a clear error when the store path is not on this node",
        "if nixmod_require_store then",
        f"  nixmod_require_store{{paths = {{{paths}}},",
        f"    store_dir = {lua_string(str(config.shims.store_dir))},",
        f"    real_store_dir = {lua_string(str(config.shims.real_store_dir or ''))},",
        f"    rebuild = {lua_string(rebuild)}}}",
        "end",
    ]
    lines += usage.modulefile_lines(usage_dir, lua_string)
    if programs:
        lines.append(f"prepend_path(\"PATH\", {lua_string(str(shim_bin))})")
    search_paths = _prefix_paths(request.outputs)
    lines += [f"prepend_path({lua_string(var)}, {lua_string(d)})" for var, d in search_paths]
    # An empty element keeps man's and info's built-in directories searched:
    # a MANPATH of only store dirs would hide every system man page.
    lines += [f"append_path(\"{var}\", \"\")" for var in _KEEP_DEFAULTS
              if any(v == var for v, _dir in search_paths)]
    lines.append(f"setenv({lua_string(env_root_variable(root_name))}, "
                 f"{lua_string(request.store_path)})")
    return lines


# -- writing and removing ------------------------------------------------------------------

def write_module(config: Config, request: ModuleRequest, *, root: Path | None = None,
                 default: bool = False) -> ModuleInfo:
    """Write the shims, then the modulefile, for one build; optionally make it the default.

    Everything is validated before the first byte is written, and the
    modulefile comes last, so a module never points at shims that are not
    there yet. The help shows ``request.channel_pin``, taken when the build
    was submitted (an import passes the pin its lock recorded).
    """
    path = module_path(config, request.name, request.version, root=root)
    if not request.outputs or not all(os.path.isabs(p) for p in request.outputs.values()):
        raise UserError(f"module {request.name}/{request.version} needs the store paths of its "
                        f"outputs, got {request.outputs!r}")
    shims.check_mode(config)
    base = modules_root(config, root)
    check_tree(base)
    shim_dir = shims.shim_dir(base, config.modules.prefix, request.name, request.version)
    replacing = path.exists() or shim_dir.exists()
    try:
        programs = shims.write_shims(config, shim_dir, request.outputs,
                                     rebuild=module_rebuild(config, request))
        atomic_write(path, render_modulefile(config, request, shim_dir / "bin",
                                             [p.name for p in programs],
                                             usage_dir=_own_usage_dir(config, base)))
    except BaseException:
        # a new module that could not be written (disk full, a read-only directory) leaves
        # no shims behind that no module names; a rewrite keeps what the old module uses
        if not replacing:
            shims.remove_shims(shim_dir)
        raise
    if default:
        set_default(config, request.name, request.version, root=root)
    return ModuleInfo(module=module_name(config, request.name, request.version),
                      name=request.name, version=request.version, path=path,
                      store_path=request.store_path, outputs=dict(request.outputs),
                      default=default)


def check_tree(root: Path, *, create: bool = True) -> None:
    """Refuse (UserError) a modules root, or its ``.shims`` sibling, that another user can change.

    Lmod runs the modulefiles and users run the shims, as themselves: a
    ``<root>.shims`` that another user planted as a symlink into their own
    tree (easy in a shared /tmp) would let them swap a shim and run their
    program as whoever loads the module. ``create`` makes both directories
    (checked again after creation, see ``nixmod.dirs``).
    """
    key = "[modules] root (or the stack's modules_root)"
    for directory, what in ((Path(root), "modules root"),
                            (shims.shims_root(Path(root)), "shims directory")):
        if create:
            ensure_dir(directory, what, key)
        else:
            error = refusal(directory, what, key)
            if error:
                raise error


def _own_usage_dir(config: Config, base: Path) -> Path | None:
    """Where the loads of a module in ``base`` are kept for its owner: the user's own
    tree only (a stack's modules are loaded by everyone; syslog has those)."""
    return usage.usage_dir(config) if base == Path(config.modules.root) else None


def set_default(config: Config, name: str, version: str, *, root: Path | None = None) -> Path:
    """Make ``nix/NAME`` load ``version`` via ``.modulerc.lua`` (the one default mechanism)."""
    path = module_path(config, name, version, root=root)
    if not path.is_file():
        raise UserError(f"no module {module_name(config, name, version)} under "
                        f"{modules_root(config, root)}; write it before making it the default")
    rc = path.parent / _RC
    atomic_write(rc, "-- nixmod: the default version of this module\n"
                     f"module_version({lua_string(module_name(config, name, version))}, \"default\")\n")
    return rc


def clear_default(config: Config, name: str, *, root: Path | None = None) -> bool:
    """Drop the default of ``nix/NAME`` (Lmod's highest version wins again); True if one was set."""
    rc = module_path(config, name, "default", root=root).parent / _RC
    if _default_version(rc.parent) is None:
        return False
    rc.unlink()
    return True


def _default_version(name_dir: Path) -> str | None:
    """The version a nixmod-written ``.modulerc.lua`` makes the default, if any."""
    try:
        text = outside.read_text(name_dir / _RC)   # a tree may be shared: any bytes
    except OSError:
        return None
    match = re.search(r'module_version\("[^"]*/([^"/]+)", "default"\)', text)
    return match.group(1) if match else None


def remove_module(config: Config, name: str, version: str, *, root: Path | None = None,
                  gcroot_dir: Path | None = None) -> ModuleInfo:
    """Remove the modulefile, its shims, its default (if it was one) and its GC roots.

    The GC roots removed are those of the tree being changed: ``gcroot_dir``
    when given (a site stack's own), else the state dir's for the user's
    own tree (``[modules].root``), and none for any other tree. A stack
    dropping ``hello/2.12.1`` must not unlink the root that keeps the staff
    member's personal ``hello/2.12.1`` alive. The store path stays: the
    garbage collector decides when it goes, since another user's module or
    a running job may still use it.
    """
    path = module_path(config, name, version, root=root)
    info = _read_module(config, path)
    if info is None:
        raise UserError(f"no module {module_name(config, name, version)} under "
                        f"{modules_root(config, root)}; `nixmod modules list` shows the modules")
    path.unlink()
    if _default_version(path.parent) == version:
        (path.parent / _RC).unlink()
    if gcroot_dir is None and modules_root(config, root) == Path(config.modules.root):
        gcroot_dir = own_gcroot_dir(config)
    if gcroot_dir is not None:
        remove_gc_roots(gcroot_dir, name, version, info.outputs)
    shims.remove_shims(shims.shim_dir(modules_root(config, root), config.modules.prefix, name, version))
    try:
        path.parent.rmdir()
    except OSError:
        pass
    return info


def own_gcroot_dir(config: Config) -> Path:
    """Where the roots of the user's own modules in ``config``'s tree live: the state dir's,
    or its ``.environments`` for the environments' tree (``environment_config``)."""
    state_dir = Path(config.build.state_dir)
    return environment_gcroot_dir(state_dir) if config.modules.prefix == config.modules.env_prefix \
        else personal_gcroot_dir(state_dir)


# -- reading the tree ------------------------------------------------------------------------

def _read_module(config: Config, path: Path) -> ModuleInfo | None:
    """The ModuleInfo of one nixmod modulefile (None if absent or not written by nixmod)."""
    request = read_request(path)
    if request is None:
        return None
    return ModuleInfo(module=module_name(config, request.name, request.version),
                      name=request.name, version=request.version, path=path,
                      store_path=request.store_path, outputs=dict(request.outputs),
                      default=_default_version(path.parent) == request.version)


def read_request(path: Path) -> ModuleRequest | None:
    """The request a nixmod modulefile was written from (None if it is not one)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in (handle.readline(), handle.readline()):
                if line.startswith(_HEADER):
                    data = json.loads(line[len(_HEADER):])
                    # keys a newer nixmod added are skipped, not a reason to disown the module
                    known = {f.name for f in dataclass_fields(ModuleRequest)}
                    return ModuleRequest(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None
    return None


def list_modules(config: Config, *, root: Path | None = None) -> list[ModuleInfo]:
    """Every nixmod module under the root, sorted, with ``valid`` from one store query."""
    tree = modules_root(config, root) / config.modules.prefix
    infos: list[ModuleInfo] = []
    if tree.is_dir():
        for path in sorted(tree.glob("*/*.lua")):
            if path.name.startswith("."):
                continue
            info = _read_module(config, path)
            if info is not None:
                infos.append(info)
    paths = sorted({p for info in infos for p in info.outputs.values()})
    valid: set[str] = set()
    for start in range(0, len(paths), 1000):   # stay far below the argv limit
        valid |= nix.valid_paths(paths[start:start + 1000])
    return [_with_validity(info, all(p in valid for p in info.outputs.values())) for info in infos]


def _with_validity(info: ModuleInfo, valid: bool) -> ModuleInfo:
    return ModuleInfo(**{**info.__dict__, "valid": valid and bool(info.outputs)})


def path_entries(config: Config, info: ModuleInfo, *, root: Path | None = None) -> tuple[str, ...]:
    """The directories ``info``'s modulefile puts on PATH, without parsing its Lua.

    ``render_modulefile`` puts exactly one there: the build's shim ``bin/``,
    and only when it holds programs (``write_shims`` keeps it in step).
    """
    bin_dir = shims.shim_dir(modules_root(config, root), config.modules.prefix,
                             info.name, info.version) / "bin"
    try:
        return (str(bin_dir),) if any(bin_dir.iterdir()) else ()
    except OSError:
        return ()


def refresh_modules(config: Config, requests: Iterable[ModuleRequest], *,
                    root: Path | None = None) -> RefreshResult:
    """Rewrite every module from ``requests``, then prune modules whose store path is gone.

    New files are written before any stale one is removed, so a live tree
    is never empty, not even for a moment. Requests whose store paths are no
    longer valid are not written (their module, if any, is pruned); modules
    that are not in ``requests`` but still valid (a stack's, say) are kept.
    """
    requests = list(requests)
    valid = nix.valid_paths(sorted({p for r in requests for p in r.outputs.values()}))
    written = [write_module(config, r, root=root) for r in requests
               if r.outputs and all(p in valid for p in r.outputs.values())]
    kept = {(info.name, info.version) for info in written}
    pruned = [remove_module(config, info.name, info.version, root=root)
              for info in list_modules(config, root=root)
              if not info.valid and (info.name, info.version) not in kept]
    return RefreshResult(written=written, pruned=pruned)


# -- Lmod's spider cache for site trees -----------------------------------------------------------

def lmod_libexec() -> Path:
    """Lmod's libexec dir (where ``spider`` lives), from LMOD_DIR when Lmod is initialised."""
    return Path(os.environ.get("LMOD_DIR") or "/usr/share/lmod/lmod/libexec")


def spider_cache_dir(root: Path) -> Path:
    """Where a site tree's spider cache goes: a sibling, so Lmod never reads it as modules."""
    return root.with_name(root.name + ".lmodcache")


def update_spider_cache(root: Path) -> Path:
    """Regenerate the spider cache of a site tree as update_lmod_system_cache_files does.

    The timestamp file is renamed into place first and the cache after it,
    each written new and renamed, so Lmod never reads a half-written cache
    and never sees a cache older than its timestamp. Sites point Lmod at it
    with ``LMOD_RC=<cache>/lmodrc.lua`` (written here too) or by copying its
    ``scDescriptT`` entry into their own lmodrc.lua. Returns the cache dir.
    """
    root = Path(root)
    cache = spider_cache_dir(root)
    # Lmod executes the cache (it is Lua): nobody else may be able to change it
    ensure_dir(cache, "Lmod spider cache", "the stack's modules_root")
    timestamp = cache / "timestamp"
    atomic_write(timestamp, "")
    spider = lmod_libexec() / "spider"
    try:
        proc = outside.run([str(spider), "-o", "spiderT", str(root)], timeout=SPIDER_TIMEOUT,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"Lmod spider did not finish within {SPIDER_TIMEOUT} s on {root}") from None
    if proc.returncode != 0:
        raise OperationFailed(f"Lmod spider failed on {root}: {nix.last_lines(proc.stderr)}")
    atomic_write(cache / "spiderT.lua", proc.stdout)
    atomic_write(cache / "lmodrc.lua",
                 "-- nixmod: Lmod spider cache of " + str(root) + "\n"
                 f"scDescriptT = {{ {{ dir = {lua_string(str(cache))}, "
                 f"timestamp = {lua_string(str(timestamp))} }} }}\n")
    return cache


# -- for the faces ------------------------------------------------------------------------------

def parse_target(config: Config, target: str | None) -> tuple[str, str]:
    """``NAME/VERSION`` (or ``<prefix>/NAME/VERSION``, as `module list` shows it) -> parts."""
    parts = (target or "").split("/")
    if len(parts) == 3 and parts[0] == config.modules.prefix:
        parts = parts[1:]
    if len(parts) != 2:
        raise UserError(f"expected NAME/VERSION (e.g. hello/2.12.1), got {target!r}; "
                        "`nixmod modules list` shows the modules")
    return validate_component(parts[0], "name"), validate_component(parts[1], "version")


def info_as_json(info: ModuleInfo) -> dict:
    return {**asdict(info), "path": str(info.path)}
