"""Terminal conventions shared by the reporting commands: rich tables, numbers, local times, ages, asking first.

Colour only on a terminal and never with NO_COLOR set; numbers with thousands separators; times stored
in UTC shown in the user's local timezone; destructive commands ask (y/N) unless --yes.

Tables are laid out for the width they get (COLUMNS, else the terminal's; 400 when piped): cells wrap
between words and are never cut, and when even wrapped columns do not fit, each row is printed as a block
of ``Header value`` pairs. No column is ever dropped.
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

PIPED_WIDTH = 400  # lines for grep and less when no width is known


def width_from_environment() -> int | None:
    """COLUMNS when it holds a usable width (rich reads it too, but only for a terminal)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return columns if columns >= 20 else None


def console(stderr: bool = False):
    """A rich Console: colour on a terminal only (rich also honours NO_COLOR); as wide as COLUMNS says, else the
    terminal, else wide lines when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    no_color = bool(os.environ.get("NO_COLOR"))
    width = width_from_environment() or (None if tty else PIPED_WIDTH)
    return Console(file=stream, no_color=no_color or not tty, highlight=False, soft_wrap=width == PIPED_WIDTH,
                   width=width, color_system="auto" if tty and not no_color else None)


def table(*columns: str, title: str | None = None, right: tuple = ()):
    """A table with these column headers (names in ``right`` are right-aligned numbers) that fits its width."""
    return FittedTable(columns, title=title, right=right)


class FittedTable:
    """Rows shown as a rich Table when its columns fit the width wrapped between words, else one block per row.

    ``add_row`` takes rich markup, as rich's Table does; a cell is never cut short."""

    def __init__(self, columns, *, title: str | None = None, right: tuple = ()):
        self.columns = list(columns)
        self.title = title
        self.right = set(right)
        self.rows: list[tuple] = []

    def add_row(self, *cells) -> None:
        self.rows.append(tuple("" if c is None else c for c in cells))

    def rich_table(self):
        from rich import box
        from rich.table import Table

        t = Table(title=self.title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False)
        for c in self.columns:
            numeric = c in self.right
            t.add_column(c, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
        for row in self.rows:
            t.add_row(*row)
        return t

    def __rich_console__(self, console, options):
        if self.minimum_width() <= options.max_width:
            yield self.rich_table()
            return
        yield from self.blocks(console, options.max_width)

    def minimum_width(self) -> int:
        """The narrowest the table gets without cutting a cell: numbers whole, text wrapped between words, and
        three characters between columns (SIMPLE_HEAD's padding and divider)."""
        from rich.text import Text

        widths = []
        for i, header in enumerate(self.columns):
            cells = [header] + [row[i] if i < len(row) else "" for row in self.rows]
            texts = [Text.from_markup(c).plain if isinstance(c, str) else str(c) for c in cells]
            if header in self.right:
                widths.append(max(len(t) for t in texts))
            else:
                widths.append(max((len(word) for t in texts for word in t.split()), default=0))
        return sum(widths) + 3 * (len(widths) - 1)

    def blocks(self, console, width: int):
        """Each row as lines of ``Header value`` pairs packed to ``width``, the first pair leading."""
        from rich.text import Text

        if self.title:
            yield Text(self.title, style="bold")
        for n, row in enumerate(self.rows):
            if n:
                yield Text("")
            pairs = []
            for header, cell in zip(self.columns, row, strict=False):
                value = Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))
                if not value.plain.strip():
                    continue
                pair = Text(f"{header} ", style="dim") if header else Text()
                pairs.append(pair + value)
            yield from _packed(console, pairs, width)

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self.rich_table()).clamp(max_width=options.max_width)


def _packed(console, pairs, width: int):
    """Pairs joined by two spaces into lines of at most ``width``, lines after the first indented; a pair longer
    than a line gets lines of its own, wrapped between words (a word longer than a line is folded, not cut)."""
    from rich.text import Text

    line, indent = Text(), ""
    for pair in pairs:
        if line.plain and len(line.plain) + 2 + len(pair.plain) > width:
            yield line
            line, indent = Text(), "  "
        if line.plain:
            line = line + Text("  ") + pair
        elif len(indent) + len(pair.plain) <= width:
            line = Text(indent) + pair
        else:
            for part in pair.wrap(console, max(width - len(indent), 10), overflow="fold"):
                yield Text(indent) + part
            indent = "  "
    if line.plain:
        yield line


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
