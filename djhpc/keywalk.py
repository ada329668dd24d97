"""The walk over pending keys: a window at a time, from a chosen starting point, with keyset pagination.

Each worker walks the pending keys from its own starting point (the array task's share of the key space, else
a random one), so that start-up costs a few statements whatever the number of pending keys, and concurrent
workers rarely meet on the same key. Phase 1 runs from the start key to the end, phase 2 from the beginning up
to the start key.
"""

from __future__ import annotations

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
        self.phase = 1
        if fraction:
            self.pending_at_start = len(candidates)
            self.start = self._key_at(int(fraction * self.pending_at_start))

    def _key_at(self, offset: int) -> dict | None:
        if not offset:
            return None
        rows = self._fetch(self.q, limit=1, offset=offset)
        return rows[0] if rows else None

    def reseek(self, fraction: float, pending: int | None = None):
        """Continue the walk from another point (``fraction`` of the ``pending`` keys, counted if not given); the
        walk restarts there."""
        self.start = self._key_at(int(fraction * (len(self.q) if pending is None else pending)))
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
            inclusive = self.cursor is None and self.start is not None
            return self.q.key_range(self.names, after=self.cursor or self.start, after_inclusive=inclusive,
                                    descending=self.desc)
        return self.q.key_range(self.names, after=self.cursor, before=self.start, descending=self.desc)

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
