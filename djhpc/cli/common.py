"""Helpers shared by the command modules: the argument parser, targets from the command line or djhpc.yaml."""

from __future__ import annotations

import argparse

from ..config import load_settings
from ..errors import UsageError
from ..targets import load_target


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 2."""

    def error(self, message):
        self.exit(2, f"djhpc: error: {message} (see {self.prog} --help)\n")


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


def add_target_argument(parser, required=False):
    parser.add_argument("target", nargs=None if required else "?", metavar="TARGET",
                        help="table as module:Class or path/to/pipeline.py:Class (default: target in djhpc.yaml)")
