"""``djhpc report TARGET -o report.html``: one self-contained HTML page about a table's (or a pipeline's) run."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..report import REPORT_ROWS, write_pipeline_report, write_report
from .scope import resolve_scope
from .work import add_pipeline_arguments

HELP = """Write one HTML page (inline CSS and SVG, no script, nothing fetched from the network) with the
table's progress over time, throughput, a timeline of makes per host and array task (stragglers in
orange, failed makes in red, idle workers as gaps), the distribution of make durations and the errors
grouped by type and message.
Open it in any browser, or attach it to a ticket.

TARGET without :Class is a whole pipeline (a module, or module:schema): a row per table, upstream first
(done, ready, running, failed, waiting for inputs, blocked by failures upstream, rate, ETA), then those
sections for each table; --tables and --downstream-of narrow it.

examples:
  djhpc report pipeline:Analysis -o analysis.html
  djhpc report pipeline.py -o pipeline.html
"""


def register(sub):
    p = sub.add_parser("report", help="write an HTML report of a table's run", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="TARGET",
                   help="table as module:Class or path/to/pipeline.py:Class, or a whole pipeline as module or "
                        "pipeline.py (default: target in djhpc.yaml)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the page")
    p.add_argument("--max-makes", type=int, default=REPORT_ROWS, metavar="N",
                   help=f"draw the newest N makes (default {REPORT_ROWS:,})")
    add_pipeline_arguments(p.add_argument_group("pipelines (TARGET is a module)"))
    p.set_defaults(func=run)


def run(args) -> int:
    if args.max_makes < 1:
        raise UsageError(f"--max-makes must be >= 1 (got {args.max_makes})")
    scope = resolve_scope(args, allow_schema=False, allow_pipeline=True)
    if scope.pipeline is not None:
        path = write_pipeline_report(scope.pipeline, scope.targets, args.output, whole=scope.whole,
                                     limit=args.max_makes)
    else:
        path = write_report(scope.target, args.output, limit=args.max_makes)
    if not getattr(args, "quiet", False):
        print(f"wrote {path}")
    return 0
