"""``djhpc reap [TARGET | --schema NAME]``: give back the keys of dead workers now, saying why each is dead."""

from __future__ import annotations

import argparse
import logging
import shutil

from .. import durations
from ..jobrows import key_text
from ..liveness import LEASE_SECONDS, Reaper
from ..progress import class_name
from ..reservation import Reservations
from . import display
from .scope import resolve_scope

HELP = f"""Reclaim reservations whose worker is dead, as every worker does every few seconds, but now.

Evidence, most certain first: on this host the process is gone (or the host rebooted); MySQL/MariaDB:
the worker's session lock is free; the scheduler says its array task ended; no heartbeat for --lease
(default {durations.text(LEASE_SECONDS)}). A reclaimed key waits for the next worker (pending); one that
killed its worker 3 times becomes an error (djhpc jobs errors).

examples:
  djhpc reap pipeline:Analysis --dry-run
  djhpc reap --schema my_pipeline --lease 10m
"""


class _TableReaper(Reaper):
    """A reaper that looks at one table's reservations only."""

    def __init__(self, reservations, table_name, **kwargs):
        super().__init__(reservations, **kwargs)
        self.table_name = table_name

    def reserved_rows(self):
        return [r for r in super().reserved_rows() if r.table_name == self.table_name]


class _DropReclaimed(logging.Filter):
    def filter(self, record):
        return not str(record.msg).startswith("reclaimed ")


def register(sub):
    p = sub.add_parser("reap", help="reclaim the keys of dead workers now", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    display.add_schema_options(p)
    p.add_argument("--lease", type=durations.argument(), default=LEASE_SECONDS, metavar="DURATION",
                   help=f"a reservation without heartbeat for this long is dead: 600 (seconds), 10m, 1h (default "
                        f"{durations.text(LEASE_SECONDS)})")
    p.add_argument("--dry-run", action="store_true", help="say what would be reclaimed; change nothing")
    p.add_argument("--scheduler", default="auto", metavar="NAME",
                   help="ask this scheduler which tasks ended: slurm, pbs, torque, or none "
                        "(default: slurm where squeue is on PATH)")
    p.add_argument("--json", action="store_true", help="machine-readable list of what was reclaimed")
    display.add_quiet(p)
    p.set_defaults(func=run)


def _scheduler(name: str):
    from ..schedulers import get_scheduler

    name = (name or "auto").lower()
    if name == "none":
        return None
    if name == "auto":
        return get_scheduler("slurm") if shutil.which("squeue") else None
    return get_scheduler(name)


def run(args) -> int:
    scope = resolve_scope(args)
    reservations = Reservations(scope.connection, scope.schema, lease_seconds=args.lease,
                                jobs_table=scope.jobs_table)
    kwargs = {"lease_seconds": args.lease, "scheduler": _scheduler(args.scheduler)}
    reaper = (_TableReaper(reservations, scope.table_name, **kwargs) if scope.target is not None
              else Reaper(reservations, **kwargs))
    reserved = len(reaper.reserved_rows())
    quiet_log = _DropReclaimed()
    logging.getLogger("djhpc.liveness").addFilter(quiet_log)  # this command prints each reclaimed key itself
    try:
        reclaimed = reaper.reap(dry_run=args.dry_run)
    finally:
        logging.getLogger("djhpc.liveness").removeFilter(quiet_log)
    if args.json:
        display.print_json([{"table_name": r.table_name, "key": r.key, "host": r.host, "pid": r.pid,
                             "reason": r.reason, "status": r.status} for r in reclaimed])
        return 0
    quiet = getattr(args, "quiet", False)
    out = display.console()
    verb = "would reclaim" if args.dry_run else "reclaimed"
    done = "would be reclaimed" if args.dry_run else "reclaimed"
    for r in reclaimed:
        then = "" if args.dry_run else (" -> error (died too often)" if r.status == "error" else " -> pending")
        out.print(f"{verb} {class_name(r.table_name)} {display.escape(key_text(r.key))} from "
                  f"{display.escape(r.host)} pid {r.pid}: {r.reason}{then}")
    if not quiet:
        alive = reserved - len(reclaimed)
        if reclaimed:
            out.print(f"{len(reclaimed):,} of {reserved:,} reservations {done}; {alive:,} look alive")
        else:
            out.print(f"no dead reservations in {scope.label}: {reserved:,} reserved, all alive")
    return 0
