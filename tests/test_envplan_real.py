"""Environment planning on real nixpkgs attribute names (tests/dumps/nixpkgs-*-envs.json).

The planner decides from attribute paths alone which interpreter each
package joins (``envplan``); these are the names users type, cut from the
real listings in ../shared/data/nixpkgs by tests/dumps/cut_real.py: 26.11's
python313Packages / python314Packages, 20.09's python37/38Packages and
rPackages (ggplot2, dplyr, data_table). In-process on saved lists, no Nix:
the fast tier. The whole 96,000-package listing is bench_envs.py's.
"""

from __future__ import annotations

import pytest

from dump_channels import DUMPS, DumpHome
from nixmod.catalog import Catalog
from nixmod.envplan import plan_environment
from nixmod.errors import UserError

NEW, OLD = "nixpkgs-26.11", "nixpkgs-20.09"


@pytest.fixture
def catalog(dump_home: DumpHome) -> Catalog:
    dump_home.write_config((OLD, DUMPS / "nixpkgs-20.09-envs.json"),
                           (NEW, DUMPS / "nixpkgs-26.11-envs.json"))
    return Catalog.load(dump_home.config())


def plan(catalog: Catalog, *specs: str, channel: str | None = None):
    return plan_environment(catalog, specs, [c.name for c in catalog.channels], channel)


def test_python_libraries_go_into_their_interpreters_with_packages(catalog: Catalog) -> None:
    env = plan(catalog, "python313Packages.scipy", "jq", "python313Packages.numpy",
               "python313Packages.scikit-learn", "ripgrep")
    assert (env.channel, env.interpreter) == (NEW, "python313")
    assert env.attrs == sorted(env.attrs) and len(env.attrs) == 5
    assert env.expression == (
        'pkgs: pkgs.buildEnv {\n  name = "nixmod-env";\n  paths = [\n'
        "    (pkgs.python313.withPackages (ps: [ ps.numpy ps.scikit-learn ps.scipy ]))\n"
        "    pkgs.jq\n    pkgs.ripgrep\n  ];\n}\n")
    versions = {m.attr: m.version for m in env.members}
    assert versions["python313Packages.numpy"] == catalog.resolve("python313Packages.numpy").version


def test_the_same_set_in_another_order_is_the_same_expression(catalog: Catalog) -> None:
    one = plan(catalog, "python314Packages.pandas", "python314Packages.xarray", "git")
    other = plan(catalog, "git", "python314Packages.xarray", "python314Packages.pandas",
                 "python314Packages.pandas")
    assert one.expression == other.expression and one.interpreter == "python314"


def test_r_packages_go_into_rwrapper_override(catalog: Catalog) -> None:
    env = plan(catalog, "rPackages.ggplot2", "rPackages.data_table", "rPackages.dplyr", "R")
    assert (env.channel, env.interpreter) == (OLD, "rWrapper")   # only 20.09 has ggplot2
    assert ("(pkgs.rWrapper.override { packages = [ pkgs.rPackages.data_table "
            "pkgs.rPackages.dplyr pkgs.rPackages.ggplot2 ]; })") in env.expression
    assert "pkgs.R\n" not in env.expression      # R itself comes with rWrapper


def test_an_older_channel_is_chosen_when_only_it_has_every_package(catalog: Catalog) -> None:
    env = plan(catalog, "python38Packages.numpy", "python38Packages.pandas")
    assert (env.channel, env.interpreter) == (OLD, "python38")
    assert "(pkgs.python38.withPackages (ps: [ ps.numpy ps.pandas ]))" in env.expression


@pytest.mark.parametrize("specs, said", [
    (["python313Packages.numpy", "python314Packages.scipy"],
     "python313Packages.numpy and python314Packages.scipy need two interpreters "
     "(python313 and python314)"),
    (["python38Packages.numpy", "rPackages.ggplot2"],
     "python38Packages.numpy and rPackages.ggplot2 need two interpreters (python38 and rWrapper)"),
    (["python313Packages.numpy", "rPackages.ggplot2"], "need two interpreters"),
    (["python313Packages.numpy", "python38Packages.pandas"], "need two interpreters"),
    (["python313Packages.numpy", f"{OLD}:jq"],
     f"python313Packages.numpy is not in channel '{OLD}'; it is in: {NEW}"),
    (["python313Packages.jq"], "python313Packages.jq: jq is not in python313's package set; it is a "
                               "package of its own: give it as jq"),
])
def test_mixtures_are_refused_in_one_line_naming_both(catalog: Catalog, specs: list[str],
                                                      said: str) -> None:
    with pytest.raises(UserError) as refused:
        plan(catalog, *specs)
    assert said in str(refused.value) and "\n" not in str(refused.value)
