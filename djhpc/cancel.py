"""Cancel a run: the arrays ``djhpc submit`` recorded that still have tasks pending or running, each with its
scheduler's own command (``Scheduler.cancel_argv``: scancel, qdel, bkill, condor_rm, or kill -TERM of a run
on this machine).

Nothing here touches the jobs table: the command's stop signal reaches each worker (SIGTERM on SLURM and PBS,
SIGUSR2 under Grid Engine's -notify, ...), which rolls back the make in progress and gives its keys back, so
a later ``djhpc submit`` goes on where the run stopped. A recorded array the scheduler reports ended (or no
longer knows) is left alone: its job id may since belong to another job.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import UsageError
from .schedulers import TERMINAL_STATES, get_scheduler, scheduler_class
from .submissions import Submission, Submissions


@dataclass
class CancelOrder:
    """One scheduler's command for the live arrays of a run."""

    scheduler: str
    job_ids: list[str]
    argv: list[str]

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass
class CancelPlan:
    orders: list[CancelOrder] = field(default_factory=list)
    ended: list[Submission] = field(default_factory=list)  # recorded, but nothing left pending or running

    @property
    def job_ids(self) -> list[str]:
        return [job_id for order in self.orders for job_id in order.job_ids]


def is_live(submission: Submission, states: dict) -> bool:
    """Whether the scheduler lists a task of this array that has not ended. The array's own id counts only when
    no task of it is listed (a one-task job; sacct may keep a stale row for a whole array beside its tasks)."""
    ids = {submission.job_id, scheduler_class(submission.scheduler).task_job_id(submission.job_id)}
    tasks = {k: v for k, v in states.items() if str(k).rpartition("_")[0] in ids}
    mine = tasks or {k: v for k, v in states.items() if k in ids}
    ended = {state.value for state in TERMINAL_STATES}
    return any(str(getattr(v, "value", v)) not in ended for v in mine.values())


def plan_cancel(connection, schema: str, *, table_name: str | None = None, label: str = "",
                job_ids: Sequence[str] = (), limit: int = 20,
                scheduler_for: Callable = get_scheduler) -> CancelPlan:
    """The commands that cancel the live arrays among the ``limit`` newest recorded submissions (of table_name,
    or of the whole schema; only job_ids when given). One task_states call and one command per scheduler."""
    label = label or (table_name or f"schema {schema}")
    subs = Submissions(connection, schema).recent(limit)
    if table_name:
        subs = [s for s in subs if s.table_name == table_name]
    if not subs:
        raise UsageError(f"no submission of {label} is recorded (djhpc submit records them): nothing to cancel")
    if job_ids:
        wanted = [str(j) for j in job_ids]
        unknown = [j for j in wanted if j not in {s.job_id for s in subs}]
        if unknown:
            known = ", ".join(s.job_id for s in subs)
            raise UsageError(f"job {unknown[0]} is not a recorded submission of {label} (recorded: {known}): "
                             "see djhpc status")
        subs = [s for s in subs if s.job_id in wanted]
    plan = CancelPlan()
    by_scheduler: dict[str, list[Submission]] = {}
    for s in subs:
        by_scheduler.setdefault(s.scheduler, []).append(s)
    for name, group in sorted(by_scheduler.items()):
        scheduler = scheduler_for(name)
        ids = list(dict.fromkeys(s.job_id for s in group))
        states = scheduler.task_states(ids)
        live = [s for s in group if is_live(s, states)]
        plan.ended += [s for s in group if s not in live]
        live_ids = list(dict.fromkeys(s.job_id for s in live))
        if live_ids:
            plan.orders.append(CancelOrder(name, live_ids, scheduler.cancel_argv(live_ids)))
    return plan


def cancel(plan: CancelPlan, *, scheduler_for: Callable = get_scheduler) -> None:
    """Run each order's command; the first refusal is a SchedulerError (the orders before it have run)."""
    for order in plan.orders:
        scheduler_for(order.scheduler).cancel(order.job_ids)
