#!/usr/bin/env bash
# Bring up the real test cluster on a fresh Debian 12 (or 13) machine, as root.
#
# Idempotent: every step checks before it acts, so running it twice (or
# after a partial run) converges on the same state. Installs and starts:
#   nix-daemon (multi-user, no substituters, sandbox off): the store host;
#   munged + slurmctld + two slurmds on this one machine (multiple-slurmd):
#     nb01 in partitions nixbuild and compute: sees /nix and the daemon;
#     cn01 in compute only: its slurmd runs in a mount namespace where /nix is
#          an empty tmpfs, so its jobs see no store at /nix and no daemon
#          socket, only the read-only store copy at /srv/nixstore (standing in
#          for an NFS or CVMFS export of the store host's /nix/store);
#   Lmod, bubblewrap, proot, tmux,
#   rsyslogd (its own config and pid file), filing nixmod's usage records,
#   the unprivileged test users (NIXMOD_TEST_USERS) in nix-users,
#   nixmod itself in a venv made with Debian's python3 under /opt/nixmod.
# Daemons are stopped only by their pid files, and waited for. A slurm.conf or
# nix.conf that this script did not write (no marker line) is never
# overwritten: an existing cluster is left alone and the script says so.
# Any part that cannot start makes the script exit non-zero with the reason.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${NIXMOD_VENV:-/opt/nixmod/venv}"
IFS=, read -r -a TEST_USERS <<<"${NIXMOD_TEST_USERS:-nmalice,nmbob}"
say() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] FAILED: %s\n' "$*" >&2; exit 1; }
# MARKER, the pid files, the store copy, the daemon socket; alive, pid_of, stop
source "$REPO/tests/cluster/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"

# ---------------------------------------------------------------- packages
PKGS=(nix-bin slurm-wlm munge lmod bubblewrap proot tmux python3-venv lua-busted sqlite3 procps util-linux iproute2)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# ---------------------------------------------------------------- the rig's shape
BUILD_NODE=nb01                 # nixbuild + compute: reaches the nix-daemon
COMPUTE_NODE=cn01               # compute only: no /nix, store read-only at $STORE_COPY
BUILD_NODE_PORT=6821
COMPUTE_NODE_PORT=6822
# Nix's and SLURM's own variables say where their config is (the rig then
# writes, checks and uses that file): NIX_CONF_DIR, SLURM_CONF.
NIX_CONF="${NIX_CONF_DIR:-/etc/nix}/nix.conf"
export SLURM_CONF="${SLURM_CONF:-/etc/slurm/slurm.conf}"
SLURMCTLD_PIDFILE=/run/slurmctld.pid
SLURMD_PIDFILE_PATTERN=/run/slurmd-%n.pid

# --- config files: ours, a package's untouched default, or someone else's
ours() { [ -f "$1" ] && grep -q "^$MARKER" "$1"; }
# A package's conffile that nobody edited (e.g. nix-setup-systemd's nix.conf)
# may be replaced: dpkg records its md5, whatever the Debian release.
pristine() {
    local file="$1" pkg sum
    pkg="$(dpkg-query -S "$file" 2>/dev/null | cut -d: -f1 | head -n 1)" || return 1
    [ -n "$pkg" ] || return 1
    sum="$(dpkg-query -W -f='${Conffiles}\n' "$pkg" 2>/dev/null | awk -v f="$file" '$1 == f {print $2}')"
    [ -n "$sum" ] && [ "$(md5sum < "$file" | cut -d' ' -f1)" = "$sum" ]
}
claimable() { [ ! -e "$1" ] || ours "$1" || pristine "$1"; }
for conf in "$NIX_CONF" "$SLURM_CONF"; do
    claimable "$conf" || die "$conf was not written by this rig (no '$MARKER' line): refusing to overwrite an existing cluster's config; move it away (or run nixmod's tests on another machine)"
done
# install NEW as DEST when it differs; prints 1 when it changed, 0 otherwise
install_conf() {
    if cmp -s "$1" "$2"; then rm -f "$1"; echo 0; else mv "$1" "$2"; echo 1; fi
}

# --- daemons: alive, pid_of, stop, socket_master, conf_value (lib.sh)
slurmd_pidfile() { echo "${SLURMD_PIDFILE_PATTERN//%n/$1}"; }

# ---------------------------------------------------------------- nix
mkdir -p /etc/nix "$(dirname "$NIX_CONF")"
# The rig's binary-cache signing key: a bundle signed with it (nixmod export)
# is what this "site" trusts on import, as a receiving cluster would trust
# the sending site's public key. Tests copy the secret half to a user.
RIG_KEY=/etc/nix/nixmod-rig-cache
if [ ! -s "$RIG_KEY.sec" ] || [ ! -s "$RIG_KEY.pub" ]; then
    say "generating the rig's binary-cache signing key $RIG_KEY.{sec,pub}"
    nix-store --generate-binary-cache-key nixmod-rig-1 "$RIG_KEY.sec" "$RIG_KEY.pub" \
        || die "nix-store --generate-binary-cache-key failed"
fi
chmod 600 "$RIG_KEY.sec"; chmod 644 "$RIG_KEY.pub"
RIG_PUB="$(cat "$RIG_KEY.pub")"
cat > "$NIX_CONF.new" <<EOF
$MARKER: a shared multi-user daemon, offline.
build-users-group = nixbld
sandbox = false
substituters =
trusted-substituters =
require-sigs = true
trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= ${RIG_PUB}
max-jobs = 4
keep-derivations = true
keep-outputs = false
allowed-users = *
EOF
restart_nix="$(install_conf "$NIX_CONF.new" "$NIX_CONF")"
getent group nix-users >/dev/null || groupadd -r nix-users
getent group nixbld >/dev/null || die "group nixbld missing (nix-bin should create it)"
# the daemon socket directory is group nix-users on Debian; make sure of it
mkdir -p /nix/var/nix/daemon-socket /nix/var/nix/gcroots/per-user /nix/var/nix/profiles/per-user
chmod 1777 /nix/var/nix/gcroots/per-user /nix/var/nix/profiles/per-user

# A daemon serving the socket but not in the pid file (started before the
# rig wrote pid files, or restarted by hand) is adopted: nix.conf is ours, so
# that daemon is the rig's too.
if ! pid_of "$NIX_PIDFILE" nix-daemon >/dev/null; then
    if listener="$(socket_master)"; then
        say "adopting the nix-daemon already serving $SOCK (pid $listener) into $NIX_PIDFILE"
        echo "$listener" > "$NIX_PIDFILE"
    fi
fi
if [ "$restart_nix" = 1 ]; then
    stop "$NIX_PIDFILE" nix-daemon || exit 1
fi
if ! pid_of "$NIX_PIDFILE" nix-daemon >/dev/null || [ ! -S "$SOCK" ]; then
    stop "$NIX_PIDFILE" nix-daemon || exit 1
    say "starting nix-daemon"
    NIX_DAEMON="$(command -v nix-daemon)" || die "nix-daemon not found (apt package nix-bin)"
    rm -f "$SOCK"
    # not a process-group leader here, so setsid execs in place: $! is the daemon
    ( exec setsid "$NIX_DAEMON" >>/var/log/nix-daemon.log 2>&1 </dev/null ) &
    echo $! > "$NIX_PIDFILE"
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.2; done
    [ -S "$SOCK" ] && pid_of "$NIX_PIDFILE" nix-daemon >/dev/null \
        || die "nix-daemon did not create $SOCK (see /var/log/nix-daemon.log)"
fi
chgrp nix-users /nix/var/nix/daemon-socket "$SOCK" 2>/dev/null || true
chmod 770 /nix/var/nix/daemon-socket 2>/dev/null || true
chmod 666 "$SOCK"

# ---------------------------------------------------------------- the store export
# Compute nodes get the store read-only at another path. A read-only bind
# mount of /nix/store shows every new store path at once, as an NFS export
# of the store host's /nix/store would.
mkdir -p "$STORE_COPY"
if ! mountpoint -q "$STORE_COPY"; then
    say "bind-mounting /nix/store read-only at $STORE_COPY"
    mount --bind /nix/store "$STORE_COPY" || die "mount --bind /nix/store $STORE_COPY failed"
fi
case ",$(findmnt -no OPTIONS "$STORE_COPY")," in
    *,ro,*) ;;
    *) mount -o remount,bind,ro "$STORE_COPY" || die "could not make $STORE_COPY read-only" ;;
esac

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    say "writing munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    stop "$MUNGED_PIDFILE" munged || exit 1
    say "starting munged"
    rm -f /run/munge/munge.socket.2*
    runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
    for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not work (munge -n | unmunge)"
fi

# ---------------------------------------------------------------- slurm
HOST="$(hostname -s)"
NODE_LINE="$(slurmd -C 2>/dev/null | head -n 1)"
[ -n "$NODE_LINE" ] || die "slurmd -C printed nothing"
CPUS="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")"
MEM="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")"
mkdir -p "$(dirname "$SLURM_CONF")" /var/spool/slurmctld /var/log/slurm \
    "/var/spool/slurmd/$BUILD_NODE" "/var/spool/slurmd/$COMPUTE_NODE"
cat > "$SLURM_CONF.new" <<EOF
$MARKER: two nodes on one machine (multiple-slurmd), two partitions.
ClusterName=nixmod
SlurmctldHost=${HOST}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=${SLURMCTLD_PIDFILE}
SlurmdPidFile=${SLURMD_PIDFILE_PATTERN}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
# a node whose slurmd died is DOWN (and its jobs NODE_FAIL) after 10 s, not 5 min
SlurmdTimeout=10
MinJobAge=300
KillWait=5
InactiveLimit=0
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
# The build node goes back to compute when idle: a build (nixbuild, higher
# PriorityTier) is scheduled before any compute job waiting for that node, and
# takes it back from a running compute job, which is requeued.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
# Both nodes are slurmds on this one host (NodeHostname), each on its own port.
# Compute jobs fill the compute-only node first (lower Weight).
NodeName=${BUILD_NODE} NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=${BUILD_NODE_PORT} CPUs=${CPUS} RealMemory=${MEM} Weight=10 State=UNKNOWN
NodeName=${COMPUTE_NODE} NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=${COMPUTE_NODE_PORT} CPUs=${CPUS} RealMemory=${MEM} Weight=1 State=UNKNOWN
# OverSubscribe on nixbuild lets more builds share the node than it has CPUs,
# so that the per-user throttle, not the node size, is what limits them.
PartitionName=compute Nodes=${COMPUTE_NODE},${BUILD_NODE} Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=nixbuild Nodes=${BUILD_NODE} Default=NO MaxTime=INFINITE State=UP PriorityTier=2 OverSubscribe=FORCE:4
EOF

# The pid files of the slurm daemons the config in place describes (before it
# is replaced): SlurmctldPidFile, and SlurmdPidFile for each NodeName (%n).
old_slurmd_pidfiles() {
    local conf="$1" pattern node
    [ -f "$conf" ] || return 0
    pattern="$(conf_value "$conf" SlurmdPidFile)"; pattern="${pattern:-/run/slurmd.pid}"
    for node in $(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$conf"); do echo "${pattern//%n/$node}"; done
}
stop_slurm() {
    local conf="$1" f
    for f in $(old_slurmd_pidfiles "$conf"); do stop "$f" slurmd || exit 1; done
    f="$(conf_value "$conf" SlurmctldPidFile)"
    stop "${f:-/run/slurmctld.pid}" slurmctld || exit 1
}
if ! cmp -s "$SLURM_CONF.new" "$SLURM_CONF"; then
    [ -f "$SLURM_CONF" ] && stop_slurm "$SLURM_CONF"
    mv "$SLURM_CONF.new" "$SLURM_CONF"
else
    rm -f "$SLURM_CONF.new"
fi

started_slurmctld=0
if ! pid_of "$SLURMCTLD_PIDFILE" slurmctld >/dev/null; then
    say "starting slurmctld"
    /usr/sbin/slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    started_slurmctld=1
fi
# Two slurmds on one host need a slurm built with multiple-slurmd (Debian's is).
multiple=""
for _ in $(seq 30); do
    multiple="$(scontrol show config 2>/dev/null | awk '$1 == "MULTIPLE_SLURMD" {print $3}')"
    [ -n "$multiple" ] && break
    sleep 1
done
[ "$multiple" = Yes ] || die "this SLURM was built without multiple-slurmd (scontrol show config: MULTIPLE_SLURMD = ${multiple:-?}); the rig needs it to run two nodes on one machine"
if ! pid_of "$(slurmd_pidfile "$BUILD_NODE")" slurmd >/dev/null; then
    say "starting slurmd $BUILD_NODE (build node: /nix and the daemon)"
    /usr/sbin/slurmd -N "$BUILD_NODE" || die "slurmd -N $BUILD_NODE did not start (see /var/log/slurm/slurmd-$BUILD_NODE.log)"
fi
# The compute-only node: its slurmd, and so every job it runs, lives in a
# mount namespace where /nix is an empty tmpfs. One whose namespace is not so
# (started by hand, or before $STORE_COPY was mounted) is restarted.
compute_pidfile="$(slurmd_pidfile "$COMPUTE_NODE")"
if pid="$(pid_of "$compute_pidfile" slurmd)"; then
    nsenter -t "$pid" -m sh -c "mountpoint -q '$STORE_COPY' && [ ! -e /nix/store ] && [ ! -e '$SOCK' ]" \
        || stop "$compute_pidfile" slurmd || exit 1
fi
if ! pid_of "$compute_pidfile" slurmd >/dev/null; then
    say "starting slurmd $COMPUTE_NODE (compute only: /nix hidden, store read-only at $STORE_COPY)"
    unshare --mount --propagation private \
        sh -c "mount -t tmpfs -o mode=755,size=1m nixmod-no-store /nix && exec /usr/sbin/slurmd -N '$COMPUTE_NODE'" \
        || die "slurmd -N $COMPUTE_NODE did not start (see /var/log/slurm/slurmd-$COMPUTE_NODE.log)"
fi
for node in "$BUILD_NODE" "$COMPUTE_NODE"; do
    state=""
    for _ in $(seq 60); do
        state="$(sinfo -h -n "$node" -o %t 2>/dev/null | head -n 1 || true)"
        case "$state" in
            idle|mix|alloc|comp) break ;;
            down*|drain*|drng*|fail*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    case "$state" in
        idle|mix|alloc|comp) ;;
        *) die "SLURM node $node is '${state:-unknown}', not idle (see /var/log/slurm/)" ;;
    esac
done

# A slurmctld this script starts runs no job from before: after a kill (a
# machine restored from a snapshot) its saved state still holds the jobs of
# the last run, and a test user's held nixmod-build-0 would keep every new
# one of that user's lane waiting (--dependency=singleton).
if [ "$started_slurmctld" = 1 ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    say "cancelling the jobs left from before this start"
    cancel_all_jobs
    for _ in $(seq 60); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] || die "jobs from before this start are still queued: $(squeue -h -o '%i %T' | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- PBS
# OpenPBS for the PBS backend, in a network namespace of its own (built once
# from ../shared/vendor; see tests/cluster/pbs.sh).
bash "$REPO/tests/cluster/pbs.sh" up || die "PBS did not come up (see /var/tmp/nixmod-pbs-*.log)"

# ---------------------------------------------------------------- rsyslog
# A real rsyslogd files nixmod's usage records (tag nixmod-usage) into
# $USAGE_LOG, with the sender's kernel-checked uid (tests/cluster/rsyslog.sh).
bash "$REPO/tests/cluster/rsyslog.sh" up || die "rsyslogd did not come up"

# ---------------------------------------------------------------- users
for u in "${TEST_USERS[@]}"; do
    if ! id "$u" >/dev/null 2>&1; then
        say "creating test user $u"
        useradd --create-home --shell /bin/bash --groups nix-users "$u"
    fi
    id -nG "$u" | grep -qw nix-users || usermod -aG nix-users "$u"
done

# ---------------------------------------------------------------- nixmod venv
# Debian's python, a world-readable path: test users cannot read /root.
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
PIPLOG=/var/log/nixmod-pip.log
pipq() { "$VENV/bin/pip" -q "$@" >>"$PIPLOG" 2>&1; }
# install (or refresh) the dependencies only when pyproject.toml changed
stamp="$VENV/.nixmod-deps"
if ! cmp -s "$REPO/pyproject.toml" "$stamp"; then
    say "installing nixmod's dependencies into $VENV"
    pipq install --upgrade pip setuptools wheel || die "pip upgrade failed (see $PIPLOG)"
    pipq install "$REPO[test]" || die "pip install nixmod[test] failed (see $PIPLOG)"
    cp "$REPO/pyproject.toml" "$stamp"
fi
# nixmod itself: editable when every user can read the checkout (a developer's
# tree), a plain copy otherwise (a checkout under /root).
if runuser -u nobody -- test -r "$REPO/nixmod/__init__.py" 2>/dev/null; then
    pipq install --no-deps --no-build-isolation -e "$REPO" || die "pip install -e failed (see $PIPLOG)"
else
    pipq install --no-deps --no-build-isolation --force-reinstall "$REPO" || die "pip install failed (see $PIPLOG)"
fi
chmod -R a+rX "$(dirname "$VENV")"
mkdir -p /opt/nixmod/lua && cp "$REPO"/lua/*.lua /opt/nixmod/lua/ 2>/dev/null || true
chmod -R a+rX /opt/nixmod/lua
"$VENV/bin/nixmod" --help >/dev/null || die "$VENV/bin/nixmod does not run"

say "cluster is up: nix-daemon, munged, slurmctld, slurmd $BUILD_NODE (nixbuild, compute) and $COMPUTE_NODE (compute, store at $STORE_COPY), users ${TEST_USERS[*]}, $VENV"
