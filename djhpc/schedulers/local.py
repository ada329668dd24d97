"""Local: the workers run as background processes of one bash script on this machine.

submit starts the script detached (its own session, output to SCRIPT.log) and returns its pid as
the job id; run_foreground runs it attached to the terminal and returns its exit status.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile
from djhpc.schedulers.base import Scheduler, TaskState

# settings that mean something only to a batch system
BATCH_ONLY_SETTINGS = (
    "partition", "account", "qos", "time", "cpus", "mem", "gpus", "nodes", "output", "error",
    "mail_user", "mail_type", "extra_directives", "after", "signal_seconds", "requeue",
)  # fmt: skip


# scripts this process started: kept so they are reaped (no zombies) and never collected while running
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    for pid, proc in list(_STARTED.items()):
        if proc.poll() is not None:
            del _STARTED[pid]


def start_detached(path: Path) -> str:
    """Start `bash path` in its own session, output appended to path.log; its pid."""
    log = path.with_suffix(".log")
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                ["bash", str(path)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=os.getcwd(),
            )  # fmt: skip
        except OSError as exc:
            raise SchedulerError(f"cannot start bash {path} ({exc.strerror}): check that bash is installed") from exc
    _reap()
    _STARTED[proc.pid] = proc
    return str(proc.pid)


def run_foreground(path: Path, args: Sequence[str] = ()) -> int:
    """Run `bash path args...` attached to this terminal; its exit status."""
    try:
        return subprocess.call(["bash", str(path), *args])
    except OSError as exc:
        raise SchedulerError(f"cannot start bash {path} ({exc.strerror}): check that bash is installed") from exc


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    _reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we know


def run_pid(job_id: str) -> int:
    """The PID of a local or parallel run from its job id (PID, or PID_TASK as task_states keys it)."""
    pid = str(job_id).strip().split("_")[0]
    if not pid.isdigit():
        raise UsageError(f"{job_id!r} is not the process id of a djhpc run on this machine")
    return int(pid)


def names_djhpc(pid: int) -> bool:
    """Whether the live process pid runs a djhpc script or command: a recorded PID that the system has since
    given to another program is never signalled."""
    import psutil

    try:
        return pid_alive(pid) and "djhpc" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


class LocalScheduler(Scheduler):
    name = "local"
    template_name = "local.sh.j2"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "DJHPC_JOB_ID",
        "task_id": "DJHPC_TASK_ID",
        "task_count": "DJHPC_TASK_COUNT",
    }
    ignored_settings = BATCH_ONLY_SETTINGS

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        context = super().context(profile, **kwargs)
        context["extra_directives"] = []
        size = context["array_size"]
        if context["throttle"] and context["throttle"] < size:
            # each worker drains the queue, so the tasks that would wait for a slot have nothing left
            context["notes"].append(f"throttle {context['throttle']} < {size} tasks: {context['throttle']} workers run")
            context["array_last"] = context["array_size"] = context["throttle"]
            context["total_tasks"] = context["index_offset"] + context["throttle"]
        return context

    def submit_file(self, path: Path) -> str:
        return start_detached(path)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """kill -TERM of each run's script, which passes TERM on to its workers once (local.sh.j2)."""
        pids = dict.fromkeys(run_pid(j) for j in job_ids)
        for pid in pids:
            if not names_djhpc(pid):
                raise UsageError(f"process {pid} is not a djhpc run (any more): not signalled")
        return ["kill", "-TERM", *map(str, pids)]

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        """RUNNING for each id (PID or PID_TASK) whose script is alive; ended ones are not known."""
        states = {}
        for job_id in job_ids:
            pid = str(job_id).split("_")[0]
            if pid.isdigit() and pid_alive(int(pid)):
                states[str(job_id)] = TaskState.RUNNING
        return states
