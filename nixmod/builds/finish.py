"""Finishing a build: GC root, module, end state. Shared by the job step and ``refresh``.

The job step (``job.py``) finishes the build it ran; ``refresh`` finishes a
record whose outputs became valid some other way (reused, a joined job, a
job step killed after the daemon finished). Both import this module, so
neither imports the other nor the ``builds`` package.
"""

from __future__ import annotations

from pathlib import Path

from nixmod import lmod, nix
from nixmod.builds.state import BuildRecord, BuildStore
from nixmod.config import Config
from nixmod.errors import OperationFailed
from nixmod.gcroots import gc_root
from nixmod.metadata import metadata
from nixmod.pins import module_channel_pin


def gcroot_path(store: BuildStore, record: BuildRecord) -> Path:
    """Where this build's GC root goes (its directory made): a stack's directory or the state dir's."""
    root = gc_root(Path(record.gcroot_dir or store.default_gcroot_dir), record.name, record.version)
    root.parent.mkdir(parents=True, exist_ok=True)
    return root


def finish(config: Config, store: BuildStore, record: BuildRecord, state: str,
            after_failure: bool = False) -> None:
    """Outputs are valid: pin them with a GC root, write the module, record the end state.

    ``after_failure``: the record said ``failed`` but its outputs are valid
    now (a job step killed while the daemon went on building): the truth is
    ``built``, with its module.
    """
    error = None
    try:
        nix.run(nix.realise_command(record.drv, gcroot_path(store, record)))
    except OperationFailed as exc:
        error = f"output is valid but the GC root was not registered: {exc}"
    module = None
    try:
        module = write_module(config, record)
    except Exception as exc:  # a module problem must not turn a good build into a lost one
        error = f"built, but the module was not written: {exc}"
    if after_failure:
        store.update(record, state=state, module=module, error=error)
    else:
        store.update_if_in_flight(record, state=state, module=module, error=error)


def write_module(config: Config, record: BuildRecord) -> str:
    """Write the record's module into its tree (a stack's, else ``[modules].root``)."""
    tree = lmod.environment_config(config) if record.environment else config
    info = lmod.write_module(tree, module_request(record, config),
                        root=Path(record.module_root) if record.module_root else None,
                        default=record.module_default)
    return info.module


def module_request(record: BuildRecord, config: Config | None = None) -> lmod.ModuleRequest:
    """What lmod needs to write a record's module (the record's metadata and channel pin).

    The pin is the one taken when the build was submitted; a record from
    before nixmod kept it (empty) gets the channel's pin now when ``config``
    is given, as its module had when it was first written.
    """
    pin = record.channel_pin
    if not pin and config is not None and record.channel:
        pin = module_channel_pin(config, record.channel)
    environment = record.environment or {}
    return lmod.ModuleRequest(**metadata(record), drv=record.drv, outputs=dict(record.outputs),
                              channel_pin=pin, packages=list(environment.get("packages") or []),
                              interpreter=str(environment.get("interpreter") or ""))
