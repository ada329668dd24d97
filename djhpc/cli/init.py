"""``djhpc init [TARGET]``: write a commented ``djhpc.yaml`` for the scheduler found on PATH and a target.

Nothing is imported or connected to: the target is found by reading the folder's ``*.py`` files (a pipeline
connects to its database as it is imported), and the scheduler by which submit command is on PATH.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..config import PROJECT_FILE, parse_url
from ..errors import UsageError
from ..profile import SCHEDULER_ALIASES, SCHEDULER_NAMES

log = logging.getLogger("djhpc.cli")

HELP = """Write a commented djhpc.yaml in this folder: the target (TARGET, else the one Computed or Imported table
found in this folder's *.py files), the scheduler found on PATH (sbatch: slurm, bsub: lsf, condor_submit:
htcondor, qsub: Grid Engine or PBS as it answers; none: local) and a default profile to edit. Nothing is
imported or connected to. An existing djhpc.yaml is kept unless --force.

examples:
  djhpc init                                 find the target and the scheduler
  djhpc init pipeline.py:Analysis --scheduler pbs
  djhpc init --stdout                        print the file instead of writing it
"""

# submit commands in the order they are preferred when several are on PATH (a login node with two schedulers)
SUBMIT_COMMANDS = (("sbatch", "slurm"), ("bsub", "lsf"), ("condor_submit", "htcondor"), ("qsub", None))
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "tests", "test", "build", "dist"}


def register(sub):
    p = sub.add_parser("init", help="write a commented djhpc.yaml for this cluster", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="table as module:Class or path/to/pipeline.py:Class (default: found in *.py here)")
    p.add_argument("--scheduler", metavar="NAME", help=f"{', '.join(SCHEDULER_NAMES)} (default: found on PATH)")
    p.add_argument("--database", metavar="URL", help="database URL to write, without a password "
                   "(default: a commented example; passwords belong in DJHPC_DATABASE_URL or DJ_PASS)")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {PROJECT_FILE}")
    p.add_argument("--stdout", action="store_true", help="print the file; write nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = Path.cwd()
    path = folder / PROJECT_FILE
    if path.exists() and not args.force and not args.stdout:
        raise UsageError(f"{path} exists already: edit it, or pass --force to replace it")
    scheduler, found = _scheduler(args.scheduler)
    database = _database(args.database)
    targets = find_targets(folder)
    target = _target(args.target, folder, targets)
    text = render(target=target, others=[t for t in targets if t != target], scheduler=scheduler, found=found,
                  database=database, partitions=_partitions() if scheduler == "slurm" else [])
    if args.stdout:
        print(text, end="")
        return 0
    _write(path, text, force=args.force)
    log.info("wrote %s: scheduler %s (%s), target %s; edit it, then: djhpc render --array 2", path, scheduler,
             found or "chosen", target or "none found (set target:)")
    return 0


def detect_scheduler() -> tuple[str, str]:
    """(scheduler, what showed it): the first submit command on PATH; local when there is none."""
    for command, name in SUBMIT_COMMANDS:
        if shutil.which(command):
            return name or _qsub_kind(), f"{command} on PATH"
    return "local", "no submit command on PATH"


def _qsub_kind() -> str:
    """Grid Engine or PBS: both have qsub. Grid Engine has qconf and SGE_ROOT, and names itself in qsub -help."""
    if os.environ.get("SGE_ROOT") or shutil.which("qconf"):
        return "sge"
    try:
        out = subprocess.run(["qsub", "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
        said = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return "pbs"
    if re.search(r"\b(SGE|UGE|OGS|Grid ?Engine)\b", said):
        return "sge"
    return "torque" if re.search(r"^Version:", said, re.MULTILINE) and "pbs_version" not in said else "pbs"


def _scheduler(given: str | None) -> tuple[str, str | None]:
    if not given:
        return detect_scheduler()
    name = given.strip().lower()
    name = SCHEDULER_ALIASES.get(name, name)
    if name not in SCHEDULER_NAMES:
        raise UsageError(f"unknown scheduler {given!r}: choose {', '.join(SCHEDULER_NAMES)}")
    return name, None


def _database(url: str | None) -> str | None:
    if url is None:
        return None
    if parse_url(url).password:
        raise UsageError("--database holds a password, which djhpc.yaml should not: give the URL without it and "
                         "export DJHPC_DATABASE_URL (or DJ_PASS) with it")
    return url


def find_targets(folder: Path) -> list[str]:
    """``file.py:Class`` of every class in this folder's *.py files (and one level below) whose base is
    Computed or Imported (djhpc's or DataJoint's), read without importing anything."""
    found = []
    files = sorted(folder.glob("*.py")) + sorted(p for p in folder.glob("*/*.py") if p.parent.name not in _SKIP_DIRS
                                                  and not p.parent.name.startswith("."))
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(_base_name(b) in ("Computed", "Imported") for b in node.bases):
                found.append(f"{path.relative_to(folder).as_posix()}:{node.name}")
    return found


def _base_name(node) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""



def _target(given: str | None, folder: Path, found: list[str]) -> str | None:
    if given is None:
        return found[0] if found else None
    module, _, cls = given.rpartition(":")
    if not module or not cls:
        raise UsageError(f"target {given!r} must look like module:Class or path/to/pipeline.py:Class")
    if (module.endswith(".py") or "/" in module) and not (folder / module).is_file():
        raise UsageError(f"target file {module} does not exist: give a path relative to {folder}")
    return given


def _partitions() -> list[str]:
    """SLURM's partitions, the default marked with *, as sinfo lists them (empty if it cannot)."""
    if not shutil.which("sinfo"):
        return []
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [n.strip() for n in out.stdout.split()] if out.returncode == 0 else []
    return [n for n in dict.fromkeys(names) if re.fullmatch(r"[A-Za-z0-9_.*-]+", n)]


# what each scheduler calls the queue a task waits in, and an example of it, for the commented line
_QUEUES = {"slurm": ("partition", "cpu"), "pbs": ("queue", "workq"), "torque": ("queue", "batch"),
           "sge": ("queue", "all.q"), "lsf": ("queue", "normal")}


def render(*, target: str | None, others: list[str], scheduler: str, found: str | None, database: str | None,
           partitions: list[str]) -> str:
    """The text of djhpc.yaml: every line a user may want to change is there, commented when optional."""
    how = f" ({found})" if found else ""
    lines = [
        f"# djhpc.yaml, written by `djhpc init` for {scheduler}{how}.",
        "# Every djhpc command run in this folder (or below) reads it; command-line flags override it.",
        "# Durations: 90s, 15m, 2h, 1d, 1h30m, 1:30:00 or 1-12:00:00 (a bare number for time is minutes).",
        "",
        "# The table to populate when a command is given no TARGET: module:Class or path/to/pipeline.py:Class.",
    ]
    if target:
        lines.append(f"target: {_scalar(target)}")
    else:
        lines.append("# target: pipeline.py:Analysis      (no Computed or Imported table found here: set it)")
    lines += [f"#   also found: {_scalar(t)}" for t in others[:10]]
    lines += [
        "",
        "# The database. Without this line: DJHPC_DATABASE_URL, DataJoint's DJ_HOST/DJ_USER/DJ_PASS or",
        "# dj_local_conf.json, else sqlite:///djhpc.db here (one machine only). Keep passwords out of this file:",
        "# export DJHPC_DATABASE_URL=mysql://user:password@host:3306 (or DJ_PASS) instead.",
        f"database: {_scalar(database)}" if database else "# database: mysql://alice@db.example.org:3306",
        "",
        f"# The scheduler djhpc submit uses: {', '.join(SCHEDULER_NAMES)}.",
        f"scheduler: {scheduler}",
        "",
        "# Named sets of djhpc submit's flags; `default` is used without --profile (djhpc submit --help lists them).",
        "profile: default",
        "profiles:",
        "  default:",
        "    array: 10               # workers (array tasks); djhpc submit --array N overrides it",
    ]
    if scheduler in ("local", "parallel"):
        lines += ["    # throttle: 4           # most workers running at once"]
    else:
        lines += _cluster_profile(scheduler, partitions)
    return "\n".join(lines) + "\n"


def _cluster_profile(scheduler: str, partitions: list[str]) -> list[str]:
    lines = [
        "    time: 2h                # per task; workers give their keys back before the limit",
        "    mem: 4G                 # per task",
        "    cpus: 1",
    ]
    if scheduler in _QUEUES:
        word, example = _QUEUES[scheduler]
        default = next((p.rstrip("*") for p in partitions if p.endswith("*")), None)
        known = f"   # this cluster's: {', '.join(partitions)}" if partitions else ""
        lines.append(f"    # {word}: {default or example}{known}")
    lines += [
        "    # account: my-lab",
        "    # setup: ['module load python/3.11', 'source ~/venvs/pipeline/bin/activate']",
    ]
    if scheduler != "sge":  # Grid Engine sites name their own GPU resource: --directive '-l gpu=1'
        lines += ["  # gpu:                     # djhpc submit --profile gpu", "  #   gpus: a100:1", "  #   time: 4h"]
    return lines


def _scalar(value: str) -> str:
    """A YAML scalar for a target or URL: plain when YAML reads it back unchanged, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*", value) and ": " not in value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write(path: Path, text: str, *, force: bool) -> None:
    """All of the file or none of it: written beside, then moved into place (never over a file without --force)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the file appeared meanwhile
    except FileExistsError:
        raise UsageError(f"{path} exists already: edit it, or pass --force to replace it") from None
    except OSError as e:
        raise UsageError(f"cannot write {path} ({e.strerror}): run djhpc init in a folder you can write") from e
    finally:
        temporary.unlink(missing_ok=True)
