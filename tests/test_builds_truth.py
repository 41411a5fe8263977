"""Records tell the truth about modules (issue 15 item 9, SLURM backend, real users)."""

from __future__ import annotations

from builds_helpers import new_counter, records, setup_builds, status


def test_wait_fails_when_the_module_was_not_written_and_refresh_fixes_the_record(
        alice, test_channels):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
    # the modules root and its shims dir are fine (checked before submitting); the
    # prefix directory inside it is the user's own but read-only, so only the job's
    # module write fails, after the build
    root = alice.home / "mods"
    locked = root / "nix"
    alice.run("mkdir", "-p", str(locked), str(root) + ".shims", check=True)
    alice.run("chmod", "555", str(locked), check=True)
    alice.write_config(alice.config_path.read_text()
                       + f'\n[modules]\nroot = "{root}"\n')
    waited = alice.nixmod("build", "pkg6", "--wait", "--json", timeout=300)
    record = records(waited)[0]
    assert record["state"] == "built" and record["module"] is None, record
    assert "module was not written" in record["error"]
    assert waited.returncode == 1, "a build with no module to load is not a success"
    shims = root.parent / (root.name + ".shims")
    assert sorted(p.name for p in shims.rglob("*")) == [], "shims that no module names were left"

    alice.run("chmod", "755", str(locked), check=True)
    alice.nixmod("modules", "refresh", check=True)
    fixed = status(alice, record["id"])[0]
    assert fixed["module"] == "nix/pkg6/1.0" and fixed["error"] is None, fixed
    assert fixed["state"] == "built"
    shown = alice.bash(f"module use {root} && module load nix/pkg6 && pkg6", check=True)
    assert "pkg6 1.0" in shown.stdout
    assert (shims / "nix/pkg6/1.0/bin/pkg6").is_file()
