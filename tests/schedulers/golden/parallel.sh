#!/bin/bash
#
# Written by djhpc: 11 parallel task(s), each one populate worker for my_pipeline.Analysis.
# note: the parallel scheduler ignores these profile settings: partition, account, qos, time, cpus, mem, gpus, nodes, output, error, mail_user, mail_type, extra_directives, after, signal_seconds
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=parallel
# after the exec below, $$ is GNU parallel itself
export DJHPC_JOB_ID="$$"
export DJHPC_TASK_OFFSET=0
export DJHPC_TASK_COUNT=11
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# bash SCRIPT                   runs every task (and starts a new joblog)
# bash SCRIPT --resume-failed   runs again the tasks that failed, and those that never ran
resume=()
case "${1:-}" in
    "") ;;
    --resume-failed) resume=(--resume-failed) ;;
    *) echo "usage: $0 [--resume-failed]" >&2; exit 2 ;;
esac
joblog="${DJHPC_JOBLOG:-${BASH_SOURCE[0]:-djhpc-parallel}.joblog}"
job_line='export DJHPC_TASK_ID="$PARALLEL_SEQ"; exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '"'"'{"subject": 1}'"'"''
export PARALLEL_SHELL="$BASH"
exec parallel --will-cite -j 4 --joblog "$joblog" --halt never --line-buffer \
    --tagstring 'task {#}' ${resume[@]+"${resume[@]}"} \
    < <(for _ in $(seq 1 11); do printf '%s\n' "$job_line"; done)
