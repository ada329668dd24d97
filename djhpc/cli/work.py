"""``djhpc work TARGET``: one populate loop with reservation (what each array task runs)."""

from __future__ import annotations

from .. import durations
from ..errors import UsageError
from ..pipeline import PREFERENCES, Pipeline
from ..pipework import work_pipeline
from ..populate import ORDERS, PopulateOptions
from ..worker import WorkOptions, work
from .common import add_target_argument, target_or_pipeline

HELP = """Run one populate loop with reservation until nothing is left for this worker.

exit codes: 0 nothing left, 1 some makes failed (see djhpc jobs errors), 2 usage error,
            69 database unreachable, 75 stopped by a signal (keys given back: submit again)

TARGET without :Class is a whole pipeline (a module, or module:schema): the worker takes a ready key of any
of its Computed and Imported tables, deepest tables first, and waits while keys may still come from above.

examples:
  djhpc work pipeline:Analysis
  djhpc work pipeline.py:Analysis --max-calls 100 --restrict "subject = 'm1'"
  djhpc work pipeline.py                                   every computed table of the module
  djhpc work pipeline.py --tables Segmentation             one resource class's tables
  djhpc work pipeline.py:Analysis --processes 32           32 workers in one task of a 32-core node
  djhpc work pipeline.py --processes 32                    the same over every table of the pipeline
  djhpc work pipeline.py:Analysis --release-after 30s      long makes give the database connection back
"""


def register(sub):
    import argparse

    p = sub.add_parser("work", help="run one populate loop with reservation", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_argument(p)
    p.add_argument("--order", choices=ORDERS, default="original", help="order in which keys are taken")
    p.add_argument("--max-calls", type=_non_negative, metavar="N", help="stop after N calls of make")
    p.add_argument("--limit", type=_non_negative, metavar="N", help="stop after N keys")
    p.add_argument("--suppress-errors", dest="suppress_errors", action="store_true", default=True,
                   help="record a failing key and go on (default)")
    p.add_argument("--no-suppress-errors", dest="suppress_errors", action="store_false",
                   help="stop at the first failing key")
    p.add_argument("--restrict", action="append", default=[], metavar="SQL",
                   help="SQL condition on the key source (repeatable: all must hold)")
    p.add_argument("--retries", type=_non_negative, default=0, metavar="N",
                   help="run a failing key up to N more times")
    p.add_argument("--retry-delay", type=durations.argument(allow_zero=True), default=30.0, metavar="DURATION",
                   help="wait before the first retry, doubled each time: 30 (seconds), 2m (default 30 s)")
    p.add_argument("--make-timeout", type=durations.argument(), metavar="DURATION",
                   help="stop a make running longer than this and record its key as an error: 600 (seconds), "
                        "10m, 2h (default: the table's make_timeout, else no limit)")
    p.add_argument("--release-after", type=durations.argument(), metavar="DURATION",
                   help="MySQL: a make that leaves the database connection unused this long gives it back until it "
                        "needs it again: 30 (seconds), 2m; so an array larger than the server's max_connections runs "
                        "whole (the worker is then judged alive by its PID, the scheduler and its heartbeat lease)")
    p.add_argument("--processes", type=_positive, default=1, metavar="N",
                   help="run N workers in forked processes of this task (a many-core node's task), each with its "
                        "own connection; a task's processes share its part of the keys (default 1)")
    p.add_argument("--log", metavar="FILE", help="append one line per key here (default: stderr)")
    g = p.add_argument_group("pipelines (TARGET is a module)")
    add_pipeline_arguments(g)
    g.add_argument("--prefer", choices=PREFERENCES, default="deepest",
                   help="which tables' keys to take first: deepest (finish what is started; default) or upstream")
    p.set_defaults(func=run)


def add_pipeline_arguments(group):
    """--tables and --downstream-of: the part of a pipeline a command looks at."""
    group.add_argument("--tables", type=_names, metavar="A,B", help="only these tables of the pipeline")
    group.add_argument("--downstream-of", type=_names, metavar="A", dest="downstream_of",
                       help="only these tables and every pipeline table below them")


def _names(text: str) -> list[str]:
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must name tables, comma-separated (got '{text}')")
    return names


def _positive(text: str) -> int:
    import argparse

    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def _non_negative(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got '{text}')") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {value})")
    return value


def run(args) -> int:
    if args.log:
        _check_writable(args.log)  # before the pipeline is imported (which declares its tables)
    loaded = _load_waiting_for_the_database(args.target)
    populate = PopulateOptions(reserve_jobs=True, order=args.order, max_calls=args.max_calls, limit=args.limit,
                               suppress_errors=args.suppress_errors, max_attempts=args.retries + 1,
                               retry_delay_seconds=args.retry_delay, make_timeout=args.make_timeout,
                               release_after=args.release_after)
    populate.check()  # a bad value is a usage error before any table is touched
    options = WorkOptions(populate, restrictions=[_and(args.restrict)] if args.restrict else [], log_path=args.log,
                          processes=args.processes)
    if isinstance(loaded, Pipeline):
        serve = loaded.restrict(args.tables, args.downstream_of)
        if args.processes > 1:
            if args.max_calls is not None or args.limit is not None:
                raise UsageError("--max-calls and --limit count one worker's makes: with a pipeline TARGET they "
                                 "take no --processes (run one process, or give a table TARGET)")
            from ..pipeprocesses import run as run_processes

            return run_processes(loaded, options, args.processes, prefer=args.prefer, serve=serve)
        return work_pipeline(loaded, options, prefer=args.prefer, serve=serve)
    if args.tables or args.downstream_of:
        raise UsageError("--tables and --downstream-of need a pipeline TARGET (a module, without :Class)")
    return work(loaded, options)


def _load_waiting_for_the_database(target):
    """The target's table class. A pipeline connects as it is imported; a task started while the database
    restarts waits for it as a lost connection does (DJHPC_RECONNECT_SECONDS), then exits 69, not 2."""
    from .. import backoff
    from ..db.connection import reconnect_seconds, say_unreachable, wait_for_server
    from ..errors import UnreachableError

    limit = reconnect_seconds()
    wait_for_server(limit)  # djhpc's own connections retry inside; DataJoint's import is tried again here
    for delay in backoff.delays(first=0.5, cap=5, seconds=limit):
        try:
            return target_or_pipeline(target)
        except UnreachableError as e:
            if delay is None:
                raise
            say_unreachable(e, limit)
            backoff.sleep(delay)
    raise AssertionError("backoff.delays ends with None")


def _check_writable(path: str):
    import os

    from ..errors import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write the key log {path} (No such file or directory): choose another --log"
                         if not os.path.isdir(folder) else
                         f"cannot write the key log {path} (Permission denied): choose another --log")


def _and(conditions):
    from ..query import AndList

    return AndList(conditions)
