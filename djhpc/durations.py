"""Lengths of time as users write them: one parser for every duration flag and for djhpc.yaml's ``time``.

Accepted: a number with a unit (``90s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1.5h``), units added up (``1h30m``,
``1d12h``), SLURM's clock forms (``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``), and a bare
number, read in the unit its flag names: minutes for a time limit (``--time 90`` is 90 minutes, as sbatch
reads it), seconds for every other flag (``--lease 600``, ``--older-than 3600``).
"""

from __future__ import annotations

import argparse
import math
import re

from .errors import UsageError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
UNIT_NAMES = {"s": "seconds", "m": "minutes"}
EXAMPLES = "90s, 15m, 2h, 1d, 1h30m, 1:30:00 or 1-12:00:00"

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_TERM = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_CLOCK = re.compile(r"(?:(\d+)-)?(\d+(?::\d+){0,2})")


def parse_duration(text: str | int | float, *, bare: str = "s") -> float | None:
    """Seconds written by ``text``, or None when it is not a duration; a bare number is in unit ``bare``."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text) * UNIT_SECONDS[bare] if text >= 0 else None
    t = str(text).strip().lower()
    if _NUMBER.fullmatch(t):
        return float(t) * UNIT_SECONDS[bare]
    return _clock(t) if _CLOCK.fullmatch(t) else _units(t)


def _units(text: str) -> float | None:
    """``1h30m``, ``1d 12h``, ``1.5h``: terms added up, each a number and a unit."""
    pos, total = 0, 0.0
    for m in _UNIT_TERM.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total if text and pos == len(text) else None


def _clock(text: str) -> float | None:
    """SLURM's forms: MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (the bare MM is handled by the caller)."""
    m = _CLOCK.fullmatch(text)
    days = int(m.group(1)) if m.group(1) is not None else None
    nums = [int(p) for p in m.group(2).split(":")]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, secs = nums + [0] * (3 - len(nums))
        if hours >= 24 or minutes >= 60:
            return None
    elif len(nums) == 2:  # MM:SS (minutes may pass 59: 90:00)
        hours, (minutes, secs) = 0, nums
    else:  # HH:MM:SS (hours may pass 23: 48:00:00)
        hours, minutes, secs = nums
        if minutes >= 60:
            return None
    if secs >= 60:
        return None
    return float((days or 0) * 86400 + hours * 3600 + minutes * 60 + secs)


def examples(bare: str = "s") -> str:
    """The forms to show in a message or --help, starting with what a bare number means here."""
    return f"{90 if bare == 'm' else 600} ({UNIT_NAMES[bare]}), {EXAMPLES}"


def parse_seconds(value: str | int | float, *, bare: str = "s", what: str = "duration", allow_zero: bool = False,
                  whole: bool = False) -> float:
    """Seconds of ``value``; a UsageError naming ``what``, the value and examples when it is not one.

    ``whole`` rounds up to whole seconds (a time limit, a signal's lead): 1.5m is 90 s, 0.1s is 1 s."""
    seconds = parse_duration(value, bare=bare)
    if seconds is None or not math.isfinite(seconds):
        raise UsageError(f"{what} {str(value).strip()!r} is not a duration: use e.g. {examples(bare)}")
    if whole:
        seconds = float(math.ceil(seconds))
    if seconds == 0 and not allow_zero:
        raise UsageError(f"{what} {str(value).strip()!r} is zero: give at least one second, e.g. {examples(bare)}")
    return seconds


def argument(bare: str = "s", *, allow_zero: bool = False, whole: bool = False):
    """An argparse ``type``: the flag's value as seconds (an int when ``whole``); a bad value is argparse's
    one-line usage error, which names the flag (exit 2)."""

    def duration(text: str):
        try:
            seconds = parse_seconds(text, bare=bare, allow_zero=allow_zero, whole=whole, what="")
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e).lstrip()) from None
        return int(seconds) if whole else seconds

    duration.__name__ = "duration"
    return duration


def text(seconds: float) -> str:
    """A duration as a user would write it back: 90s, 15m, 2h, 1h30m, 1d."""
    rest = int(round(seconds))
    if rest != seconds and seconds < 60:
        return f"{seconds:g}s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, rest = divmod(rest, UNIT_SECONDS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"
