"""Load on the scheduler (issue 21): what a waiting nixmod asks of slurmctld, at cluster scale.

    /opt/nixmod/venv/bin/python tests/bench/bench_scheduler.py      (as root; rig up)

Two unprivileged users (NIXMOD_TEST_USERS): the second puts BENCH_OTHER_JOBS
(5000) held jobs in ``compute``, the first has BENCH_BUILDS (50) nixmod builds
in flight (long builds, cancelled at the end). nixmod's own calls are
counted by wrappers first on the user's PATH that log each real call of
squeue/scontrol/sbatch/scancel and the bytes it printed; slurmctld's side
comes from ``sdiag``: the per-user table (the user's own RPCs and the
controller's time spent on them, exact however busy the rig is) and the
per-type table (minimum over the rounds: other developers add noise).

"before" is the code of BENCH_BEFORE (default bd6a478, main before issue 21),
run from a ``git archive`` of it with the same venv (its ``squeue`` output
read tolerantly, as later commits do: one job with non-UTF-8 bytes in the
queue would otherwise stop it); "after" is this tree.

Printed:
1. each squeue form nixmod could use: its RPC type, bytes, seconds;
2. per refresh (``nixmod status``, and a waiting process inside its
   period): calls, bytes, wall time, the user's RPCs and controller time;
3. one TUI for BENCH_TUI_SECONDS (600) with a build in flight, before and
   after side by side (one user each): scheduler calls; and the seconds from
   the job's exit record to the TUI and to ``build --wait`` showing it.

Targets of issue 21 for "after" (tests/bench/targets.py; exit 1 on MISSED): a
plain ``nixmod status`` asks at most once and a refresh within poll_seconds not
at all; the TUI makes at most 21 scheduler calls in 10 minutes (scaled to
BENCH_TUI_SECONDS), never a bare ``squeue --json``; a job's end shows in the TUI
and in ``build --wait`` within 3 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import io
import subprocess
import sys
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Targets  # noqa: E402  (a script beside its helper)

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("NIXMOD_VENV", "/opt/nixmod/venv"))
SCRATCH = Path(os.environ.get("NIXMOD_TEST_SCRATCH", "/tmp/nixmod-tests"))
USERS = tuple(os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(","))[:2]
OTHER_JOBS = int(os.environ.get("BENCH_OTHER_JOBS", "5000"))
BUILDS = int(os.environ.get("BENCH_BUILDS", "50"))
TUI_SECONDS = float(os.environ.get("BENCH_TUI_SECONDS", "600"))
BEFORE = os.environ.get("BENCH_BEFORE", "bd6a478")
ROUNDS = 3
TOOLS = ("squeue", "scontrol", "sbatch", "scancel")
#: issue 21: one TUI with a build in flight asks at most this often per 600 s at the default period
TUI_CALLS_PER_600_S = 21
#: ... and a job's end shows within this many seconds (from its exit record)
END_SHOWN_SECONDS = 3.0
PACKAGES = 20          # pkg1..pkg20 in tests/channels/builds.nix; more builds use more nonces

WRAPPER = """#!/bin/sh
[ -n "$SLURM_JOB_ID" ] && exec {real} "$@"
out=$(mktemp) || exit 1
{real} "$@" > "$out"; rc=$?
printf '%s %s %s %s\\n' "$(date +%s.%N)" "$(wc -c < "$out")" "${{BENCH_WHO:-cli}}" "{tool} $*" >> "{log}"
cat "$out"; rm -f "$out"; exit $rc
"""

TUI_DRIVER = r'''
import json, sys, threading, time
from pathlib import Path
from nixmod.config import load_config
from nixmod.tui import app as app_module
from nixmod.tui.app import NixmodApp
seconds, out = float(sys.argv[1]), sys.argv[2]
seen = {}
class Timed(NixmodApp):
    CSS_PATH = str(Path(app_module.__file__).parent / "nixmod.tcss")   # not beside "-c"
    def on_state_refreshed(self, message):   # Textual calls NixmodApp's handler as well
        for record in message.records:
            if record.finished and record.id not in seen:
                seen[record.id] = time.time()
                with open(out, "w") as handle:
                    json.dump(seen, handle)
app = Timed(load_config())
threading.Timer(seconds, lambda: app.call_from_thread(app.exit)).start()
app.run(headless=True)
'''


class User:
    """One unprivileged user with a home, a config and counting wrappers on PATH."""

    def __init__(self, name: str, tag: str, source: Path | None, poll_seconds: int | None = None):
        self.name, self.source = name, source
        self.home = SCRATCH / f"bench-sched-{name}-{tag}"
        shutil.rmtree(self.home, ignore_errors=True)
        (self.home / ".config/nixmod").mkdir(parents=True)
        (self.home / "wrap").mkdir()
        self.log = self.home / "calls.log"
        self.log.touch()
        for tool in TOOLS:
            wrapper = self.home / "wrap" / tool
            wrapper.write_text(WRAPPER.format(real=shutil.which(tool), tool=tool, log=self.log))
            wrapper.chmod(0o755)
        self.poll = f"poll_seconds = {poll_seconds}\n" if poll_seconds else ""
        self.env: dict[str, str] = {}

    def configure(self, channels: Path, nonce: str, sleep: int, lanes: int = 2) -> None:
        (self.home / ".config/nixmod/config.toml").write_text(f"""
[[channels]]
name = "bench"
path = "{channels / 'builds.nix'}"
[build]
backend = "slurm"
max_concurrent = {lanes}
{self.poll}[build.slurm]
cpus_per_task = 1
mem = "100M"
time = "04:00:00"
""")
        counter = SCRATCH / f"bench-sched-counter-{nonce}"
        counter.touch()
        counter.chmod(0o666)
        self.env = {"NIXMOD_TEST_NONCE": nonce, "NIXMOD_TEST_COUNTER": str(counter),
                    "NIXMOD_TEST_SLEEP": str(sleep)}
        subprocess.run(["chown", "-R", f"{self.name}:{self.name}", str(self.home)], check=True)

    def run(self, *argv: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        full = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                "PATH": f"{self.home}/wrap:{VENV}/bin:/usr/bin:/bin", "NIX_REMOTE": "daemon",
                "LANG": "C.UTF-8", **self.env, **(env or {})}
        if self.source is not None:
            full["PYTHONPATH"] = str(self.source)
        proc = subprocess.run(["runuser", "-u", self.name, "--", "env", "-i",
                               *(f"{k}={v}" for k, v in full.items()), *argv],
                              capture_output=True, text=True, errors="replace",
                              cwd=str(self.home), timeout=timeout)
        if check and proc.returncode != 0:
            sys.exit(f"{argv[:4]} as {self.name} failed:\n{proc.stderr[-3000:]}")
        return proc

    def nixmod(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(str(VENV / "bin/python"), "-m", "nixmod", *args, **kw)

    def calls(self) -> list[tuple[float, int, str, str]]:
        """(time, bytes printed, the call, who: "tui" or "cli") for every call logged."""
        rows = []
        for line in self.log.read_text().splitlines():
            when, size, who, call = line.split(" ", 3)
            rows.append((float(when), int(size), call, who))
        return rows


# -- sdiag ------------------------------------------------------------------------------

def sdiag() -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """(RPC count by type, (count, controller microseconds) by user)."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    by_type_text = out.split("by message type")[1].split("by user")[0]
    by_user_text = out.split("by user")[1].split("Pending RPC")[0]
    by_type = {m.group(1): int(m.group(2)) for m in
               re.finditer(r"(\w+)\s+\(\s*\d+\)\s+count:(\d+)", by_type_text)}
    by_user = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
               re.finditer(r"(\S+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:\d+\s+total_time:(\d+)",
                            by_user_text)}
    return by_type, by_user


def measured(user: User, action) -> dict[str, object]:
    """Run ``action`` ROUNDS times; the minimum of each figure (others' RPCs are noise)."""
    rounds = []
    for _ in range(ROUNDS):
        types0, users0 = sdiag()
        calls0 = len(user.calls())
        started = time.monotonic()
        action()
        wall = time.monotonic() - started
        types1, users1 = sdiag()
        new = user.calls()[calls0:]
        mine0, mine1 = users0.get(user.name, (0, 0)), users1.get(user.name, (0, 0))
        types = {k: types1.get(k, 0) - types0.get(k, 0) for k in types1}
        rounds.append({"calls": len(new), "bytes": sum(c[1] for c in new), "wall": wall,
                       "rpcs": mine1[0] - mine0[0], "ctld_us": mine1[1] - mine0[1],
                       "types": {k: v for k, v in types.items()
                                 if v and k != "REQUEST_STATS_INFO"},
                       "forms": sorted({c[2] for c in new})})
    best = min(rounds, key=lambda r: (r["rpcs"], r["wall"]))
    return {**best, "wall": statistics.median(r["wall"] for r in rounds)}


def show(label: str, row: dict[str, object]) -> None:
    types = ", ".join(f"{k} {v}" for k, v in sorted(row["types"].items()))  # type: ignore[union-attr]
    print(f"| {label} | {row['calls']} | {row['bytes']:,} | {row['wall']:.2f} | {row['rpcs']} | "
          f"{int(row['ctld_us']) / 1000:.1f} | {types} |")


# -- set-up -------------------------------------------------------------------------------

def source_of(ref: str) -> Path:
    """``git archive`` of ``ref``'s nixmod package, to run the code from before."""
    target = SCRATCH / f"bench-sched-src-{ref}"
    if not (target / "nixmod").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        data = subprocess.run(["git", "-C", str(REPO), "archive", ref, "nixmod"],
                              capture_output=True, check=True).stdout
        tarfile.open(fileobj=io.BytesIO(data)).extractall(target)
        # what a later commit fixed (issue 24.1): one job with bytes that are not UTF-8 in
        # its comment made the old squeue --json reading fail for everyone; read it tolerantly
        slurm = target / "nixmod/builds/slurm.py"
        slurm.write_text(slurm.read_text().replace(
            "capture_output=True, text=True,", 'capture_output=True, text=True, errors="replace",',
            1))
        subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
    return target


def channels_copy(tag: str) -> Path:
    channels = SCRATCH / f"bench-sched-channels-{tag}"
    shutil.rmtree(channels, ignore_errors=True)
    shutil.copytree(REPO / "tests" / "channels", channels)
    subprocess.run(["chmod", "-R", "a+rX", str(channels)], check=True)
    return channels


def fill_queue(user: str, count: int) -> None:
    """``count`` held one-line jobs in ``compute`` (8 sbatch at a time)."""
    def one(_i: int) -> None:
        subprocess.run(["runuser", "-u", user, "--", "sbatch", "--hold", "-p", "compute",
                        "-o", "/dev/null", "--mem", "10M", "-t", "1", "-J", "bench-other",
                        "--wrap", "true"], capture_output=True, cwd="/tmp", check=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def submit_builds(user: User, channels: Path, count: int, sleep: int) -> list[dict]:
    """``count`` nixmod builds of ``user``, 20 packages per nonce, left in flight.

    One lane: one of them runs at a time (the rig's build node is shared), the
    rest wait in the queue, which is what a cluster's queue mostly holds.
    """
    made: list[dict] = []
    for batch in range(0, count, PACKAGES):
        user.configure(channels, uuid.uuid4().hex[:12], sleep, lanes=1)
        names = [f"pkg{i}" for i in range(1, min(PACKAGES, count - batch) + 1)]
        made += json.loads(user.nixmod("build", "--json", *names).stdout)
    return made


def squeue_forms(user: User, job: str) -> None:
    """What each squeue form nixmod could use costs slurmctld (as ``user``)."""
    forms = {
        "squeue --json (before: every refresh)": ["squeue", "--json"],
        "squeue --json --partition nixbuild (join look)": ["squeue", "--json", "--partition",
                                                          "nixbuild"],
        "squeue --json --me": ["squeue", "--json", "--me"],
        "squeue --me -h -r -o FMT": ["squeue", "--me", "-h", "-r", "-o", "%i|%T|%k"],
        "squeue --me --local -h -r -o FMT (own jobs)": ["squeue", "--me", "--local", "-h", "-r",
                                                        "-o", "%i|%T|%k"],
        "squeue --name nixmod-build-0 -h -o FMT": ["squeue", "--name", "nixmod-build-0", "-h",
                                                   "-r", "-o", "%i|%T|%k"],
        "squeue --partition nixbuild -h -o FMT": ["squeue", "--partition", "nixbuild", "-h",
                                                  "-r", "-o", "%i|%T|%k"],
        "squeue -j ARRAY_TASK --local -h -o FMT (a joined job)": ["squeue", "-j", job, "--local",
                                                                  "-h", "-r", "-o", "%i|%T|%k"],
        "scontrol -o show job ARRAY_TASK": ["scontrol", "-o", "show", "job", job],
    }
    print("\n| query | RPCs of the user | controller ms | bytes | RPC types |")
    print("|---|---|---|---|---|")
    for label, argv in forms.items():
        row = measured(user, lambda argv=argv: user.run(*argv, check=False))
        types = ", ".join(f"{k} {v}" for k, v in sorted(row["types"].items()))  # type: ignore[union-attr]
        print(f"| {label} | {row['rpcs']} | {int(row['ctld_us']) / 1000:.1f} | "
              f"{row['bytes']:,} | {types} |")


# -- the parts ----------------------------------------------------------------------------

def at_scale(targets: Targets) -> None:
    """5,000 other jobs, 50 builds in flight: per refresh, before and after."""
    other, builder = USERS[1], USERS[0]
    tag = uuid.uuid4().hex[:8]
    channels = channels_copy(tag)
    print(f"queue: {OTHER_JOBS} held jobs of {other} in compute; {BUILDS} nixmod builds of "
          f"{builder} in flight", flush=True)
    started = time.monotonic()
    fill_queue(other, OTHER_JOBS)
    print(f"(queued the other jobs in {time.monotonic() - started:.0f} s)", flush=True)
    after = User(builder, f"after-{tag}", None)
    try:
        builds = submit_builds(after, channels, BUILDS, 3600)
        before = User(builder, f"before-{tag}", source_of(BEFORE))
        # the same user, the same records: the old code reads the same state dir
        shutil.rmtree(before.home)
        shutil.copytree(after.home, before.home, symlinks=True)
        for tool in TOOLS:
            (before.home / "wrap" / tool).write_text(WRAPPER.format(
                real=shutil.which(tool), tool=tool, log=before.log))
        before.log.write_text("")
        before.env = dict(after.env)
        subprocess.run(["chown", "-R", f"{builder}:{builder}", str(before.home)], check=True)
        # the copy's state dir is a copy: its records name the same jobs
        squeued = subprocess.run(["squeue", "--json"], capture_output=True).stdout
        print(f"whole queue as squeue --json: {len(squeued):,} bytes")
        squeue_forms(after, builds[0]["job"])
        print("\n| per refresh | scheduler calls | bytes returned | wall s (median) | "
              "RPCs of the user | controller ms | RPC types (min of 3) |")
        print("|---|---|---|---|---|---|---|")
        show(f"before ({BEFORE}): nixmod status", measured(before, lambda: before.nixmod(
            "status", "--json")))
        status = measured(after, lambda: after.nixmod("status", "--json"))
        show("after: nixmod status (asks once)", status)
        snippet = ("from nixmod import builds; from nixmod.config import load_config; "
                   "c = load_config(); builds.refresh(c, max_age=c.build.poll_seconds)")
        after.nixmod("status", "--json")
        waiting = measured(after, lambda: after.run(str(VENV / "bin/python"), "-c", snippet))
        show("after: a waiting refresh within poll_seconds", waiting)
        targets.check("after: nixmod status, scheduler calls", float(status["calls"]), 1,
                      unit="")
        targets.check("after: refresh within poll_seconds, scheduler calls",
                      float(waiting["calls"]), 0, unit="")
    finally:
        subprocess.run(["scancel", "-u", other], check=False)
        subprocess.run(["scancel", "-u", builder], check=False)
        deadline = time.monotonic() + 300   # until slurmctld has let them all go
        while time.monotonic() < deadline and subprocess.run(
                ["squeue", "-h", "-u", f"{other},{builder}"], capture_output=True,
                text=True).stdout.strip():
            time.sleep(2)


def tui_and_wait(targets: Targets) -> None:
    """One TUI per user for TUI_SECONDS with a build in flight: before vs after, and end latency."""
    tag = uuid.uuid4().hex[:8]
    channels = channels_copy(tag)
    sleep = max(30, int(TUI_SECONDS - 90))
    users = {"after": User(USERS[0], f"tui-after-{tag}", None),
             f"before ({BEFORE})": User(USERS[1], f"tui-before-{tag}", source_of(BEFORE))}
    driver = SCRATCH / f"bench-sched-tui-{tag}.py"
    driver.write_text(TUI_DRIVER)
    driver.chmod(0o644)
    print(f"\none TUI per user for {TUI_SECONDS:.0f} s, a build of {sleep} s in flight "
          "(default poll_seconds), with build --wait beside it", flush=True)

    def session(label: str, user: User) -> dict[str, object]:
        user.configure(channels, uuid.uuid4().hex[:12], sleep)
        started = time.time()
        with ThreadPoolExecutor(2) as pool:
            tui = pool.submit(user.run, str(VENV / "bin/python"), "-c", TUI_DRIVER,
                              str(TUI_SECONDS), str(user.home / "tui-ended.json"), check=False,
                              timeout=TUI_SECONDS + 300, env={"BENCH_WHO": "tui"})
            time.sleep(5)    # the TUI is up and asking
            waited = user.nixmod("build", "slowpkg", "--wait", "--json", timeout=TUI_SECONDS * 2)
            wait_end = time.time()
            tui.result()
        record = json.loads(waited.stdout)[0]
        exit_record = user.home / f".local/state/nixmod/jobs/{record['id']}.exit"
        ended = exit_record.stat().st_mtime
        seen = json.loads((user.home / "tui-ended.json").read_text()) \
            if (user.home / "tui-ended.json").exists() else {}
        calls = [c for c in user.calls() if c[0] >= started]
        tui_calls = [c for c in calls if c[3] == "tui"]
        return {f"scheduler calls of the TUI in {TUI_SECONDS:.0f} s": len(tui_calls),
                "calls of build --wait (submission and wait)": len(calls) - len(tui_calls),
                "calls in all (the user's processes share answers)": len(calls),
                "of them a bare squeue --json (every job of the cluster)": sum(
                    1 for c in calls if c[2].split() == ["squeue", "--json"]),
                "bytes returned in all": f"{sum(c[1] for c in calls):,}",
                "job end -> --wait returns, s": f"{wait_end - ended:.1f}",
                "job end -> TUI shows it, s": (f"{seen[str(record['id'])] - ended:.1f}"
                                              if str(record["id"]) in seen else "not seen"),
                "final state": record["state"]}

    with ThreadPoolExecutor(2) as pool:
        futures = {label: pool.submit(session, label, user) for label, user in users.items()}
        columns = {label: future.result() for label, future in futures.items()}
    labels = list(columns)
    print("| figure | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for figure in columns[labels[0]]:
        print(f"| {figure} | " + " | ".join(str(columns[l][figure]) for l in labels) + " |")
    after = columns["after"]
    targets.check(f"after: scheduler calls of the TUI in {TUI_SECONDS:.0f} s",
                  float(after[f"scheduler calls of the TUI in {TUI_SECONDS:.0f} s"]),
                  TUI_CALLS_PER_600_S * TUI_SECONDS / 600, unit="")
    targets.check("after: bare squeue --json calls",
                  float(after["of them a bare squeue --json (every job of the cluster)"]), 0,
                  unit="")
    for figure in ("job end -> --wait returns, s", "job end -> TUI shows it, s"):
        shown = str(after[figure])
        targets.check(f"after: {figure.removesuffix(', s')}",
                      float(shown) if shown != "not seen" else float("inf"), END_SHOWN_SECONDS, unit="s")


def main(argv: list[str]) -> int:
    parts = argv or ["scale", "tui"]
    SCRATCH.mkdir(exist_ok=True)
    targets = Targets("bench_scheduler")
    if "scale" in parts:
        at_scale(targets)
    if "tui" in parts:
        tui_and_wait(targets)
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
