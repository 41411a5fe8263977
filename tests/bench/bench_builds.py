"""Benchmark: 20 distinct packages from one user, the same 20 from a second user,
on SLURM and on PBS, side by side.

Run as root on the rig (tests/cluster/up.sh, and tests/cluster/pbs.sh up for
PBS): ``/opt/nixmod/venv/bin/python tests/bench/bench_builds.py [slurm] [pbs]``
(both by default). Both users run the installed nixmod in a process of their
own; the script prints scheduler submissions (sbatch / qsub calls), jobs
created, builder runs (must equal the distinct drvs), the most jobs seen
running at once vs the limit, and the login-node overhead per request
(plan's evaluation excluded: ``submit`` only, i.e. SQLite rows, one validity
check, one queue listing, one submission).

Targets (tests/bench/targets.py; exit 1 on MISSED), per backend: builder runs
equal the distinct drvs (nothing built twice, nothing left unbuilt) and no more
jobs run at once than the limit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Targets  # noqa: E402  (a script beside its helper)

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("NIXMOD_VENV", "/opt/nixmod/venv"))
SCRATCH = Path(os.environ.get("NIXMOD_TEST_SCRATCH", "/tmp/nixmod-tests"))
#: the two users (NIXMOD_TEST_USERS="a,b", as the test suite takes them)
USERS = tuple(os.environ.get("NIXMOD_TEST_USERS", "nmalice,nmbob").split(","))[:2]
QSTAT = "/opt/pbs/bin/qstat"
COUNT, LIMIT = 20, 2

SNIPPET = r'''
import json, sys, time
from nixmod import builds
from nixmod.catalog import Catalog
from nixmod.config import load_config
config = load_config()
catalog = Catalog.load(config)
versions = [catalog.resolve(f"pkg{i}") for i in range(1, int(sys.argv[1]) + 1)]
started = time.perf_counter()
plans = builds.plan(config, versions)
evaluated = time.perf_counter()
records = builds.submit(config, plans)
submitted = time.perf_counter()
print(json.dumps({"eval_s": evaluated - started, "submit_s": submitted - evaluated,
                  "records": [r.as_json() for r in records]}))
'''


def run_as(user: str, home: Path, env: dict[str, str], *argv: str) -> str:
    full = {"HOME": str(home), "USER": user, "PATH": f"{VENV}/bin:/usr/bin:/bin",
            "NIX_REMOTE": "daemon", "LANG": "C.UTF-8", **env}
    proc = subprocess.run(["runuser", "-u", user, "--", "env", "-i",
                           *(f"{k}={v}" for k, v in full.items()), *argv],
                          capture_output=True, text=True, cwd=str(home), timeout=600)
    if proc.returncode != 0:
        sys.exit(f"{argv[:3]} as {user} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def running_now(backend: str, submissions: set[str]) -> tuple[int, int]:
    """(running, still in the queue) jobs of ``submissions``, from one scheduler call."""
    if backend == "slurm":
        # lane L's jobs are named nixmod-build-L
        lines = subprocess.run(["squeue", "-h", "-r", "-o", "%F %T %j"],
                               capture_output=True, text=True).stdout.splitlines()
        ours = [line.split()[1] for line in lines
                if line.split()[0] in submissions and line.split()[2].startswith("nixmod-build")]
        return ours.count("RUNNING"), len(ours)
    out = subprocess.run([QSTAT, "-f", "-F", "json", "-t", *sorted(submissions)],
                         capture_output=True, text=True).stdout
    jobs = json.loads(out, strict=False).get("Jobs", {}) if out.strip() else {}
    states = [j["job_state"] for jid, j in jobs.items() if "[]" not in jid]
    live = [s for s in states if s not in ("F", "X")]
    return live.count("R"), len(live)


def bench(backend: str) -> dict:
    nonce = uuid.uuid4().hex[:12]
    SCRATCH.mkdir(exist_ok=True)
    channels = SCRATCH / f"bench-channels-{nonce}"
    shutil.copytree(REPO / "tests" / "channels", channels)
    for path in [channels, *channels.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    counter = SCRATCH / f"bench-counter-{nonce}"
    counter.touch()
    counter.chmod(0o666)
    env = {"NIXMOD_TEST_NONCE": nonce, "NIXMOD_TEST_COUNTER": str(counter),
           "NIXMOD_TEST_SLEEP": "1"}
    options = {"slurm": '[build.slurm]\ncpus_per_task = 1\nmem = "100M"\n',
               "pbs": '[build.pbs]\nncpus = 1\nmem = "200mb"\n'}[backend]
    homes = {}
    for user in USERS:
        home = SCRATCH / f"bench-{user}-{nonce}"
        (home / ".config/nixmod").mkdir(parents=True)
        (home / ".config/nixmod/config.toml").write_text(f"""
[[channels]]
name = "bench"
path = "{channels / 'builds.nix'}"
[build]
backend = "{backend}"
max_concurrent = {LIMIT}
{options}""")
        shutil.chown(home, user, user)
        for path in home.rglob("*"):
            shutil.chown(path, user, user)
        homes[user] = home

    results = {}
    for user in USERS:
        out = run_as(user, homes[user], env, str(VENV / "bin/python"), "-c", SNIPPET, str(COUNT))
        results[user] = json.loads(out)
    records = [r for res in results.values() for r in res["records"]]
    own = [r for r in records if r["job"] and not r["joined"]]
    if backend == "slurm":
        submissions = {r["job"].split("_")[0] for r in own}
    else:
        submissions = {re.sub(r"\[\d+\]", "[]", r["job"]) for r in own}

    most, started = 0, time.monotonic()
    while time.monotonic() - started < 600:
        running, queued = running_now(backend, submissions)
        most = max(most, running)
        if not queued:
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    states: dict[str, int] = {}
    for user in USERS:
        status = json.loads(run_as(user, homes[user], env, str(VENV / "bin/nixmod"), "status",
                                   "--json"))
        for record in status:
            states[record["state"]] = states.get(record["state"], 0) + 1
    runs = len([l for l in counter.read_text().splitlines() if l.strip()])
    return {
        "submissions (sbatch / qsub calls)": len(submissions),
        "jobs created (array tasks / subjobs)": len(own),
        "joined instead of submitted": sum(r["joined"] for r in records),
        f"builder runs (distinct drvs: {COUNT})": runs,
        f"most jobs running at once (limit {LIMIT})": most,
        "submit per request, ms (evaluation excluded)": " / ".join(
            f"{1000 * res['submit_s'] / COUNT:.1f}" for res in results.values()),
        "evaluation, s": " / ".join(f"{res['eval_s']:.2f}" for res in results.values()),
        "queue drained, s": f"{wall:.1f}",
        "final states": ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
    }


def main() -> int:
    backends = sys.argv[1:] or ["slurm", "pbs"]
    unknown = set(backends) - {"slurm", "pbs"}
    if unknown:
        sys.exit(f"unknown backend {sorted(unknown)[0]!r}; give slurm and/or pbs")
    columns = {backend: bench(backend) for backend in backends}
    print(f"requests: {COUNT} distinct ({USERS[0]}) + {COUNT} duplicates ({USERS[1]}), "
          f"limit {LIMIT}")
    print("| figure | " + " | ".join(backends) + " |")
    print("|---|" + "---|" * len(backends))
    for figure in columns[backends[0]]:
        print(f"| {figure} | " + " | ".join(str(columns[b][figure]) for b in backends) + " |")
    targets = Targets("bench_builds")
    for backend in backends:
        runs = int(columns[backend][f"builder runs (distinct drvs: {COUNT})"])
        targets.check(f"{backend}: builder runs (nothing built twice)", runs, COUNT, unit="")
        targets.check(f"{backend}: builder runs (nothing left unbuilt)", runs, COUNT, unit="",
                      at_most=False)
        targets.check(f"{backend}: most jobs running at once",
                      int(columns[backend][f"most jobs running at once (limit {LIMIT})"]), LIMIT, unit="")
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main())
