#!/bin/bash
#BSUB -J "dj analysis[1-1000]%4"
#BSUB -q debug
#BSUB -P lab-42
#BSUB -W 26:00
#BSUB -n 4
#BSUB -R span[hosts=1]
#BSUB -R rusage[mem=8192MB]
#BSUB -M 8192MB
#BSUB -gpu num=1:gmodel=a100
#BSUB -o logs/djhpc-%J_%I.out
#BSUB -e logs/djhpc-%J_%I.err
#BSUB -u me@example.org
#BSUB -N
#BSUB -w ended(1234)
#BSUB -wa USR1
#BSUB -wt 2
#BSUB -rn
# extra_directives from the profile, inserted verbatim:
#BSUB --constraint=haswell
# a comment kept as it is
#
# Written by djhpc: 1000 lsf task(s), each one populate worker for my_pipeline.Analysis.
# note: qos 'normal' has no LSF equivalent: ignored (extra_directives can set -sla)
# note: output 'logs/djhpc-%A_%a.out': SLURM's %A and %a written as LSF's %J and %I
# note: error 'logs/djhpc-%A_%a.err': SLURM's %A and %a written as LSF's %J and %I
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=lsf
export DJHPC_JOB_ID="${LSB_JOBID}"
export DJHPC_TASK_ID="${LSB_JOBINDEX}"
export DJHPC_TASK_OFFSET=1000
export DJHPC_TASK_COUNT=2500
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# exec: the worker takes this shell's place, so the scheduler's signals reach it directly
exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}'
