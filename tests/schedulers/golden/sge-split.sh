#!/bin/bash
#$ -N dj_analysis
#$ -S /bin/bash
#$ -cwd
#$ -t 1-1000
#$ -tc 4
#$ -q debug
#$ -A lab-42
#$ -pe smp 4
#$ -l h_rt=26:00:00
#$ -l s_rt=25:58:30
#$ -l h_vmem=2048M
#$ -o logs/djhpc-$JOB_ID_$TASK_ID.out
#$ -e logs/djhpc-$JOB_ID_$TASK_ID.err
#$ -M me@example.org
#$ -m ea
#$ -hold_jid 1234
#$ -notify
#$ -r n
#$ -v PYTHONPATH
# extra_directives from the profile, inserted verbatim:
#$ --constraint=haswell
# a comment kept as it is
#
# Written by djhpc: 1000 sge task(s), each one populate worker for my_pipeline.Analysis.
# note: job name 'dj analysis' is not a Grid Engine name: submitted as 'dj_analysis'
# note: qos 'normal' has no Grid Engine equivalent: ignored (extra_directives can set one)
# note: output 'logs/djhpc-%A_%a.out': SLURM's placeholders written as Grid Engine's
# note: error 'logs/djhpc-%A_%a.err': SLURM's placeholders written as Grid Engine's
# note: h_vmem is per slot: 8192M over 4 slots is 2048M each
set -euo pipefail

# the queue may start bash as a login shell, whose profile sets its own PATH: the submit host's goes first,
# so the task finds the djhpc and python that djhpc submit found
export PATH="${SGE_O_PATH:+$SGE_O_PATH:}$PATH"
cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=sge
export DJHPC_JOB_ID="${JOB_ID}"
export DJHPC_TASK_ID="${SGE_TASK_ID}"
# Grid Engine tells a task no end time: h_rt counts from the task's start, which is now
export DJHPC_END_TIME="$(( $(date +%s) + 93600 ))"
export DJHPC_TASK_OFFSET=1000
export DJHPC_TASK_COUNT=2500
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# exec: the worker takes this shell's place, so the scheduler's signals reach it directly
exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}'
