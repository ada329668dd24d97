"""``djhpc logs [TARGET] [--job J] [--task N] [--follow] [--errors]``: a run's task logs and failed keys, readable."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from .. import jobrows
from ..errors import UsageError
from ..logs import Tail, find_run, readable, run_logs, run_running, task_lines
from ..progress import class_name
from . import display
from .scope import resolve_scope

HELP = """The output of the newest run djhpc submit recorded for TARGET (--job J: that run), task by task,
with each key line a worker wrote made readable: time, table, key, outcome, seconds, message. --task N
shows one task; --errors shows the keys of the run that failed, with their messages, instead.

Where the files are: SLURM, Grid Engine, LSF and HTCondor write one per task, named by the profile's output
(and error) pattern or the scheduler's default, in the job's working directory; a local run writes one
file for all its tasks beside its script (.djhpc/scripts/*.log); a GNU parallel run too, its lines
tagged with their task.

--follow prints new lines as they are written, until the run ends (the scheduler lists no task pending or
running) or Ctrl-C.

exit codes: 0 shown (--follow: the run ended), 2 usage error (no run recorded, no such task), 130 Ctrl-C

examples:
  djhpc logs pipeline.py:Analysis
  djhpc logs pipeline.py:Analysis --task 3 --follow
  djhpc logs --errors --job 4242
"""


def register(sub):
    p = sub.add_parser("logs", help="a run's task logs, readable; --follow, --errors", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    display.add_schema_options(p)
    p.add_argument("--job", metavar="JOBID", help="the run with this job id (default: the newest)")
    p.add_argument("--task", type=int, metavar="N", help="only array task N (1 to the array's size)")
    p.add_argument("--follow", "-f", action="store_true", help="print new lines until the run ends (or Ctrl-C)")
    p.add_argument("--errors", action="store_true", help="the run's failed keys and their messages")
    p.add_argument("--interval", type=display.age_argument, default=1.0, metavar="DURATION",
                   help="--follow: look this often: 1 (seconds), 0.5, 1m (default 1 s)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.interval <= 0:
        raise UsageError(f"--interval must be > 0 seconds (got {args.interval:g})")
    if args.errors and args.follow:
        raise UsageError("--errors shows the failed keys once: drop --follow (or follow the logs without --errors)")
    scope = resolve_scope(args)
    sub = find_run(scope.connection, scope.schema, scope.table_name, args.job)
    if args.errors:
        return _errors(scope, sub, args.task)
    logs = run_logs(sub, args.task)  # bad --task is refused before anything is printed
    out = display.console()
    out.print(f"job {sub.job_id}: {sub.scheduler} run of {class_name(sub.table_name)}, {sub.array_size} task(s), "
              f"submitted {display.local_time(sub.submitted_at)}", markup=False, soft_wrap=True)
    if args.follow:
        return _follow(sub, args.task, args.interval)
    _print_logs(logs, args.task)
    failed = _failed(scope, sub, args.task)
    if failed:
        noun = "key" if len(failed) == 1 else "keys"
        print(f"{len(failed):,} {noun} of this run failed: djhpc logs --errors --job {sub.job_id} shows them")
    return 0


def _print_logs(logs, task) -> None:
    several = len(logs.logs) > 1 or logs.tagged
    for entry in logs.logs:
        if not entry.paths:
            where = f"task {entry.task}: " if entry.task is not None else ""
            print(f"{where}no log yet (looked for {'; '.join(logs.looked_in)})")
            continue
        for path in entry.paths:
            if several or len(entry.paths) > 1:
                print(f"── {'task ' + str(entry.task) + ': ' if entry.task is not None else ''}{path}")
            with open(path, encoding="utf-8", errors="replace") as fh:
                for n, line in task_lines(fh, task, logs.tagged):
                    print(_shown(n if logs.tagged and task is None else None, line))


def _shown(task, line: str) -> str:
    text = readable(line)
    return f"task {task}  {text}" if task is not None else text


def _failed(scope, sub, task) -> list:
    job = f"{sub.job_id}_{task}" if task is not None else sub.job_id
    q = jobrows.select(scope.connection, scope.schema, table_name=sub.table_name, statuses=["error"], job_id=job,
                       jobs_table_name=scope.jobs_table)
    return jobrows.fetch_rows(q, limit=1000)


def _errors(scope, sub, task) -> int:
    rows = _failed(scope, sub, task)
    if not rows:
        print(f"no failed keys of job {sub.job_id}" + (f" task {task}" if task is not None else ""))
        return 0
    for r in rows:
        where = f"task {r.task}" if r.task else r.host
        print(f"{class_name(r.table_name)} {jobrows.key_text(r.key)}  ({where}, {display.local_time(r.timestamp)})")
        print(f"    {r.error_message}")
    example = shlex.quote(jobrows.key_text(rows[0].key)) if rows[0].key else "KEY"
    print(f"{len(rows):,} failed: djhpc jobs show {example} for the stack; djhpc jobs retry to run them again")
    return 0


def _follow(sub, task, interval: float) -> int:
    """Tail every log of the run (files that appear later too) until the scheduler lists no live task, or Ctrl-C.
    Ctrl-C sets a flag the loop waits on: the files are closed between reads, nothing is left half-printed."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    tails: dict = {}
    try:
        while True:
            alive = run_running(sub)  # asked before reading: lines written before the end are all read after it
            logs = run_logs(sub, task)
            for entry in logs.logs:
                for path in entry.paths:
                    tails.setdefault(path, (entry.task, Tail(path)))
            several = len(logs.logs) > 1 or logs.tagged
            for entry_task, tail in tails.values():
                for n, line in task_lines(tail.read() + ([] if alive else tail.flush()), task, logs.tagged):
                    shown = n if logs.tagged else entry_task
                    print(_shown(shown if several and task is None else None, line), flush=True)
            if not alive:
                print(f"job {sub.job_id} has ended", file=sys.stderr)
                return 0
            if stop.wait(interval):
                return 130
    finally:
        signal.signal(signal.SIGINT, previous)
