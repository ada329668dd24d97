"""Which array task this process is: the one reader of the task's environment.

djhpc's own scripts export the DJHPC_* variables (base.py) whatever the scheduler; a worker started
by hand inside a SLURM, PBS or GNU parallel task is recognised by that scheduler's own variables,
which each scheduler class names in its ``task_env_names`` table. This module reads those tables and
names no scheduler's variable itself.

    env = current()
    env.ids()        # ('4242', '7'): the task as Scheduler.task_states keys it (task_key)
    env.position()   # 0.375: where in the key space this task starts its walk
    allocation_end() # epoch seconds when the allocation ends, or None
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from djhpc.schedulers.base import Scheduler
from djhpc.schedulers.registry import SCHEDULERS

log = logging.getLogger(__name__)

# djhpc's own variables (the rendered scripts export all but DJHPC_END_TIME, which a user may set)
DJHPC_SCHEDULER = "DJHPC_SCHEDULER"
DJHPC_JOB_ID = "DJHPC_JOB_ID"
DJHPC_TASK_ID = "DJHPC_TASK_ID"
DJHPC_TASK_OFFSET = "DJHPC_TASK_OFFSET"
DJHPC_TASK_COUNT = "DJHPC_TASK_COUNT"
DJHPC_END_TIME = "DJHPC_END_TIME"  # epoch seconds: when the allocation ends, where the scheduler cannot say


@dataclass(frozen=True)
class TaskEnv:
    """This process's place in a run, as its environment tells it.

    ``job_id`` and ``task_id`` name the task the way ``Scheduler.task_states`` does; ``task_number``
    is the task's 1-based number in the whole run (DJHPC_TASK_ID + DJHPC_TASK_OFFSET, or a scheduler's
    index - its first index + 1) and ``task_count`` the tasks in the run: the two ``position`` reads.
    They are kept apart from task_id because the two may come from different variables when only some
    of djhpc's are set. A number that does not parse leaves task_number None (no position).
    """

    scheduler: str = ""  # DJHPC_SCHEDULER, else the scheduler whose own variables are set, else ""
    job_id: str = ""
    task_id: str = ""
    task_count: int | None = None
    task_offset: int = 0  # DJHPC_TASK_OFFSET: the tasks of the run in arrays before this one
    task_min: int | None = None  # the array's first index where the scheduler says (SLURM does)
    task_number: int | None = None

    def position(self) -> float | None:
        """This task's share of the key space, a fraction in [0, 1), or None outside an array.

        Task t of n starts at (t - 1) / n, so n tasks started together begin n evenly spaced walks.
        """
        count = self.task_count
        if self.task_number is None or count is None or count <= 0:
            return None
        return ((self.task_number - 1) % count) / count

    def ids(self) -> tuple[str, str]:
        """(cluster job id, array task index), as ``Scheduler.task_states`` names tasks; ("", "") when unknown."""
        return self.job_id, self.task_id


def _schedulers() -> list[type[Scheduler]]:
    return list(SCHEDULERS.values())


def _own(cls: type[Scheduler], role: str) -> str | None:
    """The variable a scheduler sets itself for a role; None for none, or for a DJHPC_* one its script sets."""
    name = cls.task_env_names.get(role)
    return name if name and not name.startswith("DJHPC_") else None


def _value(env: Mapping[str, str], name: str | None) -> str:
    return (env.get(name) or "") if name else ""


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _ids(env: Mapping[str, str], classes: list[type[Scheduler]]) -> tuple[str, str]:
    if env.get(DJHPC_JOB_ID):
        return env[DJHPC_JOB_ID], env.get(DJHPC_TASK_ID, "")
    seen: set[str] = set()
    for cls in classes:
        job_var = _own(cls, "job_id")
        if job_var and job_var not in seen:
            seen.add(job_var)
            if _value(env, job_var):
                # schedulers that share a job id variable (PBS Pro, Torque) share the job: the task is
                # in whichever's task variable is set
                tasks = [_value(env, _own(c, "task_id")) for c in classes if _own(c, "job_id") == job_var]
                return cls.task_job_id(env[job_var]), next(filter(None, tasks), "")
        if _value(env, _own(cls, "allocation_id")):
            return env[_own(cls, "allocation_id")], ""
        if not job_var and _value(env, _own(cls, "task_id")):
            # a task id but no job id of its own (GNU parallel numbers its jobs): the scheduler's name stands in
            return cls.name, env[_own(cls, "task_id")]
    return "", ""


def _numbering(
    env: Mapping[str, str], classes: list[type[Scheduler]]
) -> tuple[int | None, int | None, int, int | None]:
    """(task_number, task_count, task_offset, task_min) for position(): djhpc's variables when both the
    task id and count are set, else the first scheduler's own task id and count that are."""
    offset = _int(env.get(DJHPC_TASK_OFFSET) or "0")
    mins = [_value(env, _own(cls, "task_min")) for cls in classes]
    task_min = _int(next(filter(None, mins), ""))
    if env.get(DJHPC_TASK_ID) and env.get(DJHPC_TASK_COUNT):
        task, count = _int(env[DJHPC_TASK_ID]), _int(env[DJHPC_TASK_COUNT])
        number = task + offset if task is not None and offset is not None and count is not None else None
        return number, count, offset or 0, task_min
    for cls in classes:
        task_text, count_text = _value(env, _own(cls, "task_id")), _value(env, _own(cls, "task_count"))
        if task_text and count_text:
            task, count = _int(task_text), _int(count_text)
            first = _int(_value(env, _own(cls, "task_min")) or "1")
            number = task - first + 1 if task is not None and first is not None and count is not None else None
            return number, count, offset or 0, first
    return None, None, offset or 0, task_min


def _scheduler(env: Mapping[str, str], classes: list[type[Scheduler]]) -> str:
    """DJHPC_SCHEDULER, else the first scheduler (registry order) one of whose own variables is set and
    listed by no other scheduler (PBS Pro and Torque name the job id alike), else ""."""
    if env.get(DJHPC_SCHEDULER):
        return env[DJHPC_SCHEDULER]
    owners: dict[str, set[str]] = {}
    for cls in classes:
        for role in cls.task_env_names:
            name = _own(cls, role)
            if name:
                owners.setdefault(name, set()).add(cls.name)
    for cls in classes:
        for role in cls.task_env_names:
            name = _own(cls, role)
            if name and owners[name] == {cls.name} and env.get(name):
                return cls.name
    return ""


def current(env: Mapping[str, str] | None = None) -> TaskEnv:
    """This process's TaskEnv (env: the environment to read, os.environ by default)."""
    env = os.environ if env is None else env
    classes = _schedulers()
    job_id, task_id = _ids(env, classes)
    number, count, offset, task_min = _numbering(env, classes)
    return TaskEnv(
        scheduler=_scheduler(env, classes), job_id=job_id, task_id=task_id, task_count=count,
        task_offset=offset, task_min=task_min, task_number=number,
    )  # fmt: skip


def allocation_end(env: Mapping[str, str] | None = None) -> float | None:
    """When this process's cluster allocation ends (epoch seconds), if that can be known.

    DJHPC_END_TIME first; else the first scheduler that can tell (SLURM asks squeue about its job,
    Torque counts its walltime from now).
    """
    env = os.environ if env is None else env
    if env.get(DJHPC_END_TIME):
        try:
            return float(env[DJHPC_END_TIME])
        except ValueError:
            log.warning("DJHPC_END_TIME=%r is not a number of seconds since the epoch: ignored", env[DJHPC_END_TIME])
            return None
    for cls in _schedulers():
        end = cls.allocation_end(env)
        if end is not None:
            return end
    return None
