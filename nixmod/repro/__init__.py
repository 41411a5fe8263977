"""Reproducible elsewhere (SPEC.md): lock a module set, rebuild it exactly, move it signed, verify it.

``lock`` (the lock document, making one, building exactly one), ``bundle``
(signed export and checked import) and ``verify`` (rebuild with --check and
compare). The faces use the names below; a module of the core imports the
part it needs (``stacks`` imports ``repro.lock``).
"""

from nixmod.repro.bundle import (ExportResult, ImportResult, check_bundle, export_bundle,
                                 import_bundle, signature_status, trusted_keys)
from nixmod.repro.lock import (LOCK_NAME, EnvironmentMember, Lock, LockedEnvironment, LockedPackage,
                               LockMismatch, build_locked,
                               lock_tree, locked_plans, locked_versions, make_lock, read_lock,
                               write_lock)
from nixmod.repro.verify import VerifyResult, verify

__all__ = ["ExportResult", "ImportResult", "check_bundle", "export_bundle", "import_bundle",
           "signature_status", "trusted_keys", "LOCK_NAME", "EnvironmentMember", "Lock",
           "LockedEnvironment", "LockedPackage",
           "LockMismatch", "build_locked", "lock_tree", "locked_plans", "locked_versions",
           "make_lock", "read_lock", "write_lock", "VerifyResult", "verify"]
