"""The name rules: which package NAMEs and versions can become a module.

A NAME and a version become path components (the modulefile, its shims,
its GC roots) and shell words in ``module load``. The rule lives here, below
the catalog, the modulefiles and the builds, so every one of them asks the
same question without importing another: a catalog can refuse a package
before anything is built, and a GC root is never named by anything the
modulefile would refuse.
"""

from __future__ import annotations

import re

from nixmod.errors import UserError

__all__ = ["validate_component", "check_module_names"]

#: NAME and version become path components and shell words in `module load`:
#: letters, digits and a few punctuation marks nixpkgs uses; never '/', never a leading '.'
#: (the same set the builds code keeps in GC root names, so the two always agree)
_COMPONENT = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")


def validate_component(value: str, what: str) -> str:
    """``value`` if it is safe as one path component and Lmod name part, else UserError."""
    if (not isinstance(value, str) or not _COMPONENT.fullmatch(value) or ".." in value
            or len(value.encode()) > 200):
        raise UserError(f"{what} {value!r} is not usable as a module {what}: use letters, digits "
                        "and . _ + - only, not starting with '.' (no '/' or '..')")
    return value


def check_module_names(name: str, version: str) -> None:
    """Refuse, before anything is built, a package that could never become a module.

    A derivation may be named without a version, or with ``?`` or ``=`` in
    it (Nix allows both); built anyway, it would end "built" with no module
    and the user would have spent a build slot on nothing.
    """
    try:
        validate_component(name, "name")
        validate_component(version, "version")
    except UserError as exc:
        raise UserError(f"cannot build {name} {version!r}: {exc}; nothing was built") from None


