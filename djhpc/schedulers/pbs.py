"""PBS Professional (OpenPBS) and Torque: qsub to submit, qstat for task states, qmgr for limits.

Both name a subjob 123[4].server; task_states reports it as 123_4 (a one-task PBS Pro job, which
has no array, as 123_1). The two differ in arrays (-J vs -t), resources (select vs nodes:ppn),
qstat (-x means "finished jobs too" on PBS Pro, XML on Torque) and negative exit codes.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError
from djhpc.profile import Profile, format_walltime, pbs_mail_points
from djhpc.schedulers.base import (
    Scheduler,
    SiteLimits,
    TaskState,
    command_failed,
    one_line,
    run_command,
)

_HINT = "run this on a PBS login node or use --scheduler local"

_LIVE_STATES = {
    "Q": TaskState.PENDING, "H": TaskState.PENDING, "W": TaskState.PENDING, "T": TaskState.PENDING,
    "M": TaskState.PENDING, "R": TaskState.RUNNING, "E": TaskState.RUNNING, "B": TaskState.RUNNING,
    "S": TaskState.SUSPENDED, "U": TaskState.SUSPENDED,
}  # fmt: skip
_DONE_STATES = {"F", "X", "C"}  # finished (PBS Pro job / subjob), completed (Torque)

# negative exit codes PBS writes when it, not the script, ended the job (JOB_EXEC_* in job.h)
_PBSPRO_EXEC_CODES = {
    -29: TaskState.TIMEOUT,  # JOB_EXEC_KILL_WALLTIME
    -28: TaskState.TIMEOUT,  # JOB_EXEC_KILL_CPUT
    -27: TaskState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_MEM
    -26: TaskState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_VMEM
    -20: TaskState.NODE_FAIL,  # JOB_EXEC_RERUN_MS_FAIL
    -14: TaskState.NODE_FAIL,  # JOB_EXEC_RERUN_ON_SIS_FAIL
}
_TORQUE_EXEC_CODES = {
    -10: TaskState.OUT_OF_MEMORY,  # JOB_EXEC_OVERLIMIT_MEM
    -11: TaskState.TIMEOUT,  # JOB_EXEC_OVERLIMIT_WT
    -12: TaskState.TIMEOUT,  # JOB_EXEC_OVERLIMIT_CPUT
}


def split_job_id(raw: str) -> tuple[str, str | None]:
    """'123[4].server' -> ('123', '4'); '123[].server' -> ('123', ''); '123.server' -> ('123', None)."""
    m = re.fullmatch(r"\s*(\d+)(?:\[(\d*)\])?(?:\..*)?\s*", raw)
    if not m:
        raise SchedulerError(f"cannot read PBS job id {raw!r}: report this with your PBS version")
    return m.group(1), m.group(2)


def qstat_ids(job_ids: Sequence[str]) -> list[str]:
    """Ids to hand qstat -t: a bare number (DJHPC_JOB_ID) as both its array (123[]) and a plain job
    (a one-task run has no array); a subjob (123[4].server) as its whole array."""
    ids: list[str] = []
    for raw in job_ids:
        job_id = str(raw).strip()
        if re.fullmatch(r"\d+", job_id):
            ids += [f"{job_id}[]", job_id]
        else:
            ids.append(re.sub(r"^(\d+)\[\d+\]", r"\1[]", job_id))
    return list(dict.fromkeys(ids))


def pbs_state(job_state: str, exit_status: int | None, flavour: str = "pbs") -> TaskState:
    """A PBS job_state letter plus exit status -> TaskState."""
    letter = job_state.strip().upper()[:1]
    if letter in _LIVE_STATES:
        return _LIVE_STATES[letter]
    if letter not in _DONE_STATES:
        return TaskState.UNKNOWN
    if exit_status is None:
        return TaskState.CANCELLED  # deleted before it ran
    if exit_status == 0:
        return TaskState.COMPLETED
    if exit_status >= 256:  # killed by signal exit_status - 256: qdel, or a walltime kill on old PBS
        return TaskState.CANCELLED
    if exit_status < 0:
        codes = _TORQUE_EXEC_CODES if flavour == "torque" else _PBSPRO_EXEC_CODES
        return codes.get(exit_status, TaskState.FAILED)
    return TaskState.FAILED


def _key(raw_id: str) -> str | None:
    job, index = split_job_id(raw_id)
    if index == "":
        return None  # the array itself (123[]), not a task
    return f"{job}_{index or 1}"


def _exit_status(attrs: Mapping[str, Any]) -> int | None:
    for name, value in attrs.items():
        if name.lower() == "exit_status":
            try:
                return int(str(value).strip())
            except ValueError:
                return None
    return None


def _job_state(attrs: Mapping[str, Any]) -> str:
    for name, value in attrs.items():
        if name.lower() == "job_state":
            return str(value)
    return ""


def parse_qstat_json(text: str, flavour: str = "pbs") -> dict[str, TaskState]:
    """`qstat -x -f -F json -t IDS` (PBS Pro)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"cannot read qstat JSON ({exc.msg}): {one_line(text, 200)!r}") from exc
    jobs = data.get("Jobs", {}) if isinstance(data, dict) else {}
    states: dict[str, TaskState] = {}
    for raw_id, attrs in jobs.items():
        key = _key(raw_id)
        if key is not None and isinstance(attrs, dict):
            states[key] = pbs_state(_job_state(attrs), _exit_status(attrs), flavour)
    return states


def parse_qstat_full(text: str, flavour: str = "pbs") -> dict[str, TaskState]:
    """`qstat -f -t IDS` text: 'Job Id: 123[4].server' blocks of '    name = value' lines."""
    blocks: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        m = re.match(r"\s*Job Id:\s*(\S+)", line)
        if m:
            blocks.append((m.group(1), {}))
            continue
        m = re.match(r"\s+([A-Za-z_][\w.]*)\s*=\s*(.*)$", line)
        if m and blocks:
            blocks[-1][1][m.group(1)] = m.group(2).strip()
        # anything else is a folded continuation of a long value (Variable_List ...): not needed
    states: dict[str, TaskState] = {}
    for raw_id, attrs in blocks:
        key = _key(raw_id)
        if key is not None:
            states[key] = pbs_state(_job_state(attrs), _exit_status(attrs), flavour)
    return states


def parse_qmgr_max_array(text: str) -> int | None:
    """max_array_size (PBS Pro) or max_job_array_size (Torque) from `qmgr -c 'list server'`."""
    m = re.search(r"\bmax_(?:job_)?array_size\s*=\s*(\d+)", text)
    return int(m.group(1)) if m else None


def _unknown_only(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return all("Unknown Job Id" in line or "Unknown queue destination" in line for line in lines)


class PbsScheduler(Scheduler):
    """PBS Professional / OpenPBS."""

    name = "pbs"
    template_name = "pbs.sh.j2"
    flavour: ClassVar[str] = "pbs"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "PBS_JOBID",
        "task_id": "PBS_ARRAY_INDEX",
        "task_count": None,
    }
    # PBS's own default (NAME.oSEQ.INDEX) is per task already
    default_output = None
    default_error = None
    directive_prefix = "#PBS"
    missing_hint = _HINT

    @classmethod
    def task_job_id(cls, raw: str) -> str:
        return raw.split(".")[0].split("[")[0]  # 123[4].server -> 123, as DJHPC_JOB_ID in the scripts

    def format_time(self, seconds: int) -> str:
        return format_walltime(seconds)

    def format_mem(self, megabytes: int) -> str:
        return f"{megabytes}mb"

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        context = super().context(profile, **kwargs)
        notes = context["notes"]
        if profile.qos:
            notes.append(f"qos {profile.qos!r} has no PBS equivalent: ignored (extra_directives can set one)")
        if profile.signal_seconds:
            notes.append("PBS sends no early warning: workers get SIGTERM at the walltime (signal_seconds unused)")
        letters, dropped = pbs_mail_points(profile.mail_type) if profile.mail_type else ("", [])
        if dropped:
            notes.append(f"mail_type {','.join(dropped)} has no PBS equivalent: ignored")
        for name in ("output", "error"):
            path = getattr(profile, name)
            if path and re.search(r"%[Aajxu]", path):
                notes.append(f"{name} {path!r} has SLURM placeholders (%A, %a), which PBS writes as they are")
        context["mail_points"] = letters
        context["select"] = self.select(profile, notes)
        return context

    def select(self, profile: Profile, notes: list[str]) -> str | None:
        parts = [str(profile.nodes or 1)]
        if profile.cpus:
            parts.append(f"ncpus={profile.cpus}")
        if profile.mem:
            parts.append(f"mem={self.format_mem(profile.mem)}")
        if profile.gpus:
            parts.append(f"ngpus={profile.gpus}")
            if profile.gpu_type:
                notes.append(
                    f"gpu_type {profile.gpu_type!r} has no portable PBS form: ignored (extra_directives can set one)"
                )
        return ":".join(parts) if len(parts) > 1 or profile.nodes else None

    def submit_file(self, path: Path) -> str:
        argv = ["qsub", str(path)]
        proc = run_command(argv, hint=_HINT, timeout=120)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "fix the profile (queue, account, walltime, resources) or the limits")
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        job_id = lines[-1] if lines else ""
        if not re.fullmatch(r"\d+(?:\[\])?(?:\.[\w.-]+)?", job_id):
            raise SchedulerError(
                f"qsub printed {one_line(proc.stdout)!r}, not a job id: check for a wrapper around qsub"
            )
        return job_id

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        """Keyed JOBID_TASK with JOBID the number alone (DJHPC_JOB_ID): 123[4].server is 123_4."""
        ids = qstat_ids(job_ids)
        if not ids:
            return {}
        argv = ["qstat", "-x", "-f", "-F", "json", "-t", *ids]
        proc = self._qstat(argv)
        if proc is not None:
            try:
                return parse_qstat_json(proc.stdout, self.flavour)
            except SchedulerError:
                pass  # some versions write invalid JSON (unescaped values): read the text form
        proc = self._qstat(["qstat", "-x", "-f", "-t", *ids], required=True)
        return parse_qstat_full(proc.stdout if proc else "", self.flavour)

    def _qstat(self, argv: list[str], required: bool = False) -> subprocess.CompletedProcess[str] | None:
        """Run qstat; None when this form is not understood (PBS Pro before -F json)."""
        proc = run_command(argv, hint=_HINT)
        if proc.returncode == 0 or proc.stdout.strip() or _unknown_only(proc.stderr):
            return proc
        if not required and re.search(r"usage|invalid option|illegal", proc.stderr, re.IGNORECASE):
            return None
        raise command_failed(argv, proc, "check that the PBS server is up (qstat -B)")

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """qdel of the ids qsub printed (123[].server: the whole array): SIGTERM, SIGKILL kill_delay later."""
        ids = [str(j).strip() for j in job_ids]
        for job_id in ids:
            split_job_id(job_id)  # a SchedulerError naming it when it is no PBS job id
        return ["qdel", *dict.fromkeys(ids)]

    def site_limits(self) -> SiteLimits:
        try:
            proc = run_command(["qmgr", "-c", "list server"], hint=_HINT, timeout=20)
        except SchedulerError:
            return SiteLimits()
        if proc.returncode != 0:
            return SiteLimits()
        return SiteLimits(max_array_size=parse_qmgr_max_array(proc.stdout))


class TorqueScheduler(PbsScheduler):
    """Torque (and its forks): qsub -t arrays, PBS_ARRAYID."""

    name = "torque"
    template_name = "torque.sh.j2"
    flavour = "torque"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "PBS_JOBID",
        "task_id": "PBS_ARRAYID",
        "task_count": None,
        "walltime": "PBS_WALLTIME",
    }

    def select(self, profile: Profile, notes: list[str]) -> str | None:
        if profile.gpus and profile.gpu_type:
            notes.append(
                f"gpu_type {profile.gpu_type!r} has no portable Torque form: ignored (extra_directives can set one)"
            )
        return None  # the template writes nodes=N:ppn=C[:gpus=G] and mem

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        ids = qstat_ids(job_ids)
        if not ids:
            return {}
        proc = self._qstat(["qstat", "-f", "-t", *ids], required=True)  # Torque's -x is XML
        return parse_qstat_full(proc.stdout, self.flavour)
