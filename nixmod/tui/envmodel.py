"""What the TUI shows of environments, worked out in plain Python (no Textual import).

Beside ``model`` (packages, builds, modules): making an environment of the
selection (a name, then the plan: interpreter, packages, reuse / join /
build), the user's environments for the Modules screen, and which of them
hold a package for Browse. The rules are the core's (``envplan`` plans,
``environments`` builds and lists); here they are only arranged for the
screens. Every function that touches Nix or the disk is called from thread
workers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nixmod import builds, environments, lmod
from nixmod.builds.planning import Plan
from nixmod.builds.state import BuildRecord
from nixmod.config import Config
from nixmod.envplan import EnvPlan, Lookup, plan_environment, require_buildable, role_of
from nixmod.errors import UserError
from nixmod.names import validate_component
from nixmod.packages import PackageVersion
from nixmod.tui.model import ModuleRow

#: what the plan says of a member that goes into buildEnv as it is
BESIDE = "beside it (buildEnv)"


@dataclass(frozen=True)
class MemberRow:
    """One package of a planned environment and where it goes."""

    name: str
    version: str
    goes_into: str      # "python313.withPackages", "rWrapper.override", "the interpreter", BESIDE


@dataclass(frozen=True)
class EnvPreview:
    """What making the environment NAME of the selection would do, before anything is submitted.

    ``blocked``: why it cannot be built here (a browse-only channel), shown
    in place of the action; ``action``: reuse / join / build (the core's
    forecast, "" when blocked); ``forecast``: the core's plans
    (``environments.forecast``), handed back to it to submit.
    """

    name: str
    plan: EnvPlan
    members: tuple[MemberRow, ...]
    action: str = ""
    job: str | None = None
    owner: str | None = None
    blocked: str = ""
    forecast: tuple[Plan, ...] = ()

    @property
    def interpreter_text(self) -> str:
        return self.plan.interpreter or "none (buildEnv of the packages)"

    @property
    def will(self) -> str:
        """One phrase: what submitting does (the words of the package plan dialog)."""
        if self.blocked:
            return "cannot be built here"
        if self.action == "reuse":
            return "reuse: already built (by you or someone else)"
        if self.action == "join":
            whose = f", {self.owner}'s" if self.owner else ""
            return f"join: already building (job {self.job}{whose})" if self.job else "join: already building"
        if self.action == "build":
            return "build: new"
        return self.action


def check_env_name(name: str) -> str:
    """"" when ``name`` can name an environment (it becomes ``<env_prefix>/NAME``), else why not."""
    if not name.strip():
        return "type a name, e.g. sci"
    try:
        validate_component(name.strip(), "name")
    except UserError as exc:
        return str(exc)
    return ""


def selection_specs(versions: Sequence[PackageVersion]) -> list[str]:
    """The picks as ``env create`` SPECs, each pinned to its channel and version: the
    environment is what was picked, and picks of two channels are refused by name."""
    return [f"{v.channel}:{v.name}@{v.version}" for v in versions]


def member_rows(plan: EnvPlan) -> tuple[MemberRow, ...]:
    """Each member with where it goes (the planner's rule: ``envplan.role_of``)."""
    rows = []
    for member in plan.members:
        role = role_of(member.attr)
        if role.is_interpreter:
            goes = "the interpreter"
        elif role.in_set and plan.interpreter == "rWrapper":
            goes = "rWrapper.override"
        elif role.in_set:
            goes = f"{role.interpreter}.withPackages"
        else:
            goes = BESIDE
        rows.append(MemberRow(member.name, member.version, goes))
    return tuple(rows)


def plan_from_selection(config: Config, catalog: Lookup, name: str,
                        versions: Sequence[PackageVersion]) -> EnvPreview:
    """The plan of environment ``name`` of ``versions`` (UserError: refused, one line).

    Planning is the core's, in-process; then a browse-only channel is
    ``blocked`` (the plan is still shown: the user sees what it would be);
    else the core instantiates it and says reuse / join / build (Nix and
    the scheduler: call this from a worker).
    """
    why = check_env_name(name)
    if why:
        raise UserError(why)
    name = name.strip()
    if not versions:
        raise UserError("the selection is empty; pick packages in Browse (space) first")
    environments.check_new_name(config, name)   # env create's question: one answer for both faces
    channels = [c.name for c in config.channels]
    plan = plan_environment(catalog, selection_specs(versions), channels)
    try:
        require_buildable(config, plan)
    except UserError as exc:
        return EnvPreview(name=name, plan=plan, members=member_rows(plan), blocked=str(exc))
    forecast = environments.forecast(config, name, plan)
    first = forecast[0]
    return EnvPreview(name=name, plan=plan, members=member_rows(plan), action=first.action,
                      job=first.job, owner=first.owner, forecast=tuple(forecast))


def create_environment(config: Config, preview: EnvPreview) -> list[BuildRecord]:
    """Submit the environment ``preview`` showed, as ``nixmod env create`` does (the core
    decides reuse / join / build again under its lock: a job may have ended since)."""
    if preview.blocked or not preview.forecast:
        raise UserError(preview.blocked or f"environment {preview.name} has no plan to submit")
    return builds.submit(config, list(preview.forecast))


# -- the user's environments: Modules and Browse ----------------------------------------

def environment_rows(config: Config) -> list[ModuleRow]:
    """Every generation of the user's environments, as the Modules screen lists modules.

    Read from the environments' own module tree (``lmod.environment_config``):
    each generation's modulefile carries its packages, so the tree is the
    record (what ``module load`` finds is what is listed).
    """
    tree = lmod.environment_config(config)
    rows = []
    for info in lmod.list_modules(tree):
        request = lmod.read_request(info.path)
        members = tuple((str(p.get("attr") or p.get("name") or ""), str(p.get("version") or ""))
                        for p in (request.packages if request is not None else []))
        rows.append(ModuleRow(
            module=info.module, name=info.name, version=info.version, valid=info.valid,
            store_path=info.store_path, use_line=f"module use {config.modules.root}",
            load_line=f"module load {info.module}", path_entries=lmod.path_entries(tree, info),
            environment=info.name, packages=members))
    return rows


def remove_environment(config: Config, row: ModuleRow) -> None:
    """What ``nixmod env remove NAME/GEN`` does: that generation's module, shims and GC roots
    (the newest remaining generation is what ``module load <env_prefix>/NAME`` gives then)."""
    lmod.remove_module(lmod.environment_config(config), row.name, row.version)


def environments_holding(rows: Sequence[ModuleRow], name: str) -> list[str]:
    """The user's environment generations that hold the package ``name`` (attribute path),
    newest generation of each environment first: what Browse shows beside a package."""
    holding = [row for row in rows if any(attr == name for attr, _version in row.packages)]
    holding.sort(key=lambda row: (row.environment, -int(row.version) if row.version.isdigit() else 0))
    return [row.module for row in holding]


def generations_of(rows: Sequence[ModuleRow], environment: str) -> list[str]:
    """The generations of ``environment`` the user has, oldest first (``["1", "2"]``)."""
    return sorted((row.version for row in rows if row.environment == environment),
                  key=lambda generation: int(generation) if generation.isdigit() else 0)


def unversioned(row: ModuleRow) -> str:
    """``nixenv/NAME``: what ``module load`` takes for the newest generation of ``row``'s."""
    return row.module.rsplit("/", 1)[0]
