"""Issue 24.1 on the real rig: another user's job with bytes that are not UTF-8.

bob's jobs carry such bytes in their comment, command or variables (SLURM and
PBS pass them through byte for byte). alice's build, status, status --json,
cancel and the TUI's refresh must go on as before: bob's job is skipped, never
joined, and alice's own jobs are still followed.
"""

from __future__ import annotations

import subprocess
import time
import uuid

from builds_helpers import (counter_lines, new_counter, records, setup_builds, status,
                            user_config, wait_for_state)
from rig import NIXMOD, UserSession, run_userside
from test_builds_hostile import _drv_hash, _job_script
from test_builds_pbs import PBS_BIN, QUEUE, pbs_server, setup_pbs  # noqa: F401 (the fixture)

#: what bob puts where a job's text goes: not UTF-8 (\xff never is; \xc3 starts a pair)
BAD = "$(printf 'probe\\xff\\xc3')"


def _refresh_as_the_tui_does(session: UserSession) -> list[dict]:
    """The TUI's refresh (``tui.model.refresh_records``), as ``session``: (id, state) pairs."""
    proc = run_userside(session, "tui_refresh")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return records(proc)


def _clean(proc, code: int = 0) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "UnicodeDecodeError" not in proc.stderr, proc.stderr


def _lanes_cancel_and_refresh(alice: UserSession, mine: dict) -> None:
    """alice's own queued build is followed by status, the TUI's refresh and cancel."""
    shown = alice.nixmod("status")
    _clean(shown)
    assert str(mine["job"]) in shown.stdout
    listed = alice.nixmod("status", "--json")
    _clean(listed)
    assert [r["state"] for r in records(listed)] in (["queued"], ["running"]), listed.stdout
    assert _refresh_as_the_tui_does(alice)[0]["state"] in ("queued", "running")
    _clean(alice.nixmod("cancel", str(mine["id"])))
    assert status(alice, mine["id"])[0]["state"] == "cancelled"


def test_slurm_a_job_with_bytes_that_are_not_text_breaks_nobody(alice, bob, test_channels):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_builds(user, test_channels, backend="slurm", nonce=nonce, counter=counter,
                     sleep=20, max_concurrent=1)
    target = _drv_hash(bob, test_channels, "pkg3")
    script = _job_script()
    python = (NIXMOD.parent / "nixmod").read_text().splitlines()[0][2:].strip()
    sbatch = "sbatch --parsable -o /dev/null"
    # the job: held, on the compute partition, a comment that is not text
    held = bob.bash(f'{sbatch} --hold -p compute -J x --comment "{BAD}" --wrap "sleep 1"',
                    check=True).stdout.strip()
    # a job that would pass every join check, but for a manifest path that is not text in
    # its Command (it waits for the held one, so it never runs): it must not be joined
    lure = bob.bash(f'{sbatch} --dependency=afterok:{held} -J nixmod-build-0 -t 5 -p nixbuild '
                    f'--array=0 --comment nixmod:{target} {script} {python} '
                    f'"/tmp/{BAD}" {target}', check=True).stdout.strip()
    try:
        # the bytes really reach every user's squeue, as they are
        assert b"probe\xff\xc3" in subprocess.run(["squeue", "--json"], capture_output=True,
                                                   check=True, timeout=30).stdout
        mine = records(alice.nixmod("build", "slowpkg", "--json"))[0]
        assert mine["state"] == "queued" and mine["joined"] is False, mine
        _lanes_cancel_and_refresh(alice, mine)
        submitted = alice.nixmod("build", "pkg3", "--json")
        _clean(submitted)
        record = records(submitted)[0]
        assert record["joined"] is False and "joining" not in submitted.stderr, record
        assert record["job"].split("_")[0] != lure
        done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, 240)
        assert done["state"] == "built" and done["module"] == "nix/pkg3/1.0", done
        assert counter_lines(counter).count(f"pkg3 1.0 {nonce}") == 1
    finally:
        bob.run("scancel", held, lure)


def test_pbs_a_job_with_bytes_that_are_not_text_breaks_nobody(alice, bob, test_channels):
    nonce, counter = new_counter()
    for user in (alice, bob):
        setup_pbs(user, test_channels, nonce=nonce, counter=counter, sleep=20,
                  max_concurrent=1)
    target = _drv_hash(bob, test_channels, "pkg4")
    python = (NIXMOD.parent / "nixmod").read_text().splitlines()[0][2:].strip()
    qsub = f"{PBS_BIN}/qsub -q {QUEUE}"
    variable = "X=a$(printf '\\xff')b"
    # the job: held, a variable that is not text
    held = bob.bash(f'{qsub} -h -v "{variable}" -- /bin/sleep 1', check=True).stdout.strip()
    # a job that would pass every join check (nixmod's job step, the drv's hash, not held:
    # it waits for a start time tomorrow), but for a variable that is not text
    start = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 86400))
    code = "from nixmod.builds.pbs import job_main; raise SystemExit(job_main())"
    lure = bob.bash(f'{qsub} -N nixmod-build -a {start} -l walltime=00:05:00 '
                    f'-v "NIXMOD_DRVS=nixmod:{target},{variable}" '
                    f'-- {python} -I -c "{code}" /tmp/lure', check=True).stdout.strip()
    try:
        assert b"a\xffb" in subprocess.run([str(PBS_BIN / "qstat"), "-f", "-F", "json", QUEUE],
                                            capture_output=True, check=True, timeout=60).stdout
        mine = records(alice.nixmod("build", "slowpkg", "--json"))[0]
        assert mine["state"] == "queued" and mine["joined"] is False, mine
        _lanes_cancel_and_refresh(alice, mine)
        submitted = alice.nixmod("build", "pkg4", "--json")
        _clean(submitted)
        record = records(submitted)[0]
        assert record["joined"] is False and "joining" not in submitted.stderr, record
        assert record["job"] != lure
        done = wait_for_state(alice, record["id"], {"built", "failed", "cancelled"}, 240)
        assert done["state"] == "built" and done["module"] == "nix/pkg4/1.0", done
        assert counter_lines(counter).count(f"pkg4 1.0 {nonce}") == 1
    finally:
        bob.run(str(PBS_BIN / "qdel"), held, lure)


#: a channel whose evaluation and build print bytes that are not UTF-8 (\xff) on stderr
#: and in the build log: what Nix prints of a catalog's strings and a builder's output
NOISY_CHANNEL = r"""{ system ? builtins.currentSystem }:
{
  noisy = builtins.trace "probe-TRACE" (derivation {
    name = "noisy-1.0"; pname = "noisy"; version = "1.0"; inherit system;
    nonce = "NONCE";
    builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "echo probe-log; printf 'a\\377b\\n'; mkdir -p $out/bin" ];
  });
}
"""


def test_nix_output_and_logs_with_bytes_that_are_not_text(alice):
    """Evaluation traces and a build log with \\xff: search, build, status and logs work."""
    nonce = uuid.uuid4().hex[:12]
    text = NOISY_CHANNEL.replace("TRACE", "\\xff").replace("NONCE", nonce)
    channel = alice.home / "noisy.nix"
    channel.write_bytes(text.encode().replace(b"\\xff", b"\xff"))
    subprocess.run(["chown", alice.user, str(channel)], check=True)
    alice.write_config(user_config({"noisy": channel}, "local"))
    found = alice.nixmod("search", "noisy")
    _clean(found)
    assert "noisy" in found.stdout
    built = alice.nixmod("build", "noisy", "--wait", "--json", timeout=240)
    _clean(built)
    record = records(built)[0]
    assert record["state"] == "built", record
    _clean(alice.nixmod("status"))
    log = alice.nixmod("logs", str(record["id"]))
    _clean(log)
    assert "probe-log" in log.stdout and "a\ufffdb" in log.stdout, log.stdout
