"""``djhpc cancel [TARGET | --schema NAME]``: cancel a run's recorded arrays with the scheduler's own command."""

from __future__ import annotations

import argparse
import logging

from ..cancel import cancel, plan_cancel
from ..errors import UsageError
from . import display
from .scope import resolve_scope

log = logging.getLogger("djhpc.cli")

HELP = """Cancel the arrays djhpc submit recorded for TARGET (or a whole --schema) that still have tasks pending
or running, with the scheduler's own command: scancel (SLURM), qdel (PBS, Torque, Grid Engine), bkill (LSF),
condor_rm (HTCondor), kill -TERM (local: the script passes it on to its workers; parallel: GNU parallel
passes it on to its running workers and starts no more).

Each running worker gets that command's stop signal, rolls back the make in progress and gives its keys
back; nothing is lost, and djhpc submit goes on where the run stopped. Arrays the scheduler reports ended
are left alone. Prints each command run (--dry-run: each command that would run) on stdout.

exit codes: 0 cancelled (or nothing left running), 2 nothing recorded, a usage error, or the scheduler's
command missing or refusing (its message is shown)

examples:
  djhpc cancel                           the target of djhpc.yaml
  djhpc cancel pipeline.py:Analysis --dry-run
  djhpc cancel --schema my_pipeline --job 4242
"""


def register(sub):
    p = sub.add_parser("cancel", help="cancel a run's arrays; their workers give their keys back",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    display.add_schema_options(p)
    p.add_argument("--job", action="append", default=[], metavar="JOBID",
                   help="only this recorded job (repeatable; default: every live one)")
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="look at the N newest recorded submissions (default 20)")
    p.add_argument("--dry-run", action="store_true", help="print the commands; cancel nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    display.add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {args.limit})")
    scope = resolve_scope(args)
    plan = plan_cancel(scope.connection, scope.schema, table_name=scope.table_name, label=scope.label,
                       job_ids=args.job, limit=args.limit)
    if not args.dry_run:
        cancel(plan)
    if args.json:
        display.print_json({
            "dry_run": args.dry_run,
            "cancelled": [{"scheduler": o.scheduler, "job_ids": o.job_ids, "command": o.command}
                          for o in plan.orders],
            "ended": [{"scheduler": s.scheduler, "job_id": s.job_id} for s in plan.ended],
        })
        return 0
    for order in plan.orders:
        print(order.command)
    if getattr(args, "quiet", False):
        return 0
    ended = ", ".join(s.job_id for s in plan.ended)
    if not plan.orders:
        log.info("nothing to cancel: the recorded arrays of %s have ended (%s)", scope.label, ended)
        return 0
    jobs = ", ".join(plan.job_ids)
    if args.dry_run:
        log.info("dry run: would cancel job %s of %s", jobs, scope.label)
    else:
        log.info("cancelled job %s of %s: each worker gives its keys back as it stops (djhpc status shows them "
                 "go); djhpc submit goes on where they stopped", jobs, scope.label)
    if ended:
        log.info("ended already, left alone: job %s", ended)
    return 0
