"""Channel pins: what gets exactly this channel again, and the one line a module shows of it.

A pin is a url + sha256, or a path with a NAR content hash (and its git
revision when the path is a checkout). ``nixmod lock`` records the full pin
(``channel_pin``); a modulefile shows one line of it (``module_channel_pin``),
taken when the build is submitted, next to the evaluation, and kept on the
build record: the job step may run hours later, when the checkout may
have moved on, and must not describe a different tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

from nixmod import outside
from nixmod.config import Channel, Config
from nixmod.errors import UserError

__all__ = ["nix_base32", "nar_string", "nar_hash", "channel_pin", "pin_text", "module_channel_pin", "GIT_TIMEOUT"]

_NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def nix_base32(digest: bytes) -> str:
    """Nix's base-32 spelling of a hash (what ``nix-hash --base32`` prints)."""
    length = (len(digest) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        bit = n * 5
        i, j = divmod(bit, 8)
        value = digest[i] >> j
        if i + 1 < len(digest):
            value |= digest[i + 1] << (8 - j)
        chars.append(_NIX_BASE32[value & 0x1F])
    return "".join(chars)


def nar_string(sink: Any, data: bytes) -> None:
    sink.update(len(data).to_bytes(8, "little"))
    sink.update(data)
    sink.update(b"\0" * (-len(data) % 8))


def _nar_dump(sink: Any, path: Path, skip_top: frozenset[str] = frozenset()) -> None:
    """Feed the NAR serialisation of ``path`` into ``sink`` (``hashlib`` object)."""
    info = path.lstat()
    nar_string(sink, b"(")
    if stat.S_ISLNK(info.st_mode):
        for word in (b"type", b"symlink", b"target", os.fsencode(os.readlink(path))):
            nar_string(sink, word)
    elif stat.S_ISREG(info.st_mode):
        nar_string(sink, b"type")
        nar_string(sink, b"regular")
        if info.st_mode & 0o100:
            nar_string(sink, b"executable")
            nar_string(sink, b"")
        nar_string(sink, b"contents")
        sink.update(info.st_size.to_bytes(8, "little"))
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sink.update(chunk)
        sink.update(b"\0" * (-info.st_size % 8))
    elif stat.S_ISDIR(info.st_mode):
        nar_string(sink, b"type")
        nar_string(sink, b"directory")
        for name in sorted(os.fsencode(n) for n in os.listdir(path)):
            if os.fsdecode(name) in skip_top:
                continue
            for word in (b"entry", b"(", b"name", name, b"node"):
                nar_string(sink, word)
            _nar_dump(sink, path / os.fsdecode(name))
            nar_string(sink, b")")
    else:
        raise UserError(f"{path}: not a file, directory or symlink; a channel cannot hold it")
    nar_string(sink, b")")


def nar_hash(path: Path, *, skip_git: bool = False) -> str:
    """``sha256:<base32>`` of the NAR of ``path``: what ``nix-hash --type sha256 --base32`` prints.

    ``skip_git`` leaves a top-level ``.git`` out, so a checkout's hash is
    about its files, not about what was fetched into its repository.
    """
    sink = hashlib.sha256()
    nar_string(sink, b"nix-archive-1")
    _nar_dump(sink, path, frozenset({".git"}) if skip_git else frozenset())
    return "sha256:" + nix_base32(sink.digest())


#: seconds a git query on a channel checkout may take (a hung NFS mount must not hang a lock)
GIT_TIMEOUT = 30


def _git_rev(path: Path) -> tuple[str, bool] | None:
    """(HEAD revision, has local changes) when ``path`` is the top of a git checkout."""
    if not path.is_dir() or not (path / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        head = outside.run(["git", "-C", str(path), "rev-parse", "HEAD"], timeout=GIT_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        if head.returncode != 0:
            return None
        dirty = outside.run(["git", "-C", str(path), "status", "--porcelain",
                             "--untracked-files=no"], timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:   # a hung network filesystem: no git pin, the content hash still pins
        return None
    return head.stdout.strip(), bool(dirty.stdout.strip())


def channel_pin(channel: Channel) -> dict[str, Any]:
    """What gets exactly this channel again: url + sha256, or path + content hash (+ git rev)."""
    if channel.path is None:
        return {"url": channel.url, "sha256": channel.sha256}
    path = channel.path
    if not path.exists():
        raise UserError(f"channel {channel.name!r}: {path} does not exist; fix its path in the config")
    git = _git_rev(path)
    pin: dict[str, Any] = {"path": str(path), "nar_hash": nar_hash(path, skip_git=git is not None)}
    if git is not None:
        pin["git_rev"], pin["git_dirty"] = git
    return pin


def pin_text(pin: dict[str, Any]) -> str:
    """One line for a module's help: how its channel was pinned."""
    if pin.get("url"):
        return f"{pin['url']} (sha256 {pin.get('sha256', '')})"
    text = f"{pin.get('path', '')} ({pin.get('nar_hash', '')}"
    if pin.get("git_rev"):
        text += f", git revision {pin['git_rev']}" + (" with local changes" if pin.get("git_dirty") else "")
    return text + ")"


_PIN_CACHE: dict[tuple[str, str, str], str] = {}


def module_channel_pin(config: Config, channel_name: str) -> str:
    """The pin line a new modulefile shows for ``channel_name`` ('' if it is not configured).

    Cached per process: a stack build writes many modules of one channel.
    A git checkout is named by its revision alone (hashing nixpkgs for every
    module would cost seconds each); ``nixmod lock`` records the full pin.
    """
    try:
        channel = config.channel(channel_name)
    except UserError:
        return ""
    key = (channel.name, str(channel.path or ""), channel.url)
    if key not in _PIN_CACHE:
        try:
            if channel.path is not None and (git := _git_rev(channel.path)) is not None:
                _PIN_CACHE[key] = f"{channel.path} (git revision {git[0]}" + \
                    (" with local changes)" if git[1] else ")")
            else:
                _PIN_CACHE[key] = pin_text(channel_pin(channel))
        except (OSError, UserError):
            _PIN_CACHE[key] = ""
    return _PIN_CACHE[key]
