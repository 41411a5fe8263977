"""The two-node rig as a cluster (issue 11, items 3 and 4), with real SLURM batch jobs.

The build node (``nodes.build``, partitions nixbuild and compute) reaches the
nix-daemon; the compute-only node (``nodes.compute_only``) has no /nix and no
daemon socket, only a read-only copy of the store at STORE_COPY, as a compute
node with an NFS or CVMFS export of the store host's /nix/store has.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from pathlib import Path

from builds_helpers import new_counter, records, setup_builds, slurm_table, user_config
from cluster_helpers import job_info, lmod_job, run_batch_job
from rig import COMPUTE_PARTITION, BUILD_PARTITION, LMOD_INIT, STORE_COPY, UserSession
from modules_helpers import site_lua  # noqa: F401 (fixture)

MODULES = ".local/share/nixmod/modules"


def setup_cluster_user(session: UserSession, test_channels: Path) -> str:
    """A user of the compute-node packages: SLURM builds, shims that know STORE_COPY."""
    nonce = uuid.uuid4().hex[:12]
    session.extra_env["NIXMOD_TEST_NONCE"] = nonce
    session.write_config(user_config(
        {"clustertest": test_channels / "cluster.nix"}, "slurm",
        after=slurm_table(BUILD_PARTITION) + f'\n[shims]\nreal_store_dir = "{STORE_COPY}"\n'))
    return nonce








# -- item 3: jobs on a compute node without /nix -----------------------------------------

def test_a_module_built_on_the_build_node_runs_in_a_batch_job_on_the_compute_only_node(
        alice, test_channels, nodes, site_lua):
    nonce = setup_cluster_user(alice, test_channels)
    built = records(alice.nixmod("build", "announcer", "--wait", "--json", timeout=300))
    assert [r["state"] for r in built] == ["built"], built
    # the build ran on the build node, never on the compute-only one
    assert built[0]["node"] == nodes.build
    greeter = alice.run("nix-store", "-q", "--references", built[0]["out"], check=True).stdout.split()
    [greeter_path] = [p for p in greeter if p.endswith("-greeter-1.0")]

    job, out, err = run_batch_job(alice, lmod_job(site_lua, """
module load nix/announcer/1.0 || exit 3
echo "node=$SLURMD_NODENAME"
if [ -e /nix/store ]; then echo "store at /nix/store"; else echo "no /nix/store"; fi
if [ -S /nix/var/nix/daemon-socket/socket ]; then echo "daemon socket"; else echo "no daemon socket"; fi
announcer
"""), "-p", COMPUTE_PARTITION, "-w", nodes.compute_only)
    assert job_info(job)["JobState"] == "COMPLETED", (out, err)
    lines = out.splitlines()
    assert lines[:3] == [f"node={nodes.compute_only}", "no /nix/store", "no daemon socket"], (out, err)
    # announcer execs another store program, which reads its own share/ data:
    # both only work if the shim put the store back at /nix/store for them
    assert lines[3:] == [f"announcer runs {greeter_path}", f"greetings from greeter 1.0 ({nonce})"], \
        (out, err)


def test_a_module_whose_store_path_is_gone_stops_with_the_hooks_error_on_the_compute_node(
        alice, test_channels, nodes, site_lua):
    setup_cluster_user(alice, test_channels)
    built = records(alice.nixmod("build", "doomed", "--wait", "--json", timeout=300))
    assert [r["state"] for r in built] == ["built"], built
    out_path = built[0]["out"]
    # the store host collects it (a site's GC after the roots went): the module still names it
    roots = subprocess.run(["nix-store", "-q", "--roots", out_path], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for line in roots:   # "LINK -> PATH"
        Path(line.split(" -> ")[0]).unlink()
    subprocess.run(["nix-store", "--delete", out_path], capture_output=True, text=True, check=True)
    assert not (STORE_COPY / Path(out_path).name).exists()

    job, out, err = run_batch_job(alice, lmod_job(site_lua, """
module load nix/doomed/1.0
echo "load rc=$?"
"$HOME/.local/share/nixmod/modules.shims/nix/doomed/1.0/bin/doomed"
echo "shim rc=$?"
"""), "-p", COMPUTE_PARTITION, "-w", nodes.compute_only)
    assert "load rc=1" in out, (out, err)
    message = " ".join(err.split())
    assert (f"nixmod: module nix/doomed/1.0 cannot load: store path {out_path} is missing on this "
            f"node ({nodes.compute_only}). Rebuild it with: nixmod build") in message, err
    # the shim itself, run without the module, says the same in one line
    assert "shim rc=127" in out, (out, err)
    assert (f"nixmod: {out_path}/bin/doomed is missing on this node ({nodes.compute_only}); "
            "rebuild it with: nixmod build") in err, err
    assert "Traceback" not in err


# -- item 4: the build node goes back to compute when idle -------------------------------

def wait_for_job(job: str, states: set[str], timeout: float) -> dict[str, str]:
    """``job_info`` of the first look at ``job`` in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        info = job_info(job)
        if info["JobState"] in states:
            return info
        assert time.monotonic() < deadline, f"job {job} not {states} after {timeout} s: {info}"
        time.sleep(0.5)


def submit(session: UserSession, *args: str) -> str:
    """sbatch; a 10-minute limit, so that a job a failed test leaves behind ends on its own."""
    proc = session.run("sbatch", "--parsable", "-o", "/dev/null", "--mem", "50M", "--time", "10",
                       *args, check=True)
    return proc.stdout.strip().split(";")[0]


def cancel(*jobs: str) -> None:
    """scancel, waiting out a controller restart (a fault test on the same rig may cause one)."""
    deadline = time.monotonic() + 90
    while subprocess.run(["scancel", *jobs], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"scancel {jobs} failed for 90 s"
        time.sleep(1)


def test_a_compute_job_runs_on_the_build_node_when_no_build_waits(alice, nodes):
    # the compute-only node is full, so the next compute job may only go to the build node
    filler = submit(alice, "-p", COMPUTE_PARTITION, "-w", nodes.compute_only, "--exclusive",
                    "--wrap", "sleep 120")
    job = submit(alice, "-p", COMPUTE_PARTITION, "--cpus-per-task", "1", "--wrap", "sleep 120")
    try:
        running = wait_for_job(job, {"RUNNING"}, 300)
        assert (running["NodeList"], running["Partition"]) == (nodes.build, COMPUTE_PARTITION)
    finally:
        cancel(filler, job)


def test_a_waiting_build_starts_before_a_compute_job_waiting_for_the_build_node(alice, nodes):
    # Both wait for the build node (held, then released at the same moment);
    # the compute job was submitted first and wants the whole node.
    compute = submit(alice, "--hold", "-p", COMPUTE_PARTITION, "-w", nodes.build, "--exclusive",
                     "--wrap", "sleep 1")
    build = submit(alice, "--hold", "-p", BUILD_PARTITION, "--cpus-per-task", "1", "--wrap", "sleep 5")
    try:
        alice.run("scontrol", "release", f"{compute},{build}", check=True)
        c = wait_for_job(compute, {"COMPLETED"}, 300)
        b = job_info(build)
        assert b["JobState"] == "COMPLETED"
        # the build went first, and the compute job only got the node once the build left it
        assert b["StartTime"] <= c["StartTime"] and b["EndTime"] <= c["StartTime"], (b, c)
    finally:
        cancel(compute, build)


def test_a_build_takes_the_build_node_back_from_a_running_compute_job(alice, test_channels, nodes):
    """PreemptType=preempt/partition_prio: a build does not wait for a compute job on its node."""
    hog = submit(alice, "-p", COMPUTE_PARTITION, "-w", nodes.build, "--exclusive", "--wrap", "sleep 300")
    try:
        wait_for_job(hog, {"RUNNING"}, 300)
        nonce, counter = new_counter()
        setup_builds(alice, test_channels, backend="slurm", nonce=nonce, counter=counter, sleep=1)
        started = time.monotonic()
        built = records(alice.nixmod("build", "slowpkg", "--wait", "--json", timeout=300))
        took = time.monotonic() - started
        assert [(r["state"], r["node"]) for r in built] == [("built", nodes.build)], built
        # the compute job was requeued to make room, not left running beside the build
        hogged = job_info(hog)
        assert int(hogged["Restarts"]) >= 1, hogged
        print(f"build submitted while a compute job held the build node: built in {took:.1f} s")
    finally:
        cancel(hog)
