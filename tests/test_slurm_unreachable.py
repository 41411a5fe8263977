"""SLURM unreachable (issue 10, item 6): the local backend does not care, the slurm backend
says so quickly, and doctor says SLURM matters only for backend = "slurm".

slurmctld is shared by everyone on the rig, so it is never stopped here: the user runs
with SLURM_CONF pointing at a copy of the site's slurm.conf whose controller port has
no slurmctld behind it. Every SLURM client tool then retries for 9 s (scontrol 18 s)
before it gives up, which is exactly what a login node sees while slurmctld is down.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from builds_helpers import counter_lines, new_counter, records, setup_builds, status
from rig import SCRATCH


@pytest.fixture
def dead_controller(alice) -> Path:
    """A slurm.conf naming a controller that is not running (a port nobody listens on)."""
    text = Path("/etc/slurm/slurm.conf").read_text()
    text = re.sub(r"(?m)^\s*SlurmctldPort\s*=.*$", "", text)
    text = re.sub(r"(?m)^(\s*SlurmctldHost\s*=\s*)([^\s(#]+).*$", r"\1\2(127.0.0.1)", text)
    directory = SCRATCH / f"dead-slurm-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    directory.chmod(0o755)
    conf = directory / "slurm.conf"
    conf.write_text(text + "\nSlurmctldPort=6999\n")
    conf.chmod(0o644)
    alice.extra_env["SLURM_CONF"] = str(conf)
    return conf


# Each build below would wait 2 x 9 s on squeue (plan, then submit) if the local backend
# asked SLURM: 8 of them ~150 s. Without asking, the whole test takes well under a minute.
@pytest.mark.timeout(100)
def test_local_backend_builds_reuses_and_retries_without_asking_slurm(alice, test_channels,
                                                                       dead_controller):
    assert alice.run("squeue", "-h").returncode != 0   # the tools really cannot reach it
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="local", nonce=nonce, counter=counter, sleep=0)

    built = alice.nixmod("build", "pkg1", "--wait", "--json")
    assert built.returncode == 0, built.stderr
    [record] = records(built)
    assert record["state"] == "built" and record["job"].startswith("local:")
    assert "squeue" not in built.stderr and "slurm" not in built.stderr.lower()

    for _ in range(5):
        again = alice.nixmod("build", "pkg1", "--json")
        assert again.returncode == 0, again.stderr
        assert records(again)[0]["state"] == "reused"
        assert "squeue" not in again.stderr

    failed = alice.nixmod("build", "failing", "--wait", "--json")
    assert failed.returncode == 1 and records(failed)[0]["state"] == "failed"
    retried = alice.nixmod("build", "--retry", "--wait", "--json")
    assert retried.returncode == 1, retried.stderr
    assert [r["state"] for r in records(retried)] == ["failed"]
    assert "squeue" not in retried.stderr and "slurm" not in retried.stderr.lower()
    assert len(counter_lines(counter)) == 3            # pkg1 once, failing twice
    assert [r["backend"] for r in status(alice)] == ["local"] * 7


@pytest.mark.timeout(120)
def test_slurm_backend_with_an_unreachable_controller_fails_in_bounded_time(alice, test_channels,
                                                                            dead_controller):
    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=0)
    proc = alice.nixmod("build", "pkg2", timeout=90)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "squeue did not answer within 5 s" in last and "scontrol ping" in last, proc.stderr
    assert "kept as pending" in last and "Traceback" not in proc.stderr
    assert [r["state"] for r in status(alice)] == ["pending"]
    assert counter_lines(counter) == []


@pytest.mark.timeout(120)
def test_doctor_with_the_local_backend_warns_that_slurm_is_only_for_the_slurm_backend(
        alice, dead_controller):
    alice.write_config('[build]\nbackend = "local"\n')
    proc = alice.nixmod("doctor", timeout=90)
    assert proc.returncode == 0, proc.stdout
    [line] = [l for l in proc.stdout.splitlines() if l[7:].startswith("slurm:")]
    assert line.startswith("[warn] slurm: slurmctld not reachable"), line
    assert 'needed only for backend = "slurm"' in line and 'backend = "local"' in line
    assert not [l for l in proc.stdout.splitlines() if l.startswith("[FAIL]")], proc.stdout

    alice.write_config('[build]\nbackend = "slurm"\n')
    proc = alice.nixmod("doctor", timeout=90)
    assert proc.returncode == 1
    [line] = [l for l in proc.stdout.splitlines() if l[7:].startswith("slurm:")]
    assert line.startswith("[FAIL] slurm: slurmctld not reachable") and "needed only" not in line
