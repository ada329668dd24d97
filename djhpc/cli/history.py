"""``djhpc history``: the completion history (one row per successful make): show it, prune it."""

from __future__ import annotations

import argparse

from .. import durations
from ..errors import UsageError
from ..history import History
from . import display
from .scope import resolve_scope

HELP = """The completion history holds one row per successful make (host, task, start, duration, CPU
seconds, peak memory): progress, report and the walltime fit read it. It grows by one row per key;
prune old rows once a run is over.

examples:
  djhpc history show pipeline:Analysis --limit 20
  djhpc history prune --older-than 30d --schema my_pipeline --yes
"""


def register(sub):
    p = sub.add_parser("history", help="show or prune the completion history", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="history_command", metavar="COMMAND", parser_class=type(p))
    pr = cmds.add_parser("prune", help="delete history rows older than an age (the whole schema)")
    display.add_schema_options(pr)
    pr.add_argument("--older-than", dest="older_than", required=True, type=durations.argument(), metavar="AGE",
                    help="30d, 12h, 90m, 1h30m or 3600 (seconds)")
    pr.add_argument("-y", "--yes", action="store_true", help="do not ask (needed without a terminal)")
    display.add_quiet(pr)
    pr.set_defaults(func=run_prune)
    sh = cmds.add_parser("show", help="the most recent makes of a table")
    sh.add_argument("target", nargs="?", metavar="TARGET", help="table as module:Class (default: djhpc.yaml)")
    sh.add_argument("--limit", type=int, default=50, metavar="N", help="rows to show (default 50)")
    sh.add_argument("--json", action="store_true", help="machine-readable rows")
    sh.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def run_prune(args) -> int:
    scope = resolve_scope(args)
    history = History(scope.connection, scope.schema, scope.history_table)
    history.ensure_table()
    n = int(scope.connection.run("count_history_older", (float(args.older_than),),
                                 history=history.table).fetchone()[0])
    quiet = getattr(args, "quiet", False)
    age = display.seconds_text(args.older_than)
    if n == 0:
        if not quiet:
            print(f"no history rows of schema {scope.schema} older than {age}")
        return 0
    if not display.confirm(f"delete {n:,} history rows of schema {scope.schema} older than {age}", yes=args.yes):
        print("nothing deleted")
        return 1
    deleted = history.prune(args.older_than)
    if not quiet:
        print(f"deleted {deleted:,} history rows older than {age}")
    return 0


def run_show(args) -> int:
    from ..report import history_rows

    if args.limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {args.limit})")
    scope = resolve_scope(args, allow_schema=False)
    rows = history_rows(scope.connection, scope.schema, scope.table_name, limit=args.limit,
                        history_table=scope.history_table)[::-1]  # newest first
    if args.json:
        display.print_json([{"started_at": display.iso_local(r.started_at), "duration": r.duration, "host": r.host,
                             "task": r.task, "cpu_seconds": r.cpu_seconds, "max_rss_mb": r.max_rss_mb}
                            for r in rows])
        return 0
    out = display.console()
    if not rows:
        out.print(f"no completions recorded for {scope.label} yet (history is off if DJHPC_HISTORY=0)")
        return 0
    t = display.table("Started", "Host", "Task", "Duration", "CPU", "Peak mem",
                      right=("Duration", "CPU", "Peak mem"))
    for r in rows:
        t.add_row(display.local_time(r.started_at), display.escape(r.host), r.task or "—",
                  display.seconds_text(r.duration), display.seconds_text(r.cpu_seconds),
                  display.megabytes_text(r.max_rss_mb))
    out.print(t)
    return 0
