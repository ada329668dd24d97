"""``djhpc jobs``: list, group, show, retry, ignore and clear rows of a schema's jobs table."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace

from .. import jobrows, pipeview
from ..errors import UsageError
from ..progress import class_name, schema_tables
from . import display
from .scope import resolve_scope
from .work import add_pipeline_arguments

HELP = """The jobs table holds keys reserved now (running), failed (error), ignored, or waiting for a retry
(pending). Finished keys have no row.

commands (default: list):
  djhpc jobs [list] [TARGET] [--status S] [--host H] [--job-id J] [--older-than AGE] [--json]
  djhpc jobs errors [TARGET]                  errors grouped by exception type and message
  djhpc jobs running [TARGET] [--slow]        makes running now, how long, and which run past their p95
  djhpc jobs show KEY_OR_HASH [TARGET]        one key: the full stack and every attempt
  djhpc jobs retry [TARGET] [--match TEXT]    delete error rows: the next populate runs those keys again
  djhpc jobs ignore KEY [TARGET]              make populate skip a key (undo: djhpc jobs clear --status ignore)
  djhpc jobs clear [TARGET] [--status S ...]  delete rows (default: error, ignore and pending)

TARGET is module:Class (default: target in djhpc.yaml); --schema NAME covers every table of a schema
(--table T narrows it). TARGET may be a whole pipeline (a module, or module:schema): the rows of all its
tables, upstream tables first (--tables A,B and --downstream-of A narrow it; ignore takes one table:
--tables T). A KEY is written as djhpc prints it: "subject='r1', session_id=7" (text in
quotes, numbers bare; the whole key in one shell argument); JSON ('{"subject": "r1", "session_id": 7}')
and a key_hash (or its first 8 digits) work too.
retry and clear say how many rows they would delete and ask; without a terminal they need --yes.
Ages look like 30d, 12h, 90m or 3600s; times are shown in your local timezone.
"""

SUBCOMMANDS = ("list", "errors", "running", "show", "retry", "ignore", "clear")


class _AnyChoice(dict):
    """Subcommand names that accept any word: one that is not a subcommand is the TARGET of ``list``."""

    def __contains__(self, item):
        return True


class _ListByDefault(argparse._SubParsersAction):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = _AnyChoice()  # what argparse checks the first word against; the real map stays

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] not in self._name_parser_map:
            values = ["list", *values]
        super().__call__(parser, namespace, values, option_string)


def register(sub):
    p = sub.add_parser("jobs", help="list, group, show, retry, ignore or clear jobs-table rows", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schema", metavar="NAME", help="every table of this schema (no TARGET needed)")
    p.add_argument("--table", metavar="T", help="with --schema: one table, by class or table name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="minimal output")
    _filters(p, default=None)
    _pipeline_filters(p, default=None)
    p.set_defaults(func=run_list, target=None, limit=200)
    cmds = p.add_subparsers(dest="jobs_command", metavar="COMMAND", action=_ListByDefault,
                            parser_class=type(p))

    ls = cmds.add_parser("list", help="rows, oldest first (default)")
    _common(ls)
    _filters(ls, default=argparse.SUPPRESS)
    ls.add_argument("--limit", type=int, default=argparse.SUPPRESS, metavar="N", help="show at most N rows (200)")
    ls.set_defaults(func=run_list)

    er = cmds.add_parser("errors", help="errors grouped by exception type and message")
    _common(er)
    er.add_argument("--exact", action="store_true", help="group by the exact message (default: numbers as <n>)")
    er.set_defaults(func=run_errors)

    rn = cmds.add_parser("running", help="makes running now; --slow: only those past their table's p95")
    _common(rn)
    rn.add_argument("--slow", action="store_true", help="only makes running longer than their table's p95")
    rn.set_defaults(func=run_running)

    sh = cmds.add_parser("show", help="one key: status, full stack, attempt history")
    sh.add_argument("key", metavar="KEY_OR_HASH", help="the key as printed (\"item=3\"), as JSON, or its key_hash")
    _common(sh)
    sh.set_defaults(func=run_show)

    rt = cmds.add_parser("retry", help="delete error rows so the next populate runs those keys again")
    _common(rt)
    rt.add_argument("--match", metavar="TEXT", help="only errors whose message contains TEXT")
    _yes(rt)
    rt.set_defaults(func=run_retry)

    ig = cmds.add_parser("ignore", help="make populate skip a key")
    ig.add_argument("key", metavar="KEY", help="the key as printed (\"subject='r1', session_id=7\") or as JSON")
    _common(ig)
    ig.set_defaults(func=run_ignore)

    cl = cmds.add_parser("clear", help="delete rows (default statuses: error, ignore, pending)")
    _common(cl)
    _filters(cl, default=argparse.SUPPRESS)
    _yes(cl)
    cl.set_defaults(func=run_clear)


def _common(p):
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="table as module:Class, or a whole pipeline as module or pipeline.py (default: djhpc.yaml)")
    p.add_argument("--schema", metavar="NAME", default=argparse.SUPPRESS, help="every table of this schema")
    p.add_argument("--table", metavar="T", default=argparse.SUPPRESS,
                   help="with --schema: one table, by class or table name")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="minimal output")
    _pipeline_filters(p, default=argparse.SUPPRESS)


def _filters(p, default):
    p.add_argument("--status", action="append", choices=jobrows.STATUSES, default=default,
                   help="only rows of this status (repeatable)")
    p.add_argument("--host", default=default, help="only rows of this host")
    p.add_argument("--job-id", dest="job_id", default=default, metavar="J",
                   help="only rows of this cluster job (J or J_TASK)")
    p.add_argument("--older-than", dest="older_than", type=display.age_argument, default=default, metavar="AGE",
                   help="only rows last touched longer ago than AGE: 30d, 12h, 90m, 3600 (seconds)")


def _pipeline_filters(p, default):
    """--tables and --downstream-of (a subcommand's default is SUPPRESS: it must not undo the parent's value)."""
    group = p.add_argument_group("pipelines (TARGET is a module)")
    add_pipeline_arguments(group)
    for action in group._group_actions:
        action.default = default


def _yes(p):
    p.add_argument("-y", "--yes", action="store_true", help="do not ask (needed without a terminal)")


# ---------------------------------------------------------------------------- scope
def _scope(args):
    """(scope, table_name or None): TARGET's table, or --schema with an optional --table; TARGET may name a
    pipeline (scope.pipeline), and table_name is None."""
    scope = resolve_scope(args, allow_pipeline=True)
    if scope.target is not None or scope.pipeline is not None:
        if args.table:
            raise UsageError("--table goes with --schema; TARGET names the table already (a pipeline's: --tables)")
        return scope, scope.table_name
    if not args.table:
        return scope, None
    tables = schema_tables(scope.connection, scope.schema)
    for t in tables:
        if args.table in (t, class_name(t)) and not t.startswith("~"):
            return scope, t
    raise UsageError(f"schema {scope.schema} has no table {args.table!r}: name one of "
                     f"{', '.join(class_name(t) for t in tables if not t.startswith('~'))}")


def _quiet(args) -> bool:
    return bool(getattr(args, "quiet", False))


def _row_dict(r: jobrows.JobRow, full=False) -> dict:
    out = {"table_name": r.table_name, "key_hash": r.key_hash, "status": r.status, "key": r.key,
           "error_message": r.error_message, "user": r.user, "host": r.host, "pid": r.pid,
           "timestamp": display.iso_local(r.timestamp), "sched_job_id": r.sched_job_id,
           "sched_task_id": r.sched_task_id, "attempts": r.attempts, "failures": r.failures, "deaths": r.deaths,
           "heartbeat_at": display.iso_local(r.heartbeat_at)}
    if full:
        out.update(error_stack=r.error_stack, retry_after=display.iso_local(r.retry_after), history=r.history)
    return out


# ---------------------------------------------------------------------------- list
def _class_names(scope) -> dict:
    """table_name -> class name: a pipeline's own names, else told from the table name."""
    if scope.pipeline is None:
        return {}
    return {scope.targets[c].table_name: c.__name__ for c in scope.pipeline.tables}


def _table(names: dict, table_name: str) -> str:
    return names.get(table_name) or class_name(table_name)


def _named(names: dict, row: dict) -> dict:
    """A --json row, led by its table's class name when the rows are a pipeline's (one table's stay as they were)."""
    return {"table": _table(names, row["table_name"]), **row} if names else row


def run_list(args) -> int:
    scope, table_name = _scope(args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {args.limit})")
    if scope.pipeline is not None:
        rows, total = pipeview.job_rows(scope.pipeline, scope.targets, statuses=args.status, host=args.host,
                                        job_id=args.job_id, older_than_seconds=args.older_than, limit=args.limit)
    else:
        q = jobrows.select(scope.connection, scope.schema, table_name=table_name, statuses=args.status,
                           host=args.host, job_id=args.job_id, older_than_seconds=args.older_than,
                           jobs_table_name=scope.jobs_table)
        total = len(q)
        rows = jobrows.fetch_rows(q, limit=args.limit)
    names = _class_names(scope)
    if args.json:
        display.print_json([_named(names, _row_dict(r)) for r in rows])
        return 0
    if _quiet(args):
        for r in rows:
            print(f"{_table(names, r.table_name)}\t{jobrows.key_text(r.key)}\t{r.status}\t{r.key_hash}")
        return 0
    out = display.console()
    if not rows:
        out.print(f"no jobs rows for {scope.label} with these filters")
        return 0
    t = display.table("Table", "Key", "Status", "Host", "PID", "Task", "Since", "Tries", "Error",
                      right=("PID", "Tries"))
    colours = {"error": "red", "reserved": "cyan", "ignore": "dim", "pending": "yellow"}
    for r in rows:
        colour = colours.get(r.status, "")
        status = f"[{colour}]{r.status}[/{colour}]" if colour else r.status
        t.add_row(_table(names, r.table_name), display.escape(jobrows.key_text(r.key)), status, display.escape(r.host),
                  str(r.pid), r.task, display.local_time(r.timestamp), str(r.attempts),
                  display.escape(display.short(r.error_message, 80)))
    out.print(t)
    if total > len(rows):
        out.print(f"... {total - len(rows):,} more rows (of {total:,}): narrow with --status/--host or raise --limit")
    return 0


# ---------------------------------------------------------------------------- running
def run_running(args) -> int:
    from ..running import running_makes

    scope, table_name = _scope(args)
    if scope.pipeline is not None:
        makes = pipeview.running_makes(scope.pipeline, scope.targets)
    else:
        makes = running_makes(scope.connection, scope.schema, table_name=table_name, jobs_table=scope.jobs_table,
                              history_table=scope.history_table)
    names = _class_names(scope)
    if args.slow:
        makes = [m for m in makes if m.over_p95]
    if getattr(args, "json", False):
        display.print_json([_named(names, {"table_name": m.table_name, "key": m.key, "host": m.host, "pid": m.pid,
                                           "task": m.task, "seconds": round(m.seconds, 3), "p95": m.p95,
                                           "over_p95": m.over_p95}) for m in makes])
        return 0
    out = display.console()
    if not makes:
        out.print(f"no makes {'past their p95 ' if args.slow else ''}running for {scope.label}")
        return 0
    t = display.table("Table", "Key", "Host", "PID", "Task", "Running", "p95", "", right=("PID", "Running", "p95"))
    for m in makes:
        flag = "[red]past p95[/red]" if m.over_p95 else ""
        t.add_row(_table(names, m.table_name), display.escape(jobrows.key_text(m.key)), display.escape(m.host),
                  str(m.pid), m.task, display.seconds_text(m.seconds), display.seconds_text(m.p95), flag)
    out.print(t)
    slow = sum(m.over_p95 for m in makes)
    if slow and not args.slow:
        out.print(f"{slow} make(s) past their table's p95: a hung make? djhpc work --make-timeout stops them")
    return 0


# ---------------------------------------------------------------------------- errors
def run_errors(args) -> int:
    scope, table_name = _scope(args)
    if scope.pipeline is not None:
        groups = pipeview.error_groups(scope.pipeline, scope.targets, exact=args.exact)
    else:
        groups = jobrows.error_groups(scope.connection, scope.schema, table_name=table_name, exact=args.exact,
                                      jobs_table_name=scope.jobs_table)
    names = _class_names(scope)
    if args.json:
        display.print_json([_named(names, {"table_name": g.table_name, "error_type": g.error_type,
                                           "message": g.message, "count": g.count, "example_key": g.example_key,
                                           "example_hash": g.example_hash, "example_message": g.example_message})
                            for g in groups])
        return 0
    if _quiet(args):
        for g in groups:
            print(f"{g.count}\t{g.table_name}\t{g.error_type}: {g.message}")
        return 0
    out = display.console()
    if not groups:
        out.print(f"no errors for {scope.label}")
        return 0
    t = display.table("Count", "Table", "Exception", "Message", "Example key", right=("Count",))
    for g in groups:
        t.add_row(f"[red]{g.count:,}[/red]", _table(names, g.table_name), display.escape(g.error_type),
                  display.escape(display.short(g.message, 100)), display.escape(jobrows.key_text(g.example_key)))
    out.print(t)
    example = shlex.quote(jobrows.key_text(groups[0].example_key)) if groups[0].example_key else "KEY"
    out.print(f"{sum(g.count for g in groups):,} failed keys in {len(groups):,} groups; details: djhpc jobs show "
              f"{display.escape(example)}; run them again: djhpc jobs retry --match TEXT")
    return 0


# ---------------------------------------------------------------------------- show
def run_show(args) -> int:
    scope, table_name = _scope(args)
    if scope.pipeline is not None:
        rows = pipeview.find(scope.pipeline, scope.targets, args.key)
    else:
        rows = jobrows.find(scope.connection, scope.schema, args.key, table=scope.target, table_name=table_name,
                            jobs_table_name=scope.jobs_table)
    names = _class_names(scope)
    if args.json:
        display.print_json([_named(names, _row_dict(r, full=True)) for r in rows])
        return 0
    out = display.console()
    for r in rows:
        out.print(f"[bold]{_table(names, r.table_name)}[/bold] {display.escape(jobrows.key_text(r.key))}  "
                  f"(key_hash {r.key_hash})")
        fields = [("status", r.status), ("host", r.host), ("pid", str(r.pid)), ("user", r.user),
                  ("task", r.task or "—"), ("since", display.local_time(r.timestamp)),
                  ("heartbeat", display.local_time(r.heartbeat_at)),
                  ("attempts", f"{r.attempts} (failures {r.failures}, deaths {r.deaths})"),
                  ("retry after", display.local_time(r.retry_after)), ("error", r.error_message or "—")]
        for name, value in fields:
            out.print(f"  {name:<12}{display.escape(str(value))}")
        if r.history:
            t = display.table("#", "When", "Outcome", "Host", "PID", "Task", "Message", right=("#", "PID"))
            for i, a in enumerate(r.history, 1):
                task = f"{a.get('job', '')}_{a.get('task', '')}" if a.get("task") else str(a.get("job") or "")
                t.add_row(str(i), display.local_time(a.get("at")) if a.get("at") else "—", str(a.get("outcome", "")),
                          display.escape(str(a.get("host", ""))), str(a.get("pid", "")), task,
                          display.escape(display.short(str(a.get("message") or a.get("reason") or ""), 100)))
            out.print("  attempts:")
            out.print(t)
        if r.error_stack:
            out.print("  stack:")
            out.print(r.error_stack.rstrip(), markup=False, highlight=False, soft_wrap=True)  # as written, copyable
    return 0


# ---------------------------------------------------------------------------- retry, ignore, clear
def _select(scope, table_name, **filters) -> list:
    """The jobs rows to delete: one selection, or one per schema of a pipeline's tables."""
    if scope.pipeline is not None:
        return pipeview.select(scope.pipeline, scope.targets, **filters)
    return [jobrows.select(scope.connection, scope.schema, table_name=table_name, jobs_table_name=scope.jobs_table,
                           **filters)]


def run_retry(args) -> int:
    scope, table_name = _scope(args)
    queries = _select(scope, table_name, statuses=["error"], match=args.match)
    n = sum(len(q) for q in queries)
    if n == 0:
        if not _quiet(args):
            print(f"no error rows for {scope.label}" + (f" matching {args.match!r}" if args.match else ""))
        return 0
    if not display.confirm(f"delete {n:,} error rows of {scope.label} so the next populate runs those keys again",
                           yes=args.yes):
        print("nothing deleted")
        return 1
    deleted = sum(jobrows.delete(q) for q in queries)
    if not _quiet(args):
        print(f"deleted {deleted:,} error rows: the next populate (djhpc work or submit) runs those keys again")
    return 0


def run_ignore(args) -> int:
    scope, table_name = _scope(args)
    target = scope.target
    if scope.pipeline is not None:
        if len(scope.pipeline.tables) != 1:
            raise UsageError(f"ignore needs one table: name it with --tables T (one of "
                             f"{', '.join(c.__name__ for c in scope.pipeline.tables)}), or give TARGET as module:Class")
        target = scope.targets[scope.pipeline.tables[0]]
        scope = replace(scope, connection=target.connection, schema=target.database, jobs_table=target.jobs_table)
        table_name = target.table_name
    if not table_name:
        raise UsageError("ignore needs the table: give TARGET, or --schema NAME --table T")
    key, _ = jobrows.parse_key(args.key, target)
    if key is None:
        raise UsageError("ignore needs the key itself, e.g. \"item=3\" as djhpc jobs prints it (a key_hash cannot "
                         "be turned back into a key)")
    status = jobrows.ignore(scope.connection, scope.schema, table_name, key, jobs_table_name=scope.jobs_table)
    if status == "reserved":
        print(f"{jobrows.key_text(key)} is running right now and stays reserved: ignore it again when it ends")
        return 1
    if not _quiet(args):
        print(f"ignored {class_name(table_name)} {jobrows.key_text(key)}: populate skips it until "
              "djhpc jobs clear --status ignore")
    return 0


def run_clear(args) -> int:
    scope, table_name = _scope(args)
    statuses = args.status or ["error", "ignore", "pending"]
    queries = _select(scope, table_name, statuses=statuses, host=args.host, job_id=args.job_id,
                      older_than_seconds=args.older_than)
    n = sum(len(q) for q in queries)
    if n == 0:
        if not _quiet(args):
            print(f"no {'/'.join(statuses)} rows for {scope.label} with these filters")
        return 0
    what = f"delete {n:,} {'/'.join(statuses)} rows of {scope.label}"
    if "reserved" in statuses:
        what += " (running workers lose those keys: their results roll back)"
    if not display.confirm(what, yes=args.yes):
        print("nothing deleted")
        return 1
    deleted = sum(jobrows.delete(q) for q in queries)
    if not _quiet(args):
        print(f"deleted {deleted:,} rows")
    return 0
