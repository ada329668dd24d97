"""SLURM: sbatch --parsable to submit, squeue + sacct for task states, scontrol for limits.

squeue -t all knows finished tasks only for MinJobAge (300 s by default); sacct knows them for
good but lags 0.4-4.6 s behind and may show one stale row for a whole array. So squeue wins for
every task it lists and sacct fills in the rest.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.schedulers.base import (
    Scheduler,
    SiteLimits,
    TaskState,
    command_failed,
    listed_names,
    merge_states,
    one_line,
    optional_output,
    run_command,
)

_HINT = "run this on a SLURM login node or use --scheduler local"

# SLURM's long state names -> ours; the rest map to themselves (see TaskState)
_STATE_MAP = {
    "COMPLETING": TaskState.RUNNING,
    "CONFIGURING": TaskState.RUNNING,
    "RESIZING": TaskState.RUNNING,
    "SIGNALING": TaskState.RUNNING,
    "STAGE_OUT": TaskState.RUNNING,
    "REQUEUED": TaskState.PENDING,
    "REQUEUE_FED": TaskState.PENDING,
    "REQUEUE_HOLD": TaskState.PENDING,
    "RESV_DEL_HOLD": TaskState.PENDING,
    "STOPPED": TaskState.SUSPENDED,
    "BOOT_FAIL": TaskState.NODE_FAIL,
    "DEADLINE": TaskState.TIMEOUT,
    "REVOKED": TaskState.CANCELLED,
    "SPECIAL_EXIT": TaskState.FAILED,
}


def slurm_state(word: str) -> TaskState:
    """'CANCELLED by 1000', 'CANCELLED+' or 'OUT_OF_ME+' (truncated) -> TaskState."""
    head = word.strip().split(" ")[0].rstrip("+").upper()
    if head in _STATE_MAP:
        return _STATE_MAP[head]
    if head in TaskState.__members__:
        return TaskState[head]
    if head.startswith("OUT_OF_ME"):
        return TaskState.OUT_OF_MEMORY
    return TaskState.UNKNOWN


def expand_job_ids(field: str) -> list[str]:
    """'12_3' -> ['12_3']; '12_[3-5,7%2]' -> ['12_3', '12_4', '12_5', '12_7']; '12' -> ['12'].
    Steps ('12_3.batch') and het components are not tasks: []."""
    field = field.strip()
    m = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", field)
    if m:
        job, ranges = m.groups()
        ids = []
        for part in ranges.split(","):
            if not part:
                continue
            first, _, last = part.partition("-")
            ids.extend(f"{job}_{i}" for i in range(int(first), int(last or first) + 1))
        return ids
    if re.fullmatch(r"\d+(?:_\d+)?", field):
        return [field]
    if re.fullmatch(r"\d+(?:_\d+)?[.+].*", field):
        return []
    raise SchedulerError(f"cannot read SLURM job id {field!r}: report this with your SLURM version")


def parse_states(text: str, source: str) -> dict[str, TaskState]:
    """Lines of 'JOBID|STATE' (squeue -o '%i|%T', sacct -P -o JobID,State)."""
    states: dict[str, TaskState] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        job_field, sep, state = line.partition("|")
        if not sep:
            raise SchedulerError(f"cannot read {source} output line {one_line(line)!r}: expected JOBID|STATE")
        for key in expand_job_ids(job_field):
            states[key] = slurm_state(state)
    return states


def parse_scontrol_config(text: str) -> dict[str, str]:
    """`scontrol show config` -> {'MaxArraySize': '1001', ...}."""
    config = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", line)
        if m:
            config[m.group(1)] = m.group(2)
    return config


def parse_max_submit(text: str) -> int | None:
    """The lowest number in `sacctmgr -n -P show assoc ... format=MaxSubmit` output, or None."""
    numbers = [int(n) for n in re.findall(r"^\s*(\d+)\s*$", text, flags=re.MULTILINE)]
    return min(numbers) if numbers else None


def squeue_end_time(job_id: str) -> float | None:
    """When SLURM ends this job (epoch seconds), from `squeue -h -j JOB -o %e`; None when it cannot tell
    (no squeue, no answer, or no end: 'Unknown' for a job without a time limit)."""
    try:
        proc = run_command(["squeue", "-h", "-j", str(job_id), "-o", "%e"], hint=_HINT, timeout=20)
    except SchedulerError:
        return None
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return None
    try:
        return dt.datetime.fromisoformat(lines[0].strip()).timestamp()  # local time, as SLURM prints it
    except ValueError:
        return None


class SlurmScheduler(Scheduler):
    name = "slurm"
    template_name = "slurm.sh.j2"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "SLURM_ARRAY_JOB_ID",
        "task_id": "SLURM_ARRAY_TASK_ID",
        "task_count": "SLURM_ARRAY_TASK_COUNT",
        "task_min": "SLURM_ARRAY_TASK_MIN",
        "allocation_id": "SLURM_JOB_ID",
    }
    default_output = "djhpc-%A_%a.out"
    default_error = "djhpc-%A_%a.err"
    directive_prefix = "#SBATCH"
    missing_hint = _HINT

    @classmethod
    def allocation_end(cls, env: Mapping[str, str]) -> float | None:
        job_id = env.get(cls.task_env_names["allocation_id"] or "")
        return squeue_end_time(job_id) if job_id else None

    def submit_file(self, path: Path) -> str:
        argv = ["sbatch", "--parsable", str(path)]
        proc = run_command(argv, hint=_HINT, timeout=120)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "fix the profile (partition, account, qos, time, mem) or the limits")
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        job_id = lines[-1].split(";")[0].strip() if lines else ""
        if not re.fullmatch(r"\d+", job_id):
            raise SchedulerError(
                f"sbatch --parsable printed {one_line(proc.stdout)!r}, not a job id: check for a wrapper around sbatch"
            )
        return job_id

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        ids = sorted({str(j).split("_")[0] for j in job_ids})
        if not ids:
            return {}
        joined = ",".join(ids)
        argv = ["squeue", "-h", "-r", "-t", "all", "-j", joined, "-o", "%i|%T"]
        proc = run_command(argv, hint=_HINT)
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            raise command_failed(argv, proc, "check that slurmctld is up (scontrol ping)")
        live = parse_states(proc.stdout, "squeue") if proc.returncode == 0 else {}
        # no sacct, or a failing one (accounting storage disabled), leaves squeue's view, which is all there is
        sacct = optional_output(["sacct", "-X", "-n", "-P", "-j", joined, "-o", "JobID,State"], hint=_HINT)
        return merge_states(live, parse_states(sacct, "sacct") if sacct is not None else {})

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """scancel of whole arrays: SIGTERM to every running task's batch step (the worker, which the script
        exec'd), SIGKILL KillWait later; pending tasks are just removed."""
        ids = [str(j).strip().split("_")[0] for j in job_ids]
        bad = [j for j in ids if not re.fullmatch(r"\d+", j)]
        if bad:
            raise UsageError(f"{bad[0]!r} is not a SLURM job id: give the number sbatch printed")
        return ["scancel", *dict.fromkeys(ids)]

    def partitions(self) -> set[str] | None:
        return listed_names(["sinfo", "-h", "-o", "%R"], hint=_HINT)

    def site_limits(self) -> SiteLimits:
        max_array = None
        proc = run_command(["scontrol", "show", "config"], hint=_HINT)
        if proc.returncode == 0:
            value = parse_scontrol_config(proc.stdout).get("MaxArraySize", "")
            max_array = int(value) if value.isdigit() else None
        max_submit = None
        user = os.environ.get("USER") or getpass.getuser()
        argv = ["sacctmgr", "-n", "-P", "show", "assoc", f"user={user}", "format=MaxSubmit"]
        try:
            proc = run_command(argv, hint=_HINT, timeout=20)
            if proc.returncode == 0:
                max_submit = parse_max_submit(proc.stdout)
        except SchedulerError:
            pass  # best effort: no sacctmgr, or no accounting
        return SiteLimits(max_array_size=max_array, max_submit_jobs=max_submit)
