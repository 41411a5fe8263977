#!/usr/bin/env bash
# A real one-node OpenPBS for the PBS backend's tests, as root.
#
#   bash tests/cluster/pbs.sh up     build (once) and start PBS, make the build queue
#   bash tests/cluster/pbs.sh down   stop PBS with its own commands, remove the netns
#   bash tests/cluster/pbs.sh status exit 0 when the server answers
#
# OpenPBS is built from the vendored tarball into /opt/pbs, once: a stamp
# holds the tarball's sha256 and a rebuild happens only when it changes.
# PBS refuses loopback addresses for its host and the machine's external
# address must never be used, so the whole PBS stack (PostgreSQL datastore,
# pbs_comm, pbs_server, pbs_sched, pbs_mom) runs in a network namespace of
# our own ("pbsnet", veth 10.231.0.1 <-> 10.231.0.2, host name "pbshost"
# through one marked /etc/hosts line). Users submit from the root namespace;
# jobs run inside the netns but see the whole file system (nix-daemon socket).
#
# Idempotent: every step checks before it acts. Any failure is one line on
# stderr naming the step, and a non-zero exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARBALL_NAME=openpbs-23.06.06-cd7ab5e.tar.gz
PBS_VERSION=23.06.06
PBS_EXEC=/opt/pbs
PBS_HOME=/var/spool/pbs
PBS_CONF=/etc/pbs.conf
NETNS=pbsnet
VETH_HOST=pbsveth0
VETH_NS=pbsveth1
HOST_ADDR=10.231.0.1
NS_ADDR=10.231.0.2
PBS_HOSTNAME=pbshost
CONF_MARKER="# nixmod-pbs-rig: written by tests/cluster/pbs.sh"
HOSTS_MARKER="# nixmod-pbs-rig (tests/cluster/pbs.sh; removed by 'pbs.sh down')"
BUILD_QUEUE=nixbuild
SLOW_EXIT_HOOK=nixmod_test_slow_exit
SLOW_EXIT_MARKS=/run/nixmod-tests-slow-exit   # as in tests/cluster/pbs_slow_exit_hook.py
STAMP="$PBS_EXEC/.nixmod-tarball-sha256"
BUILD_LOG=/var/tmp/nixmod-pbs-build.log
# a plain PATH: the machine's default python3 is a pyenv one under /root
PLAIN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '[pbs] %s\n' "$*" >&2; }
die() { printf '[pbs] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages, builds into /opt/pbs and starts daemons)"
export PATH="$PLAIN_PATH"

in_ns() { ip netns exec "$NETNS" "$@"; }
# "does TEXT contain PATTERN": no pipe into grep -q, which pipefail turns into a false failure
has() { grep -q -- "$2" <<<"$1"; }
netns_exists() { [ -e "/run/netns/$NETNS" ]; }
server_answers() { [ -x "$PBS_EXEC/bin/qstat" ] && timeout 10 "$PBS_EXEC/bin/qstat" -B >/dev/null 2>&1; }
# as root inside the netns: root@pbshost is a PBS manager, root from 10.231.0.1 is not
qmgr() { in_ns "$PBS_EXEC/bin/qmgr" -c "$1" >/dev/null || die "qmgr -c '$1' failed"; }

find_tarball() {
    # CI lays shared/ beside the checkout; a git worktree finds it beside
    # the main checkout (its common git dir's parent).
    local c common
    for c in "${NIXMOD_PBS_TARBALL:-}" "$REPO/../shared/vendor/$TARBALL_NAME"; do
        [ -n "$c" ] && [ -f "$c" ] && { printf '%s\n' "$c"; return; }
    done
    if common="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)"; then
        c="$common/../../shared/vendor/$TARBALL_NAME"
        [ -f "$c" ] && { printf '%s\n' "$c"; return; }
    fi
    die "OpenPBS source $TARBALL_NAME not found (looked in \$NIXMOD_PBS_TARBALL and $REPO/../shared/vendor/)"
}

install_deps() {
    local pkgs=(gcc g++ make libtool autoconf automake pkg-config libhwloc-dev libx11-dev libxt-dev
        libedit-dev libical-dev libncurses-dev perl postgresql postgresql-server-dev-all
        postgresql-contrib python3-dev tcl-dev tk-dev swig libexpat1-dev libssl-dev libxext-dev
        libxft-dev libcjson-dev iproute2)
    local missing=() p
    for p in "${pkgs[@]}"; do
        has "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    # Debian starts its own PostgreSQL cluster on install; PBS runs its own
    # datastore (port 15007) and needs nothing from it.
    if systemctl is-active -q postgresql 2>/dev/null; then systemctl stop postgresql || true; fi
}

build_pbs() {
    local tarball sum src
    tarball="$(find_tarball)"
    sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
    if [ -x "$PBS_EXEC/bin/qsub" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$sum" ]; then
        return
    fi
    if [ -e "$PBS_EXEC/bin/qsub" ] && [ ! -e "$STAMP" ]; then
        die "$PBS_EXEC holds a PBS this script did not build (no $STAMP); refusing to overwrite it"
    fi
    say "building OpenPBS from $(basename "$tarball") into $PBS_EXEC (a few minutes; log $BUILD_LOG)"
    src="$(mktemp -d /var/tmp/nixmod-pbs-src.XXXXXX)"
    tar -xzf "$tarball" -C "$src" --strip-components=1 || die "cannot unpack $tarball"
    (
        cd "$src"
        env -i PATH="$PLAIN_PATH" HOME=/root LANG=C.UTF-8 sh -c '
            set -e
            ./autogen.sh
            ./configure --prefix='"$PBS_EXEC"' --with-python=/usr
            make -j"$(nproc)"
            make install'
    ) >"$BUILD_LOG" 2>&1 || die "OpenPBS build failed: $(tail -n 3 "$BUILD_LOG" | tr '\n' ' ')(full log $BUILD_LOG)"
    rm -rf "$src"
    chmod 4755 "$PBS_EXEC/sbin/pbs_iff" "$PBS_EXEC/sbin/pbs_rcp"
    printf '%s\n' "$sum" >"$STAMP"
    # a new build needs a fresh postinstall
    rm -f "$PBS_HOME/.nixmod-postinstall"
}

netns_up() {
    netns_exists || ip netns add "$NETNS" || die "ip netns add $NETNS failed"
    if ! ip link show "$VETH_HOST" >/dev/null 2>&1; then
        ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$NETNS" \
            || die "cannot create veth pair $VETH_HOST/$VETH_NS"
    fi
    has "$(ip -4 addr show dev "$VETH_HOST")" "inet $HOST_ADDR/" || ip addr add "$HOST_ADDR/24" dev "$VETH_HOST"
    ip link set "$VETH_HOST" up
    in_ns ip link set lo up
    has "$(in_ns ip -4 addr show dev "$VETH_NS")" "inet $NS_ADDR/" || in_ns ip addr add "$NS_ADDR/24" dev "$VETH_NS"
    in_ns ip link set "$VETH_NS" up
    # the hosts line, with a marker so that down removes exactly it
    if ! grep -qF "$HOSTS_MARKER" /etc/hosts; then
        grep -qw "$PBS_HOSTNAME" /etc/hosts && die "/etc/hosts already names $PBS_HOSTNAME without our marker; remove that line first"
        printf '%s %s %s\n' "$NS_ADDR" "$PBS_HOSTNAME" "$HOSTS_MARKER" >>/etc/hosts
    fi
}

configure_pbs() {
    local conf
    conf="$(mktemp /etc/pbs.conf.XXXXXX)"
    if [ -e "$PBS_CONF" ] && ! grep -qF "$CONF_MARKER" "$PBS_CONF"; then
        rm -f "$conf"
        die "$PBS_CONF was not written by this script (no marker line); refusing to overwrite it"
    fi
    cat >"$conf" <<EOF
$CONF_MARKER
PBS_EXEC=$PBS_EXEC
PBS_HOME=$PBS_HOME
PBS_SERVER=$PBS_HOSTNAME
PBS_LEAF_NAME=$PBS_HOSTNAME
PBS_MOM_NODE_NAME=$PBS_HOSTNAME
PBS_START_SERVER=1
PBS_START_SCHED=1
PBS_START_COMM=1
PBS_START_MOM=1
PBS_CORE_LIMIT=unlimited
PBS_SCP=/usr/bin/scp
EOF
    chmod 644 "$conf"
    if cmp -s "$conf" "$PBS_CONF"; then rm -f "$conf"; else mv "$conf" "$PBS_CONF"; fi
    if [ ! -e "$PBS_HOME/.nixmod-postinstall" ]; then
        say "pbs_postinstall (creates $PBS_HOME and the datastore)"
        in_ns "$PBS_EXEC/libexec/pbs_postinstall" server "$PBS_VERSION" "$PBS_EXEC" "$PBS_HOME" postgres sameconf \
            >/var/tmp/nixmod-pbs-postinstall.log 2>&1 \
            || die "pbs_postinstall failed: $(tail -n 2 /var/tmp/nixmod-pbs-postinstall.log | tr '\n' ' ')"
        touch "$PBS_HOME/.nixmod-postinstall"
    fi
    # output files are copied with cp, not scp: one file system
    local cfg="$PBS_HOME/mom_priv/config"
    [ -f "$cfg" ] || die "$cfg missing after pbs_postinstall"
    grep -q '^\$usecp' "$cfg" || printf '$usecp *:/ /\n' >>"$cfg"
    # the mom checks walltime every max_check_poll seconds (default 120): a
    # build over its walltime is ended within seconds, not minutes
    grep -q '^\$min_check_poll' "$cfg" || printf '$min_check_poll 2\n' >>"$cfg"
    grep -q '^\$max_check_poll' "$cfg" || printf '$max_check_poll 5\n' >>"$cfg"
}

start_pbs() {
    server_answers && return
    say "starting PBS in netns $NETNS (about 40 s)"
    in_ns "$PBS_EXEC/libexec/pbs_init.d" start >/var/tmp/nixmod-pbs-start.log 2>&1 \
        || die "pbs_init.d start failed: $(tail -n 3 /var/tmp/nixmod-pbs-start.log | tr '\n' ' ')"
    local i
    for i in $(seq 60); do
        if server_answers; then forget_jobs; return; fi
        sleep 2
    done
    die "pbs_server does not answer 'qstat -B' 120 s after start (see $PBS_HOME/server_logs/)"
}

# A PBS this script (re)starts holds no job from before. OpenPBS 23.06 keeps
# its next job number in memory and writes it to the datastore at a clean
# shutdown and once per 1000 jobs; any other save of the server (the qmgr
# settings below, right after start) writes 0. A server killed after that and
# before its first job (a power cut, a machine restored from a snapshot)
# starts again at 0 while its job history still holds those ids, and every
# qsub fails "Job with requested ID already exists" until the counter has
# passed them all. Forgetting the old jobs (finished, queued and the ones the
# dead mom left) makes every id free again.
forget_jobs() {
    local ids i
    ids="$(in_ns "$PBS_EXEC/bin/qselect" -x 2>/dev/null)" || die "qselect -x failed after start"
    [ -z "$ids" ] && return
    say "forgetting $(wc -l <<<"$ids") jobs left from before this start"
    # word splitting wanted: one job id per word
    # shellcheck disable=SC2086
    in_ns "$PBS_EXEC/bin/qdel" -x -W force $ids >/dev/null 2>&1 || true
    for i in $(seq 30); do
        [ -z "$(in_ns "$PBS_EXEC/bin/qselect" -x 2>/dev/null)" ] && return
        sleep 1
    done
    die "jobs from before this start are still there: $(in_ns "$PBS_EXEC/bin/qselect" -x 2>&1 | tr '\n' ' ')"
}

settings() {
    # clients come from 10.231.0.1, a host without a name: without flatuid
    # qsub says "Bad UID for job execution"
    qmgr 'set server flatuid = True'
    qmgr 'set server job_history_enable = True'
    # users see each other's jobs: how nixmod joins another user's build
    qmgr 'set server query_other_jobs = True'
    qmgr 'set sched scheduler_iteration = 2'
    qmgr 'set server scheduling = True'
    in_ns "$PBS_EXEC/bin/qmgr" -c "list queue $BUILD_QUEUE" >/dev/null 2>&1 \
        || qmgr "create queue $BUILD_QUEUE queue_type = execution"
    qmgr "set queue $BUILD_QUEUE enabled = True"
    qmgr "set queue $BUILD_QUEUE started = True"
    # The node claims more cpus than the machine has: builds here are light,
    # and several test users' jobs (and max_concurrent tests) must not be
    # throttled by the one node's core count but by nixmod's own limit.
    local i
    for i in $(seq 30); do
        in_ns "$PBS_EXEC/bin/pbsnodes" "$PBS_HOSTNAME" >/dev/null 2>&1 && break
        sleep 2
    done
    qmgr "set node $PBS_HOSTNAME resources_available.ncpus = 16"
    # tests only: a job marked in $SLOW_EXIT_MARKS stays exiting for 8 s (the hook says why)
    mkdir -p -m 700 "$SLOW_EXIT_MARKS"
    in_ns "$PBS_EXEC/bin/qmgr" -c "list hook $SLOW_EXIT_HOOK" >/dev/null 2>&1 \
        || qmgr "create hook $SLOW_EXIT_HOOK event=execjob_end"
    local hook="$REPO/tests/cluster/pbs_slow_exit_hook.py"
    if ! in_ns "$PBS_EXEC/bin/qmgr" -c "export hook $SLOW_EXIT_HOOK application/x-python default" \
            2>/dev/null | cmp -s - "$hook"; then
        in_ns "$PBS_EXEC/bin/qmgr" -c "import hook $SLOW_EXIT_HOOK application/x-python default $hook" \
            >/dev/null 2>&1 || die "qmgr could not import hook $SLOW_EXIT_HOOK from $hook"
    fi
    for i in $(seq 30); do
        has "$(in_ns "$PBS_EXEC/bin/pbsnodes" "$PBS_HOSTNAME" 2>/dev/null)" 'state = free' && return
        sleep 2
    done
    die "node $PBS_HOSTNAME is not free: $(in_ns "$PBS_EXEC/bin/pbsnodes" "$PBS_HOSTNAME" 2>&1 | grep state | tr -s ' ')"
}

up() {
    install_deps
    build_pbs
    netns_up
    configure_pbs
    start_pbs
    settings
    say "PBS is up: server $PBS_HOSTNAME ($NS_ADDR), build queue $BUILD_QUEUE"
}

down() {
    if netns_exists && [ -x "$PBS_EXEC/libexec/pbs_init.d" ]; then
        say "stopping PBS"
        in_ns "$PBS_EXEC/libexec/pbs_init.d" stop >/var/tmp/nixmod-pbs-stop.log 2>&1 \
            || say "pbs_init.d stop said: $(tail -n 2 /var/tmp/nixmod-pbs-stop.log | tr '\n' ' ')"
    fi
    if netns_exists; then
        # anything still running in the namespace is ours (PBS daemons, postgres)
        local pids
        pids="$(ip netns pids "$NETNS" 2>/dev/null || true)"
        [ -n "$pids" ] && die "processes still in netns $NETNS after pbs_init.d stop: $pids"
        ip netns del "$NETNS" || die "ip netns del $NETNS failed"
    fi
    ip link show "$VETH_HOST" >/dev/null 2>&1 && ip link del "$VETH_HOST"
    if grep -qF "$HOSTS_MARKER" /etc/hosts; then
        local tmp
        tmp="$(mktemp /etc/hosts.XXXXXX)"
        grep -vF "$HOSTS_MARKER" /etc/hosts >"$tmp" || true
        chmod 644 "$tmp"
        # /etc/hosts may be a bind mount (containers): overwrite in place
        cat "$tmp" >/etc/hosts
        rm -f "$tmp"
    fi
    say "PBS is down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) server_answers || die "the PBS server does not answer 'qstat -B'" ;;
    build) install_deps; build_pbs ;;
    *) printf 'usage: %s up|down|status\n' "$0" >&2; exit 2 ;;
esac
