"""Reading the site's usage log (nixmod.usage) and the [usage] config: no rig, any user.

The rig tests (test_operations.py) send real loads through rsyslog; these pin
how a line is read: the uid rsyslog's imuxsock checked wins over any user=
the sender typed, and a line without one is counted but marked unverified.
"""

from __future__ import annotations

import os
import pwd
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nixmod.config import Config, load_config
from nixmod.errors import UserError
from nixmod.usage import parse_line, read_log, usage_file_name

ME = pwd.getpwuid(os.getuid()).pw_name


def test_the_kernel_checked_uid_wins_over_the_user_the_sender_typed() -> None:
    line = (f"2026-12-03T03:29:01.835825+00:00 uid={os.getuid()} host=vm "
            "user=someone-else module=nix/x/1 node=cn01 time=1")
    record = parse_line(line)
    assert record is not None
    assert (record.user, record.module, record.node, record.verified) == (ME, "nix/x/1", "cn01", True)
    # a second uid= typed into the message cannot replace the template's
    forged = parse_line("2026-12-03T03:29:01+00:00 uid=0 host=vm uid=1 user=x module=nix/x/1 node=n")
    assert forged is not None and forged.user == pwd.getpwuid(0).pw_name


def test_a_line_without_a_uid_is_counted_under_its_user_and_marked_unverified() -> None:
    record = parse_line("2026-12-03T03:29:01+00:00 uid= host=vm user=alice module=nix/x/1 node=n")
    assert record is not None and (record.user, record.verified) == ("alice", False)
    assert parse_line("Dec  3 03:29:01 vm kernel: something else") is None
    assert parse_line("2026-12-03T03:29:01+00:00 uid=0 host=vm no module here") is None


def test_usage_reads_the_configured_log_and_its_rotation_within_since(tmp_path: Path) -> None:
    log = tmp_path / "usage.log"
    (tmp_path / "usage.log.1").write_text(
        f"2026-11-01T00:00:00+00:00 uid={os.getuid()} host=h user=x module=nix/old/1 node=n1\n")
    log.write_text(f"2026-12-01T00:00:00+00:00 uid={os.getuid()} host=h user=x module=nix/a/1 node=n1\n"
                   f"2026-12-02T00:00:00+00:00 uid={os.getuid()} host=h user=x module=nix/a/1 node=n2\n"
                   "garbage\n")
    config = Config()
    config.usage.log = log
    everything = read_log(config)
    assert [m["module"] for m in everything.as_json()["modules"]] == ["nix/a/1", "nix/old/1"]
    now = datetime(2026, 12, 2, 12, tzinfo=timezone.utc).timestamp()
    recent = read_log(config, since_days=1, now=now)   # from 12-01 12:00: the 12-02 line only
    assert recent.as_json()["modules"] == [
        {"module": "nix/a/1", "loads": 1, "users": 1, "last_load": recent.as_json()["modules"][0]["last_load"],
         "nodes": {"n2": 1}, "by_user": {ME: 1}}]
    assert everything.skipped == 1


def test_usage_without_a_log_or_with_a_bad_since_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\[usage\] log"):
        read_log(Config())
    config = Config()
    config.usage.log = tmp_path / "missing.log"
    with pytest.raises(UserError, match="does not exist"):
        read_log(config)
    with pytest.raises(UserError, match="--since"):
        read_log(config, since_days=-2)


def test_usage_log_and_env_prefix_are_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[usage]\nlog = "/var/log/nixmod/usage.log"\n[modules]\nenv_prefix = "envs"\n')
    config = load_config(path, environ={})
    assert config.usage.log == Path("/var/log/nixmod/usage.log")
    assert config.modules.env_prefix == "envs"
    path.write_text('[usage]\nlogfile = "x"\n')
    with pytest.raises(UserError, match="unknown key 'usage.logfile'; allowed: log"):
        load_config(path, environ={})


def test_usage_file_names_are_one_path_component() -> None:
    assert usage_file_name("nix/hello/2.12.1") == "nix%2Fhello%2F2.12.1"
    assert "/" not in usage_file_name("nixenv/../x")
