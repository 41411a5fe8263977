"""Planning an environment (nixmod.envplan) on the demo catalog's saved lists: fast, no Nix.

What the rig tests (test_envs.py) build, decided here in-process: which
interpreter, which channel, which expression, and the one-line refusals.
"""

from __future__ import annotations

import pytest

from dump_channels import DEMO, DumpHome
from nixmod.catalog import Catalog
from nixmod.envplan import environment_expression, plan_environment, require_buildable, role_of
from nixmod.errors import UserError

NUMPY, REQUESTS, SCIPY = ("python3Packages.numpy-demo", "python3Packages.requests-demo",
                          "python311Packages.scipy-demo")
CHANNELS = [name for name, _path in DEMO]


@pytest.fixture
def catalog(dump_home: DumpHome) -> Catalog:
    return Catalog.load(dump_home.config())


def test_python_packages_go_into_their_interpreter_s_with_packages_and_the_rest_beside_it(catalog):
    plan = plan_environment(catalog, [REQUESTS, "hello", NUMPY], CHANNELS)
    assert (plan.channel, plan.interpreter) == ("demo-2025", "python3")
    assert plan.attrs == ["hello", NUMPY, REQUESTS]
    assert [m.version for m in plan.members] == ["2.12.1", "2.1.0", "2.32.3"]
    assert plan.expression == (
        'pkgs: pkgs.buildEnv {\n  name = "nixmod-env";\n  paths = [\n'
        "    (pkgs.python3.withPackages (ps: [ ps.numpy-demo ps.requests-demo ]))\n"
        "    pkgs.hello\n  ];\n}\n")


def test_the_expression_depends_on_the_package_set_only_not_on_order_or_repeats(catalog):
    one = plan_environment(catalog, [NUMPY, REQUESTS, "hello"], CHANNELS)
    other = plan_environment(catalog, ["hello", REQUESTS, NUMPY, NUMPY], CHANNELS)
    assert one.expression == other.expression and one.attrs == other.attrs


def test_r_packages_go_into_r_wrapper_override():
    assert role_of("rPackages.ggplot2").interpreter == "rWrapper"
    text = environment_expression("rWrapper", ["rPackages.ggplot2", "rPackages.dplyr", "R"])
    assert "(pkgs.rWrapper.override { packages = [ pkgs.rPackages.dplyr pkgs.rPackages.ggplot2 ]; })" \
        in text and "pkgs.R\n" not in text


def test_attribute_names_from_a_catalog_never_become_nix_code():
    text = environment_expression("python3", ['python3Packages.in', 'python3Packages.a"${b}',
                                              'x; y = builtins.exec', "3to2"])
    assert 'ps."a\\"\\${b}"' in text and 'ps."in"' in text
    assert 'pkgs."x; y = builtins".exec' in text and 'pkgs."3to2"' in text


def test_the_newest_channel_with_every_package_is_chosen_and_channel_pins_it(catalog):
    assert plan_environment(catalog, [NUMPY], CHANNELS).channel == "demo-2025"
    old = plan_environment(catalog, [NUMPY], CHANNELS, channel="demo-2024")
    assert old.channel == "demo-2024" and [m.version for m in old.members] == ["1.24.0"]
    assert plan_environment(catalog, ["hdf5", NUMPY], CHANNELS).channel == "demo-2024"


@pytest.mark.parametrize("specs, channel, message", [
    ([NUMPY, SCIPY], None, f"{NUMPY} and {SCIPY} need two interpreters (python3 and python311)"),
    (["python311", NUMPY], None, f"python311 and {NUMPY} need two interpreters"),
    (["python311Packages.requests-demo"], None,
     "requests-demo is not in python311's package set; it is in python3Packages.requests-demo"),
    (["python3Packages.hello"], None, "hello is not in python3's package set; it is a package "
     "of its own: give it as hello"),
    (["demo-2024:hello", "demo-2025:ripgrep"], None, "demo-2024:hello and demo-2025:ripgrep "
     "name two channels"),
    ([REQUESTS], "demo-2024", f"{REQUESTS}: {REQUESTS} is not in channel 'demo-2024'"),
    (["hdf5", "bioinfo-tools"], None, "hdf5 (channel demo-2024) and bioinfo-tools (channel "
     "demo-2025) are in no channel together"),
    (["python3Packages.nosuch"], None, "unknown package 'python3Packages.nosuch'"),
    ([], None, "an environment needs at least one package"),
])
def test_what_cannot_be_one_environment_is_refused_in_one_line(catalog, specs, channel, message):
    with pytest.raises(UserError) as caught:
        plan_environment(catalog, specs, CHANNELS, channel)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_browse_only_channel_is_refused_before_anything_is_built(catalog, dump_home):
    plan = plan_environment(catalog, [NUMPY], CHANNELS)
    with pytest.raises(UserError, match="demo-2025' is a saved package list .*browse-only"):
        require_buildable(dump_home.config(), plan)
