"""What the cluster says about the runs ``djhpc submit`` recorded, joined with who holds which key now.

One ``task_states`` call per scheduler for every recorded array (squeue + sacct on SLURM, qstat on PBS),
one read of the reserved rows of the jobs table. A reservation whose array task the scheduler reports
ended, or whose job it does not know at all, is listed as gone: ``djhpc reap`` gives such keys back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .liveness import Reaper, ReservedRow
from .reservation import JOBS_TABLE, Reservations
from .schedulers import TERMINAL_STATES, TaskState, get_scheduler, task_key
from .submissions import Submission, Submissions

CATEGORIES = ("pending", "running", "done", "failed", "timeout", "cancelled", "unknown")
_CATEGORY = {
    TaskState.PENDING: "pending", TaskState.RUNNING: "running", TaskState.SUSPENDED: "running",
    TaskState.COMPLETED: "done", TaskState.FAILED: "failed", TaskState.NODE_FAIL: "failed",
    TaskState.OUT_OF_MEMORY: "failed", TaskState.PREEMPTED: "failed", TaskState.TIMEOUT: "timeout",
    TaskState.CANCELLED: "cancelled", TaskState.UNKNOWN: "unknown",
}  # fmt: skip
_NOT_ASKED = {"", "local", "parallel"}  # job ids no batch scheduler knows (workers started by hand)
_WHOLE_RUN = ("local", "parallel")  # one process runs every task: its state is each task's


def category(state) -> str:
    try:
        return _CATEGORY[TaskState(str(state))]
    except ValueError:
        return "unknown"


@dataclass
class TaskHold:
    """One array task (or process) and the keys its worker holds now."""

    task: str  # JOBID_TASK
    state: str  # the scheduler's word, or "" if not asked
    host: str
    pid: int
    keys: list = field(default_factory=list)  # (table_name, key)
    heartbeat_age: float | None = None


@dataclass
class SubmissionStatus:
    submission: Submission
    states: dict[int, str]  # array index -> the scheduler's word (missing: not known to it)
    counts: dict[str, int]
    holding: list[TaskHold] = field(default_factory=list)

    @property
    def tasks(self) -> int:
        return self.submission.array_size


@dataclass
class GoneReservation:
    table_name: str
    key: dict
    host: str
    pid: int
    task: str
    state: str  # the scheduler's word, or "not known" when it knows nothing of the job


@dataclass
class StatusReport:
    schema: str
    submissions: list[SubmissionStatus]
    gone: list[GoneReservation]
    reserved: int  # reservations now, of the tables looked at
    reserved_by_table: dict[str, int] = field(default_factory=dict)  # table_name -> reservations now


def _row_task(row: ReservedRow) -> str:
    if not row.sched_job_id:
        return ""
    return task_key(row.sched_job_id, row.sched_task_id) if row.sched_task_id else row.sched_job_id


def collect(connection, schema: str, *, table_name=None, limit: int = 20, scheduler_for: Callable = get_scheduler,
            default_scheduler: str | None = None, jobs_table: str = JOBS_TABLE,
            target: str | None = None) -> StatusReport:
    """Recorded submissions (newest first) with task counts, held keys and gone reservations.

    ``table_name``: one table's name, or a collection of names (a pipeline's tables; ``target``, the pipeline
    as its submissions record it). ``default_scheduler`` is asked about reservations from job ids no recorded
    submission names (e.g. 'slurm' where squeue exists); None skips those. ``jobs_table``: the schema's
    (``~djhpc_jobs`` in a DataJoint pipeline's schema).
    """
    if isinstance(table_name, str):
        names = {table_name} if table_name else None
    else:
        names = None if table_name is None else set(table_name)
    subs = Submissions(connection, schema).recent(limit)
    if names is not None:
        subs = [s for s in subs if serves(s, names, target)]
    reaper = Reaper(Reservations(connection, schema, jobs_table=jobs_table))
    rows = reaper.reserved_rows()
    if names is not None:
        rows = [r for r in rows if r.table_name in names]
    by_table: dict[str, int] = {}
    for r in rows:
        by_table[r.table_name] = by_table.get(r.table_name, 0) + 1

    scheduler_of_job = {s.job_id: s.scheduler for s in subs}

    def scheduler_of(row: ReservedRow) -> str | None:
        """The scheduler to ask about a reservation's job, or None for none."""
        if row.sched_job_id in _NOT_ASKED:
            return None
        return scheduler_of_job.get(row.sched_job_id, default_scheduler)

    states = _ask_schedulers(subs, rows, scheduler_of, scheduler_for)
    out = [_submission_status(s, states.get(s.scheduler, {}), rows) for s in subs]
    gone = _gone(rows, states, scheduler_of)
    return StatusReport(schema, out, gone, len(rows), by_table)


def serves(submission: Submission, names: set, target: str | None = None) -> bool:
    """Whether a recorded run works on one of the tables named: its table or one of its tables (a pipeline's
    run may record several, comma-separated); a run that records no table, by its target (the pipeline's)."""
    recorded = {n.strip() for n in str(submission.table_name or "").split(",") if n.strip()}
    if recorded:
        return bool(recorded & names)
    return bool(target) and str(submission.target or "").split()[:1] == [target]


def _ask_schedulers(subs, rows, scheduler_of: Callable, scheduler_for: Callable) -> dict[str, dict[str, str]]:
    """One task_states call per scheduler for every job of the submissions and reservations: name -> task -> word."""
    wanted: dict[str, set] = {}
    for s in subs:
        wanted.setdefault(s.scheduler, set()).add(s.job_id)
    for r in rows:
        name = scheduler_of(r)
        if name:
            wanted.setdefault(name, set()).add(r.sched_job_id)
    states: dict[str, dict[str, str]] = {}
    for name, ids in sorted(wanted.items()):
        found = scheduler_for(name).task_states(sorted(ids))
        states[name] = {k: str(getattr(v, "value", v)) for k, v in found.items()}
    return states


def _submission_status(s: Submission, known: dict[str, str], rows) -> SubmissionStatus:
    """Counts per category and the keys each task holds, from what the submission's scheduler said (``known``)."""
    per_task = {}
    for i in range(1, s.array_size + 1):
        state = known.get(task_key(s.job_id, i))
        if state is None and (s.array_size == 1 or s.scheduler in _WHOLE_RUN):
            state = known.get(s.job_id)
        if state is not None:
            per_task[i] = state
    counts = dict.fromkeys(CATEGORIES, 0)
    for i in range(1, s.array_size + 1):
        counts[category(per_task.get(i, "UNKNOWN"))] += 1
    holding = {}
    for r in rows:
        if r.sched_job_id != s.job_id:
            continue
        task = _row_task(r)
        index = int(r.sched_task_id) if r.sched_task_id.isdigit() else None
        hold = holding.get(task)
        if hold is None:
            hold = holding[task] = TaskHold(task, per_task.get(index, "") if index else known.get(task, ""),
                                            r.host, r.pid, heartbeat_age=r.heartbeat_age)
        hold.keys.append((r.table_name, r.key))
    return SubmissionStatus(s, per_task, counts, sorted(holding.values(), key=_task_order))


def _gone(rows, states: dict[str, dict[str, str]], scheduler_of: Callable) -> list[GoneReservation]:
    """Reservations whose task the scheduler reports ended, or whose job it does not know at all."""
    gone = []
    for r in rows:
        name = scheduler_of(r)
        if not name:
            continue
        known = states.get(name, {})
        task = _row_task(r)
        state = known.get(task)
        if state is None and not any(k == r.sched_job_id or k.startswith(r.sched_job_id + "_") for k in known):
            state = "not known"
        if state == "not known" or (state is not None and _terminal(state)):
            gone.append(GoneReservation(r.table_name, r.key, r.host, r.pid, task, state))
    return gone


def _terminal(state: str) -> bool:
    try:
        return TaskState(state) in TERMINAL_STATES
    except ValueError:
        return False


def _task_order(hold: TaskHold):
    job, _, task = hold.task.partition("_")
    return (job, int(task) if task.isdigit() else 0, hold.task)
