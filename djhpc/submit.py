"""Submit a run: array tasks, each one populate worker, sized to the work that is left.

``plan`` does everything that can fail on bad input without leaving a trace, so ``djhpc render``,
``submit --dry-run`` and ``submit`` share it; ``submit`` then writes, submits and records.

  1. profile    djhpc.yaml's ``profiles:`` section (``profile:`` names the default; ``default`` if there
                is one) under the command-line flags. Scheduler: the flag, else the profile's, else
                djhpc.yaml's ``scheduler:``, else slurm when sbatch is on PATH, else local.
  2. keys       ``progress()`` (a DataJoint table: its target's pending keys) minus keys in error or ignored;
                the array never exceeds them.
  3. limits     MaxArraySize splits the run into arrays with index offsets (``plan_arrays``),
                MaxSubmitJobs caps it, and the database's free connections give a default throttle
                (each worker holds one through its makes, two with DataJoint's own; with ``djhpc work
                --release-after`` djhpc's goes back during makes).
  4. database   the URL reaches tasks through the environment: DJHPC_DATABASE_URL, or, when it
                holds a password, DJHPC_DATABASE_URL_FILE naming a 0600 file. Never the script.
                A table written with DataJoint connects as DataJoint does, so its tasks get DataJoint's
                variables instead: DJHPC_DATAJOINT_ENV_FILE names a 0600 file of ``export DJ_HOST=...
                DJ_USER=... DJ_PASS=...`` lines that the script sources before the worker starts: the
                connection ``djhpc submit`` itself made (DataJoint 2.x wants DJ_PASS even when empty).
                The scheduler's command runs without DJ_PASS (or a DJHPC_DATABASE_URL holding a
                password) in its environment, which sbatch would otherwise store with the job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DatabaseURL, Settings, load_settings, parse_url
from .errors import ConfigError, DjhpcError, SchedulerError, UsageError
from .history import History
from .profile import Profile, parse_time
from .reservation import Reservations
from .schedulers import ArrayChunk, Scheduler, SiteLimits, default_scheduler_name, get_scheduler, plan_arrays
from .schedulers.parallel import check_gnu_parallel, command_line
from .submissions import Submissions
from .target import TableTarget, target_for
from .targets import load_target

log = logging.getLogger(__name__)

CONNECTIONS_PER_WORKER = 1  # the work connection (the heartbeat's lasts one beat: the headroom covers those)
DATAJOINT_CONNECTIONS_PER_WORKER = 2  # and DataJoint's own, which a DataJoint table's make runs on
SUBMIT_COMMANDS = {"slurm": "sbatch", "pbs": "qsub", "torque": "qsub", "sge": "qsub", "lsf": "bsub",
                   "htcondor": "condor_submit", "local": "bash"}
DEFAULT_SIGNAL_SECONDS = 60


# ----------------------------------------------------------------------------------- profiles


def profile_sections(settings: Settings) -> dict[str, dict]:
    """The ``profiles:`` mapping of djhpc.yaml, each section a mapping (empty allowed)."""
    where = settings.project_file or "djhpc.yaml"
    profiles = settings.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{where}: 'profiles' must map profile names to settings (got {type(profiles).__name__})")
    sections = {}
    for name, section in profiles.items():
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: profile {name!r} must be a mapping of settings (got {type(section).__name__})")
        sections[str(name)] = dict(section)
    return sections


def _normal(name: Any) -> str:
    key = str(name).strip().lower().replace("-", "_")
    return {"walltime": "time", "queue": "partition"}.get(key, key)


def _fit_signal(settings: Mapping[str, Any], base_time: int | None) -> dict[str, Any]:
    """Give a short time limit a warning that fits: the 60 s default would not be shorter than 1 minute."""
    out = dict(settings)
    names = {_normal(k) for k in out}
    if "signal_seconds" in names:
        return out
    time_value = next((v for k, v in out.items() if _normal(k) == "time"), None)
    seconds = parse_time(time_value) if time_value not in (None, "") and not isinstance(time_value, bool) else None
    seconds = seconds or base_time
    if seconds and seconds <= DEFAULT_SIGNAL_SECONDS:
        out["signal_seconds"] = seconds // 2
    return out


@dataclass
class ResolvedProfile:
    name: str | None
    profile: Profile
    scheduler: str
    array: int | None  # the section's ``array:``, if any
    job_name_given: bool = False  # by --job-name or the profile; else the run is named after its table


def resolve_profile(settings: Settings, *, profile_name: str | None = None, scheduler: str | None = None,
                    flags: Mapping[str, Any] | None = None) -> ResolvedProfile:
    """The profile of a run: the named (or default) section of djhpc.yaml with the flags on top."""
    sections = profile_sections(settings)
    name = profile_name or os.environ.get("DJHPC_PROFILE") or settings.get("profile")
    if name is None and "default" in sections:
        name = "default"
    section: dict[str, Any] = {}
    if name is not None:
        name = str(name)
        if name not in sections:
            known = ", ".join(sorted(sections)) if sections else "none (add a profiles: section to djhpc.yaml)"
            raise UsageError(f"unknown profile {name!r}: djhpc.yaml defines {known}")
        section = dict(sections[name])
    array = None
    for key in [k for k in section if _normal(k) == "array"]:
        array = section.pop(key)
        if isinstance(array, bool) or not isinstance(array, int):
            raise ConfigError(f"profile {name!r}: array must be a whole number (got {array!r})")
    profile = Profile.from_dict(_fit_signal(section, None))
    overrides = {k: v for k, v in (flags or {}).items() if v is not None and v != [] and v != ()}
    if scheduler is not None:
        overrides["scheduler"] = scheduler
    if overrides:
        section_signal = any(_normal(k) == "signal_seconds" for k in section)
        fit = "time" in overrides and not section_signal  # a signal_seconds the profile sets stays
        profile = profile.merge(_fit_signal(overrides, profile.time) if fit else overrides)
    chosen = profile.scheduler or settings.get("scheduler") or default_scheduler_name()
    chosen = get_scheduler(chosen).name  # unknown names are a UsageError listing the choices
    if profile.scheduler != chosen:
        profile = dataclasses.replace(profile, scheduler=chosen)
    named = any(_normal(k) == "job_name" for k in (*section, *overrides))
    return ResolvedProfile(name, profile, chosen, array, named)


def default_job_name(class_name: str) -> str:
    """``djhpc-Analysis``: squeue, qstat and bjobs show which table a run fills; letters, digits, _ . - only
    (safe in a shell, a #SBATCH/#PBS/#$ line and bsub -J), at most 64 characters."""
    return ("djhpc-" + re.sub(r"[^A-Za-z0-9_.-]", "_", class_name))[:64]


# -------------------------------------------------------------------------------- credentials


def credentials_dir() -> Path:
    """Where password-holding URLs are kept for tasks: ~/.config/djhpc/credentials (mode 0700)."""
    if os.environ.get("DJHPC_CREDENTIALS_DIR"):
        return Path(os.environ["DJHPC_CREDENTIALS_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "djhpc" / "credentials"


def credentials_path(url: DatabaseURL) -> Path:
    # named by the URL without its password: a hash of a password would be a guessable copy of it
    digest = hashlib.sha256(url.redacted.encode()).hexdigest()[:16]
    return credentials_dir() / f"{digest}.url"


def write_credentials(url: DatabaseURL) -> Path:
    """Write the full URL to its 0600 file (folder 0700), atomically; its path."""
    return _write_private(credentials_path(url), url.full + "\n")


def datajoint_credentials_path(url: DatabaseURL) -> Path:
    """The 0600 file of DJ_* variables a DataJoint pipeline's tasks source: named like the URL's file."""
    return credentials_path(url).with_suffix(".dj.env")


def datajoint_variables(url: DatabaseURL) -> dict[str, str]:
    """DJ_HOST (with its port unless 3306: both DataJoint 0.14 and 2.x read host:port), DJ_USER, DJ_PASS."""
    host = url.host if (url.port or 3306) == 3306 else f"{url.host}:{url.port}"
    return {"DJ_HOST": host, "DJ_USER": url.user, "DJ_PASS": url.password}


def write_datajoint_credentials(url: DatabaseURL) -> Path:
    """Write DataJoint's connection variables as shell ``export`` lines to a 0600 file (folder 0700); its path."""
    lines = ["# DataJoint's connection for djhpc's tasks, written by djhpc submit; the task script sources it."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in datajoint_variables(url).items()]
    return _write_private(datajoint_credentials_path(url), "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but an old file could be wider
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return path


def database_env(url: DatabaseURL) -> dict[str, str]:
    """What tells a task where the database is: the URL itself, or the file holding it with its password."""
    if url.password:
        return {"DJHPC_DATABASE_URL_FILE": str(credentials_path(url))}
    if url.scheme == "sqlite":
        return {"DJHPC_DATABASE_URL": "sqlite:///" + str(Path(url.path).resolve())}
    return {"DJHPC_DATABASE_URL": url.full}


def task_env(target, url: DatabaseURL) -> dict[str, str]:
    """The database part of a task's environment: djhpc's URL, or, for a DataJoint table, the file of DataJoint's
    variables (its DataJoint connection is all the task's worker uses)."""
    if is_datajoint(target):
        return {"DJHPC_DATAJOINT_ENV_FILE": str(datajoint_credentials_path(url))}
    return database_env(url)


def write_task_credentials(run: Run, env: Mapping[str, str] | None = None) -> None:
    """Write the file(s) the tasks' environment (``run.env``) names."""
    env = run.env if env is None else env
    if "DJHPC_DATAJOINT_ENV_FILE" in env:
        write_datajoint_credentials(run.url)
    if "DJHPC_DATABASE_URL_FILE" in env and run.url.password:
        write_credentials(run.url)


SECRET_VARIABLES = ("DJ_PASS", "MYSQL_PWD")


@contextmanager
def without_secrets() -> Iterator[None]:
    """The submit command's environment without database passwords (sbatch stores the environment it is given
    with the job): the tasks get theirs from the 0600 files named in the script."""
    saved = {}
    for name in (*SECRET_VARIABLES, "DJHPC_DATABASE_URL"):
        value = os.environ.get(name)
        if not value or (name == "DJHPC_DATABASE_URL" and not _holds_password(value)):
            continue
        saved[name] = os.environ.pop(name)
    try:
        yield
    finally:
        os.environ.update(saved)


def _holds_password(url: str) -> bool:
    try:
        return bool(parse_url(url).password)
    except DjhpcError:
        return True  # unreadable: keep it out rather than guess


# --------------------------------------------------------------------------------- work, limits


@dataclass(frozen=True)
class Work:
    total: int
    remaining: int  # not in the table yet
    errors: int
    ignored: int
    reserved: int

    @property
    def available(self) -> int:
        """Keys a new worker would take: errored and ignored ones wait for ``djhpc jobs``."""
        return max(0, self.remaining - self.errors - self.ignored)


@dataclass(frozen=True)
class ShareWork(Work):
    """What is left of a pipeline's tables that one array serves (sums over the tables, pipeprogress's counts):
    keys ready now, keys waiting for a retry (pending) and keys to come (waiting) less those blocked by a failure
    upstream. Keys being made (reserved), in error or ignored are not the new workers'."""

    ready: int = 0
    pending: int = 0
    waiting: int = 0
    blocked: int = 0

    @property
    def available(self) -> int:
        return max(0, self.ready + self.pending + self.waiting - self.blocked)


def count_work(target, restrictions=()) -> Work:
    """What is left of a target (or of a djhpc table) under ``restrictions`` (the workers' --restrict), counted in
    one statement: a DataJoint table's key source and djhpc's jobs table in its schema (~djhpc_jobs)."""
    if not is_datajoint(target):
        table = target.table if isinstance(target, TableTarget) else target
        d = table.progress(*restrictions, detail=True)
    else:
        d = target.progress(restrictions)
    return Work(d["total"], d["remaining"], d["error"], d["ignore"], d["reserved"])


def _option_values(worker_args: Sequence[str], name: str) -> list[str]:
    """The values the workers' arguments give option ``name`` (``--name V`` or ``--name=V``), in order."""
    found = []
    for i, arg in enumerate(worker_args):
        if arg == name and i + 1 < len(worker_args):
            found.append(worker_args[i + 1])
        elif arg.startswith(name + "="):
            found.append(arg.split("=", 1)[1])
    return found


def worker_processes(worker_args: Sequence[str]) -> int:
    """The processes each task runs (its ``djhpc work --processes N``, the last given as there; 1 without): each
    holds connections."""
    given = _option_values(worker_args, "--processes")
    try:
        return max(1, int(given[-1])) if given else 1
    except ValueError:
        return 1  # the task's djhpc work says what is wrong with it


def worker_restrictions(worker_args: Sequence[str]) -> list:
    """The restriction the workers will populate under: their ``--restrict SQL`` arguments (all must hold), as
    ``djhpc work`` reads them; [] without any. A run is sized to the keys left under it."""
    from .query import AndList

    found = _option_values(worker_args, "--restrict")
    return [AndList(found)] if found else []


def is_datajoint(target) -> bool:
    """Whether a target fills a table written with DataJoint (its own connection, its own jobs table name)."""
    return hasattr(target, "dj_connection")


def worker_budget(connection, per_worker: int = CONNECTIONS_PER_WORKER) -> int | None:
    """How many more workers the database takes, ``per_worker`` connections each, a tenth (at least 5) kept free.
    None when there is no such limit (SQLite) or the server will not say."""
    if connection.is_sqlite:
        return None
    try:
        max_connections, max_user = connection.query("SELECT @@max_connections, @@max_user_connections").fetchone()
        row = connection.query("SHOW GLOBAL STATUS LIKE 'Threads_connected'").fetchone()
        free = int(max_connections) - int(row[1])
        if int(max_user or 0) > 0:
            mine = connection.query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = SUBSTRING_INDEX(USER(), '@', 1)"
            ).fetchone()[0]
            free = min(free, int(max_user) - int(mine))
        headroom = max(5, int(max_connections) // 10)
    except (DjhpcError, TypeError, ValueError) as e:
        log.debug("connection budget unknown: %s", e)
        return None
    return max(0, (free - headroom) // per_worker)


def worker_executable(datajoint: bool = False) -> tuple[str, ...]:
    """`djhpc` when it is on PATH (tasks inherit PATH), else this Python running the CLI module.

    A DataJoint pipeline's worker must run where DataJoint is installed, which is where this submit runs: the
    `djhpc` beside this interpreter (djhpc pip-installed in the lab's venv), else this interpreter itself, by
    absolute path, whatever PATH the task gets."""
    if datajoint:
        beside = Path(sys.executable).with_name("djhpc")
        return (str(beside),) if beside.is_file() and os.access(beside, os.X_OK) else (
            sys.executable, "-m", "djhpc.cli.main")
    return ("djhpc",) if shutil.which("djhpc") else (sys.executable, "-m", "djhpc.cli.main")


def check_submit_command(scheduler: Scheduler) -> None:
    """The scheduler's submit command must exist before anything is written."""
    if scheduler.name == "parallel":
        check_gnu_parallel()
        return
    command = SUBMIT_COMMANDS.get(scheduler.name)
    if command and shutil.which(command) is None:
        raise SchedulerError(f"{command} not found on PATH: {scheduler.missing_hint}")


def _absolute_target(target: str, base: Path) -> str:
    """A file target as an absolute path, so a task finds it whatever its working directory."""
    module, _, cls = target.rpartition(":")
    if module.endswith(".py") or "/" in module:
        return f"{(base / module).resolve()}:{cls}"
    return target


# ----------------------------------------------------------------------------------------- plan


@dataclass
class Run:
    """One planned run: what would be submitted, and what the user should be told."""

    scheduler: Scheduler
    profile: Profile
    profile_name: str | None
    target: str
    table_class: Any
    table: Any
    work: Work
    requested: int
    tasks: int
    chunks: list[ArrayChunk]
    env: dict[str, str]
    url: DatabaseURL
    worker_args: list[str]
    template_dir: str | None
    budget: int | None
    project_dir: Path
    filler: Any = None  # the target object (target.TableTarget or djtarget.DataJointTarget) the workers fill
    scripts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    share: Share | None = None  # a pipeline run: the resource class its workers serve (filler: its first table)
    array_given: bool = True  # False: a plan without --array (one task per key left)

    @property
    def task_args(self) -> list[str]:
        """What follows ``djhpc work TARGET`` in a task: a pipeline class's tables, then the worker arguments."""
        if self.share is None or self.share.whole:
            return self.worker_args
        return ["--tables", ",".join(self.share.tables), *self.worker_args]

    @property
    def table_name(self) -> str:
        """The table the run fills (a pipeline class: its tables' names, comma-separated, as submissions keep
        them)."""
        if self.share is not None:
            return ",".join(self.share.table_names)[:255]
        return self.filler.table_name

    @property
    def schema(self) -> str:
        return self.filler.database

    @property
    def connection(self):
        return self.filler.connection

    @property
    def name(self) -> str:
        if self.share is not None:
            tables = ", ".join(self.share.tables)
            return f"{self.share.label}'s {self.share.name} class ({tables})" if self.share.name else \
                f"{self.share.label} ({tables})"
        return self.filler.name

    @property
    def datajoint(self) -> bool:
        return is_datajoint(self.filler)

    @property
    def releases_connection(self) -> bool:
        """Whether its workers give their connection back during makes (``djhpc work --release-after``)."""
        return any(a == "--release-after" or a.startswith("--release-after=") for a in self.worker_args)

    @property
    def connections_per_worker(self) -> int:
        """Connections a worker holds through its makes: djhpc's (unless released) and a DataJoint table's own
        (unless released too: a tripartite make's, while make_compute runs)."""
        held = 0 if self.releases_connection else CONNECTIONS_PER_WORKER
        if self.datajoint and not (self.releases_connection and self.computes_apart):
            held += DATAJOINT_CONNECTIONS_PER_WORKER - CONNECTIONS_PER_WORKER
        return held * worker_processes(self.worker_args)

    @property
    def computes_apart(self) -> bool:
        """A DataJoint table whose make is tripartite (one table's run): its compute can give DataJoint's
        connection back."""
        from .djrelease import computes_apart

        return self.share is None and self.datajoint and computes_apart(self.filler.table)

    def left_message(self) -> str:
        w = self.work
        text = f"{w.available:,} of {w.total:,} keys of {self.name} left"
        restricted = worker_restrictions(self.worker_args)
        if restricted:
            text += f" where {' AND '.join(f'({r})' for r in restricted[0])}"
        if isinstance(w, ShareWork) and w.blocked:
            text += f", {w.blocked:,} blocked by a failure upstream"
        if w.errors:
            text += f", {w.errors:,} in error (djhpc jobs errors)"
        if w.reserved:
            text += f", {w.reserved:,} being worked on"
        return text


def plan(target: str | None = None, *, array: int | None = None, scheduler: str | None = None,
         profile_name: str | None = None, flags: Mapping[str, Any] | None = None,
         worker_args: Sequence[str] = (), template_dir: str | None = None, render: bool = True,
         settings: Settings | None = None) -> Run:
    """Resolve, count, limit and render a run without writing or submitting anything."""
    settings = settings or load_settings()
    resolved = resolve_profile(settings, profile_name=profile_name, scheduler=scheduler, flags=flags)
    requested = _requested(array, resolved)
    _check_template_dir(template_dir)
    target = target or settings.get("target")
    if not target:
        raise UsageError("no target given and djhpc.yaml sets none: name one as module:Class or pipeline.py:Class")
    target = str(target)
    table_class = load_target(target, base=settings.project_dir)
    filler = target_for(table_class)
    profile = resolved.profile
    if not resolved.job_name_given:
        profile = dataclasses.replace(profile, job_name=default_job_name(filler.name))
    run = Run(get_scheduler(resolved.scheduler), profile, resolved.name, _absolute_target(target, settings.project_dir),
              table_class, filler.table, count_work(filler, worker_restrictions(worker_args)), requested, 0, [],
              task_env(filler, filler.connection.url),
              filler.connection.url, list(worker_args), template_dir, None, settings.project_dir, filler)
    return size_run(run, render=render)


def _requested(array: int | None, resolved: ResolvedProfile, fallback: Any = None) -> int:
    """How many workers the user asks for: --array, else ``fallback`` (a resource class's array), else the
    profile's."""
    requested = array if array is not None else fallback if fallback is not None else resolved.array
    if requested is None:
        raise UsageError("how many workers? give --array N (or set array: in the djhpc.yaml profile)")
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise UsageError(f"--array must be >= 1 (got {requested})")
    throttle = resolved.profile.throttle
    if throttle is not None and throttle > requested:
        raise UsageError(f"--throttle {throttle} is larger than the array ({requested}): lower it or omit it")
    return requested


def _check_template_dir(template_dir: str | None) -> None:
    if template_dir is not None and not Path(template_dir).is_dir():
        raise UsageError(f"template directory {template_dir!r} does not exist: fix --template-dir")


def size_run(run: Run, *, render: bool = True, budget: Any = "ask") -> Run:
    """Cap the run at the keys left and the site's limits, keep it within the database's connections (``budget``:
    workers the database has room for, None for no limit, "ask" to ask it) and render its scripts."""
    work, requested, profile, sched = run.work, run.requested, run.profile, run.scheduler
    if work.available == 0:
        return run
    tasks = min(requested, work.available)
    if tasks < requested:
        run.notes.append(f"only {_count(work.available, 'key')} left: {_count(tasks, 'task')} instead of {requested}")
    limits = _site_limits(sched)
    if limits.max_submit_jobs is not None and tasks > limits.max_submit_jobs:
        run.warnings.append(f"--array {tasks} is more than this account may queue (MaxSubmitJobs "
                            f"{limits.max_submit_jobs}): submitting {limits.max_submit_jobs} tasks")
        tasks = limits.max_submit_jobs
    throttle = min(profile.throttle, tasks) if profile.throttle else None
    chunks = plan_arrays(tasks, throttle, limits.max_array_size)
    if len(chunks) > 1:
        run.notes.append(f"MaxArraySize={limits.max_array_size}: {tasks} tasks split into {len(chunks)} arrays")
    if budget == "ask":
        budget = _ask_budget(run)
    run.budget = budget
    profile = _fit_budget(run, profile, tasks, chunks)
    run.profile, run.tasks, run.chunks = profile, tasks, chunks
    if render:
        executable = worker_executable(run.datajoint)
        run.scripts = [
            sched.render(profile, target=run.target, array_size=c.size, worker_args=run.task_args, env=run.env,
                         index_offset=c.index_offset, total_tasks=tasks, template_dir=run.template_dir,
                         executable=executable)
            for c in chunks
        ]
    return run


def _ask_budget(run: Run) -> int | None:
    """How many more workers the database has connections for (None: no limit to keep to)."""
    per_worker = run.connections_per_worker
    if per_worker == 0:
        run.notes.append("no throttle from the database's connections: the workers give theirs back during makes "
                         "(--release-after) and wait for one when none is free")
        return None
    return worker_budget(run.connection, per_worker=per_worker)


def concurrent_workers(run: Run) -> int:
    """Most workers of the run that may run at once (its arrays' throttles)."""
    return sum(min(run.profile.throttle or c.size, c.size) for c in run.chunks)


# ------------------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class Share:
    """The part of a pipeline one set of arrays serves: a resource class (``djhpc work PIPELINE --tables ...``)."""

    label: str  # the pipeline's, e.g. "chain"
    name: str  # the resource class's, e.g. "gpu"; "" for every table at once (GNU parallel)
    tables: tuple[str, ...]  # table class names, upstream first
    table_names: tuple[str, ...]  # their tables' names in the database
    resources: tuple = ()  # the class's profile settings, as (key, value) pairs
    whole: bool = False  # one set of workers over every table (GNU parallel): no --tables


def plan_share(target: str, share: Share, work: Work, filler, *, array: int | None = None,
               scheduler: str | None = None, profile_name: str | None = None,
               flags: Mapping[str, Any] | None = None, worker_args: Sequence[str] = (),
               template_dir: str | None = None, render: bool = True, settings: Settings | None = None,
               budget: Any = "ask", need_array: bool = True) -> Run:
    """The run of one resource class of a pipeline (``filler``: the target of its first table, whose connection
    and schema the run uses), sized to ``work``, without writing or submitting anything.

    Settings, weakest first: the profile, the class's resources, the command-line flags (the user's word for this
    submit; a note names each class resource a flag overrides). The class's ``array`` caps its array unless
    --array is given; with none at all and ``need_array`` False (a plan), one task per key left and
    ``run.array_given`` False. The job is named djhpc-PIPELINE-CLASS (a job name given: NAME-CLASS)."""
    settings = settings or load_settings()
    own = {_normal(k): v for k, v in share.resources}
    class_array = own.pop("array", None)
    given = {_normal(k): v for k, v in (flags or {}).items() if v is not None and v != [] and v != ()}
    resolved = resolve_profile(settings, profile_name=profile_name, scheduler=scheduler,
                               flags={**own, **given})
    array_given = array is not None or class_array is not None or resolved.array is not None
    requested = (_requested(array, resolved, class_array) if array_given or need_array
                 else max(work.available, resolved.profile.throttle or 1))
    _check_template_dir(template_dir)
    profile = resolved.profile
    name = f"{profile.job_name}-{share.name}" if resolved.job_name_given else f"{share.label}-{share.name}"
    profile = dataclasses.replace(profile, job_name=default_job_name(name) if not resolved.job_name_given
                                  else _job_name(name))
    url = filler.connection.url
    run = Run(get_scheduler(resolved.scheduler), profile, resolved.name,
              _absolute_pipeline(target, settings.project_dir), None, filler.table, work, requested, 0, [],
              task_env(filler, url), url, list(worker_args), template_dir, None, settings.project_dir, filler,
              share=share, array_given=array_given)
    for key, value in own.items():
        if key in given and str(given[key]) != str(value):
            run.notes.append(f"{share.name} class: --{key.replace('_', '-')} {given[key]} overrides its "
                             f"{key}={value} ({', '.join(share.tables)})")
    return size_run(run, render=render, budget=budget)


def _job_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:64]


def _absolute_pipeline(target: str, base: Path) -> str:
    """A pipeline file target (``pipeline.py``, ``dir/pipeline.py:schema``) as an absolute path."""
    module, colon, attr = target.partition(":")
    if module.endswith(".py") or "/" in module:
        return f"{(base / module).resolve()}{colon}{attr}"
    return target


def check_partitions(runs: Sequence[Run]) -> None:
    """Every run's partition must be one its scheduler has (SLURM: sinfo, SGE: qconf -sql; other schedulers are
    not asked, nor is a scheduler whose command is missing here): a usage error before anything is written."""
    known: dict[str, set[str] | None] = {}
    for run in runs:
        partition = run.profile.partition
        if not partition:
            continue
        name = run.scheduler.name
        if name not in known:
            known[name] = run.scheduler.partitions()
        have = known[name]
        if have is None or partition in have:
            continue
        own = dict((_normal(k), v) for k, v in run.share.resources) if run.share else {}
        if str(own.get("partition")) == partition:
            who = f"the {run.share.name} class ({', '.join(run.share.tables)})"
            fix = "fix the tables' resources (their class's resources attribute or tables: in djhpc.yaml)"
        else:
            who, fix = (f"the {run.share.name} class" if run.share else run.name), "fix --partition or the profile"
        raise UsageError(f"{who} asks for partition {partition!r}, which {name} does not have (it has "
                         f"{', '.join(sorted(have))}): {fix}")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _site_limits(sched: Scheduler) -> SiteLimits:
    try:
        return sched.site_limits()
    except SchedulerError as e:  # rendering away from the cluster: no limits to read
        log.debug("site limits unknown: %s", e)
        return SiteLimits()


def _fit_budget(run: Run, profile: Profile, tasks: int, chunks: list[ArrayChunk]) -> Profile:
    """A default throttle within the database's connection budget; a warning when the request exceeds it."""
    budget = run.budget
    if budget is None:
        return profile
    per_array = profile.throttle

    def concurrent(limit):
        return sum(min(limit or c.size, c.size) for c in chunks)

    if per_array is None and concurrent(None) > budget:
        per_array = max(1, budget // len(chunks))
        profile = dataclasses.replace(profile, throttle=per_array)
        run.notes.append(f"throttle {per_array}: the database has room for about {budget} more workers "
                         f"({run.connections_per_worker} connections each)"
                         + ("" if run.datajoint and not run.computes_apart else "; with long makes, '-- "
                            "--release-after 30s' lets every task run and give its connection back while it makes"))
    if concurrent(per_array) > budget:
        run.warnings.append(
            f"up to {concurrent(per_array)} workers may run at once, but the database has room for about {budget} "
            f"({run.connections_per_worker} connections each): lower --throttle or raise max_connections"
        )
    return profile


# --------------------------------------------------------------------------------------- submit


@dataclass
class Submitted:
    job_ids: list[str]
    scripts: list[Path]


def script_folder(run: Run) -> Path:
    return run.project_dir / ".djhpc" / "scripts"


def _create_worker_tables(run: Run) -> None:
    """The jobs and history tables the tasks write, made here once: else hundreds of tasks starting at the same
    moment each find them missing and send CREATE TABLE (harmless, but a statement each and a queue on the
    server's dictionary lock). A failure is left to the tasks, which create them as before."""
    f = run.filler
    try:
        Reservations(f.connection, f.database, jobs_table=f.jobs_table).ensure_table()
        History(f.connection, f.database, f.history_table).ensure_table()
    except DjhpcError as e:
        log.debug("the tasks will create the jobs and history tables (%s)", e)


def submit(run: Run, *, dry_run: bool = False) -> Submitted:
    """Write each array's script and submit it (dry_run: write only); record what was submitted."""
    if not run.chunks:
        return Submitted([], [])
    if not dry_run:
        check_submit_command(run.scheduler)
        _create_worker_tables(run)
    write_task_credentials(run)
    records = Submissions(run.connection, run.schema)
    job_ids: list[str] = []
    scripts: list[Path] = []
    for chunk, text in zip(run.chunks, run.scripts, strict=True):
        run.scheduler.last_script = None
        try:
            with without_secrets():
                ids = run.scheduler.submit(text, dry_run=dry_run, script_dir=script_folder(run))
        except DjhpcError as e:
            if run.scheduler.last_script is not None:
                run.scheduler.last_script.unlink(missing_ok=True)
            if job_ids:  # a later array of a split run failed: say what is running already
                raise type(e)(f"{e} (already submitted: job {', '.join(job_ids)}, which will run)") from e
            raise
        path = run.scheduler.last_script
        scripts.append(path)
        if dry_run:
            continue
        job_ids.extend(ids)
        for job_id in ids:
            records.record(job_id=job_id, scheduler=run.scheduler.name, target=run.target, table_name=run.table_name,
                           array_size=chunk.size, index_offset=chunk.index_offset, total_tasks=run.tasks,
                           script=str(path), settings=recorded_settings(run))
    return Submitted(job_ids, scripts)


def recorded_settings(run: Run) -> dict[str, Any]:
    """What a submission row keeps of the settings: the profile (never holds a password), no secrets."""
    settings = {"profile_name": run.profile_name, "profile": run.profile.to_dict(), "worker_args": run.worker_args,
                "requested": run.requested, "keys_left": run.work.available, "database": run.url.redacted,
                "env": sorted(run.env)}
    if run.share is not None:
        settings.update(pipeline=run.share.label, resource_class=run.share.name, tables=list(run.share.tables),
                        table_names=list(run.share.table_names))
    return settings


# ------------------------------------------------------------------------------------- parallel


def parallel_line(run: Run, *, joblog: str, halt: str = "never", resume_failed: bool = False) -> str:
    """The GNU parallel command line for the run's workers (tasks capped at the keys left); writes the 0600
    file the line names, if any. Its workers run here, in this environment: a DataJoint pipeline's connect as
    this one did (DataJoint's variables or its config file in this folder)."""
    env = {k: v for k, v in run.env.items() if k != "DJHPC_DATAJOINT_ENV_FILE"}  # a line cannot source it
    write_task_credentials(run, env)
    return command_line(run.profile, run.target, run.tasks, run.task_args, joblog,
                        executable=worker_executable(run.datajoint), env=env, halt=halt, resume_failed=resume_failed)


def record_parallel(run: Run, job_id: str, line: str) -> None:
    Submissions(run.connection, run.schema).record(
        job_id=job_id, scheduler="parallel", target=run.target, table_name=run.table_name, array_size=run.tasks,
        index_offset=0, total_tasks=run.tasks, script=line, settings=recorded_settings(run))
