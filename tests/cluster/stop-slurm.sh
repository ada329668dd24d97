#!/usr/bin/env bash
# stop-slurm.sh - stop the single-node cluster started by start-slurm.sh.
#
# Cancels all jobs first (waiting up to KillWait + 15 s for them to go), then
# stops slurmd, slurmctld, slurmdbd, the private accounting MariaDB
# (127.0.0.1:3307) and munged, each by the PID in its pid file.  Nothing else
# is touched; in particular the project's MariaDB on 3306 keeps running.
#
#   --wipe   also delete slurmctld's saved state (job ids restart at 1), the
#            accounting database and the logs, for a pristine next start.
#
# Needs root.  Safe to run when nothing is running.  Packages stay installed.
set -uo pipefail

wipe=0
case "${1:-}" in
    "") ;;
    --wipe) wipe=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--wipe]" >&2; exit 2 ;;
esac
[[ $(id -u) == 0 ]] || { echo "stop-slurm: must be run as root" >&2; exit 1; }

START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'stop-slurm [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
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

# terminate PIDFILE:NAME...: SIGTERM them together, wait up to 15 s, SIGKILL leftovers
terminate() {
    local spec file name pid pids=() n alive
    for spec in "$@"; do
        file=${spec%:*} name=${spec##*:}
        if running "$file" "$name"; then
            pid=$(tr -cd '0-9' <"$file")
            say "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        fi
        rm -f "$file"
    done
    ((${#pids[@]})) || return 0
    for ((n = 0; n < 300; n++)); do
        alive=()
        for pid in "${pids[@]}"; do live "$pid" && alive+=("$pid"); done
        ((${#alive[@]})) || return 0
        sleep 0.05
    done
    say "still alive after 15 s, sending SIGKILL to ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null
    sleep 0.2
}

# Cancel jobs while the controller and slurmd can still clean them up, so no
# slurmstepd or job process outlives the cluster.
if running /run/slurmctld.pid slurmctld && running /run/slurmd.pid slurmd; then
    if [[ -n $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]]; then
        say "cancelling all jobs"
        for u in $(squeue -h -o %u 2>/dev/null | sort -u); do scancel -u "$u" 2>/dev/null; done
        kw=$(scontrol show config 2>/dev/null | awk '$1 == "KillWait" { print $3 }')
        deadline=$((SECONDS + ${kw:-30} + 15))
        while ((SECONDS < deadline)); do
            [[ -z $(timeout 10 squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]] && break
            sleep 0.1
        done
    fi
fi

terminate /run/slurmd.pid:slurmd /run/slurmctld.pid:slurmctld
# slurmdbd after slurmctld, which sends it the last accounting records
terminate /run/slurmdbd.pid:slurmdbd
terminate /run/slurm-mariadb/mysqld.pid:mariadbd /run/munge/munged.pid:munged

if ((wipe)); then
    say "wiping slurmctld state, accounting database and logs"
    rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/* /var/lib/slurm/mariadb
    rm -f /var/log/slurm/*.log /var/log/slurm/mariadb.err
fi
say "stopped"
