"""Operations on the real rig (issue 23): du, usage, gc, as real users.

Sizes are checked against Nix's own answer (``nix path-info -S``); loads go
through real Lmod with the site hook, in a real batch job on the
compute-only node, into the rig's real rsyslogd (tests/cluster/rsyslog.sh)
and out through ``nixmod usage``. The site's collection is the daemon's
collector restricted to what it says is dead (``--print-dead``, then
``nix-store --delete`` of those paths, as root): a full ``nix-store --gc``
would also take other suites' freshly instantiated derivations on this
shared store (see tests/test_gcroots.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from builds_helpers import stack_channels, user_config
from rig import COMPUTE_PARTITION, STORE_COPY, UserSession, run_userside
from modules_helpers import site_lua  # noqa: F401 (fixture)
from test_cluster import job_info, lmod_job, run_batch_job

#: where the rig's rsyslogd files tag nixmod-usage (tests/cluster/lib.sh USAGE_LOG)
USAGE_LOG = Path("/var/log/nixmod/usage.log")
MODULES = ".local/share/nixmod/modules"
NIX_COMMAND = ("--extra-experimental-features", "nix-command")


def _configure(session: UserSession, channels: Path, nonce: str) -> None:
    session.extra_env["NIXMOD_TEST_NONCE"] = nonce
    session.write_config(user_config(
        {"ops": channels / "ops.nix"}, "local",
        after=f'[shims]\nreal_store_dir = "{STORE_COPY}"\n\n[usage]\nlog = "{USAGE_LOG}"\n'))


def _build(session: UserSession, *names: str) -> dict[str, str]:
    """Build ``names`` (local backend) and return name -> out path."""
    proc = session.nixmod("build", *names, "--wait", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert {r["state"] for r in records} <= {"built", "reused"}, records
    return {r["name"]: r["out"] for r in records}


def _path_info(session: UserSession, *paths: str) -> dict[str, dict]:
    proc = session.run("nix", *NIX_COMMAND, "path-info", "-S", "--json", *paths, check=True)
    return {item["path"]: item for item in json.loads(proc.stdout)}


def _du(session: UserSession) -> dict:
    proc = session.nixmod("du", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _by_module(du: dict) -> dict[str, dict]:
    return {m["module"]: m for m in du["modules"]}


def _lib_of(session: UserSession, out: str) -> str:
    refs = session.run("nix-store", "-q", "--references", out, check=True).stdout.split()
    [lib] = [r for r in refs if r.endswith("-opslib-1.0")]
    return lib


def test_du_names_each_module_with_its_closure_and_what_only_it_keeps_alive(
        alice, bob, test_channels):
    nonce = uuid.uuid4().hex[:12]
    _configure(alice, test_channels, nonce)
    outs = _build(alice, "stale", "keeper")
    lib = _lib_of(alice, outs["stale"])
    nix_says = _path_info(alice, outs["stale"], outs["keeper"], lib)
    nar = {path: info["narSize"] for path, info in nix_says.items()}

    modules = _by_module(_du(alice))
    assert set(modules) == {"nix/stale/1.0", "nix/keeper/1.0"}
    for name in ("stale", "keeper"):
        entry = modules[f"nix/{name}/1.0"]
        # the closure is Nix's own closure size; only it keeps its own output alive,
        # not the library the other module shares
        assert entry["closure_size"] == nix_says[outs[name]]["closureSize"]
        assert entry["only_size"] == nar[outs[name]]
        assert entry["last_load"] is None and entry["store_path"] == outs[name]
    total = _du(alice)["total"]
    assert total == {"closure_size": sum(nar.values()), "only_size": sum(nar.values())}

    # bob builds stale too: his GC root now holds it, so removing alice's frees nothing of it
    _configure(bob, test_channels, nonce)
    assert _build(bob, "stale") == {"stale": outs["stale"]}
    after = _du(alice)
    assert _by_module(after)["nix/stale/1.0"]["only_size"] == 0
    assert _by_module(after)["nix/keeper/1.0"]["only_size"] == nar[outs["keeper"]]
    assert after["total"]["only_size"] == nar[outs["keeper"]]

    shown = alice.nixmod("du")
    assert shown.returncode == 0, shown.stderr
    [line] = [row for row in shown.stdout.splitlines() if row.startswith("nix/keeper/1.0 ")]
    assert line.split()[1:] == [*_human(nix_says[outs["keeper"]]["closureSize"]),
                                *_human(nar[outs["keeper"]]), "never"], shown.stdout
    assert "total:" in shown.stdout.splitlines()[-1]


def _human(size: int) -> list[str]:
    """What `du` prints for ``size`` bytes, as words (e.g. ['48.9', 'KiB'])."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            break
        value /= 1024
    return [f"{value:.0f}" if unit == "B" else f"{value:.1f}", unit]


def _usage(session: UserSession) -> dict:
    proc = session.nixmod("usage", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _loads(usage: dict, module: str) -> dict:
    return next((m for m in usage["modules"] if m["module"] == module),
                {"loads": 0, "nodes": {}, "by_user": {}})


def _wait_for_usage(session: UserSession, module: str, node: str, user: str, before: int) -> dict:
    """The usage summary once syslog has filed the load (rsyslog writes asynchronously)."""
    deadline = time.monotonic() + 30
    while True:
        usage = _usage(session)
        entry = _loads(usage, module)
        if entry["nodes"].get(node, 0) > before and entry["by_user"].get(user, 0):
            return usage
        assert time.monotonic() < deadline, (module, node, usage)
        time.sleep(0.5)


def test_a_load_in_a_batch_job_on_the_compute_only_node_shows_in_usage_with_that_node(
        alice, bob, test_channels, nodes, site_lua):
    nonce = uuid.uuid4().hex[:12]
    _configure(alice, test_channels, nonce)
    _build(alice, "keeper")
    module = "nix/keeper/1.0"
    before = _loads(_usage(alice), module)["nodes"].get(nodes.compute_only, 0)

    job, out, err = run_batch_job(alice, lmod_job(site_lua, "module load nix/keeper/1.0 && keeper\n"),
                                  "-p", COMPUTE_PARTITION, "-w", nodes.compute_only)
    assert job_info(job)["JobState"] == "COMPLETED", (out, err)
    assert out.splitlines() == [f"keeper uses opslib {nonce}"], (out, err)

    usage = _wait_for_usage(alice, module, nodes.compute_only, alice.user, before)
    entry = _loads(usage, module)
    assert entry["nodes"][nodes.compute_only] == before + 1
    assert alice.user in entry["by_user"]
    # the user's own record of the load, in the state dir, says when and where
    record = alice.home / ".local/state/nixmod/usage/nix%2Fkeeper%2F1.0"
    when, node = record.read_text().split()
    assert node == nodes.compute_only and abs(int(when) - time.time()) < 300
    assert _by_module(_du(alice))[module]["last_load"] is not None

    # bob claims a load by alice: syslog's uid says it was bob's
    forged_node = f"forged-{nonce}"
    bob.run("logger", "-t", "nixmod-usage",
            f"user={alice.user} module={module} node={forged_node}", check=True)
    deadline = time.monotonic() + 30
    while forged_node not in _loads(_usage(alice), module)["nodes"]:
        assert time.monotonic() < deadline, "bob's line never reached the usage log"
        time.sleep(0.5)
    usage = _usage(alice)
    users_before = _loads(usage, module)["by_user"]
    assert users_before.get(bob.user, 0) >= 1, usage

    shown = alice.nixmod("usage", "--since", "1")
    assert shown.returncode == 0, shown.stderr
    assert any(row.split()[:1] == [nodes.compute_only] for row in shown.stdout.splitlines()), \
        shown.stdout


def _tree(session: UserSession) -> dict[str, tuple]:
    """Every file and link under the user's modules, shims and state dir: what gc may change."""
    listing = {}
    for top in (session.home / ".local/share/nixmod", session.home / ".local/state/nixmod"):
        for directory, dirs, files in os.walk(top):
            for name in dirs + files:
                path = Path(directory) / name
                if path.name.startswith("builds.db"):
                    continue   # the build records' database: gc does not write it
                st = path.lstat()
                listing[str(path)] = (st.st_mode, st.st_mtime_ns, st.st_size,
                                      os.readlink(path) if path.is_symlink() else None)
    return listing


def test_gc_dry_run_changes_nothing_and_gc_removes_only_what_it_listed(
        alice, test_channels, site_lua):
    nonce = uuid.uuid4().hex[:12]
    _configure(alice, test_channels, nonce)
    outs = _build(alice, "stale", "keeper", "fav")
    lib = _lib_of(alice, outs["stale"])
    # fav is the default of nix/fav, as a stack makes its defaults (.modulerc.lua)
    run_userside(alice, "lmod_calls", "set-default", "fav", "1.0", check=True)
    # all three were built 40 days ago (their GC roots and modulefiles say so) ...
    old = alice.home / ".local/share/nixmod/modules/nix"
    roots = alice.home / ".local/state/nixmod/gcroots"
    alice.run("touch", "-h", "-d", "40 days ago", *(str(old / n / "1.0.lua") for n in outs),
              *(str(roots / n / "1.0/result") for n in outs), check=True)
    # ... and keeper was loaded just now
    loaded = alice.bash(f"export LMOD_PACKAGE_PATH={site_lua}\nmodule use ~/{MODULES}\n"
                        "module load nix/keeper/1.0 && keeper")
    assert loaded.stdout.strip() == f"keeper uses opslib {nonce}", loaded.stderr

    before = _tree(alice)
    dry = alice.nixmod("gc", "--unused-for", "30", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    stale_only = _path_info(alice, outs["stale"])[outs["stale"]]["narSize"]
    assert [(c["target"], c["frees"]) for c in planned["candidates"]] == \
        [("nix/stale/1.0", stale_only)]
    assert {s["target"] for s in planned["spared"]} == {"nix/keeper/1.0", "nix/fav/1.0"}
    assert planned["removed"] == []
    assert _tree(alice) == before
    shown = alice.nixmod("gc", "--unused-for", "30", "--dry-run")
    assert "nix/stale/1.0" in shown.stdout and "nix-store --gc" in shown.stdout, shown.stdout
    assert _tree(alice) == before

    done = alice.nixmod("gc", "--unused-for", "30", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == [c["target"] for c in planned["candidates"]]
    listed = json.loads(alice.nixmod("modules", "list", "--json", check=True).stdout)
    assert sorted(m["module"] for m in listed) == ["nix/fav/1.0", "nix/keeper/1.0"]
    assert not (roots / "stale").exists() and (roots / "keeper/1.0/result").is_symlink()

    # the site's collection: the daemon says what is dead, and deletes that
    dead = set(subprocess.run(["nix-store", "--gc", "--print-dead"], capture_output=True,
                              text=True, check=True).stdout.split())
    assert outs["stale"] in dead
    assert not {outs["keeper"], outs["fav"], lib} & dead
    subprocess.run(["nix-store", "--delete", outs["stale"]], capture_output=True, text=True,
                   check=True)
    assert alice.run("nix-store", "--check-validity", outs["stale"]).returncode != 0
    ran = alice.bash(f"export LMOD_PACKAGE_PATH={site_lua}\nmodule use ~/{MODULES}\n"
                     "module load nix/keeper/1.0 && keeper && module load nix/fav && fav")
    assert ran.stdout.splitlines() == [f"keeper uses opslib {nonce}",
                                       f"fav uses opslib {nonce}"], ran.stderr


def test_gc_refuses_a_negative_age_in_one_line_and_changes_nothing(alice, test_channels):
    _configure(alice, test_channels, uuid.uuid4().hex[:12])
    proc = alice.nixmod("gc", "--unused-for", "-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "nixmod: --unused-for must be a number of days, 0 or more, got -1"]


def test_usage_without_a_configured_log_says_what_to_set(alice):
    proc = alice.nixmod("usage")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "[usage] log" in line and "/etc/nixmod/config.toml" in line


def test_gc_spares_what_a_stack_published_into_the_users_own_tree(alice, test_channels, site_lua):
    """A stack file without modules_root publishes into the staff member's own [modules]
    root: those modules are the stack's (its GC roots, its default), never gc's."""
    alice.extra_env["NIXMOD_TEST_NONCE"] = uuid.uuid4().hex[:12]
    alice.write_config(user_config(stack_channels(test_channels), "local"))
    alice.nixmod("build", "samtools", "--wait", check=True, timeout=300)
    stack_file = alice.write("mine.toml", '[stack]\nname = "mine"\n\n[[package]]\nname = "hello"\n'
                             'default = true\n\n[[package]]\nname = "ripgrep"\n')
    proc = alice.nixmod("stack", "build", str(stack_file), "--wait", timeout=300)
    assert proc.returncode == 0, proc.stderr
    own = alice.home / MODULES / "nix"
    files = [own / "samtools/1.19.lua", own / "hello/2.12.1.lua", own / "ripgrep/14.1.0.lua"]
    links = [p for p in (alice.home / ".local").rglob("result") if p.is_symlink()]
    alice.run("touch", "-h", "-d", "40 days ago", *map(str, files + links), check=True)

    dry = json.loads(alice.nixmod("gc", "--unused-for", "30", "--dry-run", "--json",
                                  check=True).stdout)
    assert [c["target"] for c in dry["candidates"]] == ["nix/samtools/1.19"]
    spared = {s["target"]: s["reason"] for s in dry["spared"]}
    assert set(spared) == {"nix/hello/2.12.1", "nix/ripgrep/14.1.0"}
    assert all("stack mine" in reason for reason in spared.values()), spared

    done = json.loads(alice.nixmod("gc", "--unused-for", "30", "--json", check=True).stdout)
    assert done["removed"] == ["nix/samtools/1.19"]
    assert not files[0].exists() and files[1].exists() and files[2].exists()
    ran = alice.bash(f"export LMOD_PACKAGE_PATH={site_lua}\nmodule use ~/{MODULES}\n"
                     "module load nix/hello nix/ripgrep && hello && rg")
    assert ran.stdout.splitlines()[:2] == ["hello 2.12.1", "rg 14.1.0"], ran.stderr
