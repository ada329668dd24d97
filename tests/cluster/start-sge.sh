#!/usr/bin/env bash
# start-sge.sh - bring up a personal one-host Grid Engine cell (Debian's gridengine 8.1.9) on this machine.
#
# Installs gridengine-master, gridengine-exec and gridengine-client with apt-get when missing (about 10 s; no
# daemon starts by itself). Needs root. No systemd: sge_qmaster and sge_execd are started directly, with a
# clean environment (a task must not inherit this shell's variables through the execd) and stdio on
# /dev/null, so that `out=$(start-sge.sh)` returns.
#
# Idempotent: with both daemons up it only re-applies the configuration below (changes take effect at once)
# and returns in well under a second; otherwise it starts what is not running and waits until a probe job
# (qsub -sync y) has run. Stop with stop-sge.sh.
#
# The cell: SGE_ROOT from /etc/default/gridengine (/var/lib/gridengine), cell `default`, the short host
# name as master, submit and execution host (aliased to localhost, which is what the loopback address
# resolves to); queue all.q on @allhosts with SGE_SLOTS slots, parallel environment smp ($pe_slots), shell
# /bin/bash, no load thresholds, notify window SGE_NOTIFY; min_uid/min_gid 0 so root's jobs run; a scheduler
# that runs every second without load adjustments (else a 2-core host starts array tasks one at a time);
# accounting flushed at once, so qacct knows a task as soon as it ends.
#
# Environment (all optional):
#   SGE_SLOTS=16             slots of all.q on this host (tasks running at once)
#   SGE_NOTIFY=00:00:05      time between qdel's SIGUSR2 (jobs submitted with -notify) and SIGKILL
#   SGE_MAX_AJ_TASKS=75000   max_aj_tasks: most tasks in one array (0 = no limit)
#   SGE_MAX_U_JOBS=0         max_u_jobs: most jobs one user may have (0 = no limit)
#   SGE_START_TIMEOUT=60     seconds to wait for each daemon and for the probe job
set -euo pipefail

SLOTS=${SGE_SLOTS:-16}
NOTIFY=${SGE_NOTIFY:-00:00:05}
MAX_AJ_TASKS=${SGE_MAX_AJ_TASKS:-75000}
MAX_U_JOBS=${SGE_MAX_U_JOBS:-0}
TIMEOUT=${SGE_START_TIMEOUT:-60}

START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'start-sge [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
fail() { say "FAILED: $*"; exit 1; }
# shellcheck source=apt-install.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/apt-install.sh"

for v in SLOTS MAX_AJ_TASKS MAX_U_JOBS TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || fail "$v must be a non-negative integer, got '${!v}'"
done
[[ $NOTIFY =~ ^[0-9]+:[0-9]{2}:[0-9]{2}$ ]] || fail "SGE_NOTIFY must be HH:MM:SS, got '$NOTIFY'"
[[ $(id -u) == 0 ]] || fail "must be run as root"

HOST=$(hostname -s 2>/dev/null || true)
HOST=${HOST:-$(uname -n)}
HOST=${HOST%%.*}

# ------------------------------------------------------------- packages ---
missing=()
for p in gridengine-master gridengine-exec gridengine-client; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    apt_install /tmp/start-sge-apt.log "${missing[@]}"
    say "packages installed"
fi

SGE_ROOT=/var/lib/gridengine
SGE_CELL=default
# the packages' own defaults file may move the root or the cell
if [[ -r /etc/default/gridengine ]]; then
    root=$(sed -n 's/^SGE_ROOT=//p' /etc/default/gridengine | tail -n1)
    cell=$(sed -n 's/^SGE_CELL=//p' /etc/default/gridengine | tail -n1)
    SGE_ROOT=${root:-$SGE_ROOT} SGE_CELL=${cell:-$SGE_CELL}
fi
# Debian's qconf, qstat, ... are a wrapper that works out the architecture twice per call (~0.25 s): this
# script calls the binaries behind it, which makes the already-running path a fraction of a second
SGE_ARCH=$("$SGE_ROOT/util/arch" 2>/dev/null || true)
export SGE_ROOT SGE_CELL SGE_ARCH
for tool in qconf qstat qmod qsub; do
    if [[ -n $SGE_ARCH && -x /usr/lib/gridengine/$tool ]]; then
        eval "$tool() { /usr/lib/gridengine/$tool \"\$@\"; }"
    fi
done
COMMON=$SGE_ROOT/$SGE_CELL/common
[[ -f $COMMON/bootstrap ]] || fail "$COMMON/bootstrap missing: the gridengine-master install did not create cell $SGE_CELL"
QMASTER_SPOOL=$(awk '$1 == "qmaster_spool_dir" { print $2 }' "$COMMON/bootstrap")
ADMIN=$(awk '$1 == "admin_user" { print $2 }' "$COMMON/bootstrap")
QMASTER_PID=$QMASTER_SPOOL/qmaster.pid
TMP=$(mktemp -d /tmp/start-sge.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# live PID: the process exists and is not a zombie (a container's PID 1 may reap late)
live() {
    local st
    st=$(awk '/^State:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
# running PIDFILE NAME: PIDFILE names a live process called NAME
running() {
    local pid
    pid=$(tr -cd '0-9' 2>/dev/null <"$1" || true)
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && live "$pid"
}
# the execd writes its pid file in a spool folder named as it resolves its host (here often localhost)
execd_running() {
    local f
    for f in /var/spool/gridengine/execd/*/execd.pid; do
        [[ -f $f ]] && running "$f" sge_execd && return 0
    done
    return 1
}
# until_ok WHAT CMD...: retry CMD (each try capped at 10 s) for at most $TIMEOUT seconds
until_ok() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until timeout 10 "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "gave up waiting for $what after ${TIMEOUT}s (see $QMASTER_SPOOL/messages)"
        sleep 0.05
    done
}
# write_if_changed FILE CONTENT: 0 if FILE was (re)written
write_if_changed() {
    if [[ -f $1 ]] && [[ $(<"$1") == "$2" ]]; then return 1; fi
    printf '%s\n' "$2" >"$1"
    return 0
}
# daemons and their tasks get this environment, not ours
clean_env=(env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "SGE_ROOT=$SGE_ROOT"
    "SGE_CELL=$SGE_CELL")

# --------------------------------------------------------------- qmaster ---
started=0
conf_changed=0
write_if_changed "$COMMON/act_qmaster" "$HOST" && conf_changed=1
write_if_changed "$COMMON/host_aliases" "$HOST localhost" && conf_changed=1
if ((conf_changed)) && running "$QMASTER_PID" sge_qmaster; then
    say "master host changed: restarting sge_qmaster"
    kill -TERM "$(tr -cd '0-9' <"$QMASTER_PID")"
    until ! running "$QMASTER_PID" sge_qmaster; do sleep 0.05; done
fi
if ! running "$QMASTER_PID" sge_qmaster; then
    say "starting sge_qmaster on $HOST"
    install -d -o "$ADMIN" -g "$ADMIN" -m 755 /var/run/gridengine
    "${clean_env[@]}" /usr/sbin/sge_qmaster </dev/null >/dev/null 2>&1 || fail "sge_qmaster did not start (see $QMASTER_SPOOL/messages)"
    started=1
fi
until_ok "sge_qmaster" qconf -sh

# --------------------------------------------------------- configuration ---
# qconf_set KIND NAME FILE: add the object from FILE, or modify it when it exists (same content: no change)
qconf_set() {
    local kind=$1 name=$2 file=$3 show add modify
    case $kind in
        hgrp) show=-shgrp add=-Ahgrp modify=-Mhgrp ;;
        pe) show=-sp add=-Ap modify=-Mp ;;
        queue) show=-sq add=-Aq modify=-Mq ;;
    esac
    if qconf "$show" "$name" >"$TMP/current" 2>/dev/null; then
        # qconf prints values padded and lists folded: compare word for word
        if [[ $(tr -s ' \\\n' ' ' <"$TMP/current") == $(tr -s ' \\\n' ' ' <"$file") ]]; then return 0; fi
        qconf "$modify" "$file" >/dev/null 2>&1 || fail "qconf $modify $name"
    else
        qconf "$add" "$file" >/dev/null 2>&1 || fail "qconf $add $name"
    fi
    say "configured $kind $name"
}
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1 || fail "qconf -as $HOST"

printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$TMP/allhosts"
qconf_set hgrp @allhosts "$TMP/allhosts"

cat >"$TMP/smp" <<'EOF'
pe_name            smp
slots              99999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
qconf_set pe smp "$TMP/smp"

# all.q from qconf's own template: every attribute present in the form this version wants
# (qconf then refuses the template's name and exits 1: the text is all we want)
{ EDITOR=cat qconf -aq 2>/dev/null || true; } | awk -v slots="$SLOTS" -v notify="$NOTIFY" '
    $1 == "qname" { print "qname all.q"; next }
    $1 == "hostlist" { print "hostlist @allhosts"; next }
    $1 == "slots" { print "slots " slots; next }
    $1 == "pe_list" { print "pe_list smp"; next }
    $1 == "shell" { print "shell /bin/bash"; next }
    $1 == "load_thresholds" { print "load_thresholds NONE"; next }
    $1 == "notify" { print "notify " notify; next }
    { print }' >"$TMP/all.q"
grep -q '^qname all.q$' "$TMP/all.q" || fail "qconf -aq printed no queue template"
qconf_set queue all.q "$TMP/all.q"

# global configuration: qconf -Mconf takes a file named as the configuration
mkdir -p "$TMP/conf"
qconf -sconf global | awk -v tasks="$MAX_AJ_TASKS" -v jobs="$MAX_U_JOBS" '
    $1 == "min_uid" || $1 == "min_gid" { print $1 " 0"; next }
    $1 == "max_aj_tasks" { print $1 " " tasks; next }
    $1 == "max_u_jobs" { print $1 " " jobs; next }
    $1 == "reporting_params" {
        print "reporting_params accounting=true reporting=false flush_time=00:00:15 joblog=false " \
              "sharelog=00:00:00 accounting_flush_time=00:00:00"
        skip = /\\$/; next }
    skip { skip = /\\$/; next }
    { print }' | grep -v '^#' >"$TMP/conf/global"
if [[ $(qconf -sconf global | grep -v '^#' | tr -s ' \\\n' ' ') != $(tr -s ' \\\n' ' ' <"$TMP/conf/global") ]]; then
    qconf -Mconf "$TMP/conf/global" >/dev/null 2>&1 || fail "qconf -Mconf global"
    say "configured global: min_uid 0, max_aj_tasks $MAX_AJ_TASKS, max_u_jobs $MAX_U_JOBS"
fi

qconf -ssconf | awk '
    $1 == "schedule_interval" { print $1 " 0:0:1"; next }
    $1 == "flush_submit_sec" || $1 == "flush_finish_sec" { print $1 " 1"; next }
    $1 == "job_load_adjustments" { print $1 " NONE"; next }
    $1 == "load_adjustment_decay_time" { print $1 " 0:0:0"; next }
    { print }' >"$TMP/sconf"
if [[ $(qconf -ssconf | tr -s ' \\\n' ' ') != $(tr -s ' \\\n' ' ' <"$TMP/sconf") ]]; then
    qconf -Msconf "$TMP/sconf" >/dev/null 2>&1 || fail "qconf -Msconf"
    say "configured the scheduler: every second, no load adjustments"
fi

# ----------------------------------------------------------------- execd ---
if ! execd_running; then
    say "starting sge_execd"
    "${clean_env[@]}" /usr/sbin/sge_execd </dev/null >/dev/null 2>&1 || fail "sge_execd did not start"
    started=1
fi
# the queue instance is usable once the execd reports (no u) and nothing disabled or in error
queue_states() { qstat -f -q "all.q@$HOST" 2>/dev/null | awk -v q="all.q@$HOST" '$1 == q { print ($6 == "" ? "ok" : $6) }'; }
deadline=$((SECONDS + TIMEOUT))
while ((SECONDS < deadline)); do
    state=$(queue_states)
    [[ $state == ok ]] && break
    if [[ $state == *E* ]]; then
        say "queue all.q@$HOST in error state: clearing it"
        qmod -c "all.q@$HOST" >/dev/null 2>&1 || true
    fi
    sleep 0.1
done
[[ $(queue_states) == ok ]] || { qstat -f >&2 || true; fail "queue all.q@$HOST not usable (state '$(queue_states)')"; }

# ------------------------------------------------------------- probe job ---
# after a start: prove that submit, scheduling, execution and accounting work end to end
if ((started)); then
    out=$(cd / && timeout "$TIMEOUT" qsub -sync y -terse -b y -N start-sge-probe -o /dev/null -e /dev/null true 2>&1) ||
        fail "probe job: $out"
    say "probe job ${out%%[!0-9]*} ran"
fi

say "ready: cell $SGE_CELL on $HOST, all.q with $SLOTS slots, notify $NOTIFY, max_aj_tasks $MAX_AJ_TASKS," \
    "max_u_jobs $MAX_U_JOBS"
