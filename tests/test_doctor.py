"""`nixmod doctor` on the real rig: all green, and what it says when a part is wrong.

An unreachable slurmctld is tested in test_slurm_unreachable.py, with a
slurm.conf naming a controller port nobody listens on: the rig's own
slurmctld is shared by every test and never stopped for it.
"""

from __future__ import annotations

import json

SLURM_CONFIG = '[build]\nbackend = "slurm"\n[build.slurm]\npartition = "nixbuild"\n'


def _green_env(session) -> dict[str, str]:
    """Put the modules root on MODULEPATH, as `module use` would, and the site's Lmod hook
    on LMOD_PACKAGE_PATH, as the rig's site installs it."""
    return {"MODULEPATH": str(session.home / ".local/share/nixmod/modules"),
            "LMOD_PACKAGE_PATH": "/opt/nixmod/lua"}


def test_doctor_is_all_green_on_the_rig(alice):
    alice.write_config(SLURM_CONFIG)
    proc = alice.nixmod("doctor", env=_green_env(alice))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith("[ ok ]") for line in lines), proc.stdout
    names = [line.split(":")[0][7:] for line in lines]
    for name in ("nix", "nix-daemon", "substituters", "slurm", "lmod", "bwrap", "proot",
                 "modules root", "state dir"):
        assert name in names


def test_doctor_shows_the_poll_period_in_force(alice):
    """Admins and users see how often a waiting nixmod asks the scheduler (SPEC default 30)."""
    alice.write_config(SLURM_CONFIG)
    assert "scheduler asked at most every 30 s while waiting ([build] poll_seconds)" in \
        alice.nixmod("doctor", env=_green_env(alice)).stdout
    alice.write_config(SLURM_CONFIG.replace("[build]\n", "[build]\npoll_seconds = 90\n"))
    assert "scheduler asked at most every 90 s" in alice.nixmod("doctor", env=_green_env(alice)).stdout


def test_doctor_json_is_one_clean_document(alice):
    alice.write_config(SLURM_CONFIG)
    proc = alice.nixmod("doctor", "--json", env=_green_env(alice))
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"nix", "nix-daemon", "slurm", "lmod"}


def test_doctor_names_an_unwritable_modules_root_with_a_fix(alice):
    alice.write_config('[modules]\nroot = "/root/not-yours"\n')
    proc = alice.nixmod("doctor")
    assert proc.returncode == 1
    line = next(l for l in proc.stdout.splitlines() if "modules root" in l)
    assert line.startswith("[FAIL]") and "not writable" in line and "set [modules] root" in line


def test_doctor_says_whether_module_loads_are_recorded(alice):
    """Without the site hook or syslog, `usage` stays empty and `gc` goes by build time:
    doctor says so (a warning, not a failure), and says yes once the hook is on the path."""
    alice.write_config('[usage]\nlog = "/root/no-such-usage.log"\n')
    proc = alice.nixmod("doctor", "--json", env={**_green_env(alice), "LMOD_PACKAGE_PATH": ""})
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["usage hook"]["status"] == "warn"
    assert "module loads are not recorded" in checks["usage hook"]["detail"]
    assert "LMOD_PACKAGE_PATH" in checks["usage hook"]["fix"]
    assert checks["usage log"]["status"] == "warn"
    assert "/root/no-such-usage.log" in checks["usage log"]["detail"]
    assert checks["syslog"]["status"] == "ok"          # the rig's rsyslogd holds /dev/log

    proc = alice.nixmod("doctor", "--json",
                        env={**_green_env(alice), "LMOD_PACKAGE_PATH": "/opt/nixmod/lua"})
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["usage hook"]["status"] == "ok", checks["usage hook"]
    assert "/opt/nixmod/lua/SitePackage.lua" in checks["usage hook"]["detail"]
