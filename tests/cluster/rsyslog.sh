#!/usr/bin/env bash
# The rig's syslog daemon, which files nixmod's usage records (tag
# nixmod-usage, sent by lua/SitePackage.lua at every `module load`) into
# $USAGE_LOG, as a site's rsyslog would. Called by up.sh ("up") and down.sh
# ("down"); idempotent, no systemd: rsyslogd is started by hand with its own
# config and pid file, and stopped by that pid file (lib.sh's stop).
#
# The rig's rsyslogd reads only its own config ($RIG_CONF): imuxsock with
# SysSock.Annotate and SysSock.ParseTrusted, so that every line carries the
# sender's kernel-checked uid ($!uid), not only the user= that the sender
# typed (any user can `logger -t nixmod-usage user=alice`). The rule itself
# is $RULE_CONF, the same lines README.md tells sites to add.
# An rsyslogd that the rig did not start (Debian's, pid file /run/rsyslogd.pid)
# owns /dev/log: the rig leaves it alone and says what to add to it.
set -euo pipefail
say() { printf '[rsyslog] %s\n' "$*" >&2; }
die() { printf '[rsyslog] FAILED: %s\n' "$*" >&2; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root"

up() {
    if ! dpkg-query -W -f='${Status}' rsyslog 2>/dev/null | grep -q "install ok installed"; then
        say "apt-get install rsyslog"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null || die "apt-get update failed"
        apt-get install -y -q rsyslog >/dev/null || die "apt-get install rsyslog failed"
    fi
    if pid="$(pid_of "$SYSTEM_RSYSLOG_PIDFILE" rsyslogd)"; then
        die "an rsyslogd the rig did not start runs (pid $pid, $SYSTEM_RSYSLOG_PIDFILE) and owns /dev/log; add $RULE_CONF's lines and SysSock.Annotate/ParseTrusted to its config, or stop it"
    fi
    mkdir -p "$(dirname "$USAGE_LOG")" /etc/rsyslog.d
    local changed=0 new
    new="$(mktemp)"
    cat > "$new" <<EOF
$MARKER: nixmod's usage records (README "Disk and usage").
template(name="nixmodUsage" type="string"
         string="%timegenerated:::date-rfc3339% uid=%\$!uid% host=%hostname%%msg%\n")
if \$syslogtag startswith "nixmod-usage" then {
    action(type="omfile" file="$USAGE_LOG" template="nixmodUsage"
           fileCreateMode="0640" fileGroup="nix-users")
    stop
}
EOF
    cmp -s "$new" "$RULE_CONF" || { mv "$new" "$RULE_CONF"; changed=1; }
    rm -f "$new"
    new="$(mktemp)"
    cat > "$new" <<EOF
$MARKER: the rig's own rsyslogd (started by tests/cluster/rsyslog.sh, not Debian's).
global(workDirectory="/var/spool/rsyslog")
module(load="imuxsock" SysSock.Annotate="on" SysSock.ParseTrusted="on")
include(file="$RULE_CONF")
*.*;auth,authpriv.none -/var/log/syslog
EOF
    cmp -s "$new" "$RIG_CONF" || { mv "$new" "$RIG_CONF"; changed=1; }
    rm -f "$new"
    chmod 644 "$RULE_CONF" "$RIG_CONF"
    mkdir -p /var/spool/rsyslog
    if [ "$changed" = 1 ]; then stop "$RIG_RSYSLOG_PIDFILE" rsyslogd || exit 1; fi
    if ! pid_of "$RIG_RSYSLOG_PIDFILE" rsyslogd >/dev/null; then
        rsyslogd -N1 -f "$RIG_CONF" >/dev/null 2>&1 || die "rsyslogd -N1 -f $RIG_CONF: the config does not check"
        # a pid file with no rsyslogd of ours behind it (a machine restored after a kill,
        # as CI finds it): rsyslogd refuses to start over a pid file that exists
        rm -f "$RIG_RSYSLOG_PIDFILE"
        say "starting rsyslogd ($RIG_CONF, usage records into $USAGE_LOG)"
        rsyslogd -f "$RIG_CONF" -i "$RIG_RSYSLOG_PIDFILE" || die "rsyslogd did not start"
        for _ in $(seq 50); do
            pid_of "$RIG_RSYSLOG_PIDFILE" rsyslogd >/dev/null && [ -S /dev/log ] && break
            sleep 0.1
        done
        pid_of "$RIG_RSYSLOG_PIDFILE" rsyslogd >/dev/null && [ -S /dev/log ] \
            || die "rsyslogd did not create /dev/log"
    fi
}

down() {
    stop "$RIG_RSYSLOG_PIDFILE" rsyslogd
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) die "usage: $0 up|down" ;;
esac
