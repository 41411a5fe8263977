"""The Lua side's units, through Debian's busted (lua-busted), as a test user."""

from __future__ import annotations

from rig import REPO
from modules_helpers import site_lua  # noqa: F401 (fixture)


def test_lua_units_pass_under_busted(alice, site_lua):
    spec = alice.write("spec/nixmod_store_spec.lua", (REPO / "tests/lua/nixmod_store_spec.lua").read_text())
    proc = alice.run("busted", "--output=TAP", str(spec), env={"NIXMOD_LUA_DIR": str(site_lua)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not ok" not in proc.stdout
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == 6, proc.stdout
