"""One key list: the bindings. The help screen is made from them; README's table must match.

`v` (verify) and `L` (lock) were bound but missing from the help screen and
the README, which were kept by hand. Now both come from ``BINDINGS``, and
this test fails when README's table is out of step, with the table to paste.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.binding import Binding

from nixmod.tui.app import NixmodApp
from nixmod.tui.help import KEY_NAMES, key_rows, key_sections, key_table_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_key_table() -> str:
    text = README.read_text()
    start = text.index("| Where | Key | What it does |")
    end = text.find("\n\n", start)
    return text[start:end if end >= 0 else None].rstrip("\n")


def test_readme_key_table_is_the_one_made_from_the_bindings() -> None:
    expected = key_table_markdown(NixmodApp)
    assert readme_key_table() == expected, (
        "README.md's key table is out of step with the TUI's bindings; replace it with:\n\n" + expected)


def table_keys(where: str) -> set[str]:
    """The keys README's table lists for one section (its rows up to the next section)."""
    keys: set[str] = set()
    section = ""
    for line in readme_key_table().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        section = cells[0] or section
        if section == where:
            keys |= set(re.findall(r"`([^`]+)`", cells[1]))
    return keys


@pytest.mark.parametrize("where, bindings", key_sections(NixmodApp), ids=lambda v: v if isinstance(v, str) else "")
def test_every_bound_key_is_in_the_readme_and_nothing_else(where: str, bindings: list[Binding]) -> None:
    bound = {KEY_NAMES.get(key.strip(), key.strip()) for b in bindings for key in b.key.split(",")}
    assert table_keys(where) == bound


@pytest.mark.parametrize("where, key, word", [("Builds", "v", "verify"), ("Modules", "L", "lock"),
                                              ("Modules", "u", "module use"), ("Builds", "f5", "states")])
def test_the_keys_once_missing_are_listed(where: str, key: str, word: str) -> None:
    rows = key_rows(NixmodApp)
    sections = []
    for row in rows:
        sections.append(row.where or sections[-1])
    assert any(section == where and key in row.keys and word in row.what
               for section, row in zip(sections, rows)), rows
