"""The schedulers by name: the one module that knows every concrete scheduler class.

base.py defines what a scheduler is and imports none of them; each scheduler module imports base;
this module imports them all, so the import graph has no cycle.
"""

from __future__ import annotations

import shutil

from djhpc.errors import UsageError
from djhpc.profile import SCHEDULER_ALIASES, SCHEDULER_NAMES
from djhpc.schedulers.base import Scheduler
from djhpc.schedulers.htcondor import HTCondorScheduler
from djhpc.schedulers.local import LocalScheduler
from djhpc.schedulers.lsf import LsfScheduler
from djhpc.schedulers.parallel import ParallelScheduler
from djhpc.schedulers.pbs import PbsScheduler, TorqueScheduler
from djhpc.schedulers.sge import SgeScheduler
from djhpc.schedulers.slurm import SlurmScheduler

# name -> class, in the order a task's environment is matched against them (taskenv): SLURM first, so a
# GNU parallel started inside a SLURM allocation is the SLURM task it runs in
SCHEDULERS: dict[str, type[Scheduler]] = {
    "slurm": SlurmScheduler, "pbs": PbsScheduler, "torque": TorqueScheduler,
    "sge": SgeScheduler,
    "lsf": LsfScheduler, "htcondor": HTCondorScheduler,
    "parallel": ParallelScheduler, "local": LocalScheduler,
}  # fmt: skip


def scheduler_class(name: str) -> type[Scheduler]:
    """The class of a scheduler by name or alias (pbspro, openpbs, ...); UsageError naming the choices."""
    key = str(name).strip().lower()
    key = SCHEDULER_ALIASES.get(key, key)
    if key not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {name!r} (choose {', '.join(SCHEDULER_NAMES)})")
    return SCHEDULERS[key]


def get_scheduler(name: str | None = None) -> Scheduler:
    """A scheduler by name (None: default_scheduler_name())."""
    return scheduler_class(default_scheduler_name() if name is None else name)()


def default_scheduler_name() -> str:
    """slurm where sbatch is on PATH, else local."""
    return "slurm" if shutil.which("sbatch") else "local"
