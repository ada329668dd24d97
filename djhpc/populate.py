"""populate(): the worker loop that fills an Imported or Computed table, alone or with many others.

Each worker walks the pending keys from its own starting point (the array task's share of the key
space, else a random one), a window at a time with keyset pagination, so that start-up costs a few
statements whatever the number of pending keys and concurrent workers rarely meet on the same key.
Keys are reserved in batches that grow while makes are fast and shrink to one when they are slow.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from . import blob, values
from .errors import (
    DataError,
    LostConnectionError,
    ReservationLostError,
    TransientError,
    UsageError,
)
from .history import History, usage_snapshot
from .history import enabled as history_enabled
from .liveness import Reaper
from .query import Query
from .reservation import Claim, Reservations, Worker, key_hash

log = logging.getLogger(__name__)

ORDERS = ("original", "reverse", "random")
WINDOW = 128  # keys read ahead at most: four batches, so that the keys read are still free when reserved
MIN_WINDOW = 8
MAX_BATCH = 32
CONTENDED_BATCH = 8
HOLD_SECONDS = 0.5  # work a batch holds: fast makes share a reservation; slow ones hold one key at a time
COUNT_SECONDS = 0.25  # among other workers, count what is left at most this often (and at most 2 % of the time)
TRANSIENT_RETRIES = 5
PENDING_CHECK_SECONDS = 30.0
MAX_RESEEKS = 16  # jumps per worker after losing races: bounded, so the end game cannot spin
REAP_SECONDS = float(os.environ.get("DJHPC_REAP_SECONDS", 10))


class Interrupted(BaseException):
    """A stop signal (SIGTERM, SIGUSR1) arrived: roll back, give the keys back, stop."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class PopulateResult(dict):
    """What a populate run did; also readable as DataJoint's dict (``success_count``, ``error_list``)."""

    success_count: int = 0
    error_list: list = field(default_factory=list)
    skipped_count: int = 0
    make_calls: int = 0
    lost_count: int = 0  # keys lost in a race for them (reservers that could not take turns)
    seen_taken_count: int = 0  # keys skipped because another worker held or had made them when this one looked

    def __post_init__(self):
        self._sync()

    def _sync(self):
        self.update(success_count=self.success_count, error_list=self.error_list, error_count=len(self.error_list),
                    skipped_count=self.skipped_count, make_calls=self.make_calls)


@dataclass
class _InFlight:
    """A made key whose commit was sent without waiting for the reply."""

    key: dict
    claim: Claim
    started: float
    elapsed: float
    sent: int


def end_game_batch(left: int, held: int, holders: int) -> int:
    """The most keys to reserve at once when ``left`` keys are not made yet, ``held`` of them reserved by
    ``holders`` workers: half a fair share of the keys nobody holds (guided self-scheduling), so that near
    the end workers run out of work together instead of some waiting on another's batch."""
    free = max(left - held, 0)
    return max(1, min(MAX_BATCH, -(-free // (2 * max(holders, 1)))))


def task_position(env=None) -> float | None:
    """This array task's share of the key space, as a fraction in [0, 1), or None outside an array.

    Task t of n starts at (t - 1) / n, so n tasks started together begin n evenly spaced walks.
    """
    env = os.environ if env is None else env
    try:
        if env.get("DJHPC_TASK_ID") and env.get("DJHPC_TASK_COUNT"):
            task = int(env["DJHPC_TASK_ID"]) + int(env.get("DJHPC_TASK_OFFSET") or 0)
            count = int(env["DJHPC_TASK_COUNT"])
        elif env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
            task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN") or 1) + 1
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            return None
    except ValueError:
        return None
    return ((task - 1) % count) / count if count > 0 else None


class KeyWalker:
    """Pending keys of a candidates query, a window at a time, starting at a chosen fraction of the keys."""

    def __init__(self, candidates: Query, names: list[str], order: str, fraction: float | None,
                 min_window: int = MIN_WINDOW):
        self.q = candidates
        self.min_window = min_window
        self.names = names
        self.attrs = [candidates.heading[n] for n in names]
        self.desc = order == "reverse"
        self.shuffle = order == "random"
        self.buffer: deque = deque()
        self.cursor = None
        self.stop_at = None  # phase 2: walk up to the start key
        self.done = False
        self.pending_at_start = None
        if fraction is None:
            fraction = 0.0
        self.start = None
        if fraction > 0:
            self.pending_at_start = len(candidates)
            offset = int(fraction * self.pending_at_start)
            if offset:
                rows = self._fetch(limit=1, offset=offset)
                self.start = rows[0] if rows else None
        self.cursor = None
        self.phase = 1

    def reseek(self, fraction: float):
        """Continue the walk from another point (``fraction`` of the pending keys); the walk restarts there."""
        pending = len(self.q)
        offset = int(fraction * pending)
        rows = self._fetch(limit=1, offset=offset) if offset else []
        self.start = rows[0] if rows else None
        self.buffer.clear()
        self.cursor = None
        self.phase = 1
        self.done = False

    def _key_condition(self, key: dict, op: str, inclusive: bool):
        """(sql, params): PK tuple op key, expanded so every database uses the index."""
        d = self.q.connection.dialect
        cols = [self.q._columns[n] for n in self.names]
        enc = [values.encode(a, key[a.name], d.name) for a in self.attrs]
        ors, params = [], []
        for i in range(len(cols)):
            parts = [f"{cols[j]} = {d.placeholder}" for j in range(i)]
            params += enc[:i]
            last_op = op + ("=" if inclusive and i == len(cols) - 1 else "")
            parts.append(f"{cols[i]} {last_op} {d.placeholder}")
            params.append(enc[i])
            ors.append("(" + " AND ".join(parts) + ")")
        return "(" + " OR ".join(ors) + ")", params

    def _window_query(self, limit, offset=None, lower=None, lower_inclusive=False, upper=None):
        """(query, keyword arguments of fetch) for keys after ``lower`` (and before ``upper``) in walk order."""
        q = self.q._copy()
        gt, lt = (">", "<") if not self.desc else ("<", ">")
        if lower is not None:
            sql, params = self._key_condition(lower, gt, lower_inclusive)
            q._where.append((sql, tuple(params)))
        if upper is not None:
            sql, params = self._key_condition(upper, lt, False)
            q._where.append((sql, tuple(params)))
        order = [f"{n} DESC" if self.desc else n for n in self.names]
        return q, {"order_by": order, "limit": limit, "offset": offset}

    def _fetch(self, limit, offset=None, lower=None, lower_inclusive=False, upper=None):
        q, kwargs = self._window_query(limit, offset, lower, lower_inclusive, upper)
        return q.fetch(*self.names, as_dict=True, **kwargs)

    def next(self, n: int) -> list[dict]:
        """Up to ``n`` keys; an empty list when the walk has covered the whole key space."""
        out = self.peek(n, n)
        self.consume(len(out))
        return out

    def peek(self, n: int, at_least: int = 1) -> list[dict]:
        """The next ``n`` keys without taking them, reading windows until ``at_least`` are in hand (or the walk
        is over); an empty list when the walk has covered the whole key space."""
        while len(self.buffer) < at_least and not self.done:
            self._refill(self.window_size(n))
        return list(islice(self.buffer, n))

    def consume(self, count: int):
        """Drop the first ``count`` keys of the buffer: they have been handed out, reserved or seen held."""
        for _ in range(min(count, len(self.buffer))):
            self.buffer.popleft()

    def window_size(self, n: int) -> int:
        return min(WINDOW, max(self.min_window, 4 * n))

    def next_window(self, size: int):
        """(sql, params) of the read that continues the walk, to send along with other statements; None when
        nothing is left to read. Hand its rows to ``accept``."""
        if self.done:
            return None
        q, kwargs = self._next_query(size)
        return q.select_sql(self.names, **kwargs)

    def accept(self, raw_rows, size: int):
        """The rows of ``next_window(size)``, read elsewhere."""
        q, _ = self._next_query(size)
        self._take_window(q.decode_rows(raw_rows, self.names), size)

    def _next_query(self, size: int):
        """Phase 1 runs from the start key to the end, phase 2 from the beginning up to the start key."""
        if self.phase == 1:
            inclusive = self.cursor is None and self.start is not None
            return self._window_query(size, lower=self.cursor or self.start, lower_inclusive=inclusive)
        return self._window_query(size, lower=self.cursor, upper=self.start)

    def _refill(self, size: int):
        q, kwargs = self._next_query(size)
        self._take_window(q.fetch(*self.names, as_dict=True, **kwargs), size)

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


class AutoPopulate:
    """populate(), progress() and key_source for Imported and Computed tables."""

    _auto_populated = True

    @property
    def key_source(self) -> Query:
        """The join of the primary-key parents' keys (a class may override it with any query)."""
        spec = type(self)._declared_spec
        parents = [fk for fk in spec.foreign_keys if fk.in_key]
        if not parents:
            raise UsageError(
                f"{type(self).__name__} has no primary-key parent (-> Parent above ---): define key_source"
            )
        query = None
        for fk in parents:
            renames = {c: p for c, p in zip(fk.attributes, fk.parent_attributes, strict=True) if c != p}
            part = fk.parent.proj(**renames) if renames else fk.parent.proj()
            query = part if query is None else query * part
        return query

    def _key_source(self) -> Query:
        ks = self.key_source
        if isinstance(ks, type):
            ks = ks()
        return ks

    # ---------------------------------------------------------------- progress
    def progress(self, *restrictions, display=False, detail=False):
        """(remaining, total) from counting queries, never fetching keys; ``detail=True`` returns a dict that
        adds the jobs table's reserved, error, ignore and pending counts."""
        ks = self._key_source()
        for r in restrictions:
            ks = ks & r
        counts = self._count_all(ks, restrictions, detail)
        total, remaining = counts["total"], counts["remaining"]
        if display:
            done = total - remaining
            pct = 100.0 * done / total if total else 100.0
            print(f"{type(self).__name__}: Completed {done:,} of {total:,} ({pct:.1f}%)   "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        return counts if detail else (remaining, total)

    def _count_all(self, ks: Query, restrictions, detail: bool) -> dict:
        """Every count in one statement. With the default key source, no restriction and the same primary
        key, every row of the table is a key-source key (its foreign keys say so), so done = COUNT(*) of the
        table instead of an anti-join over the whole key source."""
        c = self.connection
        default_source = not any("key_source" in vars(k) for k in type(self).__mro__ if k is not AutoPopulate)
        where, params = ks._where_sql()
        parts = [(f"SELECT COUNT(*) FROM {ks._from}{where}", ks._from_params + params)]
        if default_source and not restrictions and sorted(ks.primary_key) == sorted(self.primary_key):
            parts.append((f"SELECT COUNT(*) FROM {self.full_table_name}", ()))
            remaining_is_difference = True
        else:
            pending = ks.proj() - self
            pwhere, pparams = pending._where_sql()
            parts.append((f"SELECT COUNT(*) FROM {pending._from}{pwhere}", pending._from_params + pparams))
            remaining_is_difference = False
        statuses = ("reserved", "error", "ignore", "pending")
        if detail:
            jobs = Reservations(c, type(self).database)
            jobs.ensure_table()
            ph = c.dialect.placeholder
            for status in statuses:
                parts.append((f"SELECT COUNT(*) FROM {jobs.jobs} WHERE {c.dialect.quote('table_name')} = {ph} "
                              f"AND {c.dialect.quote('status')} = {ph}", (self.table_name, status)))
        sql = "SELECT " + ", ".join(f"({p})" for p, _ in parts)
        row = c.query(sql, tuple(v for _, ps in parts for v in ps), context="progress").fetchone()
        total = int(row[0])
        remaining = total - int(row[1]) if remaining_is_difference else int(row[1])
        out = {"total": total, "done": total - remaining, "remaining": remaining}
        if detail:
            out.update({s: int(n) for s, n in zip(statuses, row[2:], strict=True)})
        return out

    def parpopulate(self, *restrictions, **kwargs):
        """populate with reservation: safe to run from many processes at once."""
        kwargs["reserve_jobs"] = True
        return self.populate(*restrictions, **kwargs)

    # ---------------------------------------------------------------- populate
    def populate(self, *restrictions, reserve_jobs=False, suppress_errors=False, return_exception_objects=False,
                 order="original", limit=None, max_calls=None, display_progress=False, make_kwargs=None,
                 processes=1, max_attempts=1, retry_delay_seconds=0.0, on_key=None, worker=None,
                 position: float | None = None, should_stop=None, lease_seconds=None, scheduler=None,
                 walltime=None):
        """Call make(key) for every key of the restricted key source that is not in the table yet."""
        runner = _Runner(self, restrictions, reserve_jobs=reserve_jobs, suppress_errors=suppress_errors,
                         return_exception_objects=return_exception_objects, order=order, limit=limit,
                         max_calls=max_calls, display_progress=display_progress, make_kwargs=make_kwargs or {},
                         max_attempts=max_attempts, retry_delay_seconds=retry_delay_seconds, on_key=on_key,
                         worker=worker, position=position, should_stop=should_stop, lease_seconds=lease_seconds,
                         scheduler=scheduler, walltime=walltime)
        if processes not in (1, None) and processes != 1:
            raise UsageError("processes= is not supported: start several workers (djhpc work) instead")
        return runner.run()


class _Runner:
    def __init__(self, table, restrictions, *, reserve_jobs, suppress_errors, return_exception_objects, order,
                 limit, max_calls, display_progress, make_kwargs, max_attempts, retry_delay_seconds, on_key,
                 worker, position, should_stop, lease_seconds=None, scheduler=None, walltime=None):
        if order not in ORDERS:
            raise UsageError(f"order must be one of {', '.join(ORDERS)} (got {order!r})")
        for name, v in (("limit", limit), ("max_calls", max_calls)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise UsageError(f"{name} must be a non-negative integer (got {v!r})")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1 (got {max_attempts!r})")
        self.table = table
        self.cls = type(table)
        self.conn = table.connection
        if self.conn.in_transaction:
            raise UsageError("populate() cannot run inside a transaction: call it outside 'with transaction'")
        self.make_kind = self._make_kind()
        self.restrictions = restrictions
        self.reserve = reserve_jobs
        self.suppress = suppress_errors
        self.return_exceptions = return_exception_objects
        self.order = order
        self.limit = limit
        self.max_calls = max_calls
        self.display = display_progress
        self.make_kwargs = make_kwargs
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay_seconds
        self.on_key = on_key
        self.position = position if position is not None else task_position()
        self.should_stop = should_stop or (lambda: False)
        self.result = PopulateResult()
        self.jobs = Reservations(self.conn, self.cls.database, worker, lease_seconds=lease_seconds) \
            if reserve_jobs else None
        self.reaper = Reaper(self.jobs, lease_seconds=self.jobs.lease_seconds, scheduler=scheduler,
                             scheduler_every_seconds=300) if reserve_jobs else None
        self.next_reap = 0.0
        self.walltime = walltime
        self.history = History(self.conn, self.cls.database) if history_enabled() else None
        if self.history:
            self.history.ensure_table()
        self.identity = self.jobs.worker if self.jobs else Worker.current(self.conn)
        self.batch = 1
        self.held: deque[Claim] = deque()
        self.next_pending_check = 0.0
        self.final_reap_done = False
        self.contended = False  # set once this worker lost a reservation race
        self.reseeks = 0
        self._prep: dict[int, tuple] = {}  # id(key) -> what reserving it needs, for keys offered again
        self.inflight: _InFlight | None = None  # the key whose commit is on its way (MySQL)
        self.end_cap = MAX_BATCH  # batch limit near the end of the keys (see _end_game)
        self.next_count = 0.0
        self.commit_retries: dict[str, int] = {}
        self.raise_after: Exception | None = None  # a failure to raise once the loop has wound down

    def _make_kind(self) -> str:
        cls = self.cls
        if all(hasattr(cls, m) for m in ("make_fetch", "make_compute", "make_insert")):
            return "tripartite"
        if callable(getattr(cls, "make", None)) and "make" in _defined_names(cls):
            return "make"
        if callable(getattr(cls, "_make_tuples", None)):
            return "_make_tuples"
        raise UsageError(f"{cls.__name__} defines no make(self, key): write one to populate it")

    # ---------------------------------------------------------------- the loop
    def run(self) -> PopulateResult:
        ks = self.table._key_source()
        for r in self.restrictions:
            ks = ks & r
        names = ks.primary_key
        missing = [n for n in names if n not in self.table.heading]
        if missing:
            raise UsageError(f"key_source attribute '{missing[0]}' is not in {self.cls.__name__}'s primary key")
        candidates = ks.proj() - self.table
        position = self.position
        if position is None and (self.reserve or self.order == "random"):
            # no array task index: a random start, so that workers started together rarely meet
            position = random.random()
        # alone, read ahead freely; among other workers, read ahead only a few batches, so keys stay fresh
        walker = KeyWalker(candidates, names, self.order, position, MIN_WINDOW if self.reserve else WINDOW)
        progress = _ProgressBar(self.cls.__name__, walker.pending_at_start or len(candidates)) \
            if self.display else None
        restore = self._install_signal_handlers() if self.reserve else None
        try:
            while not self._budget_spent() and not self.should_stop() and not self.raise_after:
                if self.reserve:
                    if not self.held:
                        self._reap_if_due()
                        if self.walltime and not self.walltime.fits():
                            log.warning("the next key would not fit in the time left of this allocation: stopping")
                            break
                        self._take_more(walker, names)
                    if not self.held:
                        break
                    claim = self.held.popleft()
                    self._one(claim.key, claim)
                else:
                    keys = walker.next(1)
                    if not keys:
                        break
                    self._one(keys[0], None)
                if progress:
                    progress.advance()
        finally:
            flight, self.inflight = self.inflight, None
            self._collect(flight)  # the last commit's reply
            # keys reserved but not started go back, whether the loop ended, broke or was interrupted
            self._release_held()
            if self.jobs:
                self.jobs.close()
            if restore:
                restore()
            if progress:
                progress.close()
        self.result._sync()
        if self.raise_after:
            raise self.raise_after
        return self.result

    def _attempted(self) -> int:
        """Keys made or failed so far, the one whose commit is on its way included."""
        return self.result.success_count + len(self.result.error_list) + (self.inflight is not None)

    def _budget_spent(self) -> bool:
        attempted = self._attempted()
        if self.limit is not None and attempted >= self.limit:
            return True
        return self.max_calls is not None and self.result.make_calls >= self.max_calls

    def _remaining_budget(self) -> int:
        left = MAX_BATCH
        attempted = self._attempted()
        if self.limit is not None:
            left = min(left, self.limit - attempted)
        if self.max_calls is not None:
            left = min(left, self.max_calls - self.result.make_calls)
        return max(left, 1)

    def _reap_if_due(self, force=False):
        """Give back dead workers' keys: at start, every REAP_SECONDS, and before giving up on the walk."""
        now = time.monotonic()
        if not force and now < self.next_reap:
            return
        self.next_reap = now + REAP_SECONDS
        try:
            reclaimed = self.reaper.reap()
        except (TransientError, LostConnectionError) as e:
            log.warning("could not look for dead workers (%s)", e)
            return
        if reclaimed:
            self.next_pending_check = 0.0
            self.final_reap_done = False

    def _take_more(self, walker: KeyWalker, names):
        """Reserve the next batch, retrying deadlocks and dropped connections with back-off."""
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                return self._reserve_batch(walker, names)
            except (TransientError, LostConnectionError) as e:
                if attempt == TRANSIENT_RETRIES:
                    raise
                log.warning("%s; reserving again", e)
                time.sleep(min(0.05 * 2**attempt, 5) * (0.5 + random.random()))

    def _reserve_batch(self, walker: KeyWalker, names):
        """Reserve the next batch: keys waiting for a retry first, then fresh keys from the walk."""
        n = min(self.batch, self._remaining_budget())
        if not self.restrictions and time.monotonic() >= self.next_pending_check:
            # keys waiting for a retry are rare: look at start, then every half minute
            self.next_pending_check = time.monotonic() + PENDING_CHECK_SECONDS
            self.held.extend(self.jobs.claim_pending(self.table.table_name, 1))
            if self.held:
                return
        n = min(n, self.end_cap)
        while not self.held:
            # among other walks, offer more keys than wanted: the statement skips those held and stops when
            # it has enough, so the batch stays full and the rest is offered again next time
            offer = walker.peek(min(WINDOW, 2 * n) if self.contended else n, n)
            if not offer:
                # the walk is over: give back dead workers' keys once, then take pending keys until none is left
                if not self.restrictions:
                    if not self.final_reap_done:
                        self.final_reap_done = True
                        self._reap_if_due(force=True)
                    self.held.extend(self.jobs.claim_pending(self.table.table_name, 1))
                return
            prepared = [self._prepared(k, names) for k in offer]
            # MySQL: when the keys in hand run short, the same round trip reads the next window of the walk
            size = walker.window_size(n)
            window = walker.next_window(size) \
                if not self.conn.is_sqlite and len(walker.buffer) < len(offer) + n else None
            counting = self.contended and time.monotonic() >= self.next_count
            then = ([window] if window else []) + (self._left_statements(walker) if counting else [])
            t0 = time.monotonic()
            taken = self.jobs.take(self.table.table_name, offer, done_table=self.table.full_table_name,
                                   key_columns=names, encoded=[p[2] for p in prepared],
                                   hashes=[p[0] for p in prepared], packed=[p[1] for p in prepared],
                                   begin_next=self.make_kind != "tripartite", want=n, then=then)
            walker.consume(taken.tried)
            for k in offer[:taken.tried]:
                self._prep.pop(id(k), None)
            if window:
                walker.accept(taken.then[0], size)
            if counting:
                self._end_game(taken.then[-2][0][0], *taken.then[-1][0], time.monotonic() - t0)
            missed = taken.seen_taken + taken.lost
            self.result.skipped_count += missed
            self.result.lost_count += taken.lost
            self.result.seen_taken_count += taken.seen_taken
            if missed:
                self.contended = True
                if not taken.claims and self.reseeks < MAX_RESEEKS and not walker.done:
                    # every key offered was held: this walk has caught up with another; jump elsewhere
                    self.reseeks += 1
                    walker.reseek(random.random())
                    self._prep.clear()
            self.held.extend(taken.claims)

    def _left_statements(self, walker: KeyWalker) -> list:
        """Counts of the keys left and of the keys held and their holders, sent with a reservation."""
        return [walker.q.count_sql(),
                (self.conn.dialect.queries["held_and_holders"].format(jobs=self.jobs.jobs), (self.table.table_name,))]

    def _end_game(self, left: int, held: int, holders: int, seconds: float):
        self.end_cap = end_game_batch(int(left), int(held), int(holders))
        self.next_count = time.monotonic() + max(COUNT_SECONDS, 50 * seconds)

    def _prepared(self, key: dict, names) -> tuple:
        """(hash, blob, encoded key columns) of a key in the walk's buffer, computed once however often the
        key is offered."""
        got = self._prep.get(id(key))
        if got is None or got[3] is not key:
            d = self.conn.dialect.name
            got = (key_hash(key), blob.pack(key), tuple(values.encode(self.table.heading[a], key[a], d) for a in names),
                   key)
            self._prep[id(key)] = got
        return got

    def _release_held(self):
        while self.held:
            claim = self.held.popleft()
            try:
                self.jobs.release(claim)
            except Exception as e:  # best effort: a dead worker's keys are reclaimed anyway
                log.warning("could not give back %d reserved key(s) (%s): they are reclaimed once this worker "
                            "is seen dead", len(self.held) + 1, e)
                self.held.clear()

    def _adapt_batch(self, seconds: float):
        """Hold about HOLD_SECONDS of work: batches amortize reserving for fast makes, while slow makes are
        taken one at a time, so that no worker ends the run with keys in hand that idle workers could make.
        Among other walks, hold fewer keys still. Batches at most double from one make to the next."""
        limit = CONTENDED_BATCH if self.contended else MAX_BATCH
        fit = int(HOLD_SECONDS / seconds) if seconds > 0 else limit
        self.batch = max(1, min(limit, fit, self.batch * 2))

    def _one(self, key: dict, claim: Claim | None):
        """Make one key in one transaction; errors are recorded, interruptions give the key back.

        On MySQL the commit of a reserved key is confirmed while the next key is made: the key before this
        one is accounted for here, once this one's make has ended (its reply has been read by then)."""
        previous, self.inflight = self.inflight, None
        try:
            self._make_one(key, claim)
        finally:
            self._collect(previous)

    def _make_one(self, key: dict, claim: Claim | None):
        started = time.time()
        if self.on_key:
            self.on_key(key, started, None, "start", "")
        for transient_attempt in range(TRANSIENT_RETRIES + 1):
            try:
                self.result.make_calls += 1
                sent = self._make_in_transaction(key, claim)
            except ReservationLostError as e:
                log.warning("%s", e)
                self._lost(key, started, str(e))
                return
            except (TransientError, LostConnectionError) as e:
                if transient_attempt < TRANSIENT_RETRIES:
                    log.warning("%s; retrying %s", e, key)
                    time.sleep(min(0.1 * 2**transient_attempt, 5) * (0.5 + random.random()))
                    if claim and not self._still_mine(claim):
                        log.warning("reservation of %s was reclaimed while the database was away", key)
                        self._lost(key, started, "reclaimed while the database was away")
                        return
                    continue
                self._failed(key, claim, e, started)
                return
            except (KeyboardInterrupt, Interrupted) as e:
                if claim:
                    try:
                        self.jobs.release(claim)
                    except Exception as failure:  # reclaimed later if this fails
                        log.warning("could not give back %s (%s): it is reclaimed once this worker is seen dead",
                                    key, failure)
                self._report(key, started, "interrupted", str(e) or type(e).__name__)
                raise
            except Exception as e:
                if claim and self._lost_quietly(claim):
                    log.warning("%s failed after its reservation was reclaimed: dropped (%s)", key, e)
                    self._lost(key, started, f"{type(e).__name__}: {e}")
                    return
                self._failed(key, claim, e, started)
                return
            else:
                if sent is None:
                    self._succeeded(key, started, time.time() - started, None)
                else:
                    self.inflight = _InFlight(key, claim, started, time.time() - started, sent)
                return

    def _succeeded(self, key, started, elapsed, duration):
        self.result.success_count += 1
        self._adapt_batch(elapsed)
        if self.walltime and duration is not None:
            self.walltime.observe(duration)
        self._report(key, started, "success", "")

    def _collect(self, flight: _InFlight | None):
        """Account for a key whose commit was sent without waiting: made, lost, to be made again, or failed.
        Never raises: an error that populate must raise is kept in ``raise_after``."""
        if flight is None:
            return
        err = self.conn.outcome(flight.sent)
        if err is None:
            self._succeeded(flight.key, flight.started, flight.elapsed, flight.elapsed)
            return
        claim = flight.claim
        if isinstance(err, ReservationLostError):
            log.warning("%s", err)
            self._lost(flight.key, flight.started, str(err))
        elif isinstance(err, (TransientError, LostConnectionError)):
            tries = self.commit_retries[claim.key_hash] = self.commit_retries.get(claim.key_hash, 0) + 1
            try:
                mine = self._still_mine(claim)
            except Exception as e:  # the database stays away: reclaimed once this worker is seen dead
                log.warning("cannot tell whether %s was made (%s)", flight.key, e)
                mine = False
            if not mine:
                self._lost(flight.key, flight.started, "reclaimed while the database was away")
            elif tries <= TRANSIENT_RETRIES:
                log.warning("%s; making %s again", err, flight.key)
                self.held.appendleft(claim)  # not committed: next in line
            else:
                self._record_failure(flight.key, claim, err, flight.started)
        else:
            self._record_failure(flight.key, claim, err, flight.started)

    def _lost(self, key, started, message):
        """A key this worker no longer holds: another worker makes it."""
        self.result.lost_count += 1
        self.result.skipped_count += 1
        self._report(key, started, "lost", message)

    def _record_failure(self, key, claim, err, started):
        try:
            self._failed(key, claim, err, started)
        except Exception as e:
            self.raise_after = self.raise_after or e

    def _lost_quietly(self, claim) -> bool:
        try:
            return not self.jobs.still_mine(claim)
        except Exception:  # cannot tell: treat it as an ordinary failure
            return False

    def _still_mine(self, claim) -> bool:
        for attempt in range(TRANSIENT_RETRIES):
            try:
                return self.jobs.still_mine(claim)
            except (TransientError, LostConnectionError):
                time.sleep(min(0.2 * 2**attempt, 5))
        return self.jobs.still_mine(claim)

    def _failed(self, key, claim, exc, started):
        message = f"{type(exc).__name__}: {exc}"
        # an error read from a commit's reply was never raised here: its own text is all there is
        stack = traceback.format_exc() if sys.exc_info()[1] is exc else "".join(
            traceback.format_exception_only(type(exc), exc))
        if claim:
            try:
                self.jobs.fail(claim, message, stack, max_attempts=max(self.max_attempts, claim.failures + 1)
                               if self.max_attempts > 1 else 1, retry_delay_seconds=self.retry_delay)
            except Exception:  # the error row is a courtesy; the original error matters more
                log.warning("could not record the error of %s: %s", key, sys.exc_info()[1])
        self.result.error_list.append((key, exc if self.return_exceptions else message))
        self.batch = 1
        self._report(key, started, "error", message)
        if not self.suppress:
            raise exc

    def _report(self, key, started, outcome, message):
        if self.on_key:
            self.on_key(key, started, time.time(), outcome, message)

    def _make_in_transaction(self, key: dict, claim: Claim | None) -> int | None:
        """Returns None when the key is committed, or the number of its commit sent without waiting."""
        cls, conn = self.cls, self.conn
        computed = None
        started = time.time()
        cpu_before, _ = usage_snapshot()
        if self.make_kind == "tripartite":
            fetched = cls.make_fetch(self.table, dict(key))
            computed = cls.make_compute(self.table, dict(key), *_as_tuple(fetched))
        conn.start_transaction()
        cls._allow_insert = True
        # SQLite: no write lock while make computes; MySQL: make's inserts go with the completion's round trip
        conn.defer_writes = True
        try:
            if self.make_kind == "tripartite":
                again = cls.make_fetch(self.table, dict(key))
                if blob.pack(_as_list(again)) != blob.pack(_as_list(fetched)):
                    raise DataError("make_fetch returned other data inside the transaction: the inputs changed "
                                    "while make_compute ran; populate again")
                cls.make_insert(self.table, dict(key), *_as_tuple(computed))
            elif self.make_kind == "make":
                self.table.make(dict(key), **self.make_kwargs)
            else:
                self.table._make_tuples(dict(key))
            if conn.is_sqlite:
                conn.flush_deferred()
            duration = time.time() - started
            closing = []  # statements that end make's transaction: the fenced completion, the history row
            if claim:
                closing += self.jobs.complete_statements(claim) if not conn.is_sqlite else []
            if self.history:
                cpu_after, rss_mb = usage_snapshot()
                closing.append(self.history.record_statement(
                    self.table.table_name, claim.key_hash if claim else key_hash(key), self.identity, started,
                    duration, cpu_after - cpu_before, rss_mb))
            if conn.is_sqlite:
                if claim:
                    self.jobs.complete(claim)
                for sql, params in closing:
                    conn.query(sql, params, context="record_history")
                conn.commit()
            else:
                # one round trip: make's inserts, completion, history, COMMIT, and BEGIN for the next key held;
                # a reserved key's reply is read while the next key is made
                begin_next = bool(self.held) and self.make_kind != "tripartite"
                sent = conn.commit_batch(closing, begin_next=begin_next, context="complete", wait=claim is None)
                if claim is not None:
                    return sent
            if self.walltime:
                self.walltime.observe(duration)
            return None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.drop_deferred()
            cls._allow_insert = False

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {}

        def handler(signum, frame):
            raise Interrupted(signum)

        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):
                pass

        def restore():
            for sig, h in previous.items():
                signal.signal(sig, h)

        return restore


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _as_list(x):
    return list(x) if isinstance(x, tuple) else [x]


def _defined_names(cls) -> set:
    names = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("djhpc."):
            continue
        names |= set(vars(klass))
    return names


class _ProgressBar:
    """A terminal progress bar for display_progress=True (rich, on stderr)."""

    def __init__(self, name, total):
        from rich.progress import Progress

        self.progress = Progress(transient=False, console=None) if sys.stderr.isatty() else None
        self.total = total
        self.count = 0
        if self.progress:
            self.progress.start()
            self.task = self.progress.add_task(name, total=total)

    def advance(self):
        self.count += 1
        if self.progress:
            self.progress.advance(self.task)

    def close(self):
        if self.progress:
            self.progress.stop()
