#!/usr/bin/env bash
# Bring up the real test cluster on a fresh Debian 12 machine, as root.
#
# Idempotent: every step checks before it acts, so running it twice (or
# after a partial run) converges on the same state. Installs and starts:
#   nix-daemon (multi-user, no substituters, sandbox off),
#   munged + slurmctld + slurmd (one node; partitions compute and nixbuild),
#   Lmod, bubblewrap, proot, tmux,
#   two unprivileged test users in nix-users,
#   nixmod itself in a venv made with Debian's python3 under /opt/nixmod.
# Any part that cannot start makes the script exit non-zero with the reason.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${NIXMOD_VENV:-/opt/nixmod/venv}"
IFS=, read -r -a TEST_USERS <<<"${NIXMOD_TEST_USERS:-nmalice,nmbob}"
say() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"

# ---------------------------------------------------------------- packages
PKGS=(nix-bin slurm-wlm munge lmod bubblewrap proot tmux python3-venv lua-busted sqlite3 procps util-linux)
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

# ---------------------------------------------------------------- nix
mkdir -p /etc/nix
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
cat > /etc/nix/nix.conf.new <<EOF
# Written by nixmod tests/cluster/up.sh: a shared multi-user daemon, offline.
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
if ! cmp -s /etc/nix/nix.conf.new /etc/nix/nix.conf; then
    mv /etc/nix/nix.conf.new /etc/nix/nix.conf
    restart_nix=1
else
    rm -f /etc/nix/nix.conf.new
    restart_nix=0
fi
getent group nix-users >/dev/null || groupadd -r nix-users
getent group nixbld >/dev/null || die "group nixbld missing (nix-bin should create it)"
# the daemon socket directory is group nix-users on Debian; make sure of it
mkdir -p /nix/var/nix/daemon-socket /nix/var/nix/gcroots/per-user /nix/var/nix/profiles/per-user
chmod 1777 /nix/var/nix/gcroots/per-user /nix/var/nix/profiles/per-user

SOCK=/nix/var/nix/daemon-socket/socket
nix_up() { pgrep -x nix-daemon >/dev/null && [ -S "$SOCK" ]; }
if nix_up && [ "$restart_nix" = 1 ]; then
    say "restarting nix-daemon (nix.conf changed)"
    pkill -x nix-daemon || true
    sleep 1
fi
if ! nix_up; then
    say "starting nix-daemon"
    rm -f "$SOCK"
    setsid /usr/bin/nix-daemon >/var/log/nix-daemon.log 2>&1 < /dev/null &
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.2; done
    [ -S "$SOCK" ] || die "nix-daemon did not create $SOCK (see /var/log/nix-daemon.log)"
fi
chgrp nix-users /nix/var/nix/daemon-socket "$SOCK" 2>/dev/null || true
chmod 770 /nix/var/nix/daemon-socket 2>/dev/null || true
chmod 666 "$SOCK"

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
    say "starting munged"
    pkill -x munged 2>/dev/null || true
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
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf.new <<EOF
# Written by nixmod tests/cluster/up.sh: one node, two partitions.
ClusterName=nixmod
SlurmctldHost=${HOST}
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
# Builds get the node first (higher PriorityTier); compute jobs use it when no
# build waits. OverSubscribe lets more builds share the node than it has CPUs,
# so that the per-user throttle, not the node size, is what limits them.
PartitionName=compute Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 OverSubscribe=FORCE:4
PartitionName=nixbuild Nodes=${HOST} Default=NO MaxTime=INFINITE State=UP PriorityTier=2 OverSubscribe=FORCE:4
EOF
restart_slurm=0
if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
    mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
    restart_slurm=1
else
    rm -f /etc/slurm/slurm.conf.new
fi

if [ "$restart_slurm" = 1 ]; then
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    sleep 1
fi
if ! pgrep -x slurmctld >/dev/null; then
    say "starting slurmctld"
    /usr/sbin/slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! pgrep -x slurmd >/dev/null; then
    say "starting slurmd"
    /usr/sbin/slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi
state=""
for _ in $(seq 60); do
    state="$(sinfo -h -n "$HOST" -p nixbuild -o %t 2>/dev/null | head -n 1 || true)"
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*|drng*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
case "$state" in
    idle|mix|alloc) ;;
    *) die "SLURM node $HOST is '${state:-unknown}', not idle (see /var/log/slurm/)" ;;
esac

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

say "cluster is up: nix-daemon, munged, slurmctld, slurmd ($HOST: $state), users ${TEST_USERS[*]}, $VENV"
