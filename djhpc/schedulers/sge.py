"""Grid Engine (SGE, Son of Grid Engine, Univa/Altair GE): qsub -terse to submit, qstat -xml + qacct for task
states, qconf -sconf for limits, qdel to cancel.

Every run is an array (``-t 1-N``, also for one task: SGE_TASK_ID is "undefined" outside an array), submitted
with ``-notify``, so qdel sends SIGUSR2 before the kill and the workers give their keys back; a time limit is
``h_rt`` with ``s_rt`` signal_seconds earlier, which sends SIGUSR1 (the same stop). Never ``-V``: a task gets
the variables its script exports, the submit host's PATH in front of its own (SGE_O_PATH: a queue's login
shell may have reset PATH), PYTHONPATH (``-v``), and whatever else the profile names with ``--directive
'-v NAME'``: djhpc, python and the pipeline are found as where you submitted, and nothing else leaks in.

qstat lists pending and running tasks only; qacct reads the accounting file, one call per job, a few seconds
after a task ends. So qstat wins for every task it lists and qacct fills in the rest, as squeue and sacct do.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile, check_line, format_walltime, pbs_mail_points
from djhpc.schedulers.base import (
    Scheduler,
    SiteLimits,
    TaskState,
    command_failed,
    listed_names,
    merge_states,
    one_line,
    run_command,
)

_HINT = "run this on a Grid Engine submit host or use --scheduler local"

# what the task gets from the submit shell besides PATH and its script's exports (qsub -v NAME copies the value)
PASSED_ENV = ("PYTHONPATH",)

# printable ASCII without blanks, quotes or #: anything else is quoted (bytes >= 0x80 may be blanks)
_PLAIN = re.compile(r"[!$-&(-~]+")
# SGE's "name" (sge_types(1)): no blanks, / : @ \ * ? and, for a job, no leading digit
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.,+=%-]")
_SLURM_PLACEHOLDERS = {"%A": "$JOB_ID", "%a": "$TASK_ID", "%j": "$JOB_ID", "%x": "$JOB_NAME", "%u": "$USER",
                       "%N": "$HOSTNAME", "%%": "%"}  # fmt: skip
# qacct's "failed": 0, or why the shepherd ended the task (accounting(5)); the task's own status is exit_status
_FAILED_TIMEOUT = 37  # qmaster enforced h_rt, h_cpu, or h_vmem limit
_FAILED_AFTER_JOB = 100  # assumedly after job: killed by a signal (qdel, the notify window's SIGKILL)
_STOPPED = 75  # djhpc work's exit status after a stop signal (keys given back): qdel -notify or s_rt


def directive_value(value: Any) -> str:
    """A value in a #$ line as qsub reads it: "..." and '...' group, a backslash is a plain character, and a #
    ends the line even inside quotes (so a value holding # cannot be written)."""
    text = check_line(str(value), "directive value")
    if "#" in text:
        raise UsageError(f"{text!r} holds '#', which qsub reads as the start of a comment in a #$ line: "
                         "choose a value without it")
    if _PLAIN.fullmatch(text):
        return text
    for quote in ('"', "'"):
        if quote not in text:
            return f"{quote}{text}{quote}"
    raise UsageError(f"{text!r} holds both kinds of quote, which a #$ line cannot carry: choose another value")


def job_name(name: str) -> str:
    """A name qsub takes: blanks and / : @ \\ * ? # quotes become _, a leading digit gets a j in front."""
    fixed = _NAME_BAD.sub("_", name) or "djhpc"
    return f"j{fixed}" if fixed[0].isdigit() else fixed


def output_path(path: str) -> str:
    """SLURM's %A, %a, %j, %x, %u, %N in a log path as Grid Engine's $JOB_ID, $TASK_ID, ... (a shared profile)."""
    return re.sub(r"%[AajxuN%]", lambda m: _SLURM_PLACEHOLDERS.get(m.group(0), m.group(0)), path)


# ---------------------------------------------------------------------------------------- states


def sge_state(code: str) -> TaskState:
    """A qstat state (qw, hqw, Eqw, r, t, Rr, dr, s, S, T, ...) -> TaskState. A task in E (error) waits in the
    queue until `qmod -cj` clears it: pending. One being deleted (d) runs until its worker stops: running."""
    letters = code.strip()
    if "d" in letters:
        return TaskState.RUNNING if re.search("[rt]", letters) else TaskState.CANCELLED
    if re.search("[sST]", letters):
        return TaskState.SUSPENDED
    if re.search("[rtR]", letters):
        return TaskState.RUNNING
    if re.search("[qwhE]", letters):
        return TaskState.PENDING
    return TaskState.UNKNOWN


def expand_tasks(field: str) -> list[int]:
    """qstat's task field: '7' -> [7]; '3-11:1' -> [3..11]; '1-9:4' -> [1, 5, 9]; '1,4-5:1' -> [1, 4, 5]."""
    indices: list[int] = []
    for part in field.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            raise SchedulerError(f"cannot read Grid Engine task range {field!r}: report this with your SGE version")
        first, last, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
        indices.extend(range(first, last + 1, max(step, 1)))
    return indices


def parse_qstat_xml(text: str, job_ids: set[str] | None = None) -> dict[str, TaskState]:
    """`qstat -xml -u '*'`: every job_list of these jobs (all when None), keyed JOBID_TASK (JOBID alone for a
    job outside an array)."""
    if not text.strip():
        return {}
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SchedulerError(f"cannot read qstat -xml output ({exc}): {one_line(text, 200)!r}") from exc
    states: dict[str, TaskState] = {}
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if not number or (job_ids is not None and number not in job_ids):
            continue
        state = sge_state(job.findtext("state") or "")
        tasks = (job.findtext("tasks") or "").strip()
        if not tasks:
            states[number] = state
        for index in expand_tasks(tasks):
            states[f"{number}_{index}"] = state
    return states


def qacct_state(failed: str, exit_status: str) -> TaskState:
    """One qacct record's ``failed`` ("37  : qmaster enforced h_rt ...") and ``exit_status`` -> TaskState."""
    m = re.match(r"\s*(\d+)", failed or "0")
    code = int(m.group(1)) if m else 0
    m = re.match(r"\s*(\d+)", exit_status or "")
    status = int(m.group(1)) if m else None
    if code == _FAILED_TIMEOUT:
        return TaskState.TIMEOUT
    if code == _FAILED_AFTER_JOB or (code == 0 and status is not None and status > 128):
        return TaskState.CANCELLED  # killed by a signal
    if code:
        return TaskState.FAILED  # the shepherd could not start or finish it (no shell, no output file, ...)
    if status == 0:
        return TaskState.COMPLETED
    if status == _STOPPED:
        return TaskState.CANCELLED
    return TaskState.FAILED


def parse_qacct(text: str) -> dict[str, TaskState]:
    """`qacct -j ID`: records between ==== lines; a later record of a task (a rerun) wins."""
    states: dict[str, TaskState] = {}
    for block in re.split(r"^=+\s*$", text, flags=re.MULTILINE):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.strip().partition(" ")
            if name:
                fields[name] = value.strip()
        job = fields.get("jobnumber", "")
        if not job.isdigit():
            continue
        task = fields.get("taskid", "")
        key = f"{job}_{task}" if task.isdigit() else job
        states[key] = qacct_state(fields.get("failed", "0"), fields.get("exit_status", ""))
    return states


def parse_qconf(text: str) -> dict[str, str]:
    """`qconf -sconf global`: 'name value' lines (a value continued with a backslash keeps its first line)."""
    config = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s+(.*?)\s*\\?$", line)
        if m:
            config[m.group(1)] = m.group(2)
    return config


def _count(value: str | None) -> int | None:
    """A qconf limit: a positive number, else None (0 means none)."""
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _job_number(job_id: str) -> str | None:
    """'27', '27.1-11:1' (qsub -terse), '27_3' (a task key) -> '27'; None when it is not an SGE job id."""
    m = re.fullmatch(r"\s*(\d+)(?:[._]\S*)?\s*", str(job_id))
    return m.group(1) if m else None


# ------------------------------------------------------------------------------------- scheduler


class SgeScheduler(Scheduler):
    """Grid Engine: ``-t`` arrays, ``-pe smp N`` for CPUs, h_vmem per slot. A site whose shared-memory parallel
    environment has another name sets it with --directive '-pe NAME N' and leaves cpus unset."""

    name = "sge"
    template_name = "sge.sh.j2"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "JOB_ID",
        "task_id": "SGE_TASK_ID",
        # djhpc's arrays run 1..N by 1, so the last index is the count
        "task_count": "SGE_TASK_LAST",
        "task_min": "SGE_TASK_FIRST",
    }
    default_output = "djhpc-$JOB_ID_$TASK_ID.out"
    default_error = "djhpc-$JOB_ID_$TASK_ID.err"
    directive_prefix = "#$"
    missing_hint = _HINT

    def __init__(self) -> None:
        super().__init__()
        # max_aj_tasks and max_u_jobs as site_limits last read them: render refuses a split the user cannot queue
        self.max_tasks: int | None = None
        self.max_jobs: int | None = None

    @classmethod
    def task_job_id(cls, raw: str) -> str:
        return _job_number(raw) or raw

    def format_time(self, seconds: int) -> str:
        return format_walltime(seconds)

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        self._refuse_inexpressible(profile)
        context = super().context(profile, **kwargs)
        notes = context["notes"]
        name = job_name(profile.job_name)
        if name != profile.job_name:
            notes.append(f"job name {profile.job_name!r} is not a Grid Engine name: submitted as {name!r}")
        if profile.qos:
            notes.append(f"qos {profile.qos!r} has no Grid Engine equivalent: ignored (extra_directives can set one)")
        if profile.after and profile.after_type == "afterok":
            notes.append("-hold_jid starts this run when those jobs end, whatever their exit status (afterany)")
        letters, dropped = pbs_mail_points(profile.mail_type) if profile.mail_type else ("", [])
        if dropped:
            notes.append(f"mail_type {','.join(dropped)} has no Grid Engine equivalent: ignored")
        for key in ("output", "error"):
            path = context[key]
            if path and output_path(path) != path:
                notes.append(f"{key} {path!r}: SLURM's placeholders written as Grid Engine's")
                context[key] = output_path(path)
        slots = profile.cpus or 1
        context.update(
            job_name=name,
            mail_points=letters,
            hold_jid=",".join(profile.after) or None,
            soft_time=(self.format_time(profile.time - profile.signal_seconds)
                       if profile.time and profile.signal_seconds else None),
            # h_vmem is per slot: the task's memory shared out over its -pe slots, rounded up
            mem_per_slot=f"{math.ceil(profile.mem / slots)}M" if profile.mem else None,
            passed_env=",".join(PASSED_ENV),
            gq=directive_value,
        )
        if profile.mem and slots > 1:
            notes.append(f"h_vmem is per slot: {profile.mem}M over {slots} slots is {context['mem_per_slot']} each")
        self._refuse_unqueueable(context["total_tasks"])
        return context

    def _refuse_inexpressible(self, profile: Profile) -> None:
        """Resources a Grid Engine job cannot ask for in a portable way: a usage error naming them."""
        if profile.gpus:
            raise UsageError(f"--gpus {profile.gpus} has no Grid Engine form (each site names its own GPU resource): "
                             "drop it and add your site's, e.g. --directive '-l gpu=1'")
        if profile.nodes and profile.nodes > 1:
            raise UsageError(f"--nodes {profile.nodes}: a Grid Engine task runs on one host: drop --nodes "
                             "(--cpus asks for slots on that host)")
        if profile.after and profile.after_type not in ("afterok", "afterany"):
            raise UsageError(f"--after-type {profile.after_type} has no Grid Engine form (-hold_jid waits for the "
                             "jobs to end): use afterany")

    def _refuse_unqueueable(self, total_tasks: int) -> None:
        """A run split into more arrays than the user may have jobs (max_u_jobs) would be half submitted."""
        if not (self.max_tasks and self.max_jobs):
            return
        arrays = math.ceil(total_tasks / self.max_tasks)
        if arrays > self.max_jobs:
            raise UsageError(
                f"--array {total_tasks} needs {arrays} Grid Engine arrays of at most {self.max_tasks} tasks "
                f"(max_aj_tasks), more than the {self.max_jobs} jobs a user may have (max_u_jobs): "
                f"lower --array to {self.max_tasks * self.max_jobs} or less"
            )

    # -- commands -----------------------------------------------------------------------------

    def submit_file(self, path: Path) -> str:
        argv = ["qsub", "-terse", str(path)]
        proc = run_command(argv, hint=_HINT, timeout=120)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "fix the profile (queue, account, time, mem, cpus) or the limits")
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        job_id = _job_number(lines[-1]) if lines else None
        if job_id is None:
            raise SchedulerError(
                f"qsub -terse printed {one_line(proc.stdout)!r}, not a job id: check for a wrapper around qsub"
            )
        return job_id

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        ids = sorted({n for n in (_job_number(j) for j in job_ids) if n}, key=int)
        if not ids:
            return {}
        argv = ["qstat", "-xml", "-u", "*"]
        proc = run_command(argv, hint=_HINT)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "check that sge_qmaster is up (qstat -f)")
        live = parse_qstat_xml(proc.stdout, set(ids))
        past: dict[str, TaskState] = {}
        for job in ids:
            try:
                proc = run_command(["qacct", "-j", job], hint=_HINT)
            except SchedulerError:
                break  # no qacct here: qstat alone
            if proc.returncode == 0:  # else "job id N not found": not in the accounting file (yet)
                past.update(parse_qacct(proc.stdout))
        return merge_states(live, past)

    def partitions(self) -> set[str] | None:
        return listed_names(["qconf", "-sql"], hint=_HINT)

    def site_limits(self) -> SiteLimits:
        """max_aj_tasks as the array size limit (our arrays start at 1: the count is the highest index)."""
        try:
            proc = run_command(["qconf", "-sconf", "global"], hint=_HINT, timeout=20)
        except SchedulerError:
            return SiteLimits()
        if proc.returncode != 0:
            return SiteLimits()
        config = parse_qconf(proc.stdout)
        self.max_tasks = _count(config.get("max_aj_tasks"))
        self.max_jobs = _count(config.get("max_u_jobs"))
        return SiteLimits(max_array_size=self.max_tasks + 1 if self.max_tasks else None)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """qdel JOB...: a job submitted with -notify gets SIGUSR2, then SIGKILL after the queue's notify time."""
        ids = [_job_number(j) for j in job_ids]
        bad = [j for j, n in zip(job_ids, ids, strict=True) if n is None]
        if bad:
            raise UsageError(f"{bad[0]!r} is not a Grid Engine job id: give the number qsub printed")
        return ["qdel", *dict.fromkeys(n for n in ids if n)]

    def cancel(self, job_ids: Sequence[str]) -> None:
        """qdel; a job that ended in the meantime ("does not exist") is no failure."""
        if not job_ids:
            return
        argv = self.cancel_argv(job_ids)
        proc = run_command(argv, hint=_HINT)
        said = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        refused = [line for line in said if re.search(r"denied|error|invalid", line, re.IGNORECASE)
                   and "does not exist" not in line]
        if proc.returncode != 0 and (refused or not said):
            raise command_failed(argv, proc, "check the job ids with qstat and that you own them")
