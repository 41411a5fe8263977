"""The rig itself works: these prove the real parts that every other test stands on.

A build through the shared nix-daemon as an unprivileged user, an sbatch job
on the build partition run to completion as that user, and a hand-written
modulefile loaded through real Lmod.
"""

from __future__ import annotations

import re
import time


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
