"""The walk over pending keys: a window at a time, from a chosen starting point, with keyset pagination.

Each worker walks the pending keys from its own starting point (the array task's share of the key space, else
a random one), so that start-up costs a few statements whatever the number of pending keys, and concurrent
workers rarely meet on the same key. Phase 1 runs from the start key to the end, phase 2 from the beginning up
to the start key.

Where the first key attribute is a number or a date, the starting point is that share of its range (the first
and last pending keys, two index reads), so that W workers starting together read O(1) rows each; otherwise it
is the share of the pending keys, counted (each worker reads every pending key once: O(W) rows per key).
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
from collections import deque
from itertools import islice

from .query import Query

WINDOW = 128  # keys read ahead at most: four batches, so that the keys read are still free when reserved
MIN_WINDOW = 8


class KeyWalker:
    """Pending keys of a candidates query, a window at a time, starting at a chosen fraction of the keys."""

    def __init__(self, candidates: Query, names: list[str], order: str, fraction: float | None,
                 min_window: int = MIN_WINDOW):
        self.q = candidates
        self.min_window = min_window
        self.names = names
        self.desc = order == "reverse"
        self.shuffle = order == "random"
        self.buffer: deque = deque()
        self.cursor = None
        self.done = False
        self.pending_at_start = None
        self.start = None
        self.start_names = names  # the attributes the start is compared on: the first alone when interpolated
        self.phase = 1
        self._bounds = None  # (first, last) pending value of the first attribute, where it can be interpolated
        if fraction:
            self._bounds = self._interpolable_bounds()
            if self._bounds is None:
                self.pending_at_start = len(candidates)
            self._seek(fraction, self.pending_at_start)

    @property
    def interpolates(self) -> bool:
        """Whether a start or a jump is a share of the first attribute's range (no count needed)."""
        return self._bounds is not None

    def _interpolable_bounds(self) -> tuple | None:
        """The first and last pending values of the first attribute (in walk order), if they can be interpolated."""
        first = self._fetch(self.q, limit=1)
        if not first:
            return None
        last = self.q.fetch(*self.names, as_dict=True, order_by=[f"{n}{'' if self.desc else ' DESC'}"
                                                                 for n in self.names], limit=1)
        lo, hi = first[0][self.names[0]], last[0][self.names[0]] if last else None
        return (lo, hi) if _between(lo, hi, 0.5) is not None else None

    def _seek(self, fraction: float, pending: int | None):
        """Start at ``fraction`` of the first attribute's range, else of the ``pending`` keys (counted if None)."""
        if self._bounds is not None:
            self.start, self.start_names = {self.names[0]: _between(*self._bounds, fraction)}, self.names[:1]
            return
        self.start_names = self.names
        self.start = self._key_at(int(fraction * (len(self.q) if pending is None else pending)))

    def _key_at(self, offset: int) -> dict | None:
        if not offset:
            return None
        rows = self._fetch(self.q, limit=1, offset=offset)
        return rows[0] if rows else None

    def reseek(self, fraction: float, pending: int | None = None):
        """Continue the walk from another point (``fraction`` of the first attribute's range, or of the
        ``pending`` keys, counted if not given); the walk restarts there."""
        self._seek(fraction, pending)
        self.buffer.clear()
        self.cursor = None
        self.phase = 1
        self.done = False

    def _order(self) -> list[str]:
        return [f"{n} DESC" if self.desc else n for n in self.names]

    def _fetch(self, q: Query, limit, offset=None):
        return q.fetch(*self.names, as_dict=True, order_by=self._order(), limit=limit, offset=offset)

    def next(self, n: int) -> list[dict]:
        """Up to ``n`` keys; an empty list when the walk has covered the whole key space."""
        out = self.peek(n, n)
        self.consume(len(out))
        return out

    def peek(self, n: int, at_least: int = 1) -> list[dict]:
        """The next ``n`` keys without taking them, reading windows until ``at_least`` are in hand (or the walk
        is over); an empty list when the walk has covered the whole key space."""
        while len(self.buffer) < at_least and not self.done:
            size = self.window_size(n)
            self._take_window(self._fetch(self._next_query(), limit=size), size)
        return list(islice(self.buffer, n))

    def consume(self, count: int):
        """Drop the first ``count`` keys of the buffer: they have been handed out, reserved or seen held."""
        for _ in range(min(count, len(self.buffer))):
            self.buffer.popleft()

    def stop(self):
        """End the walk here: nothing it could offer is free (see populate's end game)."""
        self.buffer.clear()
        self.done = True

    def window_size(self, n: int) -> int:
        return min(WINDOW, max(self.min_window, 4 * n))

    def next_window(self, size: int):
        """(sql, params) of the read that continues the walk, to send along with other statements; None when
        nothing is left to read. Hand its rows to ``accept``."""
        if self.done:
            return None
        return self._next_query().select_sql(self.names, order_by=self._order(), limit=size)

    def accept(self, raw_rows, size: int):
        """The rows of ``next_window(size)``, read elsewhere."""
        self._take_window(self._next_query().decode_rows(raw_rows, self.names), size)

    def _next_query(self) -> Query:
        if self.phase == 1:
            if self.cursor is None:
                return self.q.key_range(self.start_names, after=self.start, after_inclusive=self.start is not None,
                                        descending=self.desc)
            return self.q.key_range(self.names, after=self.cursor, descending=self.desc)
        return self.q.key_range(self.names, after=self.cursor, descending=self.desc) \
            .key_range(self.start_names, before=self.start, descending=self.desc)

    def _take_window(self, rows, size: int):
        if rows:
            self.cursor = rows[-1]
            if self.shuffle:
                random.shuffle(rows)
            self.buffer.extend(rows)
        if len(rows) < size:
            if self.phase == 1 and self.start is not None:
                self.phase, self.cursor = 2, None
            else:
                self.done = True


def _between(lo, hi, fraction: float):
    """The value ``fraction`` of the way from ``lo`` to ``hi`` (numbers and dates); None for other types."""
    if hi is None or isinstance(lo, bool) or type(lo) is not type(hi):
        return None
    if isinstance(lo, int):
        return lo + int(fraction * (hi - lo))
    if isinstance(lo, float):
        return lo + fraction * (hi - lo)
    if isinstance(lo, decimal.Decimal):
        return lo + (hi - lo) * decimal.Decimal(repr(fraction))
    if isinstance(lo, dt.datetime):
        return lo + (hi - lo) * fraction
    if isinstance(lo, dt.date):
        return lo + dt.timedelta(days=int((hi - lo).days * fraction))
    return None
