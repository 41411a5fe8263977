"""A lock's ``environments`` (SPEC "Reproducible elsewhere"), read as the CLI reads any lock.

A lock may come from another site: every field of a locked environment is
checked before anything is evaluated or submitted (one line, exit 2). These
need no Nix: ``build --lock`` reads the lock first. Locking, building,
exporting and importing environments on the rig is test_repro_envs.py's.
"""

from __future__ import annotations

import json
from typing import Any

from dump_channels import DumpHome

STORE = "/nix/store/"
ENV = {"name": "sci", "channel": "c",
       "packages": [{"name": "python3Packages.numpy", "version": "1.26.4",
                     "attr": "python3Packages.numpy"},
                    {"name": "jq", "version": "1.7", "attr": "jq"}],
       "drv": STORE + "c" * 32 + "-env-sci.drv",
       "outputs": {"out": STORE + "d" * 32 + "-python3-env"},
       "nar_hash": {"out": "sha256:" + "1" * 52}}
LOCK: dict[str, Any] = {
    "nixmod_lock": 1, "system": "x86_64-linux", "store_dir": "/nix/store",
    "channels": {"c": {"url": "https://example.org/x.tar.gz", "sha256": "0" * 52}},
    "packages": [], "environments": [ENV]}


def build_lock(home: DumpHome, lock: dict[str, Any]) -> tuple[int, str]:
    path = home.base / "lock.json"
    path.write_text(json.dumps(lock))
    proc = home.nixmod("build", "--lock", str(path))
    return proc.returncode, proc.stderr


def test_every_field_of_a_locked_environment_is_checked(dump_home: DumpHome) -> None:
    member = ENV["packages"][0]
    for change, said in (({"name": "../sci"}, "environment #1: name '../sci' is not usable"),
                         ({"channel": "elsewhere"}, "names channel 'elsewhere', which 'channels' "
                                                    "does not describe"),
                         ({"packages": []}, "environment #1 (sci) needs 'packages', a non-empty list"),
                         ({"packages": [{**member, "attr": "a b"}]}, "attr 'a b' is not an attribute"),
                         ({"packages": [{"name": "x"}]}, "each package needs name, version and attr"),
                         ({"drv": STORE + "e" * 32 + "-env"}, "drv must be a .drv path"),
                         ({"outputs": {"out": "/tmp/x"}}, "output 'out': a store path under"),
                         ({"nar_hash": {"lib": "sha256:" + "1" * 52}},
                          "needs 'outputs' and 'nar_hash' for the same outputs")):
        code, stderr = build_lock(dump_home, {**LOCK, "environments": [{**ENV, **change}]})
        assert code == 2, (change, stderr)
        assert said in stderr and len(stderr.strip().splitlines()) == 1, (change, stderr)
        assert "Traceback" not in stderr
    code, stderr = build_lock(dump_home, {**LOCK, "environments": [ENV, ENV]})
    assert code == 2 and "environment 'sci' is locked twice" in stderr, stderr
    code, stderr = build_lock(dump_home, {**LOCK, "environments": []})
    assert code == 2 and "nothing is locked" in stderr, stderr
