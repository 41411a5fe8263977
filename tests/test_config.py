"""Config layers, merging, expansion, and one clear line for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixmod.config import DEMO_CHANNELS, load_config
from nixmod.errors import UserError


@pytest.fixture
def layers(tmp_path):
    """Three layer files (site, user, explicit) and an environment pointing at them."""
    site = tmp_path / "etc" / "config.toml"
    xdg = tmp_path / "xdg"
    user = xdg / "nixmod" / "config.toml"
    explicit = tmp_path / "explicit.toml"
    for path in (site, user):
        path.parent.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(xdg),
           "NIXMOD_SITE_CONFIG": str(site), "SCRATCH": "/scratch/me"}
    return site, user, explicit, env


def test_defaults_use_the_bundled_demo_channels(layers):
    _site, _user, _explicit, env = layers
    config = load_config(environ=env)
    assert [c.name for c in config.channels] == list(DEMO_CHANNELS)
    assert config.demo and config.build.backend == "local" and config.build.max_concurrent == 2
    assert config.modules.prefix == "nix"
    assert config.modules.root == Path.home() / ".local/share/nixmod/modules"
    assert all((c.path / "default.nix").is_file() for c in config.channels)


def test_layers_merge_key_by_key_later_wins(layers):
    site, user, explicit, env = layers
    site.write_text('[build]\nbackend = "slurm"\nmax_concurrent = 8\n'
                    '[build.slurm]\npartition = "site-build"\naccount = "hpc"\n'
                    '[[channels]]\nname = "site-24.05"\npath = "/opt/nixpkgs/24.05"\n')
    user.write_text('[build]\nmax_concurrent = 3\n[build.slurm]\nqos = "low"\n')
    explicit.write_text('[build.slurm]\npartition = "mine"\nextra_args = ["--exclusive"]\n')
    config = load_config(explicit, environ=env)
    assert config.build.backend == "slurm"          # site only
    assert config.build.max_concurrent == 3         # user over site
    assert config.build.slurm.partition == "mine"   # explicit over site
    assert config.build.slurm.account == "hpc" and config.build.slurm.qos == "low"
    assert config.build.slurm.extra_args == ["--exclusive"]
    assert [c.name for c in config.channels] == ["site-24.05"] and not config.demo
    assert config.sources == [site, user, explicit]


def test_nixmod_config_env_is_the_explicit_layer(layers):
    _site, _user, explicit, env = layers
    explicit.write_text('[modules]\nprefix = "nixpkgs"\n')
    config = load_config(environ=env | {"NIXMOD_CONFIG": str(explicit)})
    assert config.modules.prefix == "nixpkgs"


def test_paths_expand_tilde_and_variables(layers):
    _site, user, _explicit, env = layers
    user.write_text('[build]\nstate_dir = "$SCRATCH/state"\n[modules]\nroot = "~/mods"\n'
                    '[[channels]]\nname = "dump"\npath = "$SCRATCH/pkgs.json.gz"\n')
    import os
    old = os.environ.get("SCRATCH")
    os.environ["SCRATCH"] = "/scratch/me"
    try:
        config = load_config(environ=env)
    finally:
        if old is None:
            del os.environ["SCRATCH"]
    assert config.build.state_dir == Path("/scratch/me/state")
    assert config.modules.root == Path.home() / "mods"
    assert config.channels[0].path == Path("/scratch/me/pkgs.json.gz") and config.channels[0].is_dump


def test_demo_flag_forces_demo_channels_local_backend_and_own_corners(layers):
    site, _user, _explicit, env = layers
    site.write_text('[build]\nbackend = "slurm"\n[[channels]]\nname = "x"\npath = "/x"\n')
    config = load_config(demo=True, environ=env)
    assert config.demo and config.build.backend == "local"
    assert [c.name for c in config.channels] == list(DEMO_CHANNELS)
    assert "demo" in config.modules.root.parts and "demo" in config.build.state_dir.parts


@pytest.mark.parametrize("text, expected", [
    ('[build\nbackend = "x"\n', r"malformed TOML: .*line 1"),
    ('[build]\nbackend = "local"\nbakend = "slurm"\n', r":3: unknown key 'build.bakend'; allowed: backend"),
    ('[build]\nmax_concurrent = "two"\n', r":2: key 'build.max_concurrent' must be an integer"),
    ('[build]\nmax_concurrent = true\n', r":2: key 'build.max_concurrent' must be an integer"),
    ('[build]\nmax_concurrent = 0\n', r":2: 'build.max_concurrent' must be at least 1"),
    ('[build]\npoll_seconds = 0\n', r":2: 'build.poll_seconds' must be at least 1 \(seconds"),
    ('[build]\npoll_seconds = 2.5\n', r":2: key 'build.poll_seconds' must be an integer"),
    ('[build]\nbackend = "torque"\n', r":2: 'build.backend' must be one of local, slurm, pbs"),
    ('[build.pbs]\nncpus = "2"\n', r":2: key 'build.pbs.ncpus' must be an integer"),
    ('[build.pbs]\nnodes = 2\n', r":2: unknown key 'build.pbs.nodes'"),
    ('[build]\npbs = "nixbuild"\n', r":2: 'build.pbs' must be a table"),
    ('[build.pbs]\nextra_args = ["-Nmine"]\n', r":2: 'build.pbs.extra_args' may not set -N"),
    ('[build.pbs]\nextra_args = ["-l", "select=2:ncpus=8"]\n',
     r":2: 'build.pbs.extra_args' may not set -l select"),
    ('[build.pbs]\nextra_args = ["-W", "depend=afterok:1"]\n',
     r":2: 'build.pbs.extra_args' may not set -W depend"),
    ('[build.pbs]\nextra_args = ["-hz"]\n', r":2: 'build.pbs.extra_args' may not set -h"),
    ('[build.pbs]\nextra_args = ["--", "/bin/sh"]\n',
     r":2: 'build.pbs.extra_args' may hold only qsub options; '--'"),
    ('[build.slurm]\nextra_args = "--exclusive"\n', r":2: key 'build.slurm.extra_args' must be a list of strings"),
    ('[build.slurm]\ncpus = 4\n', r":2: unknown key 'build.slurm.cpus'"),
    ('[build.slurm]\nextra_args = ["--exclusive", "--job-name=mine"]\n',
     r":2: 'build.slurm.extra_args' may not set --job-name"),
    ('[build.slurm]\nextra_args = ["-Jmine"]\n', r":2: 'build.slurm.extra_args' may not set --job-name"),
    ('[build.slurm]\nextra_args = ["--comment", "x"]\n', r":2: 'build.slurm.extra_args' may not set --comment"),
    ('[shims]\nmode = "docker"\n', r":2: 'shims.mode' must be one of auto, direct, bwrap, proot"),
    ('[modules]\nprefix = "../x"\n', r":2: 'modules.prefix' must be one directory name"),
    ('[module]\nroot = "/x"\n', r":1: unknown key 'module'; allowed: channels, build, modules, shims"),
    ('[[channels]]\npath = "/x"\n', r"every \[\[channels\]\] needs a name"),
    ('[[channels]]\nname = "a"\npath = "/x"\nbranch = "y"\n', r":4: unknown key 'channels.branch'"),
    ('[[channels]]\nname = "a"\nurl = "https://x/y.tar.gz"\n', r":3: channel 'a': url needs sha256"),
    ('[[channels]]\nname = "a"\n', r"channel 'a' needs exactly one of path or url"),
    ('[[channels]]\nname = "a"\npath = "/x"\n[[channels]]\nname = "a"\npath = "/y"\n', r"channel 'a' is defined twice"),
    ('[[channels]]\nname = "a b"\npath = "/x"\n', r"channel name 'a b' must be"),
])
def test_each_kind_of_mistake_is_one_line_naming_file_line_and_key(layers, text, expected):
    _site, user, _explicit, env = layers
    user.write_text(text)
    with pytest.raises(UserError, match=expected) as info:
        load_config(environ=env)
    message = str(info.value)
    assert message.startswith(str(user)), message
    assert "\n" not in message.strip() or "malformed" in message


def test_missing_explicit_config_is_an_error_not_a_silent_default(layers, tmp_path):
    _site, _user, _explicit, env = layers
    with pytest.raises(UserError, match="no such file"):
        load_config(tmp_path / "typo.toml", environ=env)


def test_bad_config_is_exit_2_with_one_line_for_a_real_user(alice):
    alice.write_config('[build]\nmax_concurrent = "lots"\n')
    proc = alice.nixmod("doctor")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.toml:2" in lines[0] and "max_concurrent" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
