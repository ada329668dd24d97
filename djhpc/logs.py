"""Where a run's task logs are, and their lines made readable (``djhpc logs``).

A run is one array ``djhpc submit`` recorded. Its tasks write where the scheduler puts them: SLURM, Grid Engine,
LSF and HTCondor a file per task named by the profile's ``output``/``error`` pattern (or the scheduler's default,
e.g. ``djhpc-%A_%a.out``), relative to the job's working directory (the profile's ``workdir``, else where
``djhpc submit`` ran: the project folder or the current one); PBS ``NAME.oJOB`` files; a local run one file
beside its script, ``SCRIPT.log``, for every task; a GNU parallel run the same, each line tagged with its task.

A worker's key lines (``djhpc work`` writes them tab-separated: time, event, table, key as JSON, seconds,
outcome, message) are turned into ``time  Class key  outcome seconds: message``, the key as ``keytext`` prints it.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .keytext import format_key
from .progress import class_name
from .submissions import Submission, Submissions

ONE_FILE_SCHEDULERS = ("local", "parallel")  # every task's output in SCRIPT.log
_FIXED = {"%%": "%"}
_JOB = ("%A", "%J", "$JOB_ID", "${JOB_ID}", "$(Cluster)", "$(ClusterId)")
_TASK = ("%a", "%I", "$TASK_ID", "${TASK_ID}", "$(Process)", "$INT(djhpc_task,%d)")
_OTHER = re.compile(r"%[a-zA-Z]|\$\{?[A-Za-z_]+\}?|\$\([^)]*\)")  # anything else a pattern may hold: a wildcard
_TAG = re.compile(r"^task (\d+)\t")
OUTCOMES = {"success": "made", "error": "failed", "interrupted": "given back", "lost": "lost"}


@dataclass
class TaskLog:
    """The log file(s) of one task; task None: every task of the run writes into these."""

    task: int | None
    paths: list[Path] = field(default_factory=list)


@dataclass
class RunLogs:
    submission: Submission
    logs: list[TaskLog]
    tagged: bool = False  # lines start with "task N<TAB>" (GNU parallel's --tagstring)
    looked_in: list[str] = field(default_factory=list)  # what was searched, for "no log found"

    @property
    def paths(self) -> list[Path]:
        return [p for t in self.logs for p in t.paths]


def find_run(connection, schema: str, table_name: str | None, job_id: str | None = None,
             limit: int = 50) -> Submission:
    """The newest recorded run of the table (of the schema: table_name None), or the one with ``job_id``."""
    subs = Submissions(connection, schema).recent(limit)
    if table_name:
        subs = [s for s in subs if s.table_name == table_name]
    what = f"{class_name(table_name)}" if table_name else f"schema {schema}"
    if not subs:
        raise UsageError(f"no run of {what} recorded: djhpc submit records the runs whose logs djhpc logs shows")
    if job_id is None:
        return subs[0]
    for s in subs:
        if s.job_id == str(job_id):
            return s
    raise UsageError(f"no run with job id {job_id} of {what}: the recorded ones are "
                     f"{', '.join(s.job_id for s in subs[:10])}")


def _expand(pattern: str, job_id: str, task: int | None, user: str) -> str:
    out = pattern.replace("%%", "\0")
    for name in _JOB:
        out = out.replace(name, job_id)
    for name in _TASK:
        out = out.replace(name, "*" if task is None else str(task))
    out = out.replace("%u", user)
    out = _OTHER.sub("*", out)
    return out.replace("\0", "%")


def _folders(sub: Submission) -> list[Path]:
    """Where a relative output pattern may be: the profile's workdir, the project (the script's .djhpc/scripts
    sits in it), the current folder."""
    profile = sub.settings.get("profile") or {}
    found = []
    if profile.get("workdir"):
        found.append(Path(os.path.expanduser(str(profile["workdir"]))))
    script = Path(sub.script) if sub.script and "/" in sub.script and "\n" not in sub.script else None
    if script is not None and script.parent.name == "scripts" and script.parent.parent.name == ".djhpc":
        found.append(script.parent.parent.parent)
    found.append(Path.cwd())
    return list(dict.fromkeys(found))


def _default_patterns(scheduler: str) -> list[str]:
    from .schedulers import scheduler_class

    cls = scheduler_class(scheduler)
    return [p for p in (cls.default_output, cls.default_error) if p]


def _task_files(sub: Submission, task: int, patterns: list[str], folders: list[Path]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        expanded = _expand(pattern, sub.job_id, task, sub.user)
        bases = [Path()] if os.path.isabs(expanded) else folders
        for base in bases:
            hits = sorted(Path(p) for p in glob.glob(str(base / expanded)))
            if hits:
                found.extend(h for h in hits if h not in found)
                break
    return found


def _pbs_files(sub: Submission, task: int, folders: list[Path]) -> list[Path]:
    """PBS/Torque without an output pattern: NAME.oJOB.TASK (Pro) or NAME.oJOB-TASK (Torque), and .e files."""
    number = re.split(r"[.\[]", sub.job_id, maxsplit=1)[0]
    found = []
    for base in folders:
        for kind in ("o", "e"):
            for sep in (".", "-"):
                found.extend(sorted(Path(p) for p in glob.glob(str(base / f"*.{kind}{number}*{sep}{task}"))))
        if found:
            return found
    return found


def run_logs(sub: Submission, task: int | None = None) -> RunLogs:
    """The log files of a run's tasks (``task``: of that one), as they are now (a pending task has none yet)."""
    if task is not None and not 1 <= task <= sub.array_size:
        raise UsageError(f"--task {task} is not a task of job {sub.job_id}: it has tasks 1 to {sub.array_size}")
    if sub.scheduler in ONE_FILE_SCHEDULERS:
        return _one_file_logs(sub, task)
    profile = sub.settings.get("profile") or {}
    patterns = [p for p in (profile.get("output"), profile.get("error")) if p] or _default_patterns(sub.scheduler)
    folders = _folders(sub)
    tasks = [task] if task is not None else list(range(1, sub.array_size + 1))
    logs = []
    for n in tasks:
        files = _task_files(sub, n, patterns, folders) if patterns else _pbs_files(sub, n, folders)
        logs.append(TaskLog(n, files))
    shown = ", ".join(patterns) if patterns else f"*.o{sub.job_id}*"
    return RunLogs(sub, logs, looked_in=[f"{shown} in {', '.join(map(str, folders))}"])


def _one_file_logs(sub: Submission, task: int | None) -> RunLogs:
    script = Path(sub.script) if sub.script and "\n" not in sub.script else None
    if script is None or not script.name.endswith(".sh"):
        raise UsageError(f"job {sub.job_id} ran from djhpc parallel --run, which prints its workers' output on the "
                         "terminal that started it: no log file was written")
    tagged = sub.scheduler == "parallel"
    if task is not None and not tagged:
        raise UsageError(f"the {sub.array_size} tasks of local run {sub.job_id} write one log together "
                         f"({script.with_suffix('.log')}): drop --task, or submit with --scheduler parallel, "
                         "whose lines name their task")
    log = script.with_suffix(".log")
    return RunLogs(sub, [TaskLog(task, [log] if log.exists() else [])], tagged=tagged, looked_in=[str(log)])


# ---------------------------------------------------------------------------- lines
def readable(line: str) -> str:
    """A worker's tab-separated key line as ``12:03:04  Analysis subject='r1', session_id=7  made 0.05 s``; any
    other line as it is."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 7 or fields[1] not in ("start", "end"):
        return line.rstrip("\n")
    when, event, table_name, key_json, seconds, outcome, message = fields
    try:
        key = json.loads(key_json)
        clock = dt.datetime.fromisoformat(when).strftime("%H:%M:%S")
    except ValueError:
        return line.rstrip("\n")
    head = f"{clock}  {class_name(table_name)} {format_key(key) if isinstance(key, dict) else key_json}"
    if event == "start":
        return f"{head}  started"
    text = f"{head}  {OUTCOMES.get(outcome, outcome)}"
    if seconds:
        text += f" after {float(seconds):.2f} s"
    return f"{text}: {message}" if message else text


def task_lines(lines, task: int | None, tagged: bool):
    """(task or None, line) of each line; with tags, only ``task``'s lines when it is given."""
    for line in lines:
        m = _TAG.match(line) if tagged else None
        n = int(m.group(1)) if m else None
        if m:
            line = line[m.end():]
        if task is not None and tagged and n != task:
            continue
        yield n, line


class Tail:
    """New complete lines of a file since the last read (a file that appears later is read from its start)."""

    def __init__(self, path: Path, *, from_start: bool = True):
        self.path = path
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size
        self.rest = b""

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < self.offset:  # truncated: start again
                    self.offset, self.rest = 0, b""
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.rest + data
        *lines, self.rest = data.split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines]

    def flush(self) -> list[str]:
        """The last line if the file does not end with a newline (at the end of a run)."""
        rest, self.rest = self.rest, b""
        return [rest.decode("utf-8", "replace")] if rest else []


def run_running(sub: Submission) -> bool:
    """Whether the scheduler still lists a task of the run pending or running."""
    from .cancel import is_live
    from .schedulers import get_scheduler

    return is_live(sub, get_scheduler(sub.scheduler).task_states([sub.job_id]))
