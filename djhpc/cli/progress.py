"""``djhpc progress [TARGET | --schema NAME]``: how far a table (or each table of a pipeline) is, how fast it goes,
how big a make is."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from ..pipeview import PipelineTableProgress, blocked_text, outlook, pipeline_table_progress
from ..progress import EMPTY_KEY_SOURCE, RATE_WINDOW_SECONDS, TableProgress, eta_text, schema_progress, table_progress
from ..query import AndList
from . import display
from .scope import resolve_scope
from .work import add_pipeline_arguments

HELP = """Progress of one table: keys in total, done, remaining, running (reserved), failed and ignored,
the completion rate over a recent window and the ETA, plus the median and 95th percentile of make
time, CPU seconds and peak memory of recent makes (to size --time and --mem).

A table is "done" only when every key of its key source is made. With failed or ignored keys left
and nothing running, it says how many (djhpc jobs errors lists them); with keys left and no live
worker holding any, it says "no workers running" instead of an ETA; with an empty key source, that
there is nothing to make.

TARGET without :Class is a whole pipeline (a module, or module:schema): one row per table, upstream
first, with its keys ready now, waiting for inputs not made yet, and blocked (waiting on a key that
failed or was ignored upstream: they come only once it is fixed); Total counts the keys each table will
have once everything above it is made. A table is done when those are made too. --tables and
--downstream-of limit the rows.

With --schema NAME the pipeline is not imported, so the key source (total, remaining, ETA) is unknown:
every Imported/Computed table of the schema is listed with what the database holds (rows made,
jobs by status, rate and percentiles). Name TARGET for the totals.

exit codes: 0 shown (--watch: the table is done), 1 --watch: the table cannot get done by itself (failed
or ignored keys and nothing running, or an empty key source; the reason is printed), 2 usage error,
130 --watch stopped by Ctrl-C

examples:
  djhpc progress pipeline:Analysis
  djhpc progress pipeline:Analysis --watch          refresh until nothing is left to run
  djhpc progress pipeline.py                        every computed table of the module
  djhpc progress pipeline.py --downstream-of Segmentation
  djhpc progress pipeline:Analysis --restrict "subject = 'm1'"
  djhpc progress --schema my_pipeline --json
"""


def register(sub):
    p = sub.add_parser("progress", help="counts, rate, ETA and make-size percentiles of a table",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    display.add_schema_options(p)
    p.add_argument("--watch", action="store_true",
                   help="refresh in place until the table is done, or cannot change any more (or Ctrl-C)")
    p.add_argument("--interval", type=display.age_argument, default=2.0, metavar="DURATION",
                   help="--watch refresh: 2 (seconds), 1m (default 2 s)")
    p.add_argument("--window", type=display.age_argument, default=RATE_WINDOW_SECONDS, metavar="AGE",
                   help="rate over makes started this recently: 10m, 1h, 600 (seconds) (default 10m)")
    p.add_argument("--json", action="store_true", help="machine-readable rows (--watch: one JSON line each time)")
    p.add_argument("--restrict", action="append", default=[], metavar="SQL",
                   help="count only keys where this SQL condition on the key source holds (repeatable: all must "
                   "hold), as djhpc work --restrict, with the running, failed and ignored keys among them; rate "
                   "and make-size percentiles stay the table's")
    display.add_quiet(p)
    add_pipeline_arguments(p.add_argument_group("pipelines (TARGET is a module)"))
    p.set_defaults(func=run)


def run(args) -> int:
    scope = resolve_scope(args, allow_pipeline=True)
    if args.watch and scope.target is None and scope.pipeline is None:
        from ..errors import UsageError

        raise UsageError("--watch needs TARGET (module:Class): without the pipeline's code the total is unknown")
    if args.interval <= 0:
        from ..errors import UsageError

        raise UsageError(f"--interval must be > 0 seconds (got {args.interval:g})")
    if args.restrict and scope.target is None and scope.pipeline is None:
        from ..errors import UsageError

        raise UsageError("--restrict needs TARGET (module:Class or a pipeline): without the pipeline's code there "
                         "is no key source to restrict")
    restrictions = [AndList(args.restrict)] if args.restrict else []

    def measure() -> list[TableProgress]:
        if scope.pipeline is not None:
            return pipeline_table_progress(scope.pipeline, scope.targets, restrictions, whole=scope.whole,
                                           window_seconds=args.window)
        if scope.target is None:
            return schema_progress(scope.connection, scope.schema, window_seconds=args.window,
                                   jobs_table=scope.jobs_table, history_table=scope.history_table)
        return [table_progress(scope.target, *restrictions, window_seconds=args.window)]

    if args.watch:
        return _watch(measure, args, scope.pipeline)
    rows = measure()
    if args.json:
        display.print_json([r.as_dict() for r in rows])
    elif getattr(args, "quiet", False):
        for r in rows:
            print(summary_line(r))
    else:
        show(rows, display.console(), scope.pipeline)
    return 0


# ---------------------------------------------------------------------------- text
def _total(p: TableProgress) -> int | None:
    """The keys the table will have: a pipeline table's include those still to come from upstream."""
    return p.expected if isinstance(p, PipelineTableProgress) else p.total


def _eta_text(p: TableProgress) -> str:
    return outlook(p) if isinstance(p, PipelineTableProgress) else eta_text(p)


def _percent(p: TableProgress) -> str:
    return "—" if p.percent is None else f"{p.percent:.1f}%"


def _rate(p: TableProgress) -> str:
    return "—" if p.rate_per_minute is None else f"{p.rate_per_minute:,.1f}"


def summary_line(p: TableProgress) -> str:
    if p.empty:
        return f"{p.name}: {EMPTY_KEY_SOURCE}"
    if p.total is None:
        head = f"{p.name}: {p.done:,} rows"
    else:
        head = f"{p.name}: {p.done:,} of {_total(p):,} done ({_percent(p)})"
    if isinstance(p, PipelineTableProgress):
        head += f", {p.ready:,} ready"
    counts = f"{head}, {p.reserved:,} running, {p.error:,} failed, {p.ignore:,} ignored"
    if isinstance(p, PipelineTableProgress):
        counts += f", {display.number(p.waiting)} waiting, {display.number(p.blocked)} blocked"
    return f"{counts}, {_rate(p)}/min, {_outlook(p)}"


def _outlook(p: TableProgress) -> str:
    """'ETA 4m 05s (14:20)' while workers run; otherwise the state in words."""
    if p.stuck:
        return p.stuck
    text = _eta_text(p)
    if isinstance(p, PipelineTableProgress) and p.waiting_upstream:
        return text
    return f"ETA {text}" if p.eta_seconds and not p.finished and p.workers != 0 else text


def progress_table(rows: list[TableProgress]):
    t = display.table("Table", "Total", "Done", "Remaining", "Running", "Failed", "Ignored", "Done %",
                      "Rate /min", "ETA",
                      right=("Total", "Done", "Remaining", "Running", "Failed", "Ignored", "Done %", "Rate /min"))
    for p in rows:
        failed = f"[red]{p.error:,}[/red]" if p.error else "0"
        t.add_row(p.name, display.number(p.total), display.number(p.done), display.number(p.remaining),
                  display.number(p.reserved), failed, display.number(p.ignore), _percent(p), _rate(p), eta_text(p))
    return t


def pipeline_table(rows: list[PipelineTableProgress]):
    """One row per table of a pipeline, upstream first: Total counts the keys still to come from upstream too."""
    numbers = ("Total", "Done", "Done %", "Ready", "Running", "Failed", "Ignored", "Waiting", "Blocked", "Rate /min")
    t = display.table("Table", "Total", "Done", "Done %", "Ready", "Running", "Failed", "Ignored", "Waiting",
                      "Blocked", "Rate /min", "ETA", right=numbers)
    for p in rows:
        failed = f"[red]{p.error:,}[/red]" if p.error else "0"
        blocked = f"[red]{p.blocked:,}[/red]" if p.blocked else display.number(p.blocked)
        t.add_row(p.name, display.number(_total(p)), display.number(p.done), _percent(p), display.number(p.ready),
                  display.number(p.reserved), failed, display.number(p.ignore), display.number(p.waiting), blocked,
                  _rate(p), _eta_text(p))
    return t


def sizing_table(rows: list[TableProgress]):
    t = display.table("Table", "Makes", "Time p50", "Time p95", "CPU p50", "CPU p95", "Peak mem p50",
                      "Peak mem p95", title="Recent makes (size --time and --mem from p95)",
                      right=("Makes", "Time p50", "Time p95", "CPU p50", "CPU p95", "Peak mem p50", "Peak mem p95"))
    for p in rows:
        d, c, m = p.duration, p.cpu_seconds, p.max_rss_mb
        t.add_row(p.name, display.number(p.completions),
                  display.seconds_text(d.median if d else None), display.seconds_text(d.p95 if d else None),
                  display.seconds_text(c.median if c else None), display.seconds_text(c.p95 if c else None),
                  display.megabytes_text(m.median if m else None), display.megabytes_text(m.p95 if m else None))
    return t


def notes(p: TableProgress) -> list[str]:
    """What the numbers alone do not say: an empty key source, keys that wait for the user, no workers."""
    if p.stuck:
        return [f"{p.name}: {p.stuck}"]
    if p.no_workers:
        return [f"{p.name}: {p.left:,} keys left and no workers running: start them with djhpc submit "
                "(or djhpc work); a queued array starts them when the scheduler does"]
    return []


def pipeline_notes(rows: list[PipelineTableProgress], pipeline) -> list[str]:
    """A pipeline's notes: tables stuck on their own failures, the keys blocked upstream, no workers at all,
    tables without completions yet."""
    lines = [f"{p.name}: {p.stuck}" for p in rows if p.stuck and (p.error or p.ignore or p.empty)]
    blocked = blocked_text(rows)
    if blocked:
        lines.append(f"{blocked}: fix or retry the failed keys above them (djhpc jobs errors {pipeline.name})")
    left = sum(p.left or 0 for p in rows if p.no_workers)
    if left:
        lines.append(f"{left:,} keys left and no workers running: start them with djhpc submit (or djhpc work "
                     f"{pipeline.name}); a queued array starts them when the scheduler does")
    fresh = [p.name for p in rows if not p.completions and not p.empty]
    if fresh:
        lines.append(f"no completions recorded yet for {', '.join(fresh)}: rate, ETA and percentiles appear after "
                     "their first make (history is off if DJHPC_HISTORY=0)")
    return lines


def show(rows: list[TableProgress], out, pipeline=None) -> None:
    if pipeline is not None:
        out.print(pipeline_table(rows))
        out.print(sizing_table(rows))
        for line in pipeline_notes(rows, pipeline):
            out.print(display.escape(line))
        return
    out.print(progress_table(rows))
    out.print(sizing_table(rows))
    if rows and rows[0].total is None:
        out.print("total, remaining and ETA need the pipeline's code: name TARGET (module:Class) for them")
        return
    for p in rows:
        for line in notes(p):
            out.print(display.escape(line))
        if p.empty:
            continue
        if not p.completions:
            out.print(f"{p.name}: no completions recorded yet: rate, ETA and percentiles appear after the first "
                      "make (history is off if DJHPC_HISTORY=0)")


# ---------------------------------------------------------------------------- watch
def _ended(rows: list[TableProgress]) -> int | None:
    """--watch's exit code once nothing more can happen by itself: 0 all done, 1 some table stuck; None: go on."""
    if all(r.done_all for r in rows):
        return 0
    if all(r.done_all or r.stuck for r in rows):
        return 1
    return None


def _say_why(rows: list[TableProgress], pipeline=None) -> None:
    what = "the table" if pipeline is None else "the pipeline"
    stuck = [f"{r.name}: {r.stuck}" for r in rows if r.stuck]
    if stuck:
        print(f"djhpc: nothing is running and {what} is not done: {'; '.join(stuck)}", file=sys.stderr)


def _watch(measure, args, pipeline=None) -> int:
    """Ctrl-C sets a flag the loop waits on, rather than raising KeyboardInterrupt wherever it lands: raised
    inside rich's Live (a lock held, its refresh thread waiting for it) it could hang the watch for good."""
    import signal
    import threading

    interval = max(args.interval, 0.2)
    tty = sys.stdout.isatty() and not args.json
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        if tty and not getattr(args, "quiet", False):
            return _watch_live(measure, interval, stop, pipeline)
        while not stop.is_set():
            rows = measure()
            if args.json:
                print(json.dumps([r.as_dict() for r in rows], default=str), flush=True)
            else:
                print(" | ".join(summary_line(r) for r in rows), flush=True)
            code = _ended(rows)
            if code is not None:
                _say_why(rows, pipeline)
                return code
            stop.wait(interval)
        return 130
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch_live(measure, interval: float, stop, pipeline=None) -> int:
    from rich.console import Group
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    out = display.console()

    def render(rows):
        bars = Table.grid(padding=(0, 1))
        for p in rows:
            text = _outlook(p) if not p.stuck else _eta_text(p)
            bar_width = max(10, min(40, out.width - len(p.name) - len(text) - 24))
            total = _total(p) or 0
            bars.add_row(p.name, ProgressBar(total=max(total, 1), completed=p.done, width=bar_width),
                         f"{p.done:,}/{total:,}", _percent(p), display.escape(text))
        stamp = dt.datetime.now().astimezone().strftime("%H:%M:%S")
        if pipeline is not None:
            table = pipeline_table(rows)
            lines = [display.escape(n) for n in pipeline_notes(rows, pipeline)]
        else:
            table = progress_table(rows)
            lines = [display.escape(n) for p in rows for n in notes(p)]
        return Group(bars, table, sizing_table(rows), *lines, f"updated {stamp}; Ctrl-C to stop watching")

    rows = measure()
    with Live(render(rows), console=out, refresh_per_second=4, transient=False) as live:
        while _ended(rows) is None:
            if stop.wait(interval):
                return 130
            rows = measure()
            live.update(render(rows))
    _say_why(rows, pipeline)
    return _ended(rows)
