"""The rig itself works: these prove the real parts that every other test stands on.

A build through the shared nix-daemon as an unprivileged user, an sbatch job
on the build partition run to completion as that user, a hand-written
modulefile loaded through real Lmod; and the rig script: it never overwrites
another cluster's config, and a second run restarts nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from builds_helpers import counter_lines, new_counter, records, setup_builds
from rig import REPO, SCRATCH, STORE_COPY, kill_hard, rig_nodes

#: every test here needs the rig (up.sh itself, run as root)
pytestmark = pytest.mark.rig


def test_unprivileged_user_builds_a_demo_package_through_the_daemon(alice, demo_dir):
    proc = alice.run("nix-build", str(demo_dir / "demo-2025"), "-A", "hello", "--no-out-link",
                     "--option", "substituters", "")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"/nix/store/[a-z0-9]{32}-hello-2\.12\.1", out)
    ran = alice.run(f"{out}/bin/hello")
    assert ran.stdout.strip() == "hello 2.12.1"
    # the store path belongs to root (the daemon), not to the user who asked for it
    owner = alice.run("stat", "-c", "%U", out).stdout.strip()
    assert owner == "root"


def test_unprivileged_user_runs_an_sbatch_job_on_the_build_partition(alice):
    marker = alice.home / "job-ran"
    script = alice.write("job.sh", f"#!/bin/sh\nid -un > {marker}\nhostname >> {marker}\n")
    proc = alice.run("sbatch", "--parsable", "--partition", "nixbuild", "--cpus-per-task", "1",
                     "--mem", "50M", "-o", str(alice.home / "job.out"), str(script))
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queued = alice.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip()
        if not queued and marker.exists():
            break
        time.sleep(0.5)
    assert marker.exists(), f"job {job} did not run (squeue: {queued!r})"
    assert marker.read_text().splitlines()[0] == alice.user
    partition = alice.run("scontrol", "show", "job", job).stdout
    assert "Partition=nixbuild" in partition and "JobState=COMPLETED" in partition


def test_a_hand_written_modulefile_loads_through_real_lmod(alice):
    root = alice.home / "modules"
    alice.write("modules/rigtest/1.0.lua",
                'whatis("Description: rig test module")\n'
                'setenv("RIGTEST_HOME", "/opt/rigtest")\n'
                'prepend_path("PATH", "/opt/rigtest/bin")\n')
    proc = alice.bash(f"module use {root}\nmodule load rigtest\n"
                      'echo "home=$RIGTEST_HOME"\necho "path=$PATH"\nmodule -t list 2>&1')
    assert proc.returncode == 0, proc.stderr
    assert "home=/opt/rigtest" in proc.stdout
    assert "path=/opt/rigtest/bin:" in proc.stdout
    assert "rigtest/1.0" in proc.stdout + proc.stderr


# -- the rig script itself -------------------------------------------------------------

UP_SH = REPO / "tests/cluster/up.sh"
MARKER = "# Written by nixmod tests/cluster/up.sh"


def run_up(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(UP_SH)], capture_output=True, text=True, timeout=600,
                          env=os.environ | env)


@pytest.mark.parametrize("variable,directory,name", [("SLURM_CONF", False, "slurm.conf"),
                                                      ("NIX_CONF_DIR", True, "nix.conf")])
def test_up_refuses_to_overwrite_a_config_it_did_not_write(variable, directory, name):
    """An existing cluster's slurm.conf or nix.conf (no marker line) is never clobbered."""
    where = SCRATCH / f"foreign-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    conf = where / name
    text = "# the site's own\nClusterName=site\nSlurmctldHost=head01\n" if name == "slurm.conf" \
        else "# the site's own\nbuild-users-group = nixbld\nsandbox = true\n"
    conf.write_text(text)
    proc = run_up(**{variable: str(where if directory else conf)})
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"[up] FAILED: {conf} was not written by this rig (no '{MARKER}' line): refusing to "
        "overwrite an existing cluster's config; move it away (or run nixmod's tests on another "
        "machine)"]
    assert conf.read_text() == text and sorted(p.name for p in where.iterdir()) == [name]


def _daemon_pids() -> dict[str, str]:
    """Every rig daemon's pid, read from the pid files the rig and SLURM write."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                            check=True).stdout
    values = dict(re.findall(r"^(\w+)\s+= (.*)$", config, re.M))
    nodes = rig_nodes()
    files = {"nix-daemon": "/run/nix-daemon.pid", "munged": "/run/munge/munged.pid",
             "slurmctld": values["SlurmctldPidFile"],
             "rsyslogd": "/run/nixmod-rig-rsyslogd.pid"}
    for node in (nodes.build, nodes.compute_only):
        files[f"slurmd {node}"] = values["SlurmdPidFile"].replace("%n", node)
    pids = {name: Path(path).read_text().strip() for name, path in files.items()}
    for name, pid in pids.items():
        assert Path(f"/proc/{pid}/comm").read_text().strip() == name.split()[0], (name, pid)
    return pids


def test_up_on_a_running_rig_changes_nothing(nodes):
    """Idempotent: a second up.sh finds everything up and restarts no daemon."""
    before = _daemon_pids()
    proc = run_up()
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "starting" in line or "stopping" in line] == []
    assert _daemon_pids() == before
    # the compute-only node's jobs still see no /nix and the store read-only elsewhere
    slurmd = before[f"slurmd {nodes.compute_only}"]
    seen = subprocess.run(["nsenter", "-t", slurmd, "-m", "sh", "-c",
                           f"ls -A /nix; findmnt -n -o OPTIONS --mountpoint {STORE_COPY}"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(seen) == 1 and "ro" in seen[0].split(",")


def _gone(pid: str) -> bool:
    """No such process any more (a zombie not yet reaped by its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_down_stops_a_busy_rig_and_up_brings_it_back(alice, nodes):
    """down.sh on a rig with jobs running on both nodes: every daemon named in its pid file
    exits, the jobs with them, and up.sh then starts a rig that runs jobs again."""
    jobs = [alice.run("sbatch", "--parsable", "-p", partition, "-w", node, "--wrap", "sleep 600",
                      check=True).stdout.strip().split(";")[0]
            for partition, node in (("nixbuild", nodes.build), ("compute", nodes.compute_only))]
    deadline = time.monotonic() + 60
    while alice.run("squeue", "-h", "-t", "R", "-j", ",".join(jobs), "-o", "%i").stdout.split() \
            != sorted(jobs) and time.monotonic() < deadline:
        time.sleep(0.5)
    sleeps = subprocess.run(["pgrep", "-u", alice.user, "-x", "sleep"], capture_output=True,
                            text=True).stdout.split()
    assert len(sleeps) >= 2, "both jobs should be running before the rig goes down"
    daemons = _daemon_pids()

    down = subprocess.run(["bash", str(REPO / "tests/cluster/down.sh")], capture_output=True,
                          text=True, timeout=600)
    assert down.returncode == 0, down.stderr
    assert down.stderr.splitlines()[-1] == "[down] stopped"
    for name, pid in daemons.items():
        assert f"stopping {name.split()[0]} (pid {pid}," in down.stderr
        assert _gone(pid), f"{name} (pid {pid}) still runs after down.sh"
    assert all(_gone(pid) for pid in sleeps), "the rig's jobs outlived down.sh"

    up = run_up()
    assert up.returncode == 0, up.stderr
    assert set(_daemon_pids().values()).isdisjoint(daemons.values())
    assert alice.run("squeue", "-h", "-o", "%i").stdout.split() == []
    job = alice.run("sbatch", "--parsable", "-p", "nixbuild", "--wrap", "true", check=True)
    assert job.stdout.strip()


def test_a_rig_killed_without_shutdown_comes_back_without_its_old_jobs(alice, test_channels):
    """A machine restored after the rig's last run (how CI finds it): every daemon gone
    without shutdown, slurmctld's saved state still holding the jobs of that run. up.sh
    starts them again with no job from before (a held job in a test user's lane would keep
    every later one of that lane waiting), and a user's nixmod build goes through."""
    mark = f"rig-test-{uuid.uuid4().hex[:12]}"
    held = alice.run("sbatch", "--parsable", "--hold", "-J", "nixmod-build-0", "-p", "nixbuild",
                     f"--comment={mark}", "--wrap", "true", check=True).stdout.strip()
    # slurmctld saves its state a moment after a change: wait for a save that holds the job
    state = Path("/var/spool/slurmctld/job_state")
    deadline = time.monotonic() + 60
    while mark.encode() not in state.read_bytes():
        assert time.monotonic() < deadline, "slurmctld saved no state with the held job in 60 s"
        time.sleep(0.5)
    kill_hard(list(_daemon_pids().values()), "rig daemons")

    up = run_up()
    assert up.returncode == 0, up.stderr
    assert "[up] cancelling the jobs left from before this start" in up.stderr.splitlines()
    assert alice.run("squeue", "-h", "-o", "%i").stdout.split() == [], f"job {held} is back"

    nonce, counter = new_counter()
    setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=0.5,
                 max_concurrent=1)
    proc = alice.nixmod("build", "pkg2", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["name"], r["state"]) for r in records(proc)] == [("pkg2", "built")]
    assert counter_lines(counter) == [f"pkg2 1.0 {nonce}"]
