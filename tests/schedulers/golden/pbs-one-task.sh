#!/bin/bash
#PBS -N "dj analysis"
#PBS -S /bin/bash
#PBS -q debug
#PBS -A lab-42
#PBS -l walltime=26:00:00
#PBS -l select=1:ncpus=4:mem=8192mb:ngpus=1
#PBS -o logs/djhpc-%A_%a.out
#PBS -e logs/djhpc-%A_%a.err
#PBS -M me@example.org
#PBS -m ea
#PBS -W depend=afterany:1234
#PBS -r n
# extra_directives from the profile, inserted verbatim:
#PBS --constraint=haswell
# a comment kept as it is
#
# Written by djhpc: 1 pbs task(s), each one populate worker for my_pipeline.Analysis.
# note: qos 'normal' has no PBS equivalent: ignored (extra_directives can set one)
# note: PBS sends no early warning: workers get SIGTERM at the walltime (signal_seconds unused)
# note: output 'logs/djhpc-%A_%a.out' has SLURM placeholders (%A, %a), which PBS writes as they are
# note: error 'logs/djhpc-%A_%a.err' has SLURM placeholders (%A, %a), which PBS writes as they are
# note: gpu_type 'a100' has no portable PBS form: ignored (extra_directives can set one)
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=pbs
# PBS_JOBID is 123[4].server: the job id is the number in front
DJHPC_JOB_ID="${PBS_JOBID%%.*}"
export DJHPC_JOB_ID="${DJHPC_JOB_ID%%\[*}"
export DJHPC_TASK_ID=1
export DJHPC_TASK_OFFSET=0
export DJHPC_TASK_COUNT=1
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# exec: the worker takes this shell's place, so the scheduler's signals reach it directly
exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}'
