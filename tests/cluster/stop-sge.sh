#!/usr/bin/env bash
# stop-sge.sh - stop the one-host Grid Engine cell started by start-sge.sh.
#
# Deletes every job first (qdel: jobs submitted with -notify get SIGUSR2, then SIGKILL after the queue's
# notify window) and waits up to 30 s for them to go, then stops sge_execd and sge_qmaster, each by the PID
# in its pid file. The cell's configuration and accounting stay, so start-sge.sh brings it back as it was.
#
# Needs root. Safe to run when nothing is running. Packages stay installed.
set -uo pipefail

case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "usage: $0" >&2; exit 2 ;;
esac
[[ $(id -u) == 0 ]] || { echo "stop-sge: must be run as root" >&2; exit 1; }

START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'stop-sge [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
# live PID: exists and is not a zombie (a container's PID 1 may reap late)
live() {
    local st
    st=$(awk '/^State:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
# running PIDFILE NAME: PIDFILE names a live process called NAME
running() {
    local pid
    pid=$(tr -cd '0-9' 2>/dev/null <"$1")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && live "$pid"
}
# terminate PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
terminate() {
    running "$1" "$2" || return 0
    local pid n
    pid=$(tr -cd '0-9' <"$1")
    say "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((n = 0; n < 300; n++)); do
        live "$pid" || return 0
        sleep 0.05
    done
    say "$2 still alive after 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
}

SGE_ROOT=/var/lib/gridengine
SGE_CELL=default
if [[ -r /etc/default/gridengine ]]; then
    root=$(sed -n 's/^SGE_ROOT=//p' /etc/default/gridengine | tail -n1)
    cell=$(sed -n 's/^SGE_CELL=//p' /etc/default/gridengine | tail -n1)
    SGE_ROOT=${root:-$SGE_ROOT} SGE_CELL=${cell:-$SGE_CELL}
fi
export SGE_ROOT SGE_CELL
BOOTSTRAP=$SGE_ROOT/$SGE_CELL/common/bootstrap
[[ -f $BOOTSTRAP ]] || { say "no cell $SGE_CELL under $SGE_ROOT: nothing to stop"; exit 0; }
QMASTER_PID=$(awk '$1 == "qmaster_spool_dir" { print $2 }' "$BOOTSTRAP")/qmaster.pid

# delete the jobs while the execd can still end them, so no job outlives the cell
if running "$QMASTER_PID" sge_qmaster; then
    if [[ -n $(timeout 10 qstat -u '*' 2>/dev/null) ]]; then
        say "deleting all jobs"
        timeout 10 qdel -u '*' >/dev/null 2>&1
        deadline=$((SECONDS + 30))
        while ((SECONDS < deadline)) && [[ -n $(timeout 10 qstat -u '*' 2>/dev/null) ]]; do sleep 0.2; done
        [[ -z $(timeout 10 qstat -u '*' 2>/dev/null) ]] || timeout 10 qdel -f -u '*' >/dev/null 2>&1
    fi
fi

for pidfile in /var/spool/gridengine/execd/*/execd.pid; do
    [[ -f $pidfile ]] && terminate "$pidfile" sge_execd
done
terminate "$QMASTER_PID" sge_qmaster
say "stopped"
