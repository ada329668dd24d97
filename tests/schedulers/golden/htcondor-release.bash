#!/bin/bash
#condor # HTCondor submit description: djhpc's --after for cluster 4243; its script is this file
#condor universe = local
#condor executable = /bin/bash
#condor arguments = "'$(djhpc_script)'"
#condor batch_name = djhpc-after-4243
#condor environment = "PATH='$ENV(PATH)' HOME='$ENV(HOME)'"
#condor initialdir = /scratch/me/my project/.djhpc/scripts
#condor output = djhpc-after-4243.out
#condor error = djhpc-after-4243.out
#condor log = djhpc-after-4243.log
#condor queue 1
#
# Written by djhpc: releases cluster 4243 once 1234 have ended (afterany).
set -u
held=4243
after=(1234)
kind=afterany
poll="${DJHPC_AFTER_POLL_SECONDS:-30}"
constraint='ClusterId == 1234'

# the ClusterId of each job of these clusters still in the queue; nothing when none is; status 1 when the
# schedd did not answer (then nothing is decided: ask again later)
queued() {
    condor_q -af ClusterId "$@" || return 1
}
# JobStatus of each job of the awaited clusters still in the queue
statuses() {
    condor_q -af JobStatus "${after[@]}" || return 1
}

while :; do
    if out=$(queued "$held"); then
        if [ -z "$out" ]; then
            echo "djhpc: cluster $held has left the queue (removed?): nothing to release"
            exit 0
        fi
        if now=$(statuses); then
            if [ -z "$now" ]; then
                break  # every awaited job has left the queue
            fi
            if [ "$kind" = after ] && printf '%s\n' "$now" | grep -qx 2; then
                break  # "after": one of them has started
            fi
        fi
    fi
    sleep "$poll"
done

ok=yes
if [ "$kind" = afterok ] || [ "$kind" = afternotok ]; then
    # one "JobStatus ExitCode" line a finished job: 4 0 is a job that completed with exit status 0
    while ! ended=$(condor_history -af JobStatus ExitCode -constraint "$constraint"); do
        sleep "$poll"
    done
    bad=$(printf '%s\n' "$ended" | grep -cvx '4 0' || true)
    if [ -z "$ended" ]; then
        bad=1  # no record of them at all: nothing says they succeeded
    fi
    if [ "$kind" = afterok ] && [ "$bad" != 0 ]; then
        ok=no
    fi
    if [ "$kind" = afternotok ] && [ "$bad" = 0 ]; then
        ok=no
    fi
fi

if [ "$ok" = yes ]; then
    echo "djhpc: ${after[*]} ended ($kind met): releasing cluster $held"
    exec condor_release "$held"
fi
echo "djhpc: ${after[*]} ended, $kind cannot be met: removing cluster $held, which would wait forever" >&2
condor_rm "$held"
exit 1
