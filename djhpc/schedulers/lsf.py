"""IBM Spectrum LSF: `bsub < script` to submit, bjobs + bhist for task states, bparams for limits, bkill to cancel.

bsub reads the #BSUB lines only when the script comes on its stdin (a script named as an argument is run as
a command, its directives ignored). An array is a job name with an index range, "name[1-N]%M"; each
element sees LSB_JOBID (the array's id) and LSB_JOBINDEX. bjobs forgets a finished job after CLEAN_PERIOD
(an hour by default); bhist reads the event log and knows it for longer, so bjobs wins for every element
it lists and bhist fills in the rest (as squeue and sacct do on SLURM).

bkill sends SIGINT, SIGTERM JOB_TERMINATE_INTERVAL (10 s) later, then SIGKILL: the worker gives its keys
back at the first (djhpc/signals.py); a run limit does the same, after the -wa/-wt warning signal.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile
from djhpc.schedulers.base import (
    Scheduler,
    SiteLimits,
    TaskState,
    command_failed,
    merge_states,
    one_line,
    optional_output,
    run_command,
    task_key,
)

_HINT = "run this on an LSF login node (source profile.lsf) or use --scheduler local"

# bjobs STAT -> ours; DONE and EXIT are read with the exit reason (lsf_state)
_LIVE_STATES = {
    "PEND": TaskState.PENDING, "WAIT": TaskState.PENDING, "PROV": TaskState.PENDING,
    "PSUSP": TaskState.PENDING,  # suspended by its owner before it started: still waiting
    "RUN": TaskState.RUNNING,
    "USUSP": TaskState.SUSPENDED, "SSUSP": TaskState.SUSPENDED,
    "UNKWN": TaskState.UNKNOWN,
    "ZOMBI": TaskState.NODE_FAIL,  # killed while its host was unreachable
}  # fmt: skip

# the TERM_* exit reasons LSF records for a job it ended itself (lsb.acct, bacct -l, bhist -l)
_EXIT_REASONS = {
    "TERM_RUNLIMIT": TaskState.TIMEOUT, "TERM_DEADLINE": TaskState.TIMEOUT, "TERM_CPULIMIT": TaskState.TIMEOUT,
    "TERM_MEMLIMIT": TaskState.OUT_OF_MEMORY, "TERM_SWAP": TaskState.OUT_OF_MEMORY,
    "TERM_SWAPLIMIT": TaskState.OUT_OF_MEMORY,
    "TERM_OWNER": TaskState.CANCELLED, "TERM_ADMIN": TaskState.CANCELLED, "TERM_FORCE_OWNER": TaskState.CANCELLED,
    "TERM_FORCE_ADMIN": TaskState.CANCELLED, "TERM_REQUEUE_OWNER": TaskState.CANCELLED,
    "TERM_REQUEUE_ADMIN": TaskState.CANCELLED, "TERM_REMOVE_HUNG_JOB": TaskState.CANCELLED,
    "TERM_PREEMPT": TaskState.PREEMPTED, "TERM_LOAD": TaskState.PREEMPTED, "TERM_WINDOW": TaskState.PREEMPTED,
    "TERM_ZOMBIE": TaskState.NODE_FAIL, "TERM_HOST_UNREACH": TaskState.NODE_FAIL,
    "TERM_ORPHAN_SYSTEM": TaskState.CANCELLED,  # a job it depended on failed
}  # fmt: skip

# the words of those reasons, for an exit_reason printed without its TERM_ name
_EXIT_PHRASES = (
    ("killed by owner", TaskState.CANCELLED), ("killed by lsf administrator", TaskState.CANCELLED),
    ("run time limit", TaskState.TIMEOUT), ("memory limit", TaskState.OUT_OF_MEMORY),
    ("preempted", TaskState.PREEMPTED),
)  # fmt: skip

# bsub -w conditions for djhpc's --after-type
_DEPENDENCY = {"afterok": "done", "afterany": "ended", "afternotok": "exit", "after": "started"}

# characters bsub reads as part of the array spec in -J "name[1-N]%M"
_NAME_SPECIAL = re.compile(r'[\[\]%"\\]')

BJOBS_FIELDS = "jobid jobindex stat exit_code exit_reason"


def lsf_state(stat: str, exit_reason: str = "") -> TaskState:
    """A bjobs STAT (plus the exit reason for EXIT) -> TaskState. An EXIT without a TERM_* reason is the
    script's own exit status (a worker's failed makes, or its stop): FAILED, as sacct says of such a task."""
    word = stat.strip().upper()
    if word == "DONE":
        return TaskState.COMPLETED
    if word != "EXIT":
        return _LIVE_STATES.get(word, TaskState.UNKNOWN)
    reason = re.search(r"TERM_[A-Z_]+", exit_reason.upper())
    if reason and reason.group(0) in _EXIT_REASONS:
        return _EXIT_REASONS[reason.group(0)]
    for phrase, state in _EXIT_PHRASES:  # the reason's words without the TERM_ name
        if phrase in exit_reason.lower():
            return state
    return TaskState.FAILED


def split_job_id(raw: str, index: str = "") -> tuple[str, str]:
    """'123[4]' -> ('123', '4'); ('123', '4') as JOBID and JOBINDEX fields. A job outside an array has index
    '0', as LSB_JOBINDEX says inside it (djhpc's own runs are always arrays, from 1)."""
    m = re.fullmatch(r"\s*(\d+)(?:\[(\d+)\])?\s*", str(raw))
    if not m:
        raise SchedulerError(f"cannot read LSF job id {raw!r}: report this with your LSF version (lsid)")
    return m.group(1), m.group(2) or str(index).strip() or "0"


def parse_bjobs_json(text: str) -> dict[str, TaskState]:
    """`bjobs -a -json -o "jobid jobindex stat exit_code exit_reason" IDS` (LSF 10.1.0.2 and later)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"cannot read bjobs JSON ({exc.msg}): {one_line(text, 200)!r}") from exc
    records = data.get("RECORDS", []) if isinstance(data, dict) else []
    states: dict[str, TaskState] = {}
    for record in records:
        if not isinstance(record, dict) or "ERROR" in record or not record.get("STAT"):
            continue  # "Job <9> is not found": nothing to say about it
        job, task = split_job_id(str(record.get("JOBID", "")), str(record.get("JOBINDEX", "")))
        states[task_key(job, task)] = lsf_state(str(record["STAT"]), str(record.get("EXIT_REASON", "")))
    return states


def parse_bjobs_text(text: str) -> dict[str, TaskState]:
    """`bjobs -a -noheader -o "jobid jobindex stat exit_code exit_reason delimiter='|'" IDS` (before -json)."""
    states: dict[str, TaskState] = {}
    for line in text.splitlines():
        if not line.strip() or " is not found" in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3:
            raise SchedulerError(f"cannot read bjobs output line {one_line(line)!r}: expected JOBID|INDEX|STAT|...")
        fields += [""] * (5 - len(fields))
        job, task = split_job_id(fields[0], fields[1])
        states[task_key(job, task)] = lsf_state(fields[2], fields[4])  # JOBID|INDEX|STAT|EXIT_CODE|EXIT_REASON
    return states


def _unfold_bhist(text: str) -> str:
    """bhist -l folds long lines at 80 columns, continuing them after 21 blanks: join them again."""
    out: list[str] = []
    for line in text.splitlines():
        if out and line.startswith(" " * 21):
            out[-1] += line[21:]
        else:
            out.append(line)
    return "\n".join(out)


# bhist -l events, last one wins: (pattern, state)
_BHIST_EVENTS = (
    (re.compile(r"Submitted from host"), TaskState.PENDING),
    (re.compile(r"Dispatched to|Started \d+ Task|Starting \(Pid"), TaskState.RUNNING),
    (re.compile(r"Done successfully"), TaskState.COMPLETED),
    (re.compile(r"Exited with exit code|Exited by (?:LSF )?signal|Exited\b"), TaskState.FAILED),
    (re.compile(r"Completed <exit>"), TaskState.FAILED),
    (re.compile(r"Completed <done>"), TaskState.COMPLETED),
)


def parse_bhist_long(text: str) -> dict[str, TaskState]:
    """`bhist -a -l IDS`: one block per array element ('Job <123[4]>, Job Name <...>'), events in order."""
    states: dict[str, TaskState] = {}
    for block in re.split(r"\n-{20,}\n", "\n" + _unfold_bhist(text) + "\n"):
        m = re.search(r"Job <(\d+(?:\[\d+\])?)>", block)
        if not m:
            continue
        job, task = split_job_id(m.group(1))
        state = TaskState.UNKNOWN
        for line in block.splitlines():
            for pattern, found in _BHIST_EVENTS:
                if pattern.search(line):
                    state = found
        if state is TaskState.FAILED:  # "Completed <exit>; TERM_RUNLIMIT: job killed after ...
            reasons = [r for r in re.findall(r"\b(TERM_[A-Z_]+):", block) if r in _EXIT_REASONS]
            if reasons:
                state = _EXIT_REASONS[reasons[-1]]
        states[task_key(job, task)] = state
    return states


def parse_bparams(text: str) -> int | None:
    """MAX_JOB_ARRAY_SIZE from `bparams -a` (or an lsb.params file), None when it is not there."""
    m = re.search(r"^\s*MAX_JOB_ARRAY_SIZE\s*=\s*(\d+)", text, flags=re.MULTILINE)
    return int(m.group(1)) if m else None


def parse_bsub_output(text: str) -> str:
    """'Job <123> is submitted to queue <normal>.' -> '123'."""
    m = re.search(r"Job <(\d+)> is submitted", text)
    if not m:
        raise SchedulerError(f"bsub printed {one_line(text)!r}, not a job id: check for a wrapper around bsub")
    return m.group(1)


def lsf_time(seconds: int) -> str:
    """bsub -W: [hours:]minutes, rounded up to the minute (LSF has no seconds)."""
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"{hours}:{minutes:02d}"


def lsf_output(path: str | None) -> str | None:
    """SLURM's %A and %a in a log path written as LSF's %J and %I."""
    return path.replace("%A", "%J").replace("%a", "%I") if path else path


class LsfScheduler(Scheduler):
    """IBM Spectrum LSF (and OpenLava, Volclava)."""

    name = "lsf"
    template_name = "lsf.sh.j2"
    task_env_names: ClassVar[dict[str, str | None]] = {
        "job_id": "LSB_JOBID",
        "task_id": "LSB_JOBINDEX",
        # the array's last index: its size, since djhpc's arrays run 1..N (LSF names no first index)
        "task_count": "LSB_JOBINDEX_END",
    }
    default_output = "djhpc-%J_%I.out"
    default_error = "djhpc-%J_%I.err"
    directive_prefix = "#BSUB"
    missing_hint = _HINT

    def context(self, profile: Profile, **kwargs: Any) -> dict[str, Any]:
        context = super().context(profile, **kwargs)
        notes = context["notes"]
        if _NAME_SPECIAL.search(profile.job_name):
            raise UsageError(
                f'job name {profile.job_name!r} holds [, ], %, " or \\, which bsub -J reads as part of the array: '
                "rename it (--job-name)"
            )
        if profile.qos:
            notes.append(f"qos {profile.qos!r} has no LSF equivalent: ignored (extra_directives can set -sla)")
        for name in ("output", "error"):
            path = getattr(profile, name)
            if path and re.search(r"%[Aa]", path):
                notes.append(f"{name} {path!r}: SLURM's %A and %a written as LSF's %J and %I")
        context["output"] = lsf_output(context["output"])
        context["error"] = lsf_output(context["error"])
        context["time"] = lsf_time(profile.time) if profile.time else None
        context["slots"] = (profile.nodes or 1) * (profile.cpus or 1)
        context["span"] = f"span[ptile={profile.cpus or 1}]" if (profile.nodes or 1) > 1 else "span[hosts=1]"
        context["gpu"] = (
            f"num={profile.gpus}" + (f":gmodel={profile.gpu_type}" if profile.gpu_type else "")
            if profile.gpus
            else None
        )
        context["mail_begin"], context["mail_end"] = self.mail_points(profile, notes)
        context["dependency"] = (
            " && ".join(f"{_DEPENDENCY[profile.after_type]}({job})" for job in profile.after) if profile.after else None
        )
        context["warning_minutes"] = math.ceil(profile.signal_seconds / 60) if profile.signal_seconds else None
        return context

    @staticmethod
    def mail_points(profile: Profile, notes: list[str]) -> tuple[bool, bool]:
        """(-B, -N): LSF mails when a job starts and when it ends, nothing finer."""
        kinds = set((profile.mail_type or "").split(",")) - {""}
        begin = bool(kinds & {"BEGIN", "ALL"})
        end = bool(kinds & {"END", "FAIL", "ALL"})
        if "FAIL" in kinds and "END" not in kinds and "ALL" not in kinds:
            notes.append("mail_type FAIL: LSF mails at the end of every task (-N), failed or not")
        dropped = sorted(kinds - {"BEGIN", "END", "FAIL", "ALL", "NONE"})
        if dropped:
            notes.append(f"mail_type {','.join(dropped)} has no LSF equivalent: ignored")
        return begin, end

    def format_mem(self, megabytes: int) -> str:
        return f"{megabytes}MB"

    # -- submit, query, cancel ----------------------------------------------------------------

    def submit_file(self, path: Path) -> str:
        argv = ["bsub"]  # < path: bsub reads the directives only from a script on its stdin
        if shutil.which("bsub") is None:
            raise SchedulerError(f"bsub not found on PATH: {_HINT}")
        try:
            with open(path, "rb") as script:
                proc = subprocess.run(
                    argv, stdin=script, capture_output=True, timeout=120, check=False,
                )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise SchedulerError("bsub did not answer within 120 s: the scheduler may be busy, try again") from exc
        except OSError as exc:
            raise SchedulerError(f"bsub could not run ({exc.strerror}): {_HINT}") from exc
        stdout, stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            said = one_line(stderr or stdout or "no output")
            raise SchedulerError(
                f"bsub < {shlex.quote(str(path))} failed (exit {proc.returncode}): {said}: "
                "fix the profile (queue, project, time, mem) or the limits"
            )
        return parse_bsub_output(stdout)

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        ids = sorted({split_job_id(str(j).split("_")[0])[0] for j in job_ids})
        if not ids:
            return {}
        live = self._bjobs(ids)
        bhist = optional_output(["bhist", "-a", "-l", *ids], hint=_HINT)  # none here: bjobs alone
        return merge_states(live, parse_bhist_long(bhist) if bhist is not None else {})

    def _bjobs(self, ids: list[str]) -> dict[str, TaskState]:
        argv = ["bjobs", "-a", "-json", "-o", BJOBS_FIELDS, *ids]
        proc = run_command(argv, hint=_HINT)
        if proc.stdout.lstrip().startswith("{"):
            return parse_bjobs_json(proc.stdout)
        # LSF before 10.1.0.2 has no -json: the same fields, delimited
        argv = ["bjobs", "-a", "-noheader", "-o", f"{BJOBS_FIELDS} delimiter='|'", *ids]
        proc = run_command(argv, hint=_HINT)
        if proc.returncode != 0 and not _not_found_only(proc.stdout + proc.stderr):
            raise command_failed(argv, proc, "check that LSF answers (lsid, bhosts)")
        return parse_bjobs_text(proc.stdout)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """bkill: SIGINT, SIGTERM 10 s later, SIGKILL 10 s after that; a pending element is just removed."""
        return ["bkill", *(split_job_id(str(j).split("_")[0])[0] for j in job_ids)]

    def cancel(self, job_ids: Sequence[str]) -> None:
        """bkill; an array that has finished already is not an error (bkill says so and exits 255)."""
        if not job_ids:
            return
        argv = self.cancel_argv(job_ids)
        proc = run_command(argv, hint=_HINT)
        said = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        gone = ("Job has already finished", "No matching job found", "is being terminated", "is being signaled")
        if proc.returncode != 0 and not all(any(g in line for g in gone) for line in said):
            raise command_failed(argv, proc, "check the job ids with djhpc status")

    def site_limits(self) -> SiteLimits:
        try:
            proc = run_command(["bparams", "-a"], hint=_HINT, timeout=20)
        except SchedulerError:
            return SiteLimits()
        limit = parse_bparams(proc.stdout) if proc.returncode == 0 else None
        # LSF's limit is the highest index allowed; SiteLimits counts one above it (SLURM's MaxArraySize)
        return SiteLimits(max_array_size=None if limit is None else limit + 1)


def _not_found_only(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return all("is not found" in line or "No job found" in line for line in lines)
