"""Planning: what submitting each package would do (reuse, join or build), decided once.

``plan`` instantiates every version (the slow part), then one look at the
queues and one at the store decide, per drv: ``reuse`` (every output
valid), ``join`` (somebody's job, maybe another user's, builds it now) or
``build``. ``submit`` asks the same ``_decider`` again under the
submission lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from nixmod import nix
from nixmod.builds.records import check_state, open_store
from nixmod.builds.registry import BACKENDS
from nixmod.builds.state import IN_FLIGHT_STATES, BuildStore
from nixmod.packages import PackageVersion
from nixmod.config import Config, current_user
from nixmod.errors import UserError
from nixmod.metadata import identity
from nixmod.names import check_module_names

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What submitting one package would do, decided from the drv, the store and the queue.

    A forecast: ``submit`` decides again under the submission lock (a job may
    have ended, or started, since), and each record it returns says what it
    did (``BuildRecord.action``).
    """

    version: PackageVersion
    drv: str
    outputs: dict[str, str]
    action: str                    # "reuse" | "join" | "build"
    job: str | None = None         # the in-flight job a "join" would follow
    owner: str | None = None       # whose job that is (maybe another user)
    #: make this build's module the default of its name (a site stack decides per package)
    default: bool = False
    #: an environment's packages and interpreter (``BuildRecord.environment``); {} for a package
    environment: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {**identity(self.version), "drv": self.drv, "outputs": self.outputs, "action": self.action, "job": self.job,
                "owner": self.owner}


@dataclass(frozen=True)
class InFlight:
    """A job somebody submitted that is building a drv right now."""

    job: str
    owner: str
    backend: str
    #: when one of this user's records joined it, if one did: a request joining through
    #: that record follows the job since then (``joining.followed_too_long``), not afresh
    since: float | None = None


def plan(config: Config, versions: Sequence[PackageVersion],
         progress: Progress | None = None, *, module_root: Path | None = None,
         backend: str | None = None) -> list[Plan]:
    """Instantiate every version and say, for each, reuse / join / build.

    Evaluation (nix-instantiate) is the slow part; everything after it is
    one ``nix-store --check-validity`` and one listing of the queue the
    builds would go to (``backend``, the configured one by default).
    The state dir and the modules tree (``module_root``, else
    ``[modules].root``) are checked first, so that an unusable one is said
    before the wait, not after it.
    """
    for version in versions:   # all refused before any evaluation or build
        check_module_names(version.name, version.version)
    check_state(config, module_root=module_root)
    instantiated = []
    for version in versions:
        channel = config.channel(version.channel)
        if channel.is_dump:
            raise UserError(f"channel {channel.name!r} is a saved package list ({channel.path}); "
                            "builds need a nixpkgs path or url channel")
        if progress:
            progress(f"evaluating {version.channel}:{version.attr} {version.version}")
        inst = nix.instantiate(channel.path, version.attr, channel.url, channel.sha256)
        instantiated.append((version, inst))
    return plan_derivations(config, instantiated, backend=backend)


def plan_derivations(config: Config, instantiated: Sequence[tuple[PackageVersion, nix.Instantiated]],
                     *, backend: str | None = None,
                     environment: dict[str, Any] | None = None) -> list[Plan]:
    """Reuse / join / build for derivations already instantiated (``plan``'s second half).

    An environment (``nixmod.environments``) is instantiated from its own
    expression, then decided here like any package: ``environment`` goes
    into each plan, for its record and its module.
    """
    with open_store(config) as store:
        decide = _decider(config, store, [inst.drv for _v, inst in instantiated],
                          [p for _v, inst in instantiated for p in inst.outputs.values()],
                          backend=backend or config.build.backend)
        plans = []
        for version, inst in instantiated:
            action, flight = decide(inst.drv, inst.outputs)
            plans.append(Plan(version=version, drv=inst.drv, outputs=inst.outputs, action=action,
                              job=flight.job if flight else None,
                              owner=flight.owner if flight else None,
                              environment=dict(environment or {})))
        return plans


def _decider(config: Config, store: BuildStore, drvs: Sequence[str], paths: Sequence[str],
             exclude_ids: Iterable[int] = (), join: bool = True, *, backend: str
             ) -> Callable[[str, dict[str, str]], tuple[str, InFlight | None]]:
    """A function drv -> (action, in-flight job), from one look at the store and the queues.

    The queues first, the store second: a job that ends between the two
    looks has made its outputs valid by the second (reuse), whereas the
    other order would miss it in both (valid too late, gone from the queue)
    and build it again.
    """
    flights = _in_flight(config, store, set(drvs), set(exclude_ids), backend=backend) if join else {}
    valid = nix.valid_paths(list(paths))

    def decide(drv: str, outputs: dict[str, str]) -> tuple[str, InFlight | None]:
        if outputs and all(p in valid for p in outputs.values()):
            return "reuse", None
        if drv in flights:
            return "join", flights[drv]
        return "build", None
    return decide


def _in_flight(config: Config, store: BuildStore, drvs: set[str], exclude_ids: set[int], *,
               backend: str) -> dict[str, InFlight]:
    """drv -> a job building it now: this user's own records, then every user's jobs
    in the queue the builds would go to (``backend``).

    Only that queue is asked. A local build never waits on squeue (seconds
    when slurmctld is down, on a machine where nothing of this user's is on
    SLURM): the user's own queued builds are in the state db, and if another
    user's job is building the same drv, the nix-daemon's output lock makes
    the local build wait for it and then reuse its result, so the builder
    still runs once (the local backend's ``queued_drv_hashes`` is ``{}``).
    Another user's job counts only when the backend says the scheduler's
    own record of it shows a real nixmod build (``slurm.joinable``,
    ``pbs``'s checks). One of our own records that itself joined somebody's
    job names that job's owner, as its scheduler knows it.
    """
    found: dict[str, InFlight] = {}
    for record in store.select(states=IN_FLIGHT_STATES):
        if record.drv in drvs and record.id not in exclude_ids and record.job:
            owner = current_user()
            followed = BACKENDS.get(record.backend)
            if record.joined and followed is not None:
                owner = followed.owner_of(record.job) or "another user"
            since = (record.joined_at or record.created) if record.joined else None
            found.setdefault(record.drv, InFlight(record.job, owner, record.backend, since))
    by_hash = {nix.store_hash(drv): drv for drv in drvs if drv not in found}
    if not by_hash:
        return found
    queued = BACKENDS[backend].queued_drv_hashes(config, set(by_hash))
    for drv_hash, (job, owner) in queued.items():
        if drv_hash in by_hash:
            found.setdefault(by_hash[drv_hash], InFlight(job, owner, backend))
    return found
