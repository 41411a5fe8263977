"""`nixmod doctor`: is this machine ready, and if not, what exactly to do.

Each check is one line with a fix, because the person reading it is often a
user on a login node forwarding the output to support: the line must say
what was found and what would make it right. A failure only counts against
the exit status when the configured backend needs that part (a user of the
local backend is not blocked by SLURM being down).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from nixmod import dirs, lmod, nix, outside, shims
from nixmod.builds import pbs
from nixmod.channels import listing_key
from nixmod.config import Config, current_user
from nixmod.siteindex import SiteIndexError, open_site

OK, WARN, FAIL = "ok", "warn", "fail"
LMOD_CANDIDATES = (
    "/usr/share/lmod/lmod/libexec/lmod",
    "/usr/share/lmod/lmod/init/bash",
    "/opt/apps/lmod/lmod/libexec/lmod",
)


@dataclass
class Check:
    name: str
    status: str          # ok | warn | fail
    detail: str          # what was found
    fix: str = ""        # what to do about it (empty when ok)
    required: bool = False  # does the configured backend need it?

    def line(self) -> str:
        mark = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]"}[self.status]
        text = f"{mark} {self.name}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.status != OK else text


def _run(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str] | None:
    try:
        return outside.run(cmd, timeout=timeout, env=nix.nix_env_vars())
    except (OSError, subprocess.TimeoutExpired):
        return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def check_nix() -> list[Check]:
    checks = []
    if shutil.which("nix-env") is None:
        return [Check("nix", FAIL, "nix-env not found on PATH",
                      "install Nix (Debian: apt install nix-bin) or load the site's nix module", True)]
    checks.append(Check("nix", OK, f"Nix {nix.version()} at {shutil.which('nix-env')}", required=True))

    socket = nix.DAEMON_SOCKET
    ping = _run(["nix", "--extra-experimental-features", "nix-command", "store", "ping",
                 "--store", "daemon"])
    if ping is not None and ping.returncode == 0:
        checks.append(Check("nix-daemon", OK, f"reachable as {current_user()} at {socket}", required=True))
    else:
        why = _first_line(ping.stderr) if ping else "nix store ping did not answer"
        fix = ("start it as root: setsid nix-daemon &" if not socket.exists()
               else f"add {current_user()} to the group that may use {socket} (Debian: nix-users)")
        checks.append(Check("nix-daemon", FAIL, why, fix, True))

    conf = _run(["nix", "--extra-experimental-features", "nix-command", "show-config"])
    substituters = ""
    if conf is not None and conf.returncode == 0:
        for line in conf.stdout.splitlines():
            if line.startswith("substituters ="):
                substituters = line.split("=", 1)[1].strip()
    if substituters:
        checks.append(Check("substituters", WARN, f"set to {substituters}",
                            "fine if reachable; offline nodes should set 'substituters =' in "
                            "/etc/nix/nix.conf (nixmod passes --option substituters '' itself)"))
    else:
        checks.append(Check("substituters", OK, "none configured (offline builds do not wait on a cache)"))
    return checks


#: how long doctor waits for sinfo: an unreachable slurmctld makes it retry for ~9 s
#: and then say why, which is worth the wait here (and only here)
SINFO_TIMEOUT = 12


def check_slurm(config: Config) -> list[Check]:
    """SLURM's tools and partition; a failure counts only for backend = "slurm".

    With another backend a problem is a warning that says so: the user's
    builds do not need SLURM, and nixmod does not ask it anything for them.
    """
    required = config.build.backend == "slurm"
    bad = FAIL if required else WARN
    unneeded = ("" if required else
                f" (needed only for backend = \"slurm\"; this config builds with "
                f"backend = \"{config.build.backend}\", so its builds are not affected)")
    tools = [t for t in ("sbatch", "squeue", "sinfo", "scancel") if shutil.which(t) is None]
    if tools:
        return [Check("slurm", bad, f"{', '.join(tools)} not found on PATH{unneeded}",
                      "install SLURM's client tools (Debian: slurm-client) or load the site's slurm module",
                      required)]
    partition = config.build.slurm.partition
    proc = _run(["sinfo", "-h", "-p", partition, "-o", "%a %t %D"], timeout=SINFO_TIMEOUT)
    if proc is None or proc.returncode != 0:
        why = _first_line(proc.stderr) if proc else "sinfo timed out"
        effect = "builds cannot be submitted" if required else "SLURM builds cannot be submitted"
        return [Check("slurm", bad, f"slurmctld not reachable: {why}{unneeded}",
                      f"ask the admins whether slurmctld is up (scontrol ping); {effect}",
                      required)]
    rows = proc.stdout.split()
    if not rows:
        known = _run(["sinfo", "-h", "-o", "%R"], timeout=SINFO_TIMEOUT)
        names = ", ".join(sorted(set(known.stdout.split()))) if known and known.returncode == 0 else "?"
        return [Check("slurm", bad, f"partition {partition!r} does not exist (partitions: {names})"
                      f"{unneeded}", "set [build.slurm] partition to one of them", required)]
    avail, state = rows[0], rows[1] if len(rows) > 1 else "?"
    if avail != "up":
        return [Check("slurm", bad, f"partition {partition!r} is {avail}{unneeded}",
                      "ask the admins to bring it up (scontrol update PartitionName=... State=UP)", required)]
    return [Check("slurm", OK, f"sbatch/squeue/sinfo found; partition {partition!r} up, nodes {state}",
                  required=required)]


def check_pbs(config: Config) -> list[Check]:
    """qsub/qstat present, the server answers (``qstat -B``), the build queue can take jobs.

    Only when the backend is pbs: a SLURM site with PBS's tools lying
    around (or a PBS server that is down) is not this user's problem.
    """
    required = config.build.backend == "pbs"
    if not required:
        return []
    missing = [t for t in ("qsub", "qstat", "qselect", "qdel") if pbs.tool_path(t) is None]
    if missing:
        return [Check("pbs", FAIL, f"{', '.join(missing)} not found on PATH or in PBS_EXEC/bin "
                      "(/etc/pbs.conf)", "install the PBS client tools or load the site's pbs "
                      "module", required)]
    qstat = pbs.tool_path("qstat") or "qstat"
    proc = _run([qstat, "-B", "-f", "-F", "json"])
    if proc is None or proc.returncode != 0:
        why = _first_line(proc.stderr) if proc else "qstat -B did not answer"
        return [Check("pbs", FAIL, f"the PBS server does not answer: {why}",
                      "ask the admins whether pbs_server is up (qstat -B); builds cannot be "
                      "submitted", required)]
    queue = config.build.pbs.queue
    server: dict = {}
    try:
        server = next(iter(json.loads(proc.stdout, strict=False).get("Server", {}).values()), {})
    except (ValueError, AttributeError):
        pass
    queues = _run([qstat, "-Q", "-f", "-F", "json", queue])
    attrs: dict = {}
    if queues is not None and queues.returncode == 0:
        try:
            attrs = json.loads(queues.stdout, strict=False).get("Queue", {}).get(queue, {})
        except (ValueError, AttributeError):
            attrs = {}
    if not attrs:
        return [Check("pbs", FAIL, f"queue {queue!r} does not exist on the PBS server",
                      "set [build.pbs] queue to the site's build queue (qstat -Q lists them)",
                      required)]
    if attrs.get("queue_type", "").lower() != "execution" or attrs.get("enabled") != "True" \
            or attrs.get("started") != "True":
        return [Check("pbs", FAIL, f"queue {queue!r} is {attrs.get('queue_type', '?')}, enabled="
                      f"{attrs.get('enabled', '?')}, started={attrs.get('started', '?')}",
                      f"ask the admins: qmgr -c 'set queue {queue} enabled=True, started=True'",
                      required)]
    checks = [Check("pbs", OK, f"qsub/qstat found; server answers; queue {queue!r} enabled and "
                    "started", required=required)]
    if str(server.get("job_history_enable", "False")) != "True":
        checks.append(Check("pbs history", WARN, "job history is off (job_history_enable): a "
                            "build that ended is no longer in qstat -x, so how it ended is "
                            "known only from its own exit record",
                            "ask the admins: qmgr -c 'set server job_history_enable = True'"))
    if str(server.get("query_other_jobs", "False")) != "True":
        checks.append(Check("pbs joining", WARN, "the server hides other users' jobs "
                            "(query_other_jobs is not True): builds cannot be joined across users",
                            "ask the admins: qmgr -c 'set server query_other_jobs = True'"))
    return checks


def check_lmod() -> Check:
    cmd = os.environ.get("LMOD_CMD")
    found = cmd if cmd and Path(cmd).exists() else next(
        (c for c in LMOD_CANDIDATES if Path(c).exists()), None)
    if found is None:
        return Check("lmod", FAIL, "Lmod not found ($LMOD_CMD unset, no init script)",
                     "install Lmod (Debian: apt install lmod) and source its init/bash", True)
    return Check("lmod", OK, f"found {found}", required=True)


def check_shims(config: Config) -> list[Check]:
    checks = []
    bwrap, proot = shutil.which("bwrap"), shutil.which("proot")
    needs_relocation = bool(config.shims.real_store_dir) or config.shims.mode in ("bwrap", "proot")
    if bwrap:
        probe = _run([bwrap, "--dev-bind", "/", "/", "true"], timeout=10)
        if probe is not None and probe.returncode == 0:
            checks.append(Check("bwrap", OK, f"{bwrap}; user namespaces work"))
        else:
            why = _first_line(probe.stderr) if probe else "timed out"
            checks.append(Check("bwrap", WARN, f"user namespaces unavailable: {why}",
                                "shims fall back to proot; admins can enable kernel.unprivileged_userns_clone"))
    else:
        checks.append(Check("bwrap", WARN, "bwrap not found",
                            "install bubblewrap where the store is not at /nix on compute nodes",
                            required=needs_relocation and config.shims.mode == "bwrap"))
    if proot:
        checks.append(Check("proot", OK, f"{proot}"))
    else:
        checks.append(Check("proot", WARN, "proot not found",
                            "install proot as the fallback where user namespaces are off",
                            required=config.shims.mode == "proot"))
    return checks


def check_paths(config: Config) -> list[Check]:
    checks = []
    root = config.modules.root
    ok, detail = dirs.writable_dir(root)
    if not ok:
        checks.append(Check("modules root", FAIL, f"{root}: not writable: {detail}",
                            "set [modules] root to a directory you can write", True))
    else:
        on_path = str(root) in os.environ.get("MODULEPATH", "").split(":")
        if on_path:
            checks.append(Check("modules root", OK, f"{root} ({detail}), on MODULEPATH", required=True))
        else:
            checks.append(Check("modules root", WARN, f"{root} ({detail}), not on MODULEPATH",
                                f"run: module use {root}  (add it to ~/.bashrc to keep it)", True))
    state = config.build.state_dir
    ok, detail = dirs.writable_dir(state)
    checks.append(Check("state dir", OK if ok else FAIL, f"{state} ({detail})",
                        "" if ok else "set [build] state_dir to a directory you can write", True))
    return [_unsafe(check, config) for check in checks] + check_ownership(config)


def _unsafe(check: Check, config: Config) -> Check:
    """A writable-path check turned FAIL when another user could change that directory."""
    path = config.modules.root if check.name == "modules root" else config.build.state_dir
    why = dirs.problem(path)
    if why is None or check.status == FAIL:
        return check
    key = "[modules] root" if check.name == "modules root" else "[build] state_dir"
    return Check(check.name, FAIL, f"{path}: not safe: {why}",
                 f"remove it, or set {key} to a directory only you can write", True)


def check_build_database(config: Config) -> list[Check]:
    """Whether builds.db reads whole (``PRAGMA quick_check``, read-only: doctor changes nothing).

    A file of random bytes or a damaged page makes ``status`` fail (or list
    too little) only when it gets there; doctor looks at every page now.
    """
    from nixmod.builds.state import DAMAGED_ADVICE, database_damage

    path = Path(config.build.state_dir) / "builds.db"
    if not path.is_file():
        return [Check("build database", OK, f"{path} (none yet: the first build makes it)")]
    damage = database_damage(path)
    if damage is not None:
        return [Check("build database", FAIL, f"{path} is damaged ({damage})",
                      DAMAGED_ADVICE.format(path=path), True)]
    return [Check("build database", OK, f"{path} (integrity check passed)")]


def check_ownership(config: Config) -> list[Check]:
    """The siblings of the modules root nixmod writes: shims (run by users) and Lmod's cache.

    Another user who owns one of them, or a symlink there, could swap a shim
    and run a program as whoever loads the module (see ``nixmod.dirs``).
    """
    checks = []
    root = config.modules.root
    for path, name in ((shims.shims_root(root), "shims dir"),
                       (lmod.spider_cache_dir(root), "lmod cache dir")):
        why = dirs.problem(path)
        if why is None:
            state = "exists" if dirs.is_dir(path) else "will be created"
            checks.append(Check(name, OK, f"{path} ({state}; only you can change it)",
                                required=True))
        else:
            checks.append(Check(name, FAIL, f"{path}: not safe: {why}",
                                "remove it, or set [modules] root to a directory only you can "
                                "write", True))
    return checks


def check_site_catalog(config: Config) -> list[Check]:
    """Whether ``[catalog] site_dir`` spares this user evaluating: usable, fresh, complete."""
    import time


    site_dir = config.catalog.site_dir
    if site_dir is None:
        return []
    fix = f"staff: run 'nixmod catalog publish {site_dir}' with the site's config"
    try:
        with open_site(site_dir, config.catalog.publisher) as site:
            missing = site.uncovered({c.name: listing_key(c) for c in config.channels})
            published = site.header.get("published_at")
            publisher = site.header.get("publisher")
    except SiteIndexError as exc:
        return [Check("site catalog", WARN, f"{exc}; every channel is listed per user", fix)]
    if not (isinstance(publisher, str) and publisher.isprintable()):
        publisher = "?"
    age = (f"published {(time.time() - published) / 3600:.1f} h ago by {publisher}"
           if isinstance(published, (int, float)) else "published")
    if missing:
        return [Check("site catalog", WARN, f"{site_dir}: {age}; {'; '.join(missing)}; "
                      "those are listed per user", fix)]
    return [Check("site catalog", OK, f"{site_dir}: {age}; covers every configured channel "
                  f"({len(config.channels)})")]


def check_channels(config: Config) -> list[Check]:
    """Can any configured channel build? A saved package list is for browsing only."""
    if not config.channels or any(not c.is_dump for c in config.channels):
        return []
    what = (f"channel {config.channels[0].name} is a saved package list" if len(config.channels) == 1
            else f"all {len(config.channels)} channels are saved package lists")
    return [Check("channels", WARN, f"no channel can build: {what} (search and browse only)",
                  "add a [[channels]] entry with path = a nixpkgs checkout or url + sha256 "
                  "(newest last) to build packages")]


def _mentions(path: Path, word: str) -> bool:
    """Whether a file nixmod did not write exists, is readable and holds ``word``."""
    try:
        return word in outside.read_text(path)
    except OSError:
        return False


def check_usage(config: Config) -> list[Check]:
    """Whether module loads are recorded: the Lmod hook, the syslog socket, the site's log.

    Nothing here blocks a build, so every problem is a warning; but without
    the hook ``gc --unused-for`` goes by build time alone and ``usage`` stays
    empty, which staff would otherwise only notice months later.
    """
    checks = []
    hooked = [hook for hook in (Path(d) / "SitePackage.lua"
                                for d in os.environ.get("LMOD_PACKAGE_PATH", "").split(":") if d)
              if _mentions(hook, "nixmod_record_load")]
    if hooked:
        checks.append(Check("usage hook", OK, f"{hooked[0]} records every module load"))
    else:
        checks.append(Check("usage hook", WARN, "no SitePackage.lua with nixmod's hook on "
                            "LMOD_PACKAGE_PATH: module loads are not recorded, so 'gc "
                            "--unused-for' goes by build time and 'usage' stays empty",
                            "staff: install lua/*.lua and set LMOD_PACKAGE_PATH (README "
                            "'Lmod: the site hook')"))
    socket = Path("/dev/log")
    if socket.is_socket():
        checks.append(Check("syslog", OK, f"{socket} accepts the site's usage records"))
    else:
        checks.append(Check("syslog", WARN, f"{socket} is not a socket: no syslog daemon takes "
                            "usage records (only the user's own last loads are kept)",
                            "staff: run rsyslogd with the rule in README 'Disk and usage'"))
    log = config.usage.log
    if log is not None:
        try:
            with open(log, "rb") as opened:
                size = os.fstat(opened.fileno()).st_size
        except FileNotFoundError:
            checks.append(Check("usage log", WARN, f"{log} ([usage] log) does not exist",
                                "staff: check the rsyslog rule's file name, or fix [usage] log"))
        except OSError as exc:
            checks.append(Check("usage log", WARN, f"{log} ([usage] log) cannot be read by "
                                f"{current_user()}: {exc.strerror}",
                                "only staff who can read it run 'nixmod usage'"))
        else:
            checks.append(Check("usage log", OK, f"{log} readable ({size} bytes)"))
    return checks


def run_checks(config: Config) -> list[Check]:
    sources = ", ".join(map(str, config.sources)) or "none (built-in defaults)"
    channels = ", ".join(c.name for c in config.channels)
    checks = [Check("config", OK, f"files: {sources}; channels: {channels}"
                    + (" (bundled demo)" if config.demo else "")
                    + f"; backend: {config.build.backend}"
                    + f"; scheduler asked at most every {config.build.poll_seconds} s "
                      "while waiting ([build] poll_seconds)")]
    checks += check_channels(config)
    checks += check_nix()
    checks += check_slurm(config)
    checks += check_pbs(config)
    checks.append(check_lmod())
    checks += check_shims(config)
    checks += check_paths(config)
    checks += check_build_database(config)
    checks += check_site_catalog(config)
    checks += check_usage(config)
    return checks


def any_required_failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL and c.required for c in checks)


def as_json(checks: list[Check]) -> dict:
    return {"ok": not any_required_failed(checks), "checks": [asdict(c) for c in checks]}
