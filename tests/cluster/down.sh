#!/usr/bin/env bash
# Stop what up.sh started (daemons only: packages, users and the venv stay,
# so that the next up.sh is quick). Idempotent.
set -u
[ "$(id -u)" = 0 ] || { echo "[down] run as root" >&2; exit 1; }
scancel --state=PENDING,RUNNING --full 2>/dev/null || true
for daemon in slurmd slurmctld munged nix-daemon; do
    if pgrep -x "$daemon" >/dev/null; then
        echo "[down] stopping $daemon" >&2
        pkill -x "$daemon"
    fi
done
for _ in $(seq 50); do
    pgrep -x 'slurmd|slurmctld|munged|nix-daemon' >/dev/null || break
    sleep 0.1
done
rm -f /nix/var/nix/daemon-socket/socket
echo "[down] stopped" >&2
