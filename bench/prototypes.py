"""Proposed djhpc changes, applied by monkeypatching inside a benchmark worker to measure them first.

``python -m bench --djhpc-patch NAME`` applies NAME in every djhpc worker. Nothing here changes djhpc
itself: a prototype that pays off is described to the owner of the patched module, who writes it properly.
"""

from __future__ import annotations

import random

RESEEK_MAX = 16  # re-seeks per worker: bounded, so the end game cannot spin on the database


def reseek():
    """After a batch that lost at least half its keys, jump to a new random point of the pending keys.

    Two walks that meet go on in lockstep (each window the other is about to reserve); a jump breaks it.
    Costs a COUNT and an OFFSET fetch per jump; not done once fewer keys are pending than two batches.
    """
    from djhpc import populate as p

    def _reserve_batch(self, walker, names):
        n = min(self.batch, self._remaining_budget())
        if not self.restrictions and p.time.monotonic() >= self.next_pending_check:
            self.next_pending_check = p.time.monotonic() + p.PENDING_CHECK_SECONDS
            self.held.extend(self.jobs.claim_pending(self.table.table_name, 1))
            if self.held:
                return
        d = self.conn.dialect
        while not self.held:
            keys = walker.next(n)
            if not keys:
                if not self.restrictions:
                    if not self.final_reap_done:
                        self.final_reap_done = True
                        self._reap_if_due(force=True)
                    self.held.extend(self.jobs.claim_pending(self.table.table_name, 1))
                return
            attrs = [self.table.heading[a] for a in names]
            encoded = [tuple(p.values.encode(a, k[a.name], d.name) for a in attrs) for k in keys]
            claims = self.jobs.reserve(self.table.table_name, keys, done_table=self.table.full_table_name,
                                       key_columns=names, encoded=encoded)
            lost = len(keys) - len(claims)
            self.result.skipped_count += lost
            self.result.lost_count += lost
            self.held.extend(claims)
            jumps = getattr(self, "_reseeks", 0)
            if 2 * lost >= len(keys) and jumps < RESEEK_MAX:
                self._reseeks = jumps + 1
                pending = len(walker.q)
                if pending > 2 * p.MAX_BATCH:
                    walker.__init__(walker.q, walker.names, self.order, random.random())

    p._Runner._reserve_batch = _reserve_batch


def batch8():
    """Cap the reservation batch at 8 keys instead of 32: fewer keys held, so fewer lost to a collision."""
    from djhpc import populate as p

    p.MAX_BATCH = 8


def hold_quarter_second():
    """Let the batch grow for makes of 0.05-0.5 s too, holding about 0.25 s of work.

    A 50 ms make keeps batch 1 today: every key pays its own reservation statement and durable commit
    (and its losing attempts), each a round trip that, after the make's idle wait, costs a wake-up.
    """
    from djhpc import populate as p

    def _adapt_batch(self, seconds: float):
        if seconds < 0.05:
            self.batch = min(self.batch * 2, p.MAX_BATCH)
        elif seconds > 0.5:
            self.batch = 1
        else:
            self.batch = max(1, min(p.MAX_BATCH, int(0.25 / seconds)))

    p._Runner._adapt_batch = _adapt_batch


def progress_counts():
    """progress(): count the table instead of anti-joining it with the key source, in one statement.

    Every row of an auto-populated table references each primary-key parent, so with the default key
    source, the same primary key and no restriction, done = COUNT(*) of the table and remaining = total -
    done. One statement returns total, done and the jobs table's counts. Any other case keeps the original.
    """
    from djhpc import populate as p
    from djhpc.reservation import JOBS_TABLE, Reservations

    original = p.AutoPopulate.progress

    def progress(self, *restrictions, display=False, detail=False):
        cls = type(self)
        overridden = any("key_source" in vars(k) for k in cls.__mro__ if k is not p.AutoPopulate)
        ks = self._key_source()
        if restrictions or display or overridden or sorted(ks.primary_key) != sorted(self.primary_key):
            return original(self, *restrictions, display=display, detail=detail)
        c = self.connection
        where, params = ks._where_sql()
        parts = [f"SELECT COUNT(*) FROM {ks._from}{where}", f"SELECT COUNT(*) FROM {self.full_table_name}"]
        statuses = ("reserved", "error", "ignore", "pending")
        if detail:
            Reservations(c, cls.database).ensure_table()
            jobs = c.dialect.table(cls.database, JOBS_TABLE)
            ph = c.dialect.placeholder
            parts += [f"SELECT COUNT(*) FROM {jobs} WHERE table_name = {ph} AND status = {ph}" for _ in statuses]
            params = (*ks._from_params, *params, *[v for s in statuses for v in (self.table_name, s)])
        else:
            params = (*ks._from_params, *params)
        row = c.query("SELECT " + ", ".join(f"({sql})" for sql in parts), params, context="progress").fetchone()
        total, done = int(row[0]), int(row[1])
        if not detail:
            return total - done, total
        out = {"total": total, "done": done, "remaining": total - done}
        out.update({s: int(n) for s, n in zip(statuses, row[2:], strict=True)})
        return out

    p.AutoPopulate.progress = progress


PATCHES = {"reseek": reseek, "batch8": batch8, "hold-quarter-second": hold_quarter_second,
           "progress-counts": progress_counts}


def apply(names):
    for name in names or ():
        PATCHES[name]()
