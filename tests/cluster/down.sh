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
MARKER="# Written by nixmod tests/cluster/up.sh"
export SLURM_CONF="${SLURM_CONF:-/etc/slurm/slurm.conf}"
NIX_PIDFILE=/run/nix-daemon.pid
MUNGED_PIDFILE=/run/munge/munged.pid
STORE_COPY=/srv/nixstore
SOCK=/nix/var/nix/daemon-socket/socket
failed=0

# alive PID COMM: PID is a running (not zombie) process named COMM
alive() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] \
        && [ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
pid_of() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -dc 0-9 < "$1")"
    [ -n "$pid" ] && alive "$pid" "$2" && echo "$pid"
}
stop() {
    local pid
    pid="$(pid_of "$1" "$2")" || { rm -f "$1"; return 0; }
    say "stopping $2 (pid $pid, from $1)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 600); do
        alive "$pid" "$2" || { rm -f "$1"; return 0; }
        sleep 0.1
    done
    say "FAILED: $2 (pid $pid) did not exit within 60 s of SIGTERM"
    failed=1
}
# The nix-daemon listening on $SOCK: of the processes that hold the listening
# socket (each connection's worker inherits it), the one whose parent is not
# one of them.
socket_master() {
    local pids pid ppid
    pids=" $(ss -xlpn 2>/dev/null | awk -v s="$SOCK" '$5 == s' | grep -o 'pid=[0-9]*' | cut -d= -f2 | tr '\n' ' ')"
    for pid in $pids; do
        ppid="$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)"
        case "$pids" in *" $ppid "*) continue ;; esac
        alive "$pid" nix-daemon && { echo "$pid"; return 0; }
    done
    return 1
}
conf_value() { sed -n "s/^$2=\([^ #]*\).*/\1/p" "$1" | tail -n 1; }

# ---- PBS: stop what tests/cluster/pbs.sh started, before SLURM.
bash "$(dirname "${BASH_SOURCE[0]}")/pbs.sh" down || true

if [ -f "$SLURM_CONF" ] && grep -q "^$MARKER" "$SLURM_CONF"; then
    scancel --state=PENDING,RUNNING --full 2>/dev/null || true
    pattern="$(conf_value "$SLURM_CONF" SlurmdPidFile)"; pattern="${pattern:-/run/slurmd.pid}"
    for node in $(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$SLURM_CONF"); do
        stop "${pattern//%n/$node}" slurmd
    done
    ctld="$(conf_value "$SLURM_CONF" SlurmctldPidFile)"
    stop "${ctld:-/run/slurmctld.pid}" slurmctld
    stop "$MUNGED_PIDFILE" munged
elif [ -f "$SLURM_CONF" ]; then
    say "$SLURM_CONF was not written by the rig: its SLURM and munged are left running"
fi
# The rig's nix-daemon: the one in its pid file or, when nix.conf is the rig's,
# whichever nix-daemon now serves the socket (restarted by hand or by a test).
NIX_CONF="${NIX_CONF_DIR:-/etc/nix}/nix.conf"
if ! pid_of "$NIX_PIDFILE" nix-daemon >/dev/null && grep -q "^$MARKER" "$NIX_CONF" 2>/dev/null; then
    listener="$(socket_master)" && echo "$listener" > "$NIX_PIDFILE"
fi
stop "$NIX_PIDFILE" nix-daemon
[ -S "$SOCK" ] && ! ss -xlpn 2>/dev/null | awk -v s="$SOCK" '$5 == s' | grep -q . && rm -f "$SOCK"
if mountpoint -q "$STORE_COPY"; then
    umount "$STORE_COPY" || { say "FAILED: umount $STORE_COPY"; failed=1; }
fi
[ "$failed" = 0 ] && say "stopped"
exit "$failed"
