# Sourced by up.sh and down.sh (which define say() first): the rig's fixed
# paths, and how its daemons are found and stopped. By pid file only, never
# by name: another cluster's slurmd or nix-daemon may run on this machine.

# Every file the rig writes starts with this line; a file without it belongs
# to someone else (an existing cluster) and is never overwritten or stopped.
MARKER="# Written by nixmod tests/cluster/up.sh"
NIX_PIDFILE=/run/nix-daemon.pid  # nix-daemon writes none itself: the rig does
MUNGED_PIDFILE=/run/munge/munged.pid
STORE_COPY=/srv/nixstore         # the "NFS/CVMFS export" of /nix/store on compute nodes
SOCK=/nix/var/nix/daemon-socket/socket

# alive PID COMM: PID is a running (not zombie) process named COMM
alive() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] \
        && [ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
# pid_of PIDFILE COMM: the pid in PIDFILE if that process is alive and is COMM
pid_of() {
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -dc 0-9 < "$1")"
    [ -n "$pid" ] && alive "$pid" "$2" && echo "$pid"
}
# stop PIDFILE COMM: SIGTERM, then wait (up to 60 s) until the process is gone;
# says FAILED and returns 1 if it is still there (the caller decides what then)
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
    return 1
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
# cancel_all_jobs: every job of the rig's SLURM, whoever's; scancel takes one state a call
cancel_all_jobs() {
    local state
    for state in PENDING SUSPENDED RUNNING; do scancel --state="$state" --full 2>/dev/null || true; done
}
# conf_value FILE KEY: the last KEY=value in a slurm.conf-like FILE
conf_value() { sed -n "s/^$2=\([^ #]*\).*/\1/p" "$1" | tail -n 1; }
# the rig's rsyslogd (tests/cluster/rsyslog.sh): its own config and pid file, beside Debian's
RIG_RSYSLOG_PIDFILE=/run/nixmod-rig-rsyslogd.pid
SYSTEM_RSYSLOG_PIDFILE=/run/rsyslogd.pid
RIG_CONF=/etc/nixmod-rig-rsyslog.conf
RULE_CONF=/etc/rsyslog.d/nixmod-usage.conf
USAGE_LOG=/var/log/nixmod/usage.log   # what `[usage] log` names in the rig's site config
