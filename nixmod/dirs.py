"""The directories nixmod writes into, checked before nixmod trusts them.

nixmod writes programs that users run (shims), files that Lmod executes
(modulefiles, the spider cache) and the manifest its build jobs act on. Who
can change those files can run code as their owner, so each directory
nixmod writes (the state dir, the modules root and its ``.shims`` and
``.lmodcache`` siblings, a stack's GC-root directory) must be one that no
other user can change or swap. Users do point nixmod into shared sticky
directories (``/tmp``, ``/scratch``), where another user may have created
the name first.

The rule, as OpenSSH's StrictModes applies it to ``~/.ssh``:

* every directory on the way (symlinks followed) belongs to the user or to
  root, and is writable by nobody else, or is sticky (``/tmp``): a sticky
  directory protects only entries of the user or root, so the next entry
  must be one of theirs;
* a symlink on the way was made by the user or root (``lstat`` owner): a
  symlink that another user planted in ``/tmp`` is never followed;
* the directory itself belongs to the user and only the user can write it
  (a group that is the user's own private group counts as the user).

A directory that does not exist yet is created by nixmod itself and checked
again afterwards, so a name another user creates in between (the race that
``O_EXCL`` closes for files) is refused, never adopted.

The same rules judge a directory that nixmod *reads* trusted content from,
written by someone else: the site catalog (``[catalog] site_dir``) is trusted
only if every directory on the way and the site directory itself belong to
root or the site's publisher; ``problem(path, trusted=...)`` names who counts.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Collection
from pathlib import Path

from nixmod.config import current_user
from nixmod.errors import UserError

#: how many symlinks a path may pass through (the kernel's own limit is 40)
_MAX_SYMLINKS = 40


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _private_group(gid: int, trusted: Collection[int] | None = None) -> bool:
    """Is ``gid`` the own private group (Red Hat's user-private-group scheme) of the
    user, or of one of the ``trusted`` accounts?"""
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    names = {_owner(uid) for uid in (trusted if trusted is not None else (os.geteuid(),))}
    return group.gr_name in names and set(group.gr_mem) <= {group.gr_name}


def others_can_write(st: os.stat_result, trusted: Collection[int] | None = None) -> bool:
    """Can a user other than the owner (or the ``trusted`` accounts) write this file or
    directory (ignoring the sticky bit)?"""
    if st.st_mode & stat.S_IWOTH:
        return True
    return bool(st.st_mode & stat.S_IWGRP) and not _private_group(st.st_gid, trusted)


def is_dir(path: Path) -> bool:
    """``Path.is_dir`` that says False where it cannot look (it raises on EACCES)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _trusted(uid: int, trusted: Collection[int] | None = None) -> bool:
    return uid in (trusted if trusted is not None else (0, os.geteuid()))


def whom(trusted: Collection[int] | None) -> str:
    """The accounts ``trusted`` names, for messages ("you" when it is the default)."""
    if trusted is None:
        return "you"
    return " or ".join(_owner(uid) for uid in sorted(set(trusted)))


def _guards(directory: Path, st: os.stat_result, child: str, child_uid: int | None,
            trusted: Collection[int] | None = None) -> str | None:
    """Why another user could replace ``child`` in ``directory``, or None."""
    if not _trusted(st.st_uid, trusted):
        return f"{directory} belongs to {_owner(st.st_uid)}, who could replace what is in it"
    if not others_can_write(st, trusted):
        return None
    if not st.st_mode & stat.S_ISVTX:
        return (f"{directory} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}, "
                "not sticky), who could replace what is in it")
    if child_uid is not None and not _trusted(child_uid, trusted):
        return (f"{directory / child} belongs to {_owner(child_uid)}, not to {whom(trusted)} "
                f"(in the shared directory {directory})")
    return None


def problem(path: Path, trusted: Collection[int] | None = None) -> str | None:
    """Why another user could change what nixmod writes under ``path``; None when safe.

    A path that does not exist yet is judged by the directory it would be
    created in. Nothing is created or changed. ``trusted``: the uids that
    may own (and write) the directories on the way and ``path`` itself, for
    a directory whose content nixmod trusts without writing it (the site
    catalog: root and the publisher); by default root and the user on the
    way, and the user alone for ``path``.
    """
    current = Path("/")
    try:
        current_st = os.stat(current)
    except OSError as exc:
        return f"/ cannot be examined ({exc.strerror})"
    parts = list((Path.cwd() / path).parts[1:])   # '..' kept: the kernel resolves it after symlinks
    hops = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent
            current_st = os.stat(current)
            continue
        child = current / name
        try:
            st = os.lstat(child)
        except FileNotFoundError:
            # the rest is created by nixmod, inside ``current``
            return _guards(current, current_st, name, None, trusted)
        except OSError:
            return None   # cannot look: creating or writing it fails with its own clear error
        if stat.S_ISLNK(st.st_mode) and not _trusted(st.st_uid, trusted):
            return f"{child} is a symlink made by {_owner(st.st_uid)}, not by {whom(trusted)}"
        why = _guards(current, current_st, name, st.st_uid, trusted)
        if why:
            return why
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                return f"{path} passes through too many symlinks"
            target = Path(os.readlink(child))
            if target.is_absolute():
                current, current_st = Path("/"), os.stat("/")
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            continue
        if not stat.S_ISDIR(st.st_mode):
            return f"{child} is not a directory"
        current, current_st = child, st
    if current_st.st_uid not in (trusted if trusted is not None else (os.geteuid(),)):
        return f"{current} belongs to {_owner(current_st.st_uid)}, not to {whom(trusted)}"
    if others_can_write(current_st, trusted):
        return (f"{current} is writable by other users (mode "
                f"{stat.S_IMODE(current_st.st_mode):o}); only {whom(trusted)} may write it")
    return None


def refusal(path: Path, what: str, key: str) -> UserError | None:
    """The one-line UserError for an unsafe ``path`` (None when it is safe)."""
    why = problem(path)
    if why is None:
        return None
    return UserError(f"{what} {path} is not safe: {why}; nixmod writes files there that you "
                     f"run: remove it, or set {key} to a directory only you can write")


def ensure_dir(path: Path, what: str, key: str, *, mode: int = 0o755) -> Path:
    """Check ``path``, create what is missing of it, and check again; UserError if unsafe.

    ``mode`` is for the directory itself (0o700 for private state), the
    directories above it that nixmod creates get 0o755; a umask of 0 never
    makes them writable by others.
    """
    error = refusal(path, what, key)
    if error:
        raise error
    missing = []
    probe = Path(path)
    while not is_dir(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for number, directory in enumerate(reversed(missing)):
        try:
            # mkdir fails if the name appeared meanwhile: it is never adopted unchecked. The
            # mode is an upper bound (the umask only removes bits): no group/other write.
            os.mkdir(directory, mode if number == len(missing) - 1 else 0o755)
        except FileExistsError:
            pass                        # someone was first: the check below decides
        except OSError as exc:
            raise UserError(f"{what} {path} cannot be created ({exc.strerror or exc}: "
                            f"{exc.filename or path}); set {key} to a directory you can "
                            "write") from None
    error = refusal(path, what, key)
    if error:
        raise error
    return path


def writable_dir(path: Path) -> tuple[bool, str]:
    """Is ``path`` writable, or creatable by us? (Without creating it.)

    For reports that list every problem at once (``doctor``, ``stack
    check``); writing goes through ``ensure_dir``, which also checks who
    else could change the directory.
    """
    probe = path
    while True:
        try:
            probe.stat()
            break
        except PermissionError:
            return False, f"{probe} cannot be reached by {current_user()} (permission denied)"
        except OSError:
            if probe.parent == probe:
                break
            probe = probe.parent
    if os.access(probe, os.W_OK | os.X_OK):
        return True, "writable" if probe == path else f"will be created (under {probe})"
    return False, f"{probe} is not writable by {current_user()}"
