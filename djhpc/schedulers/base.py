"""Scheduler base: render a task script from a template, submit it, ask for the state of its tasks.

Each array task of a run execs one populate worker, `djhpc work TARGET [worker args]`. Every
script exports the same DJHPC_* variables whatever the scheduler:

- DJHPC_SCHEDULER    slurm, pbs, torque, parallel or local
- DJHPC_JOB_ID       the scheduler's job id of the array (digits only for SLURM and PBS)
- DJHPC_TASK_ID      this task's index inside its array, 1..size
- DJHPC_TASK_OFFSET  add to DJHPC_TASK_ID for the run-wide task number (arrays split by plan_arrays)
- DJHPC_TASK_COUNT   tasks in the whole run

`task_key(DJHPC_JOB_ID, DJHPC_TASK_ID)` is the key `Scheduler.task_states` reports the task under.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile, check_line, format_time_slurm

if TYPE_CHECKING:
    import jinja2

# jinja2 is imported where a script is rendered: a worker reads its task environment through the scheduler
# classes without paying for it


class TaskState(str, Enum):
    """State of one array task, the same words for every scheduler (SLURM's)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


# A task in one of these is gone for good: its worker is dead (we submit with --no-requeue / -r n).
TERMINAL_STATES = frozenset(
    {
        TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMEOUT, TaskState.CANCELLED,
        TaskState.PREEMPTED, TaskState.NODE_FAIL, TaskState.OUT_OF_MEMORY,
    }
)  # fmt: skip

# Roles of Scheduler.task_env_names, the variables a scheduler sets in each of its tasks:
#   job_id         the array's job id (the task_states key's JOBID, after task_job_id)
#   task_id        this task's index inside its array
#   task_count     tasks in the array
#   task_min       the array's first index (1 where missing)
#   allocation_id  the job id of this allocation alone (SLURM: one per array task; a job outside an array)
#   walltime       seconds the allocation may run, counted from the task's start
TASK_ENV_ROLES = ("job_id", "task_id", "task_count", "task_min", "allocation_id", "walltime")

# Names the scripts set themselves; a user env may not override them.
DJHPC_VARIABLES = frozenset(
    {"DJHPC_SCHEDULER", "DJHPC_JOB_ID", "DJHPC_TASK_ID", "DJHPC_TASK_OFFSET", "DJHPC_TASK_COUNT"}
)


@dataclass(frozen=True)
class SiteLimits:
    """Limits of the cluster, None when unknown. max_array_size is SLURM's MaxArraySize: the highest
    array index must stay below it (PBS's count limit is read the same way, one on the safe side)."""

    max_array_size: int | None = None
    max_submit_jobs: int | None = None


@dataclass(frozen=True)
class ArrayChunk:
    """One array of a run: indices first_index..last_index; run-wide task = index_offset + index."""

    first_index: int
    last_index: int
    index_offset: int

    @property
    def size(self) -> int:
        return self.last_index - self.first_index + 1


def plan_arrays(
    n_tasks: int,
    throttle: int | None = None,
    max_array_size: int | None = None,
    *,
    max_submit_jobs: int | None = None,
) -> list[ArrayChunk]:
    """Split n_tasks into arrays whose highest index stays below max_array_size.

    Each chunk runs indices 1..k with its own index_offset; a throttle applies per array.
    """
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
        raise UsageError(f"--array must be >= 1 (got {n_tasks})")
    if throttle is not None:
        if isinstance(throttle, bool) or not isinstance(throttle, int) or throttle < 1:
            raise UsageError(f"--throttle must be >= 1 (got {throttle})")
        if throttle > n_tasks:
            raise UsageError(f"--throttle {throttle} is larger than the array ({n_tasks}): lower it or omit it")
    if max_submit_jobs is not None and n_tasks > max_submit_jobs:
        raise UsageError(
            f"--array {n_tasks} is more than this account may queue (MaxSubmitJobs {max_submit_jobs}): "
            "lower --array; each worker drains the queue, so fewer workers still finish every key"
        )
    if max_array_size is None:
        return [ArrayChunk(1, n_tasks, 0)]
    per_array = max_array_size - 1  # the limit is on the highest index, and ours start at 1
    if per_array < 1:
        raise SchedulerError(
            f"MaxArraySize={max_array_size} leaves no array index from 1 up: "
            "ask the cluster admins to raise it or use --scheduler parallel"
        )
    return [ArrayChunk(1, min(per_array, n_tasks - offset), offset) for offset in range(0, n_tasks, per_array)]


def task_key(job_id: str | int, task_id: str | int) -> str:
    """The key of one task in task_states: JOBID_TASK (SLURM's own spelling)."""
    return f"{job_id}_{task_id}"


# ---------------------------------------------------------------------------------------- quoting


def _is_undefined(value: Any) -> bool:
    import jinja2

    return isinstance(value, jinja2.Undefined)


def shell_quote(value: Any) -> str:
    """The `q` filter: one shell word, whatever the value holds."""
    if value is None or _is_undefined(value):
        raise TypeError("a template quoted a value that is not set; guard it with {% if %}")
    return shlex.quote(str(value))


def shell_join(words: Iterable[Any]) -> str:
    """The `qjoin` filter: words quoted one by one and joined with spaces."""
    return " ".join(shell_quote(w) for w in words)


# printable ASCII without blanks, quotes, backslash or #: bytes >= 0x80 can be blanks to isspace()
# in some C locales, so anything else is quoted
_DIRECTIVE_PLAIN = re.compile(r"[!$-&(-\[\]-~]+")


def directive_quote(value: Any) -> str:
    """The `dq` filter: a value in a #SBATCH/#PBS line. Not shell: sbatch splits the line on blanks,
    honours "..." and '...', and takes backslash as an escape; an unquoted # starts a comment."""
    if value is None or _is_undefined(value):
        raise TypeError("a template quoted a directive value that is not set; guard it with {% if %}")
    text = check_line(str(value), "directive value")
    if _DIRECTIVE_PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -------------------------------------------------------------------------------------- templates


def packaged_template_dir() -> Path:
    """The shipped templates: package djhpc.templates when installed, else templates/ in the repo."""
    try:
        candidate = resources.files("djhpc.templates").joinpath("base.sh.j2")
    except (ModuleNotFoundError, TypeError, ValueError):
        candidate = None
    if isinstance(candidate, Path) and candidate.is_file():
        return candidate.parent
    return Path(__file__).resolve().parents[2] / "templates"


@functools.lru_cache(maxsize=8)
def template_environment(template_dir: str | None = None) -> jinja2.Environment:
    """Jinja environment: the user's directory first, then the shipped templates."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        if not Path(template_dir).is_dir():
            raise UsageError(f"template directory {template_dir!r} does not exist: fix --template-dir")
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FileSystemLoader(str(packaged_template_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(q=shell_quote, qjoin=shell_join, dq=directive_quote)
    return env


# ----------------------------------------------------------------------------------- validation

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"(?:^|_)(?:PASS|PASSWD|PASSWORD|PWD|SECRET|TOKEN|API_?KEY)$", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"://[^/\s@:]*:[^/\s@]+@")
_SETS_PASSWORD = re.compile(r"\b(?:DJ_PASS|MYSQL_PWD|\w*PASSWORD|\w*PASSWD)\s*=", re.IGNORECASE)
_SECRET_FIX = "put it in a file only you can read (chmod 600) and pass the path, e.g. DJHPC_DATABASE_URL_FILE"


def _refuse_url_password(value: str, what: str) -> None:
    # never echo the value: it holds the password
    if _URL_WITH_PASSWORD.search(value):
        raise UsageError(
            f"{what} holds a URL with a password, which would be written into the job script: {_SECRET_FIX}"
        )


def check_target(target: Any) -> str:
    if not isinstance(target, str) or not target.strip():
        raise UsageError(f"target {target!r} is empty: name the table to populate, e.g. my_pipeline.Analysis")
    check_line(target, "target")
    if target.startswith("-"):
        raise UsageError(f"target {target!r} starts with '-': name the table to populate, e.g. my_pipeline.Analysis")
    _refuse_url_password(target, "target")
    return target


def check_worker_args(worker_args: Iterable[Any]) -> list[str]:
    if isinstance(worker_args, str):
        raise UsageError(f"worker arguments must be a list of words (got the string {worker_args!r})")
    args = []
    for arg in worker_args:
        if not isinstance(arg, str):
            raise UsageError(f"worker argument {arg!r} must be text")
        check_line(arg, "worker argument")
        _refuse_url_password(arg, "a worker argument")
        args.append(arg)
    return args


def check_env(env: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Names must be identifiers, values one line; secrets never go into a script."""
    pairs = []
    for name, value in (env or {}).items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise UsageError(f"env name {name!r} is not a shell variable name: use letters, digits and _")
        if name in DJHPC_VARIABLES:
            raise UsageError(f"env {name} is set by djhpc itself in every task: remove it")
        if _SECRET_NAME.search(name):
            raise UsageError(f"env {name} looks like a secret and would be written into the job script: {_SECRET_FIX}")
        if not isinstance(value, str):
            raise UsageError(f"env {name} must be text (got {type(value).__name__})")
        check_line(value, f"env {name}")
        _refuse_url_password(value, f"env {name}")
        pairs.append((name, value))
    return pairs


def check_extra_directives(lines: Iterable[str]) -> list[str]:
    """Verbatim directives are the escape hatch, but never for a password: a directive line is the script."""
    for line in lines:
        if _SETS_PASSWORD.search(line):
            raise UsageError(f"an extra directive sets a password, which would be written into the job script: "
                             f"{_SECRET_FIX}")
        _refuse_url_password(line, "an extra directive")
    return list(lines)


def check_setup(lines: Iterable[str]) -> list[str]:
    checked = []
    for line in lines:
        if _SETS_PASSWORD.search(line):
            raise UsageError(f"a setup line sets a password, which would be written into the job script: {_SECRET_FIX}")
        _refuse_url_password(line, "a setup line")
        checked.append(line)
    return checked


# ------------------------------------------------------------------------------------- commands


def one_line(text: str, limit: int = 500) -> str:
    """Scheduler output squeezed onto one line for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def run_command(argv: Sequence[str], *, hint: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command; a missing binary or a hang is a SchedulerError naming the fix."""
    if shutil.which(argv[0]) is None:
        raise SchedulerError(f"{argv[0]} not found on PATH: {hint}")
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, encoding="utf-8", errors="replace",
            timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise SchedulerError(
            f"{argv[0]} did not answer within {timeout:g} s: the scheduler may be busy, try again"
        ) from exc
    except OSError as exc:
        raise SchedulerError(f"{argv[0]} could not run ({exc.strerror}): {hint}") from exc


def optional_output(argv: Sequence[str], *, hint: str) -> str | None:
    """stdout of a command that may be missing or fail (an accounting or history command beside the one that
    lists live jobs): None then, and the live view stands alone."""
    try:
        proc = run_command(argv, hint=hint)
    except SchedulerError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def listed_names(argv: Sequence[str], *, hint: str) -> set[str] | None:
    """One name a line from a listing command (``sinfo -h -o %R``, ``qconf -sql``); None when it is missing or
    fails (away from the cluster: nothing to check against)."""
    output = optional_output(argv, hint=hint)
    if output is None:
        return None
    names = {line.strip() for line in output.splitlines() if line.strip()}
    return names or None


def merge_states(live: dict[str, TaskState], past: dict[str, TaskState]) -> dict[str, TaskState]:
    """The live listing is current for what it lists; the history (which lags) only fills in."""
    merged = dict(past)
    merged.update(live)
    return merged


def command_failed(argv: Sequence[str], proc: subprocess.CompletedProcess[str], fix: str) -> SchedulerError:
    said = one_line(proc.stderr or proc.stdout or "no output")
    return SchedulerError(f"{shlex.join(argv)} failed (exit {proc.returncode}): {said}: {fix}")


# ------------------------------------------------------------------------------------ scheduler


class Scheduler:
    """One batch system: template, submit command, state query, env var table."""

    name: ClassVar[str] = ""
    template_name: ClassVar[str] = ""
    # role -> env var the scheduler sets in each task (None or missing: it sets none); see TASK_ENV_ROLES.
    # taskenv reads these tables: no other module names a scheduler's own variables
    task_env_names: ClassVar[Mapping[str, str | None]] = {}
    default_output: ClassVar[str | None] = None
    default_error: ClassVar[str | None] = None
    directive_prefix: ClassVar[str | None] = None
    # what to tell the user when the scheduler's commands are missing
    missing_hint: ClassVar[str] = "use --scheduler local"
    # profile settings this scheduler has no use for: named in a note in the script
    ignored_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.last_script: Path | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- render -------------------------------------------------------------------------------

    def render(
        self,
        profile: Profile,
        *,
        target: str,
        array_size: int,
        worker_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        index_offset: int = 0,
        template_dir: str | os.PathLike[str] | None = None,
        total_tasks: int | None = None,
        executable: Sequence[str] = ("djhpc",),
    ) -> str:
        """The task script for one array of array_size tasks (indices 1..array_size)."""
        if isinstance(array_size, bool) or not isinstance(array_size, int) or array_size < 1:
            raise UsageError(f"--array must be >= 1 (got {array_size})")
        if isinstance(index_offset, bool) or not isinstance(index_offset, int) or index_offset < 0:
            raise UsageError(f"index offset must be >= 0 (got {index_offset})")
        context = self.context(
            profile,
            target=check_target(target),
            array_size=array_size,
            worker_args=check_worker_args(worker_args),
            env=check_env(env),
            index_offset=index_offset,
            total_tasks=total_tasks if total_tasks is not None else index_offset + array_size,
            executable=[check_line(str(w), "executable") for w in executable],
        )
        directory = None if template_dir is None else str(template_dir)
        import jinja2

        try:
            template = template_environment(directory).get_template(self.template_name)
            return template.render(context)
        except (jinja2.TemplateSyntaxError, jinja2.UndefinedError, jinja2.TemplateNotFound) as exc:
            if directory is None:
                raise
            where = getattr(exc, "filename", None) or self.template_name
            line = getattr(exc, "lineno", None)
            at = f" line {line}" if line else ""
            raise UsageError(f"template {where}{at}: {exc.message}: fix the template in {directory}") from exc

    def context(
        self,
        profile: Profile,
        *,
        target: str,
        array_size: int,
        worker_args: list[str],
        env: list[tuple[str, str]],
        index_offset: int,
        total_tasks: int,
        executable: list[str],
    ) -> dict[str, Any]:
        """Template variables: profile values formatted for this scheduler, numbers worked out here."""
        throttle = min(profile.throttle, array_size) if profile.throttle else None
        notes = []
        ignored = [name for name in self.ignored_settings if _is_set(profile, name)]
        if ignored:
            notes.append(f"the {self.name} scheduler ignores these profile settings: {', '.join(ignored)}")
        context: dict[str, Any] = {
            "scheduler": self.name,
            "job_name": profile.job_name,
            "partition": profile.partition,
            "account": profile.account,
            "qos": profile.qos,
            "time": self.format_time(profile.time) if profile.time else None,
            "time_seconds": profile.time,
            "cpus": profile.cpus,
            "mem": self.format_mem(profile.mem) if profile.mem else None,
            "mem_mb": profile.mem,
            "gpus": profile.gpus,
            "gpu_type": profile.gpu_type,
            "nodes": profile.nodes,
            "output": profile.output or self.default_output,
            "error": profile.error or self.default_error,
            "mail_user": profile.mail_user,
            "mail_type": profile.mail_type,
            "extra_directives": [self.directive_line(x) for x in check_extra_directives(profile.extra_directives)],
            "setup": check_setup(profile.setup),
            "workdir": os.path.expanduser(profile.workdir) if profile.workdir else None,
            "throttle": throttle,
            "after": list(profile.after),
            "after_type": profile.after_type,
            "dependency": f"{profile.after_type}:{':'.join(profile.after)}" if profile.after else None,
            "signal_seconds": profile.signal_seconds,
            "requeue": profile.requeue,
            "array_first": 1,
            "array_last": array_size,
            "array_size": array_size,
            "index_offset": index_offset,
            "total_tasks": total_tasks,
            "target": target,
            "worker_args": worker_args,
            "executable": executable,
            "command": [*executable, "work", target, *worker_args],
            "env": env,
            "notes": notes,
        }
        return context

    def format_time(self, seconds: int) -> str:
        return format_time_slurm(seconds)

    def format_mem(self, megabytes: int) -> str:
        return f"{megabytes}M"

    def directive_line(self, line: str) -> str:
        """An extra directive: lines starting with # go in verbatim, others get the prefix."""
        if line.lstrip().startswith("#") or not self.directive_prefix:
            return line
        return f"{self.directive_prefix} {line.strip()}"

    # -- submit -------------------------------------------------------------------------------

    def write_script(self, script_text: str, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write the script under .djhpc/scripts/ of the cwd, mode 0644 (it holds no secret)."""
        folder = Path(directory) if directory is not None else Path.cwd() / ".djhpc" / "scripts"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.sh"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o644)  # the umask may have taken bits off
            fh.write(script_text)
        self.last_script = path
        return path

    def submit(
        self, script_text: str, *, dry_run: bool = False, script_dir: str | os.PathLike[str] | None = None
    ) -> list[str]:
        """Write the script and submit it: the job ids (one). dry_run writes only (self.last_script)."""
        path = self.write_script(script_text, script_dir)
        if dry_run:
            return []
        return [self.submit_file(path)]

    def submit_file(self, path: Path) -> str:
        raise NotImplementedError

    # -- query --------------------------------------------------------------------------------

    def task_states(self, job_ids: Sequence[str]) -> dict[str, TaskState]:
        """State of every task of these jobs the scheduler still knows, keyed JOBID_TASK."""
        raise NotImplementedError

    def site_limits(self) -> SiteLimits:
        return SiteLimits()

    def partitions(self) -> set[str] | None:
        """The partitions (queues) jobs may be sent to, None when this scheduler is not asked (or cannot say)."""
        return None

    # -- cancel -------------------------------------------------------------------------------

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """The scheduler's own command that cancels these jobs, so their workers get its stop signal and give
        their keys back (scancel, qdel, ...)."""
        raise UsageError(f"djhpc cannot cancel {self.name} jobs: stop them with {self.name}'s own tools")

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Run cancel_argv; a refusal is a SchedulerError quoting the scheduler."""
        if not job_ids:
            return
        argv = self.cancel_argv(job_ids)
        proc = run_command(argv, hint=self.missing_hint)
        if proc.returncode != 0:
            raise command_failed(argv, proc, "check the job ids with djhpc status")

    # -- inside a task ------------------------------------------------------------------------

    @classmethod
    def task_job_id(cls, raw: str) -> str:
        """The value of the job_id variable as task_states keys the job (PBS: 123[4].server is 123)."""
        return raw

    @classmethod
    def allocation_end(cls, env: Mapping[str, str]) -> float | None:
        """When the allocation of the task with this environment ends (epoch seconds), None when this
        scheduler cannot tell: here from the walltime variable, seconds the allocation may run."""
        name = cls.task_env_names.get("walltime")
        if not name or not env.get(name):
            return None
        try:
            return time.time() + float(env[name])
        except ValueError:
            return None


def _is_set(profile: Profile, name: str) -> bool:
    value = getattr(profile, name)
    defaults = {"signal_seconds": None, "requeue": False, "after_type": "afterok"}
    if name in defaults:
        return value != defaults[name] and bool(value)
    return bool(value)
