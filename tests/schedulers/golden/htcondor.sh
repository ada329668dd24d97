#!/bin/bash
#condor # HTCondor submit description: 11 job(s), $(Process) 0..10 is djhpc task $(Process) + 1
#condor universe = vanilla
#condor executable = /bin/bash
#condor arguments = "'$(djhpc_script)'"
#condor transfer_executable = false
#condor should_transfer_files = NO
#condor djhpc_task = $(Process) + 1
#condor batch_name = dj analysis
#condor # only what the task needs, never getenv = true (this shell's whole environment)
#condor environment = "DJHPC_CONDOR_CLUSTER=$(Cluster) DJHPC_CONDOR_TASK=$INT(djhpc_task,%d) PATH='$ENV(PATH)' HOME='$ENV(HOME)'"
#condor initialdir = /scratch/me/my project
#condor output = logs/djhpc-$(Cluster)_$INT(djhpc_task,%d).out
#condor error = logs/djhpc-$(Cluster)_$INT(djhpc_task,%d).err
#condor log = logs/djhpc-$(Cluster)_$INT(djhpc_task,%d).log
#condor request_cpus = 4
#condor request_memory = 8192
#condor request_gpus = 1
#condor accounting_group = lab-42
#condor # the time limit: removed (SIGTERM, then SIGKILL) once it has run this long
#condor periodic_remove = (JobStatus == 2) && ((time() - EnteredCurrentStatus) > 93600)
#condor # condor_rm, periodic_remove and eviction: SIGTERM first, so the worker gives its keys back
#condor kill_sig = SIGTERM
#condor notify_user = me@example.org
#condor notification = Complete
#condor # the throttle: at most this many jobs of the cluster in the queue (late materialization) at once
#condor max_materialize = 4
#condor queue 11
#
# Written by djhpc: 11 htcondor task(s), each one populate worker for my_pipeline.Analysis.
# note: partition 'debug': HTCondor has no queues, ignored (extra_directives can set requirements)
# note: qos 'normal': no HTCondor equivalent, ignored (extra_directives can set requirements)
# note: gpu_type 'a100' has no portable HTCondor form: ignored (extra_directives can set require_gpus)
# note: HTCondor sends no early warning: workers get SIGTERM at the time limit (signal_seconds unused)
# note: the time limit is a periodic_remove, checked every PERIODIC_EXPR_INTERVAL (60 s)
# note: extra directive '--constraint=haswell' is not an HTCondor submit command (NAME = VALUE): left out
set -euo pipefail

cd '/scratch/me/my project'

# setup from the profile, verbatim shell; nounset is off while it runs because module,
# conda and venv scripts often read variables that are not set
set +u
module load python/3.11
echo "setup sees ${UNSET_IN_SETUP}"
set -u

export DJHPC_SCHEDULER=htcondor
# the submit description's environment: the cluster id, and the task index $(Process) + 1
export DJHPC_JOB_ID="${DJHPC_CONDOR_CLUSTER}"
export DJHPC_TASK_ID="${DJHPC_CONDOR_TASK}"
export DJHPC_TASK_OFFSET=0
export DJHPC_TASK_COUNT=11
export DJHPC_DATABASE_URL_FILE='/home/me/.djhpc/db url'

# exec: the worker takes this shell's place, so the scheduler's signals reach it directly
exec djhpc work my_pipeline.Analysis --max-calls 10 --restrict '{"subject": 1}'
