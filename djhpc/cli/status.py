"""``djhpc status``: the arrays ``djhpc submit`` sent, as the scheduler sees them, and the keys each task holds."""

from __future__ import annotations

import argparse
import shutil

from ..errors import UsageError
from ..jobrows import key_text
from ..pipeview import pipeline_status
from ..progress import class_name
from ..status import CATEGORIES, collect
from . import display
from .scope import resolve_scope
from .work import add_pipeline_arguments

HELP = """For each array recorded by djhpc submit (newest first): its tasks pending, running, done, failed,
timed out and cancelled as the scheduler reports them (squeue and sacct on SLURM, qstat on PBS), the
keys each running task holds now, and reservations whose task the scheduler says is gone (djhpc reap
gives those keys back).

TARGET without :Class is a whole pipeline (a module, or module:schema): the runs of any of its tables,
and a row per table (upstream first) with its keys reserved now, the tasks holding them and those held
by tasks that are gone; --tables and --downstream-of narrow it.

exit codes: 0 shown, 2 usage error or a scheduler command missing or failing

examples:
  djhpc status                      the target of djhpc.yaml
  djhpc status --schema my_pipeline --limit 5
  djhpc status pipeline.py                a whole pipeline, table by table
"""


def register(sub):
    p = sub.add_parser("status", help="submitted arrays as the scheduler sees them, and the keys tasks hold",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    display.add_schema_options(p)
    p.add_argument("--limit", type=int, default=10, metavar="N", help="the N newest submissions (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    display.add_quiet(p)
    add_pipeline_arguments(p.add_argument_group("pipelines (TARGET is a module)"))
    p.set_defaults(func=run)


def run(args) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {args.limit})")
    scope = resolve_scope(args, allow_pipeline=True)
    default = "slurm" if shutil.which("squeue") else None
    tables = None
    if scope.pipeline is not None:
        report, tables = pipeline_status(scope.pipeline, scope.targets, limit=args.limit, default_scheduler=default)
    else:
        report = collect(scope.connection, scope.schema, table_name=scope.table_name, limit=args.limit,
                         default_scheduler=default, jobs_table=scope.jobs_table)
    if args.json:
        data = _as_json(report)
        if tables is not None:
            data["tables"] = [t.as_dict() for t in tables]
        display.print_json(data)
        return 0
    quiet = getattr(args, "quiet", False)
    if quiet:
        for s in report.submissions:
            counts = " ".join(f"{c}={s.counts[c]}" for c in CATEGORIES if s.counts[c])
            print(f"{s.submission.job_id}\t{s.submission.scheduler}\t{_tables(s.submission.table_name)}\t{counts}")
        for t in tables or []:
            print(f"table\t{t.table}\treserved={t.reserved}\ttasks={t.tasks}\tgone={t.gone}")
        for g in report.gone:
            print(f"gone\t{g.task}\t{class_name(g.table_name)}\t{key_text(g.key)}\t{g.state}")
        return 0
    out = display.console()
    if not report.submissions:
        out.print(f"no submissions recorded for {scope.label} (djhpc submit records them)")
    else:
        title = f"Submissions to schema {scope.schema}" if tables is None else f"Submissions of {scope.label}"
        t = display.table("Job", "Scheduler", "Table", "Submitted", "Tasks", "Pending", "Running", "Done", "Failed",
                          "Timeout", "Cancelled", "Unknown", title=title,
                          right=("Tasks", "Pending", "Running", "Done", "Failed", "Timeout", "Cancelled", "Unknown"))
        colours = {"failed": "red", "timeout": "red", "cancelled": "yellow", "running": "cyan", "done": "green"}
        for s in report.submissions:
            cells = []
            for c in CATEGORIES:
                n = s.counts[c]
                cells.append(f"[{colours[c]}]{n:,}[/{colours[c]}]" if n and c in colours else display.number(n))
            sub = s.submission
            t.add_row(sub.job_id, sub.scheduler, _tables(sub.table_name), display.local_time(sub.submitted_at),
                      display.number(sub.array_size), *cells)
        out.print(t)
    if tables is not None:
        out.print(_tables_table(tables, scope.label))
    if report.submissions:
        holds = [h for s in report.submissions for h in s.holding]
        if holds:
            t = display.table("Task", "State", "Host", "PID", "Keys", "Holding now", "Heartbeat",
                              title="Keys held by running tasks", right=("PID", "Keys"))
            for h in holds:
                shown = "; ".join(f"{class_name(tn)} {key_text(k)}" for tn, k in h.keys[:3])
                if len(h.keys) > 3:
                    shown += f"; +{len(h.keys) - 3:,} more"
                t.add_row(h.task, h.state or "—", display.escape(h.host), str(h.pid),
                          display.number(len(h.keys)), display.escape(shown),
                          "—" if h.heartbeat_age is None else f"{display.seconds_text(h.heartbeat_age)} ago")
            out.print(t)
    if report.gone:
        t = display.table("Table", "Key", "Task", "Scheduler says", "Host", "PID",
                          title="Reservations whose task is gone", right=("PID",))
        for g in report.gone:
            t.add_row(class_name(g.table_name), display.escape(key_text(g.key)), g.task, f"[red]{g.state}[/red]",
                      display.escape(g.host), str(g.pid))
        out.print(t)
        out.print(f"{len(report.gone):,} keys are held by tasks that ended or that the scheduler does not know: "
                  "djhpc reap gives them back now (workers do so on their own within a lease)")
    elif report.reserved:
        out.print(f"{report.reserved:,} keys reserved, none by a task the scheduler reports ended")
    return 0


def _tables(table_name: str) -> str:
    """The class name of a run's table, or of each (a pipeline's run may record several, comma-separated)."""
    return ", ".join(class_name(n.strip()) for n in str(table_name or "").split(",") if n.strip())


def _tables_table(tables, label: str):
    """One row per table of a pipeline, upstream first: its keys reserved now, the tasks holding them, those
    held by tasks that are gone, the recorded runs that work on it."""
    t = display.table("Table", "Reserved", "Tasks", "Gone", "Runs", title=f"Tables of {label}",
                      right=("Reserved", "Tasks", "Gone"))
    for row in tables:
        gone = f"[red]{row.gone:,}[/red]" if row.gone else "0"
        t.add_row(row.table, display.number(row.reserved), display.number(row.tasks), gone,
                  ", ".join(row.runs) or "—")
    return t


def _as_json(report) -> dict:
    return {
        "schema": report.schema,
        "submissions": [{
            "job_id": s.submission.job_id, "scheduler": s.submission.scheduler, "target": s.submission.target,
            "table_name": s.submission.table_name, "submitted_at": display.iso_local(s.submission.submitted_at),
            "tasks": s.tasks, "counts": s.counts, "states": {str(k): v for k, v in sorted(s.states.items())},
            "holding": [{"task": h.task, "state": h.state, "host": h.host, "pid": h.pid,
                         "keys": [{"table_name": tn, "key": k} for tn, k in h.keys],
                         "heartbeat_age": h.heartbeat_age} for h in s.holding],
        } for s in report.submissions],
        "gone": [{"table_name": g.table_name, "key": g.key, "host": g.host, "pid": g.pid, "task": g.task,
                  "state": g.state} for g in report.gone],
        "reserved": report.reserved,
    }
