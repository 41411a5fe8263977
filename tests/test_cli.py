"""What a new user meets first on the command line (issue 10, items 8 and 14), as a real user."""

from __future__ import annotations

import json
from types import SimpleNamespace

from dump_channels import channels_config


def test_usage_errors_name_nixmod_once_and_never_offer_the_hidden_job_step(alice):
    proc = alice.nixmod("bogus")
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("nixmod: argument VERB: invalid choice: 'bogus'"), line
    assert "nixmod: nixmod" not in line and "_job" not in line
    assert "search" in line and "doctor" in line

    [line] = alice.nixmod("build", "--backend", "x").stderr.splitlines()
    assert line.startswith("nixmod: build: argument --backend: invalid choice: 'x'"), line
    assert "(see 'nixmod build --help')" in line

    assert "_job" not in alice.nixmod("--help", check=True).stdout
    # the job step itself still parses (what a scheduler runs): its own one-line error
    proc = alice.nixmod("_job")
    assert proc.returncode == 2 and "required: --manifest, --index" in proc.stderr


def test_status_without_builds_says_there_are_none(alice):
    proc = alice.nixmod("--demo", "status", check=True)
    assert proc.stdout.startswith("no builds yet") and "nixmod build NAME" in proc.stdout
    assert "ID" not in proc.stdout   # no bare header
    assert json.loads(alice.nixmod("--demo", "status", "--json", check=True).stdout) == []


def test_a_constraint_nobody_meets_lists_each_version_once(alice, demo_dir, test_channels):
    # hello 2.10 is pinned by two channels: one choice, named once
    alice.write_config(channels_config(("demo-2024", demo_dir / "demo-2024"),
                                       ("tie", test_channels / "catalog-tie.nix"),
                                       ("demo-2025", demo_dir / "demo-2025")))
    proc = alice.nixmod("build", "hello@>=99")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "nixmod: no version of hello satisfies '>=99'; available: 2.12.1, 2.10")


def test_a_retried_build_counts_its_time_from_the_latest_submission(alice):
    first = json.loads(alice.nixmod("--demo", "build", "broken", "--wait", "--json").stdout)[0]
    assert first["state"] == "failed"
    retried = json.loads(alice.nixmod("--demo", "build", "--retry", str(first["id"]), "--wait",
                                      "--json").stdout)[0]
    assert retried["id"] == first["id"] and retried["state"] == "failed"
    # created is when the current attempt was submitted: after the first one had ended
    assert retried["created"] >= first["updated"] > first["created"]

    # and the Builds screen's "elapsed" is that attempt's, seconds, not the two attempts' sum
    from nixmod.tui.model import elapsed

    shown = elapsed(SimpleNamespace(**retried, finished=True), now=0)
    assert shown == f"{int(retried['updated'] - retried['created'])}s", shown


def test_a_demo_modules_help_says_to_rebuild_with_demo(alice):
    built = json.loads(alice.nixmod("--demo", "build", "hello", "--wait", "--json",
                                    check=True).stdout)[0]
    assert built["module"] == "nix/hello/2.12.1"
    proc = alice.bash("module use ~/.local/share/nixmod/demo/modules && module help nix/hello")
    assert "Rebuild with: nixmod --demo build hello@2.12.1" in proc.stderr, proc.stderr


def test_doctor_warns_when_no_channel_can_build(alice, demo_dir):
    dump = alice.write("list.json", json.dumps({"hello": {"name": "hello-2.10", "version": "2.10"}}))
    alice.write_config(channels_config(("saved", dump)))
    proc = alice.nixmod("doctor")
    [line] = [l for l in proc.stdout.splitlines() if l[7:].startswith("channels:")]
    assert line.startswith("[warn] channels: no channel can build: channel saved is a saved "
                           "package list (search and browse only)"), line
    assert "path = a nixpkgs checkout or url + sha256" in line

    alice.write_config(channels_config(("saved", dump), ("demo", demo_dir / "demo-2025")))
    proc = alice.nixmod("doctor")
    assert not [l for l in proc.stdout.splitlines() if l[7:].startswith("channels:")], proc.stdout
