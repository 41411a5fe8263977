"""Reproducible elsewhere: lock, build --lock, export, import, verify (real daemon, real users).

The rig's daemon trusts the rig's own signing key (tests/cluster/up.sh writes
/etc/nix/nixmod-rig-cache.{sec,pub}); root hands the secret key to the test
user who exports, as staff would on cluster A.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from builds_helpers import counter_lines, new_counter, records, user_config
from rig import SCRATCH, UserSession, run_userside
from tui_view import WatchedApp, screen_text

RIG_KEY = Path("/etc/nix/nixmod-rig-cache.sec")
MODULES = "~/.local/share/nixmod/modules"


def setup_repro(session: UserSession, channel: Path, nonce: str, counter: Path,
                extra: str = "") -> None:
    session.extra_env.update(NIXMOD_TEST_NONCE=nonce, NIXMOD_TEST_COUNTER=str(counter))
    session.write_config(user_config({"reprotest": channel}, "local", build=extra))


def nix_hash(path: Path) -> str:
    return "sha256:" + subprocess.run(["nix-hash", "--type", "sha256", "--base32", str(path)],
                                      capture_output=True, text=True, check=True).stdout.strip()


def store_hash(path: str) -> str:
    return subprocess.run(["nix-store", "--query", "--hash", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def is_valid(path: str) -> bool:
    return subprocess.run(["nix-store", "--check-validity", path],
                          capture_output=True).returncode == 0


def give_key(session: UserSession) -> Path:
    """Root hands the rig's secret key to the user (mode 600), as staff keep their own."""
    key = session.home / "cache.sec"
    shutil.copyfile(RIG_KEY, key)
    shutil.chown(key, user=session.user, group=session.user)
    key.chmod(0o600)
    return key


def tampered_copy(bundle: Path, name: str) -> Path:
    copy = bundle.with_name(name)
    shutil.copytree(bundle, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def narinfo(bundle: Path, store_path: str) -> Path:
    return bundle / (Path(store_path).name.split("-", 1)[0] + ".narinfo")


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("nixmod:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_lock_export_delete_then_another_user_imports(alice, bob, test_channels):
    nonce, counter = new_counter()
    channel = test_channels / "repro.nix"
    setup_repro(alice, channel, nonce, counter)
    built = records(alice.nixmod("build", "counted", "--wait", "--json", check=True))[0]
    out, drv = built["out"], built["drv"]
    assert built["state"] == "built" and len(counter_lines(counter)) == 1

    # module show / help name the drv and how the channel was pinned
    shown = alice.bash(f"module use {MODULES} && module show nix/counted/1.0 2>&1", check=True).stdout
    assert drv in shown and nix_hash(channel) in shown and "Channel pin" in shown

    # the lock: SPEC's shape, with the store's own NAR hash and the channel's content hash
    alice.nixmod("lock", "-o", "lock.json", check=True)
    lock = json.loads((alice.home / "lock.json").read_text())
    assert lock["nixmod_lock"] == 1 and lock["store_dir"] == "/nix/store" and lock["system"]
    assert lock["channels"]["reprotest"]["path"] == str(channel)
    assert lock["channels"]["reprotest"]["nar_hash"] == nix_hash(channel)
    [package] = lock["packages"]
    assert {k: package[k] for k in ("name", "version", "channel", "attr", "drv", "outputs")} == {
        "name": "counted", "version": "1.0", "channel": "reprotest", "attr": "counted",
        "drv": drv, "outputs": {"out": out}}
    assert package["nar_hash"] == {"out": store_hash(out)}
    to_stdout = json.loads(alice.nixmod("lock", "counted/1.0", check=True).stdout)
    assert to_stdout["packages"] == lock["packages"]

    key = give_key(alice)
    exported = alice.nixmod("export", "lock.json", "bundle", "--key", str(key), check=True)
    bundle = alice.home / "bundle"
    assert "signed by nixmod-rig-1" in exported.stdout
    assert json.loads((bundle / "nixmod.lock").read_text()) == lock
    assert "Sig: nixmod-rig-1:" in narinfo(bundle, out).read_text()

    # three bad bundles: signatures stripped, a NAR changed, a lock that does not match
    unsigned = tampered_copy(bundle, "unsigned")
    for info in unsigned.glob("*.narinfo"):
        info.write_text("".join(line for line in info.read_text().splitlines(True)
                                if not line.startswith("Sig:")))
    changed = tampered_copy(bundle, "changed")
    info = narinfo(changed, out)
    fields = dict(line.split(": ", 1) for line in info.read_text().splitlines())
    other = narinfo(changed, drv).read_text()   # the drv's NAR: a real NAR, other bytes
    other_url = re.search(r"^URL: (.*)$", other, re.M).group(1)
    shutil.copyfile(changed / other_url, changed / fields["URL"])
    for key_name in ("FileHash", "FileSize"):   # an attacker fixes the unsigned fields too
        value = re.search(rf"^{key_name}: (.*)$", other, re.M).group(1)
        info.write_text(re.sub(rf"^{key_name}: .*$", f"{key_name}: {value}", info.read_text(),
                               flags=re.M))
    mislocked = tampered_copy(bundle, "mislocked")
    wrong = json.loads((mislocked / "nixmod.lock").read_text())
    wrong["packages"][0]["nar_hash"]["out"] = "sha256:" + "0" * 52
    (mislocked / "nixmod.lock").write_text(json.dumps(wrong))

    # the user removes the module; root deletes the output (no GC root holds it any more)
    alice.nixmod("modules", "remove", "counted/1.0", check=True)
    deleted = subprocess.run(["nix-store", "--delete", out], capture_output=True, text=True)
    assert deleted.returncode == 0, deleted.stderr
    assert not is_valid(out)

    bob_module = bob.home / ".local/share/nixmod/modules/nix/counted/1.0.lua"
    for bad, said in ((unsigned, "untrusted"), (changed, "modified"), (mislocked, "nixmod.lock is untrusted")):
        proc = bob.nixmod("import", str(bad))
        assert proc.returncode == 1, (bad, proc.stderr)
        line = one_line_error(proc)
        assert "refused, nothing imported" in line and said in line, line
        assert not is_valid(out), f"{bad.name}: the output was imported anyway"
        assert not bob_module.exists()

    imported = bob.nixmod("import", str(bundle), check=True)
    assert "nix/counted/1.0" in imported.stdout
    assert is_valid(out) and store_hash(out) == package["nar_hash"]["out"]
    root = bob.home / ".local/state/nixmod/gcroots/counted/1.0/result"
    assert root.is_symlink() and str(root.readlink()) == out
    ran = bob.bash(f"module use {MODULES} && module load nix/counted && counted && "
                   "module show nix/counted/1.0 2>&1", check=True).stdout
    assert "counted 1.0" in ran and drv in ran and nix_hash(channel) in ran
    assert len(counter_lines(counter)) == 1, "the builder ran again"
    signed = run_userside(bob, "signature", out, check=True)
    assert signed.stdout.strip() == f"{out} signed by nixmod-rig-1"

    # support staff import into a stack's tree: modules there, GC roots beside it
    site = bob.home / "site/modules"
    bob.nixmod("import", str(bundle), "--modules-root", str(site), check=True)
    assert (site / "nix/counted/1.0.lua").is_file()
    assert str((bob.home / "site/gcroots/modules/counted/1.0/result").readlink()) == out
    assert len(counter_lines(counter)) == 1


def test_a_key_only_the_importing_user_trusts_is_refused_before_anything_is_copied(
        alice, bob, test_channels):
    """bob trusts alice's own key in his ~/.config/nix/nix.conf; the daemon does not.

    The pre-check must speak for the daemon: the import is refused as a whole,
    with the reason, before any path is copied (not half-way by the daemon).
    """
    nonce, counter = new_counter()
    setup_repro(alice, test_channels / "repro.nix", nonce, counter)
    built = records(alice.nixmod("build", "counted", "--wait", "--json", check=True))[0]
    alice.run("nix-store", "--generate-binary-cache-key", "alice-1", "alice.sec", "alice.pub",
              check=True)
    alice.nixmod("lock", "-o", "lock.json", check=True)
    alice.nixmod("export", "lock.json", "bundle", "--key", "alice.sec", check=True)
    alice.nixmod("modules", "remove", "counted/1.0", check=True)
    deleted = subprocess.run(["nix-store", "--delete", built["out"]], capture_output=True, text=True)
    assert deleted.returncode == 0, deleted.stderr

    public = (alice.home / "alice.pub").read_text().strip()
    bob.write(".config/nix/nix.conf", f"extra-trusted-public-keys = {public}\n")
    seen = bob.run("nix", "--extra-experimental-features", "nix-command", "show-config", "--json",
                   check=True)
    assert public in json.loads(seen.stdout)["trusted-public-keys"]["value"]
    proc = bob.nixmod("import", str(alice.home / "bundle"))
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc)
    assert "refused, nothing imported" in line and "untrusted" in line, line
    assert not is_valid(built["out"])
    assert not (bob.home / ".local/share/nixmod/modules/nix/counted/1.0.lua").exists()


def test_build_lock_reuses_then_refuses_a_moved_channel(alice, test_channels):
    nonce, counter = new_counter()
    channel = alice.write("channel/repro.nix", (test_channels / "repro.nix").read_text())
    setup_repro(alice, channel, nonce, counter)
    stack = alice.write("site.toml", f"""
[stack]
name = "repro-site"
modules_root = "{alice.home / 'site/modules'}"

[[package]]
name = "counted"
default = true
""")
    built = records(alice.nixmod("build", "steady", "--wait", "--json", check=True))[0]
    alice.nixmod("lock", "steady/2.0", "-o", "lock.json", check=True)
    alice.nixmod("stack", "build", str(stack), "--wait", check=True)
    alice.nixmod("lock", "--stack", str(stack), "-o", "stack.lock", check=True)
    stack_lock = json.loads((alice.home / "stack.lock").read_text())
    assert stack_lock["stack"] == "repro-site"
    assert [p["name"] for p in stack_lock["packages"]] == ["counted"]

    again = records(alice.nixmod("build", "--lock", "lock.json", "--wait", "--json", check=True))
    assert [(r["name"], r["state"], r["drv"]) for r in again] == [("steady", "reused", built["drv"])]
    restacked = alice.nixmod("stack", "build", str(stack), "--lock", "stack.lock", "--json",
                             check=True)
    assert json.loads(restacked.stdout)["packages"][0]["action"] == "up to date"
    assert len(counter_lines(counter)) == 2   # steady once, counted once

    # the channel moves (a builder changed): the same names evaluate to other drvs
    alice.write("channel/repro.nix", channel.read_text().replace(
        'mkdir -p "$out/bin"', 'mkdir -p "$out/bin"  # moved on'))
    before = len(records(alice.nixmod("status", "--json", check=True)))
    refused = alice.nixmod("build", "--lock", "lock.json", "--wait")
    assert refused.returncode == 2, refused.stderr
    line = one_line_error(refused)
    evaluated = re.search(r"evaluated (/nix/store/\S+\.drv)", line)
    assert "steady 2.0" in line and f"locked {built['drv']}" in line and evaluated
    assert evaluated.group(1) != built["drv"] and "nothing was submitted" in line
    stack_refused = alice.nixmod("stack", "build", str(stack), "--lock", "stack.lock")
    assert stack_refused.returncode == 2 and "counted 1.0" in one_line_error(stack_refused)
    assert len(records(alice.nixmod("status", "--json", check=True))) == before
    assert len(counter_lines(counter)) == 2


def test_verify_says_reproducible_or_differs(alice, test_channels):
    nonce, counter = new_counter()
    setup_repro(alice, test_channels / "repro.nix", nonce, counter)
    alice.nixmod("build", "steady", "noisy", "--wait", check=True)
    good = alice.nixmod("verify", "steady/2.0")
    assert good.returncode == 0, good.stderr
    assert re.search(r"nix/steady/2\.0\s+out\s+reproducible", good.stdout)
    both = alice.nixmod("verify", "nix/steady/2.0", "noisy/0.1", "--json")
    assert both.returncode == 1, both.stderr
    assert [(r["module"], r["output"], r["result"]) for r in json.loads(both.stdout)] == [
        ("nix/steady/2.0", "out", "reproducible"), ("nix/noisy/0.1", "out", "differs")]
    assert len(counter_lines(counter)) == 5   # two builds, three checks (steady twice)


def test_bad_input_is_one_line_and_exit_2(alice, test_channels):
    nonce, counter = new_counter()
    setup_repro(alice, test_channels / "repro.nix", nonce, counter)
    alice.write("garbage.json", '{"nixmod_lock": 7}')
    alice.write("full/somefile", "x")
    alice.write("lock.json", json.dumps({
        "nixmod_lock": 1, "system": "x86_64-linux", "store_dir": "/nix/store",
        "channels": {"c": {"url": "https://example.org/x.tar.gz", "sha256": "0" * 52}},
        "packages": [{"name": "a", "version": "1", "channel": "c", "attr": "a",
                      "drv": "/nix/store/" + "a" * 32 + "-a-1.drv",
                      "outputs": {"out": "/nix/store/" + "b" * 32 + "-a-1"},
                      "nar_hash": {"out": "sha256:" + "0" * 52}}]}))
    for args, said in ((["lock", "nosuch/1.0"], "no module nix/nosuch/1.0"),
                       (["lock"], "no modules"),
                       (["build", "--lock", "garbage.json"], "'nixmod_lock' must be 1"),
                       (["build", "--lock", "missing.json"], "cannot read lock"),
                       (["import", str(alice.home / "nowhere")], "not a nixmod bundle"),
                       (["export", "lock.json", "full", "--key", "lock.json"], "not a Nix secret key"),
                       (["verify", "nosuch/1.0"], "no module nix/nosuch/1.0"),
                       (["verify", "a/b/c/d"], "expected NAME/VERSION")):
        proc = alice.nixmod(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert said in one_line_error(proc), (args, proc.stderr)
    assert not (alice.home / "full.tmp").exists()

    # every field a lock from elsewhere carries is checked as the CLI checks it
    good = json.loads((alice.home / "lock.json").read_text())
    package = good["packages"][0]
    for change, said in (({"stack": "/tmp/bobgc"}, "'stack': stack '/tmp/bobgc' is not usable"),
                         ({"stack": ".."}, "'stack': stack '..' is not usable"),
                         ({"packages": [{**package, "name": "../gcc"}]}, "name '../gcc' is not"),
                         ({"packages": [{**package, "version": "1/2"}]}, "version '1/2' is not"),
                         ({"packages": [{**package, "attr": "a b"}]}, "attr 'a b' is not an"),
                         ({"packages": [{**package, "outputs": {"../x": package["outputs"]["out"]},
                                         "nar_hash": {"../x": package["nar_hash"]["out"]}}]},
                          "output '../x' is not"),
                         ({"channels": {"c d": good["channels"]["c"]}}, "channel name 'c d'")):
        alice.write("bad.json", json.dumps({**good, **change}))
        proc = alice.nixmod("build", "--lock", "bad.json")
        assert proc.returncode == 2, (change, proc.stderr)
        assert said in one_line_error(proc), (change, proc.stderr)


def test_verify_with_slurm_runs_on_the_build_partition(alice, test_channels):
    nonce, counter = new_counter()
    setup_repro(alice, test_channels / "repro.nix", nonce, counter, extra="""
[build.slurm]
partition = "nixbuild"
cpus_per_task = 1
mem = "100M"
time = "00:10:00"
""")
    alice.nixmod("build", "steady", "--wait", check=True)
    build_nodes = subprocess.run(["sinfo", "-h", "-N", "-p", "nixbuild", "-o", "%N"], capture_output=True,
                                 text=True, check=True).stdout.split()
    proc = alice.nixmod("verify", "steady/2.0", "--backend", "slurm", "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["result"] == "reproducible" and result["node"] in build_nodes and result["job"]
    assert len(counter_lines(counter)) == 2


def test_tui_shows_signatures_locks_modules_and_verifies_a_build(tmp_path, test_channels, monkeypatch):
    """Modules screen: per-module signature state and L (lock these); Builds screen: v (verify)."""
    from nixmod import cli
    from nixmod.config import load_config

    nonce, counter = new_counter()
    for name, value in (("HOME", tmp_path / "home"), ("XDG_CACHE_HOME", tmp_path / "cache"),
                        ("XDG_CONFIG_HOME", tmp_path / "config"),
                        ("NIXMOD_SITE_CONFIG", tmp_path / "no-site.toml"),
                        ("NIXMOD_TEST_NONCE", nonce), ("NIXMOD_TEST_COUNTER", counter)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("NIXMOD_CONFIG", raising=False)
    (tmp_path / "home").mkdir()
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[[channels]]\nname = "reprotest"\npath = "{test_channels / "repro.nix"}"\n'
                           f'[build]\nbackend = "local"\nstate_dir = "{tmp_path}/state"\n'
                           f'[modules]\nroot = "{tmp_path}/modules"\n')
    assert cli.main(["--config", str(config_file), "build", "steady", "noisy", "--wait"]) == 0
    asyncio.run(_tui_repro(WatchedApp(load_config(config_file), watch_builds=False), tmp_path))


async def _tui_repro(app, tmp_path: Path) -> None:
    async def until(condition, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            assert loop.time() < deadline, (app.told, screen_text(app))
            await pilot.pause(0.2)

    def said(text: str) -> bool:
        return any(text in message for message in app.told)

    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: app.catalog is not None or app.catalog_error)
        await pilot.press("down", "4")          # out of the search box, to Modules
        await until(lambda: len(app.module_rows) == 2 and "outputs: built here" in screen_text(app))
        await pilot.press("L")
        await until(lambda: said("Locked 2 module(s) in"))
        [lock_file] = (tmp_path / "home").glob("nixmod-*.lock")
        lock = json.loads(lock_file.read_text())
        assert sorted(p["name"] for p in lock["packages"]) == ["noisy", "steady"]

        await pilot.press("3")
        await until(lambda: len(app.records) == 2 and "v verify" in screen_text(app))
        await pilot.press("v")                       # the newest build first: noisy
        await until(lambda: said("noisy 0.1: out differs"))
        await pilot.press("down", "v")
        await until(lambda: said("steady 2.0: out reproducible"))


def _staff_bundle(alice, test_channels, *, edit_lock=None,
                  modules: tuple[str, ...] = ("counted/1.0",)) -> tuple[dict, dict, Path]:
    """alice, as staff with the rig key, builds counted and steady, locks ``modules`` (edited
    by ``edit_lock`` first, as a key holder may), exports it signed, then removes counted's
    module and root deletes its output (an import must bring it back)."""
    nonce, counter = new_counter()
    setup_repro(alice, test_channels / "repro.nix", nonce, counter)
    counted = records(alice.nixmod("build", "counted", "--wait", "--json", check=True))[0]
    steady = records(alice.nixmod("build", "steady", "--wait", "--json", check=True))[0]
    alice.nixmod("lock", *modules, "-o", "lock.json", check=True)
    if edit_lock is not None:
        lock = json.loads((alice.home / "lock.json").read_text())
        edit_lock(lock, steady)
        alice.write("lock.json", json.dumps(lock))
    key = give_key(alice)
    alice.nixmod("export", "lock.json", "bundle", "--key", str(key), check=True)
    alice.nixmod("modules", "remove", "counted/1.0", check=True)
    deleted = subprocess.run(["nix-store", "--delete", counted["out"]], capture_output=True,
                             text=True)
    assert deleted.returncode == 0, deleted.stderr
    return counted, steady, alice.home / "bundle"


def test_an_edited_lock_in_a_signed_bundle_is_refused(alice, bob, test_channels):
    """Issue 24.4: only store paths were signed. bob edits a correctly signed bundle: the
    lock says gcc 13.2 built by steady's drv, and he fixes the narinfo's (unsigned) Deriver
    to match. The lock is signed now: alice's import refuses it whole."""
    counted, steady, bundle = _staff_bundle(alice, test_channels)
    forged = bob.home / "forged"
    bob.run("cp", "-r", str(bundle), str(forged), check=True)
    lock = json.loads((forged / "nixmod.lock").read_text())
    lock["packages"][0].update(name="gcc", version="13.2", drv=steady["drv"])
    bob.write("forged/nixmod.lock", json.dumps(lock, indent=2) + "\n")
    info = narinfo(forged, counted["out"])
    info.write_text(re.sub(r"^Deriver: .*$", f"Deriver: {Path(steady['drv']).name}",
                           info.read_text(), flags=re.M))

    proc = alice.nixmod("import", str(forged))
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc)
    assert "refused, nothing imported" in line and "nixmod.lock is untrusted" in line, line
    modules = alice.home / ".local/share/nixmod/modules/nix"
    assert not (modules / "gcc").exists() and not is_valid(counted["out"])

    imported = alice.nixmod("import", str(bundle), check=True)   # as exported: imports
    assert "nix/counted/1.0" in imported.stdout and is_valid(counted["out"])
    shown = alice.bash(f"module use {MODULES} && module show nix/counted/1.0 2>&1",
                       check=True).stdout
    assert counted["drv"] in shown and steady["drv"] not in shown


def test_a_signed_lock_whose_drv_did_not_make_the_outputs_is_refused(alice, test_channels):
    """Issue 24.4: the lock's drv must be the outputs' deriver, else the module's Derivation
    line (and what verify rebuilds) names another program. Even a key holder's lock."""
    def swap_drvs(lock: dict, steady: dict) -> None:
        first, second = lock["packages"]
        first["drv"], second["drv"] = second["drv"], first["drv"]

    counted, steady, bundle = _staff_bundle(alice, test_channels, edit_lock=swap_drvs,
                                            modules=("counted/1.0", "steady/2.0"))
    proc = alice.nixmod("import", str(bundle))
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc)
    assert "refused, nothing imported" in line, line
    assert f"({counted['out']}) is made by {counted['drv']}, the lock says {steady['drv']}" in line
    assert "(and 1 more)" in line                        # steady's, the other way round
    assert not (alice.home / ".local/share/nixmod/modules/nix/counted").exists()
    assert not is_valid(counted["out"])


def test_gc_roots_never_go_where_another_user_can_remove_them(alice, bob, test_channels):
    """Issue 24.4: the GC roots of an import go beside the modules root, in a directory named
    by the lock's stack. A stack that is a path (bob's world-writable /tmp/bobgc) is bad
    input; a gcroots directory bob planted first in a shared sticky directory is refused
    before anything is copied (he could remove the roots and let the store collect)."""
    bobgc = SCRATCH / f"bobgc-{uuid.uuid4().hex[:8]}"
    bob.run("mkdir", "-m", "777", str(bobgc), check=True)
    counted, _steady, bundle = _staff_bundle(alice, test_channels)
    edited = bob.home / "edited"
    bob.run("cp", "-r", str(bundle), str(edited), check=True)
    lock = json.loads((edited / "nixmod.lock").read_text())
    bob.write("edited/nixmod.lock", json.dumps({**lock, "stack": str(bobgc)}))
    proc = alice.nixmod("import", str(edited), "--modules-root", str(alice.home / "site/modules"))
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert f"'stack': stack '{bobgc}' is not usable" in line, line
    assert list(bobgc.iterdir()) == [] and not is_valid(counted["out"])
    alice.write("stacked.json", json.dumps({**lock, "stack": str(bobgc)}))   # nor exported
    proc = alice.nixmod("export", "stacked.json", "stacked", "--key", str(alice.home / "cache.sec"))
    assert proc.returncode == 2 and "'stack'" in one_line_error(proc)

    shared = SCRATCH / f"shared-{uuid.uuid4().hex[:8]}"          # as /scratch: sticky, 1777
    shared.mkdir()
    shared.chmod(0o1777)
    bob.run("mkdir", "-m", "777", str(shared / "gcroots"), check=True)
    alice.run("mkdir", str(shared / "modules"), check=True)
    alice.nixmod("lock", "steady/2.0", "-o", "steady.json", check=True)
    alice.nixmod("export", "steady.json", "steady-bundle", "--key", str(alice.home / "cache.sec"),
                 check=True)
    proc = alice.nixmod("import", str(alice.home / "steady-bundle"), "--modules-root",
                        str(shared / "modules"))
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert (f"GC root directory {shared}/gcroots/modules is not safe: {shared}/gcroots belongs "
            f"to {bob.user}") in line, line
    assert list((shared / "gcroots").iterdir()) == []
    assert not (shared / "modules/nix").exists()
