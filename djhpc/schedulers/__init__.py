"""Batch schedulers: render a task script, submit it, ask for the state of its tasks."""

from djhpc.schedulers.base import (
    DJHPC_VARIABLES,
    TERMINAL_STATES,
    ArrayChunk,
    Scheduler,
    SiteLimits,
    TaskState,
    plan_arrays,
    task_key,
)
from djhpc.schedulers.local import LocalScheduler
from djhpc.schedulers.parallel import ParallelScheduler, command_line
from djhpc.schedulers.pbs import PbsScheduler, TorqueScheduler
from djhpc.schedulers.registry import SCHEDULERS, default_scheduler_name, get_scheduler, scheduler_class
from djhpc.schedulers.slurm import SlurmScheduler

__all__ = [
    "DJHPC_VARIABLES",
    "SCHEDULERS",
    "TERMINAL_STATES",
    "ArrayChunk",
    "LocalScheduler",
    "ParallelScheduler",
    "PbsScheduler",
    "Scheduler",
    "SiteLimits",
    "SlurmScheduler",
    "TaskState",
    "TorqueScheduler",
    "command_line",
    "default_scheduler_name",
    "get_scheduler",
    "plan_arrays",
    "scheduler_class",
    "task_key",
]
