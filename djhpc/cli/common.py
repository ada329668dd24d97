"""Helpers shared by the command modules: the argument parser, targets from the command line or djhpc.yaml."""

from __future__ import annotations

import argparse
import difflib

from ..config import load_settings
from ..errors import UsageError
from ..targets import load_target


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors, exit code 2, and the nearest choice for a mistyped one."""

    def error(self, message):
        self.exit(2, f"djhpc: error: {message} (see {self.prog} --help)\n")

    def _check_value(self, action, value):
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        near = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise argparse.ArgumentError(action, f"invalid choice {value!r}: {hint}choose from {', '.join(choices)}")


def resolve_target_name(target: str | None) -> str:
    """The target given, else ``target:`` of djhpc.yaml."""
    if target:
        return target
    settings = load_settings()
    default = settings.get("target")
    if not default:
        raise UsageError("no target given and djhpc.yaml sets none: name one as module:Class or pipeline.py:Class")
    return str(default)


def table_class(target: str | None):
    settings = load_settings()
    return load_target(resolve_target_name(target), base=settings.project_dir)


def target_or_pipeline(target: str | None):
    """The table class TARGET names, or the Pipeline when it names a module (or module:schema); djhpc.yaml's
    ``tables:`` gives the pipeline's tables their resources."""
    from ..pipeline import load

    settings = load_settings()
    return load(resolve_target_name(target), base=settings.project_dir, table_resources=settings.get("tables"))


def add_target_argument(parser, required=False):
    parser.add_argument("target", nargs=None if required else "?", metavar="TARGET",
                        help="table as module:Class or path/to/pipeline.py:Class, or a whole pipeline as module or "
                        "pipeline.py (default: target in djhpc.yaml)")
