"""Reproducible elsewhere (SPEC.md): lock a module set, rebuild it exactly, move it signed, verify it.

``lockdoc`` (the lock document), ``lock`` (making one, building exactly
one; ``envlock`` the environments in it), ``bundle``
(signed export and checked import) and ``verify`` (rebuild with --check and
compare). The faces use the names below; a module of the core imports the
part it needs (``stacks`` imports ``repro.lock``).
"""

from nixmod.repro.bundle import (ExportResult, ImportResult, check_bundle, export_bundle,
                                 import_bundle, signature_status, trusted_keys)
from nixmod.repro.lock import build_locked, lock_tree, locked_plans, locked_versions, make_lock
from nixmod.repro.lockdoc import (LOCK_NAME, EnvironmentMember, Lock, LockedEnvironment,
                                  LockedPackage, LockMismatch, read_lock, write_lock)
from nixmod.repro.verify import VerifyResult, verify

__all__ = ["ExportResult", "ImportResult", "check_bundle", "export_bundle", "import_bundle",
           "signature_status", "trusted_keys", "LOCK_NAME", "EnvironmentMember", "Lock",
           "LockedEnvironment", "LockedPackage",
           "LockMismatch", "build_locked", "lock_tree", "locked_plans", "locked_versions",
           "make_lock", "read_lock", "write_lock", "VerifyResult", "verify"]
