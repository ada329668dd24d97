"""The ``djhpc`` command: a thin layer over the library. Only this package prints or exits.

Each command group lives in its own module with ``register(subparsers)``; every command function
returns an exit code. A DjhpcError prints one line ``djhpc: error: ...`` (no traceback) and exits
with the error's code (2 for usage mistakes).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import __version__
from ..config import parse_url
from ..errors import DjhpcError, UsageError
from .common import ArgumentParser

COMMAND_MODULES = ["demo", "work", "submit", "progress", "jobs", "reap", "status", "cancel", "report", "history"]

EPILOG = """examples:
  djhpc work pipeline:Analysis                 run one populate loop with reservation
  djhpc submit --array 11                      submit a SLURM array (target from djhpc.yaml)
  djhpc render pipeline.py:Analysis --array 4 --scheduler pbs
  djhpc parallel --jobs 11 pipeline:Analysis   print the GNU parallel command line
  djhpc progress pipeline:Analysis --watch     follow a run from the login node

Database: --database-url, else DJHPC_DATABASE_URL, dj.config's database.* set in code, DJ_HOST/DJ_USER/DJ_PASS,
dj_local_conf.json, djhpc.yaml, the user's djhpc config, ~/.datajoint_config.json, then sqlite:///djhpc.db.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="djhpc", description="DataJoint-style populate on HPC clusters.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"djhpc {__version__}")
    parser.add_argument("--database-url", metavar="URL",
                        help="database URL (env DJHPC_DATABASE_URL); prefer the environment for passwords")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debugging details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"djhpc.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"djhpc.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


class _Source(logging.Formatter):
    """``djhpc: message`` for djhpc's own lines; another library's (a DataJoint pipeline's) under its own name."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.name.split(".")[0]
        return f"{'djhpc' if name in ('djhpc', 'root') else name}: {record.getMessage()}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Source())
    logging.basicConfig(level=level, handlers=[handler])
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.database_url:
            if parse_url(args.database_url).password:
                raise UsageError("a password on the command line shows in ps: set DJHPC_DATABASE_URL or put the URL "
                                 "in a 0600 file named by DJHPC_DATABASE_URL_FILE")
            os.environ["DJHPC_DATABASE_URL"] = args.database_url
        return int(args.func(args) or 0)
    except DjhpcError as e:
        print(f"djhpc: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
