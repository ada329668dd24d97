"""The ``djhpc`` command: a thin layer over the library. Only this package prints or exits.

Each command group lives in its own module with ``register(subparsers)``; every command function
returns an exit code. The global options (--database-url, -q, -v, --no-color) are accepted before or after
the command: each command's parser gets them too, defaulting to "not given" so one given earlier stays.
A DjhpcError prints one line ``djhpc: error: ...`` (no traceback) and exits with the error's code (2 for
usage mistakes).
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

COMMAND_MODULES = ["demo", "init", "work", "submit", "progress", "jobs", "reap", "status", "cancel", "report",
                   "history", "logs", "completion"]

EPILOG = """examples:
  djhpc work pipeline:Analysis                 run one populate loop with reservation
  djhpc submit --array 11                      submit a SLURM array (target from djhpc.yaml)
  djhpc render pipeline.py:Analysis --array 4 --scheduler pbs
  djhpc parallel --jobs 11 pipeline:Analysis   print the GNU parallel command line
  djhpc progress pipeline:Analysis --watch     follow a run from the login node
  djhpc init pipeline.py:Analysis              write a commented djhpc.yaml for this cluster

Durations (--time, --lease, --older-than, ...): 90s, 15m, 2h, 1d, 1h30m, 1:30:00, 1-12:00:00; a bare number
is minutes for --time (as in sbatch) and seconds for every other flag. Global options go before or after
the command. Shell completion: eval "$(djhpc completion bash)" (or zsh).

Database: --database-url, else DJHPC_DATABASE_URL, dj.config's database.* set in code, DJ_HOST/DJ_USER/DJ_PASS,
dj_local_conf.json, djhpc.yaml, the user's djhpc config, ~/.datajoint_config.json, then sqlite:///djhpc.db.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="djhpc", description="DataJoint-style populate on HPC clusters.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"djhpc {__version__}")
    _add_global_options(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"djhpc.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"djhpc.cli.{name}":
                continue
            raise
        module.register(sub)
    for command in _subparsers(parser):
        _add_global_options(command, default=argparse.SUPPRESS)
    return parser


def _add_global_options(parser, *, default) -> None:
    """--database-url, -q, -v and --no-color; an option the command already has (its own -q) is left as it is."""
    group = parser.add_argument_group("global options (before or after the command)") if default is not False \
        else parser
    options = [
        (("--database-url",), dict(metavar="URL", default=None if default is False else default,
                                   help="database URL (env DJHPC_DATABASE_URL); prefer the environment for passwords")),
        (("-q", "--quiet"), dict(action="store_true", default=default, help="print only warnings and errors")),
        (("-v", "--verbose"), dict(action="store_true", default=default, help="print debugging details")),
        (("--no-color",), dict(action="store_true", default=default, help="no colour in any output (as NO_COLOR=1)")),
    ]
    for flags, kwargs in options:
        if not any(f in parser._option_string_actions for f in flags):
            group.add_argument(*flags, **kwargs)


def _subparsers(parser):
    """Every command's parser below ``parser`` (jobs list, history prune, ...), each once."""
    seen, todo = set(), [parser]
    while todo:
        for action in todo.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action._name_parser_map.values():
                    if id(child) not in seen:
                        seen.add(id(child))
                        todo.append(child)
                        yield child


class _Source(logging.Formatter):
    """``djhpc: message`` for djhpc's own lines; another library's (a DataJoint pipeline's) under its own name."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.name.split(".")[0]
        return f"{'djhpc' if name in ('djhpc', 'root') else name}: {record.getMessage()}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.top_parser = parser  # for djhpc completion, which writes its script from the whole parser
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Source())
    logging.basicConfig(level=level, handlers=[handler])
    if not args.command:
        parser.print_help()
        return 2
    if args.no_color:
        os.environ["NO_COLOR"] = "1"  # rich and display.console read it; so do the pipeline's own tools
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
