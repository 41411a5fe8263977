"""Site-stack benchmark on the real rig: one stack build, then the idempotent rerun.

    /opt/nixmod/venv/bin/python tests/bench/bench_stacks.py      (as root; rig up)

A staff user (nmalice, throwaway HOME) builds a stack of every package of the
two stack test channels (tests/channels/stacks-*.nix: 8 versions, 2 of them
`broken`) with fresh derivations, on the nixbuild partition, with --wait.
Printed: packages, build jobs, sbatch calls (counted by nixmod and, separately,
by SLURM's own memory of the job arrays), wall time of the first build and of
the second run (which must submit nothing). Targets (tests/bench/targets.py,
exit 1 on MISSED): the 6 buildable versions built, no more than the 2 broken
ones failed, and the second run submits nothing.
"""

from __future__ import annotations

import json
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
NIXMOD = "/opt/nixmod/venv/bin/nixmod"
USER = "nmalice"
SCRATCH = Path("/tmp/nixmod-tests")


def as_user(home: Path, *argv: str, nonce: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = [f"HOME={home}", f"USER={USER}", "PATH=/opt/nixmod/venv/bin:/usr/bin:/bin",
           "NIX_REMOTE=daemon", "LANG=C.UTF-8", f"NIXMOD_TEST_NONCE={nonce}"]
    started = time.monotonic()
    proc = subprocess.run(["runuser", "-u", USER, "--", "env", "-i", *env, *argv],
                          capture_output=True, text=True, cwd=home)
    return proc, time.monotonic() - started


def slurm_arrays(workdir: Path) -> set[str]:
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    return {re.search(r"\bArrayJobId=(\d+)", line).group(1) for line in out.splitlines()
            if f"WorkDir={workdir} " in line + " "}


def main() -> int:
    targets = Targets("bench_stacks")
    nonce = uuid.uuid4().hex[:12]
    home = SCRATCH / f"bench-stacks-{nonce}"
    channels = home / "channels"
    channels.mkdir(parents=True)
    for source in (REPO / "tests/channels").glob("stacks-*.nix"):
        shutil.copy(source, channels)
    (home / ".config/nixmod").mkdir(parents=True)
    (home / ".config/nixmod/config.toml").write_text(f"""
[[channels]]
name = "stacks-old"
path = "{channels / 'stacks-old.nix'}"
[[channels]]
name = "stacks-new"
path = "{channels / 'stacks-new.nix'}"
[build]
backend = "slurm"
[build.slurm]
cpus_per_task = 1
mem = "100M"
""")
    packages = "".join(f'[[package]]\nname = "{name}"\nchannel = "{channel}"\n\n'
                       for name in ("hello", "ripgrep", "samtools", "broken")
                       for channel in ("stacks-old", "stacks-new"))
    stack = home / "stack.toml"
    stack.write_text(f'[stack]\nname = "bench"\nmodules_root = "{home}/site/modules"\n\n{packages}')
    subprocess.run(["chown", "-R", f"{USER}:", str(home)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(home)], check=True)

    first, first_wall = as_user(home, NIXMOD, "stack", "build", str(stack), "--wait", "--json",
                                nonce=nonce)
    second, second_wall = as_user(home, NIXMOD, "stack", "build", str(stack), "--json",
                                  nonce=nonce)
    result, again = json.loads(first.stdout), json.loads(second.stdout)
    states = [p["state"] for p in result["packages"]]
    print(f"packages:            {len(states)}")
    print(f"build jobs:          {sum(1 for p in result['packages'] if p['action'] == 'build')}")
    print(f"built / failed:      {states.count('built')} / {states.count('failed')}")
    print(f"sbatch calls:        {len(result['arrays'])} (nixmod), "
          f"{len(slurm_arrays(home / '.local/state/nixmod'))} (SLURM job arrays)")
    print(f"first build --wait:  {first_wall:.1f} s wall (nixmod says {result['seconds']:.1f} s)")
    print(f"second run:          {second_wall:.1f} s wall, submitted {again['submitted']}, "
          f"sbatch calls {len(again['arrays'])}")
    targets.check("versions built (8, 2 of them broken)", states.count("built"), 6, unit="",
                  at_most=False)
    targets.check("versions failed (the 2 broken ones)", states.count("failed"), 2, unit="")
    targets.check("second run: builds submitted", again["submitted"], 0, unit="")
    targets.check("second run: sbatch calls", len(again["arrays"]), 0, unit="")
    shutil.rmtree(home, ignore_errors=True)
    return targets.finish()


if __name__ == "__main__":
    raise SystemExit(main())
