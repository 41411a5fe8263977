"""Environments (issue 20): several packages, one module, built once for everyone, as real users.

The channel is tests/channels/envs.nix: the demo's nixpkgs shape (an
interpreter with ``withPackages``, ``python3Packages.*`` with site-packages,
``buildEnv``) with a nonce, so each test's derivations are new, and a
counter file every builder appends a line to.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from builds_helpers import counter_lines, new_counter, slurm_table, user_config
from modules_helpers import site_lua  # noqa: F401 (fixture)
from rig import BUILD_PARTITION, COMPUTE_PARTITION, STORE_COPY, UserSession
from cluster_helpers import job_info, lmod_job, run_batch_job

MODULES = ".local/share/nixmod/modules"
NUMPY, REQUESTS = "python3Packages.numpy-demo", "python3Packages.requests-demo"


#: ``[build.pbs]`` for the rig's PBS server (tests/cluster/pbs.sh; the lead's runs start it)
PBS_TABLE = '[build.pbs]\nqueue = "nixbuild"\nwalltime = "00:10:00"\nncpus = 1\nmem = "200mb"\n'


def setup_env_user(session: UserSession, channels: Path, *, backend: str, nonce: str,
                   counter: Path) -> None:
    """A user of the environment test channel: ``backend`` builds, shims that know STORE_COPY."""
    session.extra_env.update({"NIXMOD_TEST_NONCE": nonce, "NIXMOD_TEST_COUNTER": str(counter)})
    scheduler = {"slurm": slurm_table(BUILD_PARTITION), "pbs": PBS_TABLE}.get(backend, "")
    after = scheduler + f'\n[shims]\nreal_store_dir = "{STORE_COPY}"\n'
    session.write_config(user_config({"envtest": channels / "envs.nix"}, backend, after=after))


def created(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def env_builds(counter: Path) -> list[str]:
    """The counter's lines of environment builders (the env itself and the interpreter's)."""
    return [line for line in counter_lines(counter) if line.startswith(("nixmod-env", "python3-"))]


def load(session: UserSession, module: str, command: str) -> subprocess.CompletedProcess[str]:
    return session.bash(f"module use $HOME/{MODULES}\nmodule load {module} || exit 3\n{command}")


# -- from nothing to an import in a batch job on the compute-only node -----------------------

def test_one_env_create_gives_a_python_that_imports_both_packages_in_a_job_on_the_compute_only_node(
        alice, test_channels, nodes, site_lua):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="slurm", nonce=nonce, counter=counter)
    result = created(alice.nixmod("env", "create", "sci", NUMPY, REQUESTS, "--wait", "--json",
                                  timeout=400))
    assert result["interpreter"] == "python3" and result["channel"] == "envtest"
    assert [p["attr"] for p in result["packages"]] == [NUMPY, REQUESTS]
    [build] = result["builds"]
    assert build["state"] == "built" and build["module"] == "nixenv/sci/1", build
    assert build["node"] == nodes.build

    job, out, err = run_batch_job(alice, lmod_job(site_lua, """
module load nixenv/sci || exit 3
if [ -e /nix/store ]; then echo "store at /nix/store"; else echo "no /nix/store"; fi
python3 -c 'import numpy_demo, requests_demo; print(numpy_demo.__version__, requests_demo.__version__)'
"""), "-p", COMPUTE_PARTITION, "-w", nodes.compute_only)
    assert job_info(job)["JobState"] == "COMPLETED", (out, err)
    assert out.splitlines() == ["no /nix/store", "2.1.0 2.32.3"], (out, err)


# -- nothing built twice, across users --------------------------------------------------------

def test_two_users_same_environment_under_two_names_is_one_store_path_built_once(
        alice, bob, test_channels):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_env_user(user, test_channels, backend="slurm", nonce=nonce, counter=counter)
    first = created(alice.nixmod("env", "create", "mine", REQUESTS, NUMPY, "hello", "--json",
                                 timeout=300))
    twice = alice.nixmod("env", "create", "mine", "hello")   # built or still in flight: taken
    assert twice.returncode == 2 and "environment mine exists" in twice.stderr, twice.stderr
    # bob names the packages in another order, under another NAME, while alice's job runs
    second = created(bob.nixmod("env", "create", "theirs", "hello", NUMPY, REQUESTS, "--wait",
                                "--json", timeout=400))
    done = created(alice.nixmod("env", "create", "mine2", NUMPY, REQUESTS, "hello", "--wait",
                                "--json", timeout=400))
    [a], [b], [c] = first["builds"], second["builds"], done["builds"]
    assert a["drv"] == b["drv"] == c["drv"] and a["out"] == b["out"] == c["out"]
    assert b["state"] in ("built", "reused") and c["state"] == "reused", (b, c)
    assert env_builds(counter).count(f"nixmod-env {nonce}") == 1, counter_lines(counter)
    assert "theirs" not in b["drv"] and "theirs" not in b["out"]


def test_an_environment_builds_on_pbs_and_one_already_built_is_reused(alice, bob, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="pbs", nonce=nonce, counter=counter)
    setup_env_user(bob, test_channels, backend="local", nonce=nonce, counter=counter)
    first = created(alice.nixmod("env", "create", "sci", NUMPY, "hello", "--wait", "--json",
                                 timeout=400))
    [build] = first["builds"]
    assert build["state"] == "built" and build["backend"] == "pbs" and build["job"], build
    again = created(bob.nixmod("env", "create", "copy", "hello", NUMPY, "--wait", "--json",
                               timeout=300))
    assert again["builds"][0]["state"] == "reused" and again["builds"][0]["out"] == build["out"]
    assert env_builds(counter).count(f"nixmod-env {nonce}") == 1, counter_lines(counter)
    imports = load(bob, "nixenv/copy", "python3 -c 'import numpy_demo; print(\"ok\")'; hello")
    assert imports.stdout.splitlines() == ["ok", "hello 2.12.1"], imports


def test_a_refused_submission_keeps_the_environment_s_build_pending_and_says_its_id(
        alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="slurm", nonce=nonce, counter=counter)
    alice.write_config(alice.config_path.read_text().replace(
        f'partition = "{BUILD_PARTITION}"', 'partition = "nosuchpartition"'))
    proc = alice.nixmod("env", "create", "sci", NUMPY, "--json")
    assert proc.returncode == 1 and "kept as pending" in proc.stderr, proc.stderr
    [pending] = json.loads(proc.stdout)["builds"]
    assert (pending["name"], pending["version"], pending["state"]) == ("sci", "1", "pending")
    assert counter_lines(counter) == []
    alice.write_config(alice.config_path.read_text().replace(
        'partition = "nosuchpartition"', f'partition = "{BUILD_PARTITION}"'))
    retried = alice.nixmod("build", "--retry", str(pending["id"]), "--wait", timeout=400)
    assert retried.returncode == 0, retried.stderr
    [generation] = json.loads(alice.nixmod("env", "list", "--json", check=True).stdout)
    assert generation["module"] == "nixenv/sci/1" and generation["packages"][0]["attr"] == NUMPY


# -- generations ----------------------------------------------------------------------------

def test_add_and_drop_make_generations_the_newest_loads_and_old_ones_stay(alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    created(alice.nixmod("env", "create", "work", NUMPY, "--wait", "--json", timeout=300))
    second = created(alice.nixmod("env", "add", "work", REQUESTS, "hello", "--wait", "--json",
                                  timeout=300))
    assert second["builds"][0]["module"] == "nixenv/work/2"
    third = created(alice.nixmod("env", "drop", "work", "numpy-demo", "--wait", "--json",
                                 timeout=300))
    assert [p["attr"] for p in third["packages"]] == ["hello", REQUESTS]

    imports = "python3 -c 'import requests_demo; print(\"requests ok\")'; " \
              "python3 -c 'import numpy_demo' 2>/dev/null && echo numpy || echo 'no numpy'"
    newest = load(alice, "nixenv/work", imports)
    assert newest.stdout.split("\n")[:2] == ["requests ok", "no numpy"], newest
    oldest = load(alice, "nixenv/work/1", "python3 -c 'import numpy_demo; print(\"numpy ok\")'")
    assert oldest.stdout.strip() == "numpy ok", oldest

    shown = json.loads(alice.nixmod("env", "show", "work", "--json", check=True).stdout)
    assert [g["generation"] for g in shown] == [1, 2, 3]
    assert [[p["attr"] for p in g["packages"]] for g in shown] == [
        [NUMPY], ["hello", NUMPY, REQUESTS], ["hello", REQUESTS]]
    assert all(g["store_path"].startswith("/nix/store/") and g["valid"] for g in shown)
    assert [p["version"] for p in shown[1]["packages"]] == ["2.12.1", "2.1.0", "2.32.3"]
    listed = json.loads(alice.nixmod("env", "list", "--json", check=True).stdout)
    assert [g["module"] for g in listed] == ["nixenv/work/1", "nixenv/work/2", "nixenv/work/3"]

    removed = alice.nixmod("env", "remove", "work/3")
    assert removed.returncode == 0, removed.stderr
    after = load(alice, "nixenv/work", "python3 -c 'import numpy_demo; print(\"back to 2\")'")
    assert after.stdout.strip() == "back to 2", after
    assert alice.nixmod("env", "remove", "work").returncode == 0
    assert json.loads(alice.nixmod("env", "list", "--json", check=True).stdout) == []
    gone = load(alice, "nixenv/work/1", "true")
    assert gone.returncode == 3


def test_du_counts_an_environment_and_gc_removes_it_with_its_gc_root(alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    created(alice.nixmod("env", "create", "old", NUMPY, "--wait", "--json", timeout=300))
    used = json.loads(alice.nixmod("du", "--json", check=True).stdout)
    [env] = [m for m in used["modules"] if m["module"] == "nixenv/old/1"]
    assert env["kind"] == "environment" and env["closure_size"] > 0 and env["valid"]
    root = alice.home / ".local/state/nixmod/gcroots/.environments/old/1/result"
    assert root.is_symlink() and str(root.readlink()) == env["store_path"]
    assert alice.nixmod("gc", "--unused-for", "0").returncode == 0
    assert not root.is_symlink()
    assert json.loads(alice.nixmod("env", "list", "--json", check=True).stdout) == []


# -- the module: spider, whatis, help ---------------------------------------------------------

def test_module_spider_finds_the_environment_by_a_package_and_help_lists_packages_and_pin(
        alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    created(alice.nixmod("env", "create", "sci", NUMPY, REQUESTS, "--wait", "--json", timeout=300))
    spider = alice.bash(f"module use $HOME/{MODULES}\nmodule spider numpy-demo/2.1.0 2>&1")
    assert "nixenv/sci/1" in spider.stdout, spider.stdout
    help_text = alice.bash(f"module use $HOME/{MODULES}\nmodule help nixenv/sci 2>&1").stdout
    assert f"{NUMPY} 2.1.0" in help_text and f"{REQUESTS} 2.32.3" in help_text, help_text
    assert "Channel pin: " in help_text and "interpreter python3" in help_text, help_text
    whatis = alice.bash(f"module use $HOME/{MODULES}\nmodule whatis nixenv/sci 2>&1").stdout
    assert f"Packages: {NUMPY} 2.1.0, {REQUESTS} 2.32.3" in whatis, whatis


def test_a_python_library_s_own_module_says_how_to_make_an_environment_that_imports_it(
        alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    built = alice.nixmod("build", NUMPY, "--wait")
    assert built.returncode == 0, built.stderr
    help_text = alice.bash(f"module use $HOME/{MODULES}\nmodule help nix/{NUMPY} 2>&1").stdout
    assert f"nixmod env create numpy-demo {NUMPY} --wait" in help_text, help_text
    plain = alice.nixmod("build", "hello", "--wait")
    assert plain.returncode == 0, plain.stderr
    assert "env create" not in alice.bash(f"module use $HOME/{MODULES}\n"
                                          "module help nix/hello 2>&1").stdout


# -- bad input: one line, exit 2, nothing submitted ---------------------------------------------

def test_bad_environments_are_refused_in_one_line_with_nothing_submitted(alice, test_channels):
    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="slurm", nonce=nonce, counter=counter)
    cases = {
        ("env", "create", "mix", NUMPY, "python311Packages.scipy-demo"):
            f"{NUMPY} and python311Packages.scipy-demo need two interpreters (python3 and python311)",
        ("env", "create", "nope", NUMPY, "python3Packages.nosuch"):
            "unknown package 'python3Packages.nosuch'",
        ("env", "create", "wrongset", "python311Packages.requests-demo"):
            "requests-demo is not in python311's package set; it is in python3Packages.requests-demo",
        ("env", "create", "../evil", NUMPY): "environment name '../evil' is not usable",
        ("env", "create", "sci", NUMPY, "--channel", "elsewhere"): "unknown channel 'elsewhere'",
        ("env", "add", "absent", NUMPY): "no environment absent",
    }
    alice.nixmod("catalog", "refresh", check=True)   # the catalog's progress lines said before
    for argv, message in cases.items():
        proc = alice.nixmod(*argv)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (argv, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    builds = json.loads(alice.nixmod("status", "--json", check=True).stdout or "[]")
    assert builds == []
    queue = subprocess.run(["squeue", "-h", "-u", alice.user, "-o", "%i"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert queue == []
    assert counter_lines(counter) == []


def test_two_env_add_at_the_same_moment_make_two_generations_not_one(alice, test_channels):
    """Each `env add` forecasts N+1 before the submission lock; under the lock the second
    one must take N+2, or its module would overwrite the first one's generation."""
    from concurrent.futures import ThreadPoolExecutor

    nonce, counter = new_counter()
    setup_env_user(alice, test_channels, backend="local", nonce=nonce, counter=counter)
    created(alice.nixmod("env", "create", "lab", NUMPY, "--wait", "--json", timeout=300))
    with ThreadPoolExecutor(2) as pool:
        adds = list(pool.map(lambda spec: alice.nixmod("env", "add", "lab", spec, "--wait",
                                                       "--json", timeout=300),
                             [REQUESTS, "hello"]))
    modules = sorted(created(proc)["builds"][0]["module"] for proc in adds)
    assert modules == ["nixenv/lab/2", "nixenv/lab/3"], modules
    shown = json.loads(alice.nixmod("env", "show", "lab", "--json", check=True).stdout)
    assert [g["generation"] for g in shown] == [1, 2, 3]
    assert sorted(tuple(sorted(p["attr"] for p in g["packages"])) for g in shown[1:]) == [
        ("hello", NUMPY), (NUMPY, REQUESTS)]
    # and a create of a name another create took while it was planned is refused
    with ThreadPoolExecutor(2) as pool:
        creates = list(pool.map(lambda spec: alice.nixmod("env", "create", "twin", spec,
                                                          "--wait", timeout=300),
                                [REQUESTS, "hello"]))
    codes = sorted(proc.returncode for proc in creates)
    assert codes == [0, 2], [(p.returncode, p.stderr) for p in creates]
    refused = next(p for p in creates if p.returncode == 2)
    assert "environment twin exists" in refused.stderr and "env add twin" in refused.stderr
