"""Site catalog benchmark: a new user's first search with the site index, against listing per user.

    /opt/nixmod/venv/bin/python tests/bench/bench_site_catalog.py [DATA_DIR] [PACKAGES]

Two channel sets, each published once by "staff" (``nixmod catalog
publish``) into a throwaway site directory, then searched by brand-new users
(empty cache) with and without ``[catalog] site_dir``:

1. an evaluated channel: a generated Nix file of PACKAGES (default 10000)
   derivations with meta, which a user without the index evaluates with
   nix-env (what a real nixpkgs makes take minutes and GBs);
2. real nixpkgs scale: the five real package lists (DATA_DIR, default
   ../shared/data/nixpkgs beside the checkout) as channels, which a user
   without the index reads and indexes.

For each: staff's publish, the first ``nixmod search`` of a new user without
the index, with the index (the channel list the site published: the merged
index is used as it is), and with a subset of the site's channels (4 of
5: the merged index read and filtered, issue 22). Whole processes, wall
time, peak RSS of the search (that process's own, nix-env included). The
real-scale figures are printed beside their targets (tests/bench/targets.py);
the exit code is 1 when one is MISSED.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from targets import Targets, exit_with

PYTHON = sys.executable
NIXMOD = Path(PYTHON).with_name("nixmod")


def generated_channel(count: int) -> str:
    """A Nix channel of ``count`` packages, each with the meta nix-env --meta lists."""
    return f"""{{ ... }}:
builtins.listToAttrs (builtins.genList (i: let n = "benchpkg${{toString i}}"; in {{
  name = n;
  value = (derivation {{
    name = "${{n}}-1.${{toString i}}"; pname = n; version = "1.${{toString i}}";
    system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ];
  }}) // {{ meta = {{ description = "benchmark package number ${{toString i}}";
              homepage = "https://example.org/${{n}}"; license = {{ spdxId = "MIT"; }};
              mainProgram = n; platforms = [ builtins.currentSystem ]; }}; }};
}}) {count})
"""


def config_text(channels: dict[str, Path], site: Path | None) -> str:
    text = "".join(f'[[channels]]\nname = "{name}"\npath = "{path}"\n\n'
                   for name, path in channels.items())
    return text + (f'[catalog]\nsite_dir = "{site}"\n' if site else "")


def run(home: Path, channels: dict[str, Path], site: Path | None, *argv: str
        ) -> tuple[float, float]:
    """One nixmod process for a new user (fresh HOME): wall seconds and peak RSS (MB)."""
    shutil.rmtree(home, ignore_errors=True)
    (home / ".config/nixmod").mkdir(parents=True)
    (home / ".config/nixmod/config.toml").write_text(config_text(channels, site))
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_CONFIG_HOME": str(home / ".config"), "NIXMOD_SITE_CONFIG": "/nonexistent"}
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([str(NIXMOD), *argv], env=env, stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)   # this child's own peak RSS
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0 or (site is not None and "warning" in stderr):
        raise SystemExit(f"nixmod {' '.join(argv)} failed or warned:\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def scenario(label: str, channels: dict[str, Path], subset: dict[str, Path] | None, query: str,
             work: Path, targets: Targets | None = None) -> None:
    site = work / f"site-{label}"
    staff = work / "staff"
    publish = run(staff, channels, None, "catalog", "publish", str(site))
    size = (site / "nixmod-site-catalog.bin").stat().st_size / 1e6
    user = work / "user"
    alone = run(user, channels, None, "search", query)
    with_site = run(user, channels, site, "search", query)
    partial = run(user, subset, site, "search", query) if subset else None
    print(f"[{label}] {len(channels)} channels; site index {size:.1f} MB")
    print(f"  staff: catalog publish                       {publish[0]:7.2f} s")
    print(f"  new user, first search, listing per user     {alone[0]:7.2f} s  (peak RSS {alone[1]:.0f} MB)")
    print(f"  new user, first search, site index           {with_site[0]:7.2f} s  "
          f"(peak RSS {with_site[1]:.0f} MB)  {alone[0] / with_site[0]:.0f}x faster")
    if subset and partial:
        print(f"  new user, {len(subset)} of the site's channels          {partial[0]:7.2f} s  "
              f"(peak RSS {partial[1]:.0f} MB)")
    if targets is not None:
        targets.check("new user, first search, all the site's channels", with_site[0], 0.15,
                      unit="s")
        if subset and partial:
            targets.check(f"new user, first search, {len(subset)} of the site's "
                          f"{len(channels)} channels", partial[0], 0.3, unit="s")


def compiled() -> None:
    """nixmod's byte code written, as an installed nixmod has it: a figure taken where
    PYTHONDONTWRITEBYTECODE is set would otherwise time compiling what changed."""
    import compileall

    import nixmod

    compileall.compile_dir(str(Path(nixmod.__file__).parent), quiet=1)


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else
                os.environ.get("NIXMOD_BENCH_DATA",
                               str(Path(__file__).resolve().parents[3] / "shared/data/nixpkgs")))
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    dumps = sorted(data.glob("*.json.gz"))
    if not dumps:
        raise SystemExit(f"no *.json.gz under {data}")
    work = Path(tempfile.mkdtemp(prefix="nixmod-bench-site-"))
    try:
        compiled()
        nix_file = work / "generated.nix"
        nix_file.write_text(generated_channel(count))
        scenario(f"evaluated channel, {count} packages", {"generated": nix_file}, None,
                 "benchpkg42", work)
        real = {p.name.removesuffix(".json.gz"): p for p in dumps}
        targets = Targets("bench_site_catalog")
        scenario("real nixpkgs lists, 2016-2026", real, dict(list(real.items())[1:]), "firefox",
                 work, targets)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    exit_with(targets)


if __name__ == "__main__":
    main()
