#!/bin/bash
#
# Written by djhpc: 4 local task(s), each one populate worker for my_pipeline.Analysis.
# note: the local scheduler ignores these profile settings: partition, account, qos, time, cpus, mem, gpus, nodes, output, error, mail_user, mail_type, extra_directives, after, signal_seconds
# note: throttle 4 < 11 tasks: 4 workers run
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=local
export DJHPC_JOB_ID="$$"
export DJHPC_TASK_OFFSET=0
export DJHPC_TASK_COUNT=4
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

pids=()
interrupted=0
forward() {
    interrupted=1
    kill -s "$1" ${pids[@]+"${pids[@]}"} 2>/dev/null || true
}
# TERM, HUP and USR1 sent to this script go on to every worker. INT does not: Ctrl-C in a terminal
# reaches every worker already (same process group), and a second INT means "stop at once".
trap 'forward TERM' TERM
trap 'forward HUP' HUP
trap 'forward USR1' USR1
trap 'interrupted=1' INT

for task_id in $(seq 1 4); do
    DJHPC_TASK_ID="$task_id" djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}' &
    pids+=("$!")
done

worst=0
for pid in "${pids[@]}"; do
    while :; do
        interrupted=0
        status=0
        wait "$pid" || status=$?
        # a trapped signal cuts wait short (status > 128) while the worker runs on: wait again
        if [ "$interrupted" = 1 ] && [ "$status" -gt 128 ]; then
            continue
        fi
        break
    done
    if [ "$status" -gt "$worst" ]; then
        worst=$status
    fi
done
exit "$worst"
