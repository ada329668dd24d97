#!/usr/bin/env bash
# start-slurm.sh - bring up a real one-node SLURM 22.05 cluster on localhost.
#
# Uses the Debian 12 packages (munge, slurmctld, slurmd, slurm-client and, for
# `sacct`, slurmdbd backed by a private MariaDB on 127.0.0.1:3307).  Installs
# them with apt-get when missing.  Needs root.  Does not use systemd: every
# daemon is started directly, with its stdio on /dev/null so that
# `out=$(start-slurm.sh)` or `start-slurm.sh | tee log` returns.
#
# Idempotent: a second run only (re)starts what is not running, or restarts
# slurmctld/slurmd when the generated slurm.conf differs from the one on disk
# (`scontrol reconfigure` instead when only partitions differ).
# Exits 0 only once `sinfo` reports the node usable AND a probe batch job ran to
# COMPLETED.  Stop with stop-slurm.sh.
#
# Environment (all optional):
#   SLURM_KILLWAIT=30        seconds between SIGTERM and SIGKILL (time limit,
#                            scancel); tests usually want 5
#   SLURM_MAXARRAYSIZE=      if set, MaxArraySize=N (otherwise slurm's default,
#                            1001); MaxJobCount is raised to keep room for it
#   SLURM_OVERSUBSCRIBE=8    partition OverSubscribe=FORCE:N, so N 1-CPU jobs
#                            share each CPU; 1 = strictly one job per CPU
#   SLURM_ACCOUNTING=1       1 = slurmdbd + private MariaDB so sacct works;
#                            0 = no accounting (sacct prints "disabled")
#   SLURM_DB_PORT=3307       TCP port of the private MariaDB (127.0.0.1 only)
#   SLURM_CPUS=$(nproc)      CPUs= of the node
#   SLURM_REALMEMORY=        RealMemory= in MB (default: 90% of MemTotal)
#   SLURM_MINJOBAGE=300      seconds a finished job stays visible to squeue
#   SLURM_PROBE=1            0 = skip the probe job (not recommended)
#   SLURM_START_TIMEOUT=60   seconds to wait for each daemon and for the node
#
# The node is `hostname -s`, the partitions are `debug` (default) and `gpu`
# (the same node, no GPUs: a stand-in for a GPU partition, reached with
# `sbatch --partition=gpu`), the cluster name is `localcluster`.  Logs:
# /var/log/slurm/.
set -euo pipefail

KILLWAIT=${SLURM_KILLWAIT:-30}
MAXARRAY=${SLURM_MAXARRAYSIZE:-}
OVERSUB=${SLURM_OVERSUBSCRIBE:-8}
ACCOUNTING=${SLURM_ACCOUNTING:-1}
DB_PORT=${SLURM_DB_PORT:-3307}
CPUS=${SLURM_CPUS:-$(nproc)}
REALMEM=${SLURM_REALMEMORY:-$(awk '/^MemTotal:/ { m = int($2 / 1024 * 0.9); print (m < 100 ? 100 : m) }' /proc/meminfo)}
MINJOBAGE=${SLURM_MINJOBAGE:-300}
PROBE=${SLURM_PROBE:-1}
TIMEOUT=${SLURM_START_TIMEOUT:-60}

PARTITION=debug
GPU_PARTITION=gpu
CLUSTER=localcluster
DB_PASS=slurm-local-only          # the private MariaDB listens on 127.0.0.1 only
ETC=/etc/slurm
LOGS=/var/log/slurm
CTLD_STATE=/var/lib/slurm/slurmctld
SLURMD_SPOOL=/var/lib/slurm/slurmd
DB_DATA=/var/lib/slurm/mariadb
DB_RUN=/run/slurm-mariadb
DB_SOCK=$DB_RUN/mysqld.sock

# -------------------------------------------------------------- helpers ---
START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'start-slurm [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
fail() { say "FAILED: $*"; exit 1; }
# shellcheck source=apt-install.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/apt-install.sh"

for v in KILLWAIT OVERSUB CPUS REALMEM MINJOBAGE DB_PORT TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || fail "$v must be a non-negative integer, got '${!v}'"
done
[[ -z $MAXARRAY || $MAXARRAY =~ ^[0-9]+$ ]] || fail "SLURM_MAXARRAYSIZE must be an integer"
[[ $(id -u) == 0 ]] || fail "must be run as root"

NODE=$(hostname -s 2>/dev/null || true)
NODE=${NODE:-$(uname -n)}
NODE=${NODE%%.*}

# live PID: the process exists and is not a zombie.  (PID 1 in a container is
# often not a real init and may reap orphaned daemons late: a killed daemon
# then lingers as a zombie whose /proc entry still carries its name.)
live() {
    local st
    st=$(awk '/^State:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
pid_in() { tr -cd '0-9' 2>/dev/null <"$1" || true; }
# running PIDFILE NAME: PIDFILE names a live process called NAME
running() {
    local pid
    pid=$(pid_in "$1")
    [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && live "$pid"
}

# halt PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
halt() {
    running "$1" "$2" || return 0
    local pid n
    pid=$(pid_in "$1")
    say "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((n = 0; n < 300; n++)); do
        live "$pid" || { rm -f "$1"; return 0; }
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

# until_ok WHAT CMD...: retry CMD (each try capped at 10 s) until it succeeds,
# for at most $TIMEOUT seconds of wall-clock time
until_ok() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until timeout 10 "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "gave up waiting for $what after ${TIMEOUT}s (logs in $LOGS)"
        sleep 0.05
    done
}

# write_if_changed FILE CONTENT: returns 0 if FILE was (re)written
write_if_changed() {
    if [[ -f $1 ]] && [[ $(<"$1") == "$2" ]]; then return 1; fi
    printf '%s\n' "$2" >"$1"
    return 0
}

# ------------------------------------------------------------- packages ---
wanted=(munge slurmctld slurmd slurm-client)
[[ $ACCOUNTING == 1 ]] && wanted+=(slurmdbd mariadb-server-core mariadb-client-core)
missing=()
for p in "${wanted[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    apt_install /tmp/start-slurm-apt.log "${missing[@]}"
    say "packages installed"
fi
getent passwd slurm >/dev/null || fail "user 'slurm' missing (package install incomplete?)"
getent passwd munge >/dev/null || fail "user 'munge' missing (package install incomplete?)"

install -d -m 755 "$ETC"
install -d -o slurm -g slurm -m 755 "$LOGS" "$CTLD_STATE" "$SLURMD_SPOOL"

# ---------------------------------------------------------------- munge ---
# systemd would create /run/munge (RuntimeDirectory); without it we must.
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge /etc/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "generating /etc/munge/munge.key"
    mungekey --create --force --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 600 /etc/munge/munge.key
if ! running /run/munge/munged.pid munged; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 || fail "munged did not start (see /var/log/munge/munged.log)"
fi
until_ok "munge round trip" bash -c 'munge -n | unmunge'

# ----------------------------------------------------------- slurm.conf ---
if [[ $ACCOUNTING == 1 ]]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819"
else
    acct_lines="AccountingStorageType=accounting_storage/none"
fi
if ((OVERSUB > 1)); then share="OverSubscribe=FORCE:$OVERSUB"; else share="OverSubscribe=NO"; fi
array_lines=""
if [[ -n $MAXARRAY ]]; then
    maxjobs=$((MAXARRAY * 2 > 10000 ? MAXARRAY * 2 : 10000))
    array_lines="MaxArraySize=$MAXARRAY
MaxJobCount=$maxjobs"
fi

slurm_conf="# Written by tests/cluster/start-slurm.sh; edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# no cgroups in a container: track processes by parent pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
# without this, new jobs and array tasks are only started in 3-second batches
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# a job whose afterok dependency can never be met is cancelled, not left pending
DependencyParameters=kill_invalid_depend
KillWait=$KILLWAIT
MinJobAge=$MINJOBAGE
$array_lines
$acct_lines
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP $share
# a stand-in for a GPU partition: the same node, no GPUs
PartitionName=$GPU_PARTITION Nodes=ALL Default=NO MaxTime=INFINITE State=UP $share"

# without partitions and comments: what `scontrol reconfigure` cannot change
settings() { grep -Ev '^(PartitionName=|#)' <<<"$1" || true; }
old_conf=$(cat "$ETC/slurm.conf" 2>/dev/null || true)
conf_changed=0
partitions_only=0
if write_if_changed "$ETC/slurm.conf" "$slurm_conf"; then
    chmod 644 "$ETC/slurm.conf"
    conf_changed=1
    [[ -n $old_conf && $(settings "$old_conf") == $(settings "$slurm_conf") ]] && partitions_only=1
    say "wrote $ETC/slurm.conf"
fi

# ---------------------------------------------- accounting (sacct) -------
if [[ $ACCOUNTING == 1 ]]; then
    # A MariaDB of our own, so the project's server on 3306 is never touched.
    install -d -o slurm -g slurm -m 750 "$DB_DATA"
    install -d -o slurm -g slurm -m 755 "$DB_RUN"
    if ! running "$DB_RUN/mysqld.pid" mariadbd; then
        if [[ ! -d $DB_DATA/mysql ]]; then
            say "initialising accounting database in $DB_DATA"
            mariadb-install-db --no-defaults --user=slurm --datadir="$DB_DATA" \
                --skip-test-db --skip-name-resolve >"$LOGS/mariadb-install.log" 2>&1 ||
                fail "mariadb-install-db (see $LOGS/mariadb-install.log)"
        fi
        say "starting private mariadbd on 127.0.0.1:$DB_PORT"
        setsid /usr/sbin/mariadbd --no-defaults --user=slurm --datadir="$DB_DATA" \
            --socket="$DB_SOCK" --pid-file="$DB_RUN/mysqld.pid" \
            --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
            --innodb-lock-wait-timeout=900 --log-error="$LOGS/mariadb.err" \
            </dev/null >/dev/null 2>&1 &
        until_ok "private mariadbd" mariadb --no-defaults -S "$DB_SOCK" -uroot -e 'SELECT 1'
    fi
    mariadb --no-defaults -S "$DB_SOCK" -uroot -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
        fail "could not create the slurm database user"

    dbd_conf="# Written by tests/cluster/start-slurm.sh; edits are overwritten.
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db"
    if write_if_changed "$ETC/slurmdbd.conf" "$dbd_conf"; then
        say "wrote $ETC/slurmdbd.conf"
        halt /run/slurmdbd.pid slurmdbd
    fi
    # slurmdbd refuses a config not owned by SlurmUser or readable by others
    chown slurm:slurm "$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"
    if ! running /run/slurmdbd.pid slurmdbd; then
        say "starting slurmdbd"
        /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1 || fail "slurmdbd did not start (see $LOGS/slurmdbd.log)"
    fi
    deadline=$((SECONDS + TIMEOUT))
    until clusters=$(timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null); do
        ((SECONDS < deadline)) || fail "gave up waiting for slurmdbd after ${TIMEOUT}s (see $LOGS/slurmdbd.log)"
        sleep 0.1
    done
    if ! grep -qx "$CLUSTER" <<<"$clusters"; then
        say "registering cluster $CLUSTER with slurmdbd"
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
else
    # accounting switched off: stop what an earlier run may have started
    halt /run/slurmdbd.pid slurmdbd
    halt "$DB_RUN/mysqld.pid" mariadbd
fi

# ----------------------------------------------------- slurmctld, slurmd ---
if ((conf_changed)); then
    if ((partitions_only)) && running /run/slurmctld.pid slurmctld && running /run/slurmd.pid slurmd; then
        # partitions can be added or changed in place, so running jobs are not disturbed
        say "partitions changed: scontrol reconfigure"
        timeout 30 scontrol reconfigure >/dev/null 2>&1 || fail "scontrol reconfigure (see $LOGS/slurmctld.log)"
    else
        # AccountingStorageType etc. cannot be changed by `scontrol reconfigure`
        halt /run/slurmd.pid slurmd
        halt /run/slurmctld.pid slurmctld
    fi
fi
if ! running /run/slurmctld.pid slurmctld; then
    say "starting slurmctld"
    /usr/sbin/slurmctld </dev/null >/dev/null 2>&1 || fail "slurmctld did not start (see $LOGS/slurmctld.log)"
fi
until_ok "slurmctld" bash -c 'scontrol ping | grep -q "is UP"'
if ! running /run/slurmd.pid slurmd; then
    say "starting slurmd"
    /usr/sbin/slurmd -N "$NODE" </dev/null >/dev/null 2>&1 || fail "slurmd did not start (see $LOGS/slurmd.log)"
fi

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }
usable() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }
resumed=0
deadline=$((SECONDS + TIMEOUT))
while ((SECONDS < deadline)); do
    usable && break
    state=$(node_state)
    if [[ $state =~ ^(down|drain|fail) ]] && ((!resumed)) && running /run/slurmd.pid slurmd; then
        say "node is '$state'; asking slurmctld to resume it"
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        resumed=1
    fi
    sleep 0.1
done
usable || { sinfo -N -l >&2 || true; fail "node $NODE not usable (state '$(node_state)')"; }
until_ok "partition $GPU_PARTITION" bash -c "sinfo -h -o %R | grep -qx $GPU_PARTITION"

# ------------------------------------------------------------ probe job ---
# slurmctld does not schedule during its first ~3 s; the probe absorbs that
# and proves munge, slurmctld, slurmd and job launch work end to end.  It runs
# on every invocation (about 0.5 s on a warm cluster); on a node whose slots
# are all taken it waits for a free one, up to SLURM_START_TIMEOUT.
if [[ $PROBE == 1 ]]; then
    job=$(cd / && sbatch --parsable --job-name=start-slurm-probe --output=/dev/null --error=/dev/null \
        --time=1 --wrap=true 2>&1) || fail "probe sbatch: $job"
    job=${job%%;*}
    until_ok "probe job $job to finish" bash -c "[[ -z \$(squeue -h -j $job 2>/dev/null) ]]"
    result=$(scontrol -o show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
    [[ $result == JobState=COMPLETED ]] || fail "probe job $job ended as '${result#JobState=}'"
    say "probe job $job completed"
fi

say "ready: node $NODE $(node_state), partitions $PARTITION $GPU_PARTITION, CPUs=$CPUS, $share, KillWait=$KILLWAIT," \
    "MaxArraySize=${MAXARRAY:-default}, accounting=$ACCOUNTING"
sinfo
