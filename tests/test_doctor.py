"""`nixmod doctor` on the real rig: all green, and a stopped slurmctld named as the problem."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO

SLURM_CONFIG = '[build]\nbackend = "slurm"\n[build.slurm]\npartition = "nixbuild"\n'


def _green_env(session) -> dict[str, str]:
    """Put the modules root on MODULEPATH, as `module use` would."""
    return {"MODULEPATH": str(session.home / ".local/share/nixmod/modules")}


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


def test_doctor_names_slurm_when_slurmctld_is_stopped(alice):
    alice.write_config(SLURM_CONFIG)
    subprocess.run(["pkill", "-x", "slurmctld"], check=True)
    try:
        for _ in range(50):
            if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode:
                break
            subprocess.run(["sleep", "0.1"])
        proc = alice.nixmod("doctor", env=_green_env(alice), timeout=120)
    finally:
        up = subprocess.run(["bash", str(REPO / "tests/cluster/up.sh")], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr[-2000:]
    assert proc.returncode == 1, proc.stdout
    failed = [l for l in proc.stdout.splitlines() if l.startswith("[FAIL]")]
    assert len(failed) == 1 and failed[0].startswith("[FAIL] slurm: slurmctld not reachable"), proc.stdout
