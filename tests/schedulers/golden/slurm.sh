#!/bin/bash
#SBATCH --job-name="dj analysis"
#SBATCH --array=1-11%4
#SBATCH --partition=debug
#SBATCH --account=lab-42
#SBATCH --qos=normal
#SBATCH --time=1-02:00:00
#SBATCH --nodes=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8192M
#SBATCH --gres=gpu:a100:1
#SBATCH --output=logs/djhpc-%A_%a.out
#SBATCH --error=logs/djhpc-%A_%a.err
#SBATCH --mail-user=me@example.org
#SBATCH --mail-type=END,FAIL
#SBATCH --dependency=afterany:1234
#SBATCH --signal=B:USR1@90
#SBATCH --no-requeue
# extra_directives from the profile, inserted verbatim:
#SBATCH --constraint=haswell
# a comment kept as it is
#
# Written by djhpc: 11 slurm task(s), each one populate worker for my_pipeline.Analysis.
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=slurm
export DJHPC_JOB_ID="${SLURM_ARRAY_JOB_ID}"
export DJHPC_TASK_ID="${SLURM_ARRAY_TASK_ID}"
export DJHPC_TASK_OFFSET=0
export DJHPC_TASK_COUNT=11
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# exec: the worker takes this shell's place, so the scheduler's signals reach it directly
exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}'
