"""GNU parallel: N worker slots on this machine, one joblog, --resume-failed to rerun failures.

Values never go on parallel's command line, where {} and {= perl =} would be expanded even inside
quotes: each worker's command is an input line, which parallel runs through the shell as it is.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile
from djhpc.schedulers.base import Scheduler, TaskState, check_env, check_target, check_worker_args
from djhpc.schedulers.local import BATCH_ONLY_SETTINGS, LocalScheduler, names_djhpc, run_pid, start_detached

_HINT = "install GNU parallel or use --scheduler local"


def job_line(command: Sequence[str]) -> str:
    """One worker as a shell line: the task id comes from parallel's PARALLEL_SEQ."""
    return 'export DJHPC_TASK_ID="$PARALLEL_SEQ"; exec ' + shlex.join(command)


_HALT = re.compile(r"never|(?:now|soon),(?:fail|success|done)=\d+%?")


def check_halt(halt: str) -> str:
    """A GNU parallel --halt rule: never, or when (now|soon), what (fail|success|done) and how many."""
    if not isinstance(halt, str) or not _HALT.fullmatch(halt.strip()):
        raise UsageError(
            f"--halt {halt!r} is not a GNU parallel halt rule: use never, soon,fail=1, now,fail=1 or now,done=1 "
            "(a count or a percentage such as soon,fail=10%)"
        )
    return halt.strip()


def command_line(
    profile: Profile,
    target: str,
    jobs: int,
    worker_args: Sequence[str] = (),
    joblog: str = "djhpc-parallel.joblog",
    *,
    executable: Sequence[str] = ("djhpc",),
    env: Mapping[str, str] | None = None,
    halt: str = "never",
    resume_failed: bool = False,
) -> str:
    """The one-line GNU parallel command for `jobs` workers, to paste into bash or zsh.

    The quoted version of `printf 'python -c "...populate(reserve_jobs=True)";\\n%.0s' {1..11} |
    parallel -j 11`. Rerun it with --resume-failed added to run the failed workers again: the
    input lines are the same on every run, which is what the joblog is matched against.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--array must be >= 1 (got {jobs})")
    if profile.throttle is not None and profile.throttle > jobs:
        raise UsageError(f"--throttle {profile.throttle} is larger than the array ({jobs}): lower it or omit it")
    halt = check_halt(halt)
    command = [*executable, "work", check_target(target), *check_worker_args(worker_args)]
    slots = profile.throttle or jobs
    line = shlex.quote(job_line(command))
    parts = []
    if profile.workdir:
        parts.append(f"cd {shlex.quote(profile.workdir)} &&")
    parts.append(f"for i in $(seq 1 {jobs}); do printf '%s\\n' {line}; done |")
    # $$: the shell that runs the line, as the job id of every worker (parallel.sh.j2 does the same)
    parts.append(f"DJHPC_SCHEDULER=parallel DJHPC_JOB_ID=$$ DJHPC_TASK_OFFSET=0 DJHPC_TASK_COUNT={jobs}")
    parts.extend(f"{name}={shlex.quote(value)}" for name, value in check_env(env))
    resume = " --resume-failed" if resume_failed else ""
    parts.append(
        f"parallel --will-cite -j {slots} --joblog {shlex.quote(joblog)}{resume} --halt {halt} --line-buffer"
    )
    return " ".join(parts)


def check_gnu_parallel() -> None:
    """GNU parallel must be on PATH; moreutils' parallel has the same name and other options."""
    if shutil.which("parallel") is None:
        raise SchedulerError(f"parallel not found on PATH: {_HINT}")
    try:
        out = subprocess.run(
            ["parallel", "--version"], capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, check=False, errors="replace",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchedulerError(f"parallel --version failed ({exc}): {_HINT}") from exc
    if not re.search(r"GNU parallel", out.stdout):
        raise SchedulerError(f"the parallel on PATH is not GNU parallel (moreutils?): {_HINT}")


class ParallelScheduler(Scheduler):
    name = "parallel"
    template_name = "parallel.sh.j2"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "DJHPC_JOB_ID",
        "task_id": "PARALLEL_SEQ",
        "task_count": "DJHPC_TASK_COUNT",
    }
    ignored_settings = BATCH_ONLY_SETTINGS

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        context = super().context(profile, **kwargs)
        context["extra_directives"] = []
        context["jobs"] = context["throttle"] or context["array_size"]
        context["job_line"] = job_line(context["command"])
        return context

    def submit_file(self, path: Path) -> str:
        check_gnu_parallel()
        return start_detached(path)

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        return LocalScheduler().task_states(job_ids)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """kill -TERM of GNU parallel, which passes TERM on to its running workers and starts no more. The
        recorded PID is GNU parallel itself (djhpc submit: the script execs it) or the shell whose pipeline
        runs it (djhpc parallel --run): then its GNU parallel child."""
        pids = dict.fromkeys(gnu_parallel_pid(run_pid(j)) for j in job_ids)
        return ["kill", "-TERM", *map(str, pids)]


def _is_gnu_parallel(process) -> bool:
    return any(Path(arg).name == "parallel" for arg in process.cmdline()[:2])


def gnu_parallel_pid(pid: int) -> int:
    """The GNU parallel of a run: the process pid, or its child running GNU parallel."""
    import psutil

    try:
        if names_djhpc(pid):
            process = psutil.Process(pid)
            if _is_gnu_parallel(process):
                return pid
            for child in process.children():
                if _is_gnu_parallel(child):
                    return child.pid
    except psutil.Error:
        pass
    raise UsageError(f"process {pid} is not a running djhpc GNU parallel run (any more): not signalled")
