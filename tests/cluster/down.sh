#!/usr/bin/env bash
# Stop what up.sh started (daemons only: packages, users and the venv stay,
# so that the next up.sh is quick). Idempotent.
#
# Every daemon is stopped by its pid file, never by name (another cluster's
# slurmd may run on this machine), and waited for until it has exited. A
# SLURM whose slurm.conf the rig did not write is not the rig's: left alone.
set -u
[ "$(id -u)" = 0 ] || { echo "[down] run as root" >&2; exit 1; }
say() { printf '[down] %s\n' "$*" >&2; }
# MARKER, the pid files, the store copy, the daemon socket; alive, pid_of, stop,
# cancel_all_jobs, conf_value
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export SLURM_CONF="${SLURM_CONF:-/etc/slurm/slurm.conf}"
failed=0   # a daemon that would not stop: said, the others are still stopped, exit 1

# ---- the rig's rsyslogd (tests/cluster/rsyslog.sh), by its pid file
stop "$RIG_RSYSLOG_PIDFILE" rsyslogd || failed=1

# ---- PBS: stop what tests/cluster/pbs.sh started, before SLURM.
bash "$(dirname "${BASH_SOURCE[0]}")/pbs.sh" down || true

if [ -f "$SLURM_CONF" ] && grep -q "^$MARKER" "$SLURM_CONF"; then
    # the rig's jobs end with it (their steps would outlive slurmd)
    cancel_all_jobs
    pattern="$(conf_value "$SLURM_CONF" SlurmdPidFile)"; pattern="${pattern:-/run/slurmd.pid}"
    for node in $(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$SLURM_CONF"); do
        stop "${pattern//%n/$node}" slurmd || failed=1
    done
    ctld="$(conf_value "$SLURM_CONF" SlurmctldPidFile)"
    stop "${ctld:-/run/slurmctld.pid}" slurmctld || failed=1
    stop "$MUNGED_PIDFILE" munged || failed=1
elif [ -f "$SLURM_CONF" ]; then
    say "$SLURM_CONF was not written by the rig: its SLURM and munged are left running"
fi
# The rig's nix-daemon: the one in its pid file or, when nix.conf is the rig's,
# whichever nix-daemon now serves the socket (restarted by hand or by a test).
NIX_CONF="${NIX_CONF_DIR:-/etc/nix}/nix.conf"
if ! pid_of "$NIX_PIDFILE" nix-daemon >/dev/null && grep -q "^$MARKER" "$NIX_CONF" 2>/dev/null; then
    listener="$(socket_master)" && echo "$listener" > "$NIX_PIDFILE"
fi
stop "$NIX_PIDFILE" nix-daemon || failed=1
[ -S "$SOCK" ] && ! ss -xlpn 2>/dev/null | awk -v s="$SOCK" '$5 == s' | grep -q . && rm -f "$SOCK"
if mountpoint -q "$STORE_COPY"; then
    umount "$STORE_COPY" || { say "FAILED: umount $STORE_COPY"; failed=1; }
fi
[ "$failed" = 0 ] && say "stopped"
exit "$failed"
