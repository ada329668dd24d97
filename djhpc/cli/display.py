"""Terminal conventions shared by the reporting commands: rich tables, numbers, local times, ages, asking first.

Colour only on a terminal and never with NO_COLOR set; numbers with thousands separators; times stored
in UTC shown in the user's local timezone; destructive commands ask (y/N) unless --yes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from .. import durations
from ..errors import UsageError
from ..progress import seconds_text  # noqa: F401 - commands format durations through display


def console(stderr: bool = False):
    """A rich Console: colour on a terminal only (rich also honours NO_COLOR), wide lines when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    no_color = bool(os.environ.get("NO_COLOR"))
    return Console(file=stream, no_color=no_color or not tty, highlight=False, soft_wrap=not tty,
                   width=None if tty else 400, color_system="auto" if tty and not no_color else None)


def table(*columns: str, title: str | None = None, right: tuple = ()):
    """A rich Table with these column headers; names in ``right`` are right-aligned (numbers)."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", no_wrap=c in right)
    return t


def number(n) -> str:
    if n is None:
        return "—"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}"
    return f"{int(n):,}"


def megabytes_text(mb: float | None) -> str:
    if mb is None:
        return "—"
    return f"{mb / 1024:,.1f} GB" if mb >= 1024 else f"{mb:,.0f} MB"


def local_time(utc: dt.datetime | str | None, *, seconds: bool = True) -> str:
    """A UTC time from the database, in the user's local timezone."""
    if utc is None or utc == "":
        return "—"
    if not isinstance(utc, dt.datetime):
        utc = dt.datetime.fromisoformat(str(utc))
    if utc.tzinfo is None:
        utc = utc.replace(tzinfo=dt.timezone.utc)
    return utc.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso_local(utc: dt.datetime | None) -> str | None:
    """For --json: ISO 8601 with the local offset."""
    if utc is None:
        return None
    if utc.tzinfo is None:
        utc = utc.replace(tzinfo=dt.timezone.utc)
    return utc.astimezone().isoformat()


def parse_age(text: str) -> float:
    """An age ('30d', '12h', '1h30m', '3600' seconds) as seconds: djhpc.durations, the parser of every duration flag."""
    return durations.parse_seconds(text, what="age")


def age_argument(text: str) -> float:
    """argparse type for --older-than and --window: bad input is a one-line usage error (exit 2)."""
    return durations.argument()(text)


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def confirm(action: str, *, yes: bool) -> bool:
    """Ask before ``action`` ("delete 12 error rows of X"): y/N on a terminal; refuse without one unless --yes."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"would {action}, and stdin is not a terminal to ask: pass --yes to go ahead")
    sys.stderr.write(f"{action[:1].upper()}{action[1:]}? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def add_quiet(parser) -> None:
    """-q after the command too; SUPPRESS keeps ``djhpc -q COMMAND`` working (no default overrides it)."""
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="minimal output: one plain line per item")


def add_schema_options(parser, target_help: str = "") -> None:
    parser.add_argument("target", nargs="?", metavar="TARGET",
                        help=target_help or "table as module:Class or path/to/pipeline.py:Class "
                                            "(default: target in djhpc.yaml)")
    parser.add_argument("--schema", metavar="NAME", help="a whole schema, read from the database alone")


def short(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text) -> str:
    """Text shown literally by rich (a host or message with [brackets] is not markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text or ""))
