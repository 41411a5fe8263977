"""Reading package lists: what ``nix-env -qaP --json --meta`` prints, or a
channel's ``packages.json`` (``{"version": 2, "packages": {...}}``), plain or
gzip-compressed.

A real nixpkgs list is ~230 MB of JSON; ``json.load`` of it costs ~1.4 GB
and 6 s, nearly all spent on metadata nobody searches (CPE identifiers,
maintainers). So the list is streamed one record at a time and each record is
cut down at once to the few fields the catalog keeps. Metadata is untrusted
and messy (licenses as objects, lists or strings; homepages as lists; nulls):
every record either becomes a ``Record`` or is reported with a reason.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, NamedTuple, cast

_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"
#: an object key without escapes or control characters, and its colon: what JSON decodes
#: to the text between the quotes (issue 22: a fifth of reading a list was its keys)
_PLAIN_KEY = re.compile(r'[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:')
#: an attribute path we can show, type and put in a file name: no blanks or
#: control characters, no empty components
_ATTR_PATH = re.compile(r"[^\s.\x00-\x1f\x7f/]+(\.[^\s.\x00-\x1f\x7f/]+)*")


class Record(NamedTuple):
    """One package as one channel lists it, reduced to what the catalog keeps.

    A named tuple, not a frozen dataclass: 196k of them are made for a cold
    index of five nixpkgs, and a frozen dataclass sets each field through
    ``object.__setattr__``.
    """

    attr: str
    version: str
    pname: str
    description: str
    homepage: str
    license: str
    platforms: tuple[str, ...]
    outputs: tuple[str, ...]
    main_program: str


def record_tuple(record: Record) -> tuple:
    """``record``'s fields in order, as the caches store them (shared tuples stay shared)."""
    return tuple(record)     # a plain tuple: marshal writes no tuple subclass


@dataclass(frozen=True)
class Skipped:
    """A listed entry that could not become a record, and why."""

    attr: str
    reason: str


class MalformedList(Exception):
    """The file is not a package list at all (the message says where it broke)."""


# -- streaming the JSON -----------------------------------------------------------

class _JsonStream:
    """Decodes one top-level JSON object entry by entry from a byte stream.

    The C decoder does the real work (``raw_decode`` on a sliding text
    buffer); when an entry runs past the end of the buffer, more is read and
    the entry decoded again. Entries are a few KB, chunks a MB, so retries
    are rare and memory stays at one chunk plus one entry.
    """

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.text_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.json_decoder = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.consumed = 0
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        self.consumed += self.pos
        self.buffer = self.buffer[self.pos:] + self.text_decoder.decode(chunk, final=not chunk)
        self.pos = 0
        self.eof = not chunk
        return True

    def _peek(self) -> str:
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._fill():
                return ""

    def _fail(self, what: str) -> MalformedList:
        return MalformedList(f"{what} at character {self.consumed + self.pos}")

    def expect(self, char: str) -> None:
        if self._peek() != char:
            raise self._fail(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = self.json_decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise self._fail(f"bad JSON ({exc.msg})") from None
            if end == len(self.buffer) and not self.eof and not isinstance(value, (dict, list, str)):
                self._fill()  # a number or literal may continue in the next chunk
                continue
            self.pos = end
            return value

    def items(self) -> Iterator[tuple[str, Any]]:
        """(key, value) of the object starting here; ``packages`` is entered, not decoded."""
        self.expect("{")
        if self._peek() == "}":
            self.pos += 1
            return
        while True:
            # most keys are plain (no escapes): a regex, not the decoder, reads those
            plain = _PLAIN_KEY.match(self.buffer, self.pos)
            if plain is not None:
                key, self.pos = plain.group(1), plain.end()
            else:
                key = self.value()
                if not isinstance(key, str):
                    raise self._fail("expected an attribute name")
                self.expect(":")
            yield key, self
            buffer, pos = self.buffer, self.pos
            separator = buffer[pos] if pos < len(buffer) and buffer[pos] in ",}" else self._peek()
            self.pos += 1
            if separator == "}":
                return
            if separator != ",":
                raise self._fail("expected ',' or '}'")


def _open(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))  # typeshed: GzipFile is not an IO[bytes]
    return raw


def iter_entries(path: Path) -> Iterator[tuple[str, Any]]:
    """(attribute path, raw entry) for every package in a saved list."""
    with _open(path) as stream:
        reader = _JsonStream(stream)
        if reader._peek() != "{":
            raise reader._fail("a package list is a JSON object; expected '{'")
        packages_json = False
        for key, entry in reader.items():
            if key == "packages" and packages_json and reader._peek() == "{":
                for attr, inner in reader.items():
                    yield attr, inner.value()
                continue
            value = entry.value()
            if key == "version" and isinstance(value, int) and not packages_json:
                packages_json = True  # nixpkgs' packages.json starts {"version": 2, ...
                continue
            yield key, value


# -- cutting records down ---------------------------------------------------------

def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _first_text(value: Any) -> str:
    """A homepage: a string, or the first string of a list."""
    if isinstance(value, list):
        return next((item for item in value if isinstance(item, str)), "")
    return _text(value)


def license_text(value: Any) -> str:
    """A display string for ``meta.license`` in any of the shapes nixpkgs used."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if isinstance(item, dict):
            name = next((item[k] for k in ("spdxId", "shortName", "fullName")
                         if isinstance(item.get(k), str) and item[k]), "")
        else:
            name = _text(item)
        if name and name not in names:
            names.append(name)
    return ", ".join(names)


def parse_drv_name(name: str) -> tuple[str, str]:
    """(pname, version) as Nix's ``parseDrvName``: split at the first '-' before a non-letter."""
    for index, char in enumerate(name):
        if char == "-" and index + 1 < len(name) and not name[index + 1].isalpha():
            return name[:index], name[index + 1:]
    return name, ""


def valid_attr_path(attr: str) -> bool:
    """Is ``attr`` an attribute path nixmod lists and evaluates (no blanks, '/' or controls)?"""
    return _ATTR_PATH.fullmatch(attr) is not None


def _platforms(value: Any, shared: dict[tuple, tuple[str, ...]]) -> tuple[str, ...]:
    """``meta.platforms`` as a tuple of its strings, one shared tuple per distinct list.

    The lists repeat across tens of thousands of records: a hit is a C-level
    tuple and dict lookup; only a new list is filtered item by item (issue 22:
    the filtering was an eighth of reading a real nixpkgs).
    """
    if not isinstance(value, list):
        return ()
    key = tuple(value)
    try:
        return shared[key]
    except KeyError:
        kept = shared[key] = tuple(p for p in value if isinstance(p, str))
        return kept
    except TypeError:     # an object among the platforms: unhashable, and dropped
        kept = tuple(p for p in value if isinstance(p, str))
        return shared.setdefault(kept, kept)


def to_record(attr: str, entry: Any, shared: dict[tuple, tuple[str, ...]] | None = None,
              strings: dict[Any, Any] | None = None) -> Record | Skipped:
    """``entry`` cut down to a ``Record``, or why it cannot be one.

    ``shared``: platform tuples already made (``read_list`` passes one per list);
    ``strings``: one copy of each field's value, kept across lists (see
    ``channels.ChannelLister``): five nixpkgs repeat most descriptions.
    """
    if not valid_attr_path(attr):
        return Skipped(attr, "attribute path is empty or has blanks, '/' or control characters")
    if not isinstance(entry, dict):
        return Skipped(attr, f"entry is a JSON {type(entry).__name__}, not an object")
    name = _text(entry.get("name"))
    version = entry.get("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) and not name:
        return Skipped(attr, "neither a name nor a version")
    pname = _text(entry.get("pname"))
    if not isinstance(version, str) or not pname:
        parsed_pname, parsed_version = parse_drv_name(name)
        pname = pname or parsed_pname
        if not isinstance(version, str):
            version = parsed_version
    meta_value = entry.get("meta")
    meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
    outputs = entry.get("outputs")
    if isinstance(outputs, dict) and outputs:
        output_names = tuple(str(key) for key in outputs)
    elif isinstance(outputs, list) and all(isinstance(o, str) for o in outputs) and outputs:
        output_names = tuple(outputs)
    else:
        output_names = (_text(entry.get("outputName")) or "out",)
    one = ({} if strings is None else strings).setdefault
    description = _text(meta.get("description"))
    homepage = _first_text(meta.get("homepage"))
    license = license_text(meta.get("license"))
    program = _text(meta.get("mainProgram"))
    return Record(
        attr=attr,
        version=one(version, version),
        pname=one(pname, pname),
        description=one(description, description),
        homepage=one(homepage, homepage),
        license=one(license, license),
        platforms=_platforms(meta.get("platforms"), {} if shared is None else shared),
        outputs=one(output_names, output_names),
        main_program=one(program, program),
    )


def read_list(path: Path, strings: dict[Any, Any] | None = None
              ) -> tuple[list[Record], list[Skipped]]:
    """Every entry of a saved package list, as records or reasons.

    ``strings``: see ``to_record``. Raises ``MalformedList`` (or OSError)
    when the file as a whole is unusable.
    """
    strings = {} if strings is None else strings
    records: list[Record] = []
    skipped: list[Skipped] = []
    # Platform lists repeat across tens of thousands of records: share one
    # tuple per distinct list, or they alone would cost hundreds of MB.
    shared_platforms: dict[tuple, tuple[str, ...]] = {}
    for attr, entry in iter_entries(path):
        result = to_record(attr, entry, shared_platforms, strings)
        if isinstance(result, Record):
            records.append(result)
        else:
            skipped.append(result)
    return records, skipped
