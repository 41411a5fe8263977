"""FHS-shim wrappers, run as a real unprivileged user (issue 5).

The direct shim must be invisible (arguments, stdin, exit status, signals);
with /nix hidden in a mount namespace, the same shim must find the store
where `shims.real_store_dir` says it is, through bubblewrap or proot.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid

import pytest

from rig import LMOD_INIT, SCRATCH
from modules_helpers import site_lua, write_modules  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def probe(test_channels) -> str:
    """The probe package's store path (built through the daemon)."""
    proc = subprocess.run(["nix-build", "--no-out-link", str(test_channels / "modules.nix"), "-A", "probe",
                           "--option", "substituters", ""], capture_output=True, text=True, check=True)
    return proc.stdout.split()[-1]


@pytest.fixture(scope="module")
def relocated(probe) -> str:
    """A copy of probe's closure in a chroot store, as a cluster that mounts the store elsewhere has."""
    root = SCRATCH / f"relocated-{uuid.uuid4().hex[:8]}"
    subprocess.run(["nix", "--extra-experimental-features", "nix-command", "copy", "--no-check-sigs",
                    "--to", str(root), probe], capture_output=True, text=True, check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    return str(root / "nix/store")


def probe_shim(session, probe: str, *, mode: str = "auto", real_store_dir: str = "") -> str:
    """Write probe's module under the given shim config; return the shim's path."""
    real = f'real_store_dir = "{real_store_dir}"\n' if real_store_dir else ""
    session.write_config(f'[shims]\nmode = "{mode}"\n{real}')
    root = session.home / f"modules-{mode}"
    write_modules(session, [{"name": "probe", "version": "1.0", "outputs": {"out": probe}}], root)
    return f"{root}.shims/nix/probe/1.0/bin/probe"


def report(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_direct_shim_passes_arguments_stdin_and_exit_status_through(alice, probe):
    shim = probe_shim(alice, probe, mode="direct")
    bin_dir = shim.rsplit("/", 1)[0]
    assert alice.run("ls", bin_dir).stdout.split() == ["probe", "probe-admin"]   # sbin too, no README
    args = ["a b", "it's", '"q"', "$(id)", "*"]
    proc = alice.run(shim, *args)
    seen = report(proc.stdout)
    assert proc.returncode == 0
    assert seen["argv0"] == f"{probe}/bin/probe"
    assert seen["args"] == " ".join(args)
    cat = alice.run(shim, "--cat", input="line one\nline two\n")
    assert cat.stdout.endswith("line one\nline two\n")
    assert alice.run(shim, "--exit", "7").returncode == 7
    assert alice.run(f"{bin_dir}/probe-admin").stdout == "probe-admin\n"


def test_shim_strips_library_paths_and_sets_certificates_only_when_unset(alice, probe):
    shim = probe_shim(alice, probe)
    leaked = alice.run(shim, env={"LD_LIBRARY_PATH": "/opt/other/lib", "LD_PRELOAD": "/opt/x.so"})
    assert report(leaked.stdout)["ld"] == "unset preload=unset"
    assert report(leaked.stdout)["ssl"] == "/etc/ssl/certs/ca-certificates.crt"
    chosen = alice.run(shim, env={"SSL_CERT_FILE": "/home/me/ca.pem"})
    assert report(chosen.stdout)["ssl"] == "/home/me/ca.pem"


def test_a_signal_to_the_shim_reaches_the_program(alice, probe):
    shim = probe_shim(alice, probe, mode="direct")
    proc = alice.run("bash", "-c", f"{shlex.quote(shim)} --sleep 30 > out & pid=$!\n"
                                   "sleep 0.5; kill -TERM $pid; wait $pid; echo status=$?; echo shim=$pid; cat out")
    seen = report(proc.stdout)
    assert seen["status"] == "143"            # killed by SIGTERM, as the program itself
    assert seen["pid"] == seen["shim"]        # exec: the shim became the program


@pytest.mark.parametrize("store_mount", ["absent", "empty"])
@pytest.mark.parametrize("mode", ["auto", "bwrap", "proot"])
def test_with_nix_hidden_the_shim_runs_the_relocated_store(alice, probe, relocated, mode, store_mount):
    shim = probe_shim(alice, probe, mode=mode, real_store_dir=relocated)
    make_store = "mkdir /nix/store && " if store_mount == "empty" else ""
    proc = alice.run("unshare", "-Urm", "sh", "-c",
                     f"mount -t tmpfs none /nix && {make_store}test ! -e {probe} && "
                     f"exec {shlex.quote(shim)} --exit 3 'x y'")
    seen = report(proc.stdout)
    assert proc.returncode == 3, proc.stderr
    assert seen["self"] == "present" and seen["args"] == "--exit 3 x y"
    if mode == "proot":
        assert seen["tracer"] != "0"          # ptrace: proot ran it
    else:
        assert seen["tracer"] == "0"          # auto picks bubblewrap where user namespaces work


def test_with_the_store_nowhere_the_shim_says_what_is_missing(alice, probe):
    shim = probe_shim(alice, probe, real_store_dir="/tmp/no-such-store")
    proc = alice.run("unshare", "-Urm", "sh", "-c", f"mount -t tmpfs none /nix && exec {shlex.quote(shim)}")
    assert proc.returncode == 127
    assert f"nixmod: {probe}/bin/probe is missing on this node" in proc.stderr
    assert "rebuild it with: nixmod build probe@1.0" in proc.stderr


def test_the_module_loads_and_runs_with_nix_hidden(alice, probe, relocated, site_lua):
    shim = probe_shim(alice, probe, real_store_dir=relocated)
    root = shim.split(".shims/")[0]
    script = (f"source {LMOD_INIT}\nexport LMOD_PACKAGE_PATH={site_lua}\nmodule use {root}\n"
              "module load nix/probe && probe hidden")
    proc = alice.run("unshare", "-Urm", "bash", "-c", f"mount -t tmpfs none /nix && {script}")
    assert proc.returncode == 0, proc.stderr
    assert report(proc.stdout)["args"] == "hidden"
