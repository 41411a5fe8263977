"""Catalog text in Lua string literals, checked in Python: no rig, any user.

``lmod.lua_string`` must produce a literal that Lua reads back as exactly
the text, on one line. The oracle here is a small reader of Lua's
double-quoted literal (the escapes Lua 5.1-5.4 all share); test_lmod.py
checks the same through real Lmod and a real user.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from nixmod.lmod import lua_string

_ESCAPE = re.compile(r'\\(\d{1,3}|[nrt"\\])')
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def read_lua_string(literal: str) -> str:
    """What Lua makes of a double-quoted literal (the subset lua_string writes)."""
    assert literal.startswith('"') and literal.endswith('"') and len(literal) >= 2
    body = literal[1:-1]
    # every quote and backslash in the body is part of an escape
    assert not re.search(r'(?<!\\)(?:\\\\)*"', body), literal
    return _ESCAPE.sub(lambda m: chr(int(m.group(1))) if m.group(1).isdigit() else _SIMPLE[m.group(1)], body)


HOSTILE = [
    "", "plain", 'say "hi"', "back\\slash", "a]]b[[c", "line\nbreak", "cr\rlf\r\n", "tab\there",
    "\x00nul", "bell\x07", "del\x7f", "esc\x1b[31mred", "\\\"", "]]\n--[[", "ünïcödé ✓", "99\x01" + "2",
]


def test_hostile_catalog_text_reads_back_exactly_on_one_line() -> None:
    for text in HOSTILE:
        literal = lua_string(text)
        assert "\n" not in literal and "\r" not in literal, literal
        assert read_lua_string(literal) == text, (text, literal)


def test_a_numeric_escape_never_swallows_a_following_digit() -> None:
    assert lua_string("\x01" + "23") == '"\\00123"'
    assert read_lua_string(lua_string("\x01" + "23")) == "\x0123"


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    assert read_lua_string(lua_string("a\ud800b")) == "a\ufffdb"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_any_text_round_trips(text: str) -> None:
    literal = lua_string(text)
    assert "\n" not in literal
    assert read_lua_string(literal) == text
