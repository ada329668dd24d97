"""The populate loop: reserve a batch, make each key in its own transaction, close it with the fenced
completion, give keys back on a stop signal. ``AutoPopulate.populate()`` (autopopulate.py) and ``djhpc work``
(worker.py) both run it with one ``PopulateOptions``.

A key's trip: ``keywalk.KeyWalker`` reads pending keys; ``Reservations.take`` reserves a batch of the size
``batching.BatchPolicy`` says; ``_make_in_transaction`` calls make() with writes deferred and ends the
transaction with ``Reservations.closing(claim)`` through ``Connection.commit_with``. On MySQL a reserved key's
commit is confirmed while the next key is made (``inflight.InFlightTracker``).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from . import backoff, blob, signals
from .batching import CONTENDED_OFFER, MAX_BATCH, BatchPolicy
from .db.connection import reconnect_seconds
from .deadline import Deadline
from .errors import (
    DiskFullError,
    KeyMadeElsewhere,
    LostConnectionError,
    MakeTimeout,
    ReservationLostError,
    TransientError,
    UsageError,
)
from .history import History, usage_snapshot
from .history import enabled as history_enabled
from .inflight import InFlight, InFlightTracker, Verdict
from .keywalk import MIN_WINDOW, WINDOW, KeyWalker
from .liveness import Reaper
from .reservation import (
    Claim,
    Closing,
    Made,
    Reservations,
    ReserveRequest,
    Worker,
    is_lease_only,
    key_hash,
    lease_only_owner,
    takes_turns,
)
from .schedulers import taskenv
from .signals import Interrupted, stop_signals
from .target import TableTarget

log = logging.getLogger(__name__)

ORDERS = ("original", "reverse", "random")
TRANSIENT_RETRIES = 5
PENDING_CHECK_SECONDS = 30.0
REAP_SECONDS = float(os.environ.get("DJHPC_REAP_SECONDS", 10))
REAPERS = 4  # looks for dead workers per REAP_SECONDS, over all workers of a schema, once there are many

__all__ = ["ORDERS", "Interrupted", "PopulateOptions", "PopulateResult", "error_message", "raised_by_djhpc", "run"]

# what _after_failure tells _make_one to do next
_AGAIN, _DONE, _RAISE = "again", "done", "raise"


def reap_interval(owners: int) -> float:
    """Seconds to this worker's next look for dead workers: REAP_SECONDS among a few workers, longer among many,
    so that all workers together look about REAPERS times per REAP_SECONDS whatever their number (each look reads
    every reserved row: with each of W workers looking every REAP_SECONDS, rows read per key would grow with W).
    Jittered so that workers started together do not look together."""
    return REAP_SECONDS * max(1.0, owners / REAPERS) * (0.5 + random.random())


@dataclass
class PopulateOptions:
    """Everything populate() takes besides restrictions: one set for populate(), ``djhpc work`` and the bench."""

    reserve_jobs: bool = False
    suppress_errors: bool = False
    return_exception_objects: bool = False
    order: str = "original"
    limit: int | None = None
    max_calls: int | None = None
    display_progress: bool = False
    make_kwargs: dict = field(default_factory=dict)
    max_attempts: int = 1
    retry_delay_seconds: float = 0.0
    on_key: Any = None  # on_key(key, started, ended, outcome, message): a log line per key
    worker: Worker | None = None
    position: float | None = None  # where this worker's walk starts, a fraction of the keys
    should_stop: Any = None  # a callable: stop before the next key when it returns True
    lease_seconds: float | None = None
    scheduler: Any = None  # asked which cluster jobs ended, to reclaim their keys
    walltime: Any = None  # walltime.Walltime: do not start a key that would not fit
    make_timeout: float | None = None  # seconds one make may run (else the table's make_timeout attribute)
    #: MySQL: a make that leaves the connection unused this long gives it back until its next statement (the
    #: worker is then judged alive by its PID, the scheduler and its lease, not by a session lock)
    release_after: float | None = None

    def check(self):
        """Raise UsageError naming the first bad option."""
        if self.order not in ORDERS:
            raise UsageError(f"order must be one of {', '.join(ORDERS)} (got {self.order!r})")
        for name, v in (("limit", self.limit), ("max_calls", self.max_calls)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise UsageError(f"{name} must be a non-negative integer (got {v!r})")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1 (got {self.max_attempts!r})")
        _check_timeout(self.make_timeout, "make_timeout")
        _check_timeout(self.release_after, "release_after")


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


def run(target, restrictions, options: PopulateOptions) -> PopulateResult:
    """Call make(key) for every key of the restricted key source of ``target`` (a djhpc table, or a ``target``
    object such as djtarget.DataJointTarget) that is not made yet."""
    if not hasattr(target, "candidates"):
        target = TableTarget(target)
    return _Runner(target, restrictions, options).run()


class _Runner:
    def __init__(self, target, restrictions, options: PopulateOptions):
        options.check()
        self.o = options
        self.target = target
        self.conn = target.connection
        if self.conn.in_transaction:
            raise UsageError("populate() cannot run inside a transaction: call it outside 'with transaction'")
        self.restrictions = restrictions
        self.result = PopulateResult()
        self.policy = BatchPolicy()
        self.jobs = self.reaper = None
        if options.reserve_jobs:
            self.jobs = Reservations(self.conn, target.database, self._worker(), lease_seconds=options.lease_seconds,
                                     jobs_table=target.jobs_table)
            self.jobs.release_after = options.release_after if self._releases() else None
            if hasattr(target, "release_after"):  # a DataJoint table: its own connection, in make_compute
                target.release_after = self.jobs.release_after
            self.reaper = Reaper(self.jobs, lease_seconds=self.jobs.lease_seconds, scheduler=options.scheduler,
                                 scheduler_every_seconds=300)
        self.identity = self.jobs.worker if self.jobs else options.worker or _current_worker(self.conn)
        self.history = History(self.conn, target.database, target.history_table) if history_enabled() else None
        if self.history:
            self.history.ensure_table()
        self.held: deque[Claim] = deque()
        self.reservations_sent = 0
        self.holders_seen = 0  # workers holding keys of the table at the last count
        self.next_reap = 0.0
        self._opens_at_reserve = None  # the connection's opens when this loop first reserved (see _may_hold_orphans)
        self.stopped_early = False  # the loop left by an exception (see run)
        self.next_pending_check = 0.0
        self.final_reap_done = False
        self.won_last = True  # the last reservation won a key (see _reserve_offer)
        self._prep: dict[int, tuple] = {}  # id(key) -> what reserving it needs, for keys offered again
        self.inflight = InFlightTracker(TRANSIENT_RETRIES)  # the key whose commit is on its way (MySQL)
        self.raise_after: Exception | None = None  # a failure to raise once the loop has wound down
        limit = options.make_timeout if options.make_timeout is not None else target.make_timeout
        _check_timeout(limit, f"{target.name}.make_timeout")
        self.deadline = Deadline(limit)
        self.timed_out: tuple | None = None  # (key, claim, MakeTimeout, started) of the make just stopped

    def _releases(self) -> bool:
        return self.o.release_after is not None and not self.conn.is_sqlite

    def _worker(self) -> Worker:
        """Who reserves: a worker that gives its connection back during makes has a lease-only owner id."""
        worker = self.o.worker or _current_worker(self.conn)
        if self._releases() and not is_lease_only(worker.owner):
            worker = replace(worker, owner=lease_only_owner())
        return worker

    # ---------------------------------------------------------------- the loop
    def _walker(self) -> tuple[KeyWalker, list[str]]:
        candidates, names = self.target.candidates(self.restrictions)
        position = self.o.position if self.o.position is not None else _task_position()
        if position is None and (self.o.reserve_jobs or self.o.order == "random"):
            # no array task index: a random start, so that workers started together rarely meet
            position = random.random()
        # alone, read ahead freely; among other workers, read ahead only a few batches, so keys stay fresh
        return KeyWalker(candidates, names, self.o.order, position,
                         MIN_WINDOW if self.o.reserve_jobs else WINDOW), names

    def run(self) -> PopulateResult:
        walker, names = self._walker()
        self.names = names
        progress = _ProgressBar(self.target.name, walker.pending_at_start or len(walker.q)) \
            if self.o.display_progress else None
        # alone (a script, a notebook) every stop signal raises Interrupted; inside djhpc work's own block a
        # second one leaves at once, as there
        with stop_signals(enabled=self.o.reserve_jobs, signals=signals.LOOP_SIGNALS,
                          exit_code=signals.EXIT_INTERRUPTED if signals.active() else None):
            try:
                while self._next(walker, names):
                    if progress:
                        progress.advance()
            except BaseException:
                # a stop signal or Ctrl-C may land between a reservation's commit and its reply: rows this loop
                # does not know it holds (populate(processes=N) stops its children so)
                self.stopped_early = True
                raise
            finally:
                self._wind_down(progress)
        self.result._sync()
        if self.raise_after:
            raise self.raise_after
        return self.result

    def _next(self, walker: KeyWalker, names) -> bool:
        """Make the next key; False when the loop is over."""
        if self._budget_spent() or (self.o.should_stop and self.o.should_stop()) or self.raise_after:
            return False
        if not self.o.reserve_jobs:
            keys = walker.next(1)
            if keys:
                self._one(keys[0], None)
            return bool(keys)
        if not self.held:
            self._reap_if_due()
            if self.o.walltime and not self.o.walltime.fits():
                log.warning("the next key would not fit in the time left of this allocation: stopping")
                return False
            self._take_more(walker, names)
        if not self.held:
            return False
        claim = self.held.popleft()
        self._one(claim.key, claim)
        return True

    def _wind_down(self, progress):
        self._collect(self.inflight.take())  # the last commit's reply
        # keys reserved but not started go back, whether the loop ended, broke or was interrupted
        self._release_held()
        if self.jobs and (self._may_hold_orphans() or self.stopped_early):
            try:
                self._release_orphans()  # and any this worker holds without knowing it
            except Exception as e:  # the end of the loop goes on: a dead worker's keys are reclaimed anyway
                log.warning("could not give back this worker's remaining reservations (%s)", e)
        if self.jobs:
            self.jobs.close()  # its heartbeat, and the session lock's hook on the connection (a forked child's too)
        if progress:
            progress.close()

    def _attempted(self) -> int:
        """Keys made or failed so far, the one whose commit is on its way included."""
        return self.result.success_count + len(self.result.error_list) + (self.inflight.flight is not None)

    def _budget_spent(self) -> bool:
        if self.o.limit is not None and self._attempted() >= self.o.limit:
            return True
        return self.o.max_calls is not None and self.result.make_calls >= self.o.max_calls

    def _remaining_budget(self) -> int:
        left = MAX_BATCH
        if self.o.limit is not None:
            left = min(left, self.o.limit - self._attempted())
        if self.o.max_calls is not None:
            left = min(left, self.o.max_calls - self.result.make_calls)
        return max(left, 1)

    def _reap_if_due(self, force=False):
        """Give back dead workers' keys: at start, every REAP_SECONDS, and before giving up on the walk."""
        now = time.monotonic()
        if not force and now < self.next_reap:
            return
        self.next_reap = now + reap_interval(self.reaper.owners_seen)
        try:
            reclaimed = self.reaper.reap()
        except (TransientError, LostConnectionError) as e:
            log.warning("could not look for dead workers (%s)", e)
            return
        self._settle_turns()
        if reclaimed:
            self.next_pending_check = 0.0
            self.final_reap_done = False

    def _take_more(self, walker: KeyWalker, names):
        """Reserve the next batch, retrying deadlocks and dropped connections with back-off."""
        since, attempt = time.monotonic(), 0
        if self._opens_at_reserve is None:
            self._opens_at_reserve = self.jobs.connection.opens
        while True:
            try:
                return self._reserve_batch(walker, names)
            except (TransientError, LostConnectionError) as e:
                if _gives_up(e, attempt, since):
                    raise
                log.warning("%s; reserving again", e)
                backoff.sleep(backoff.delay(attempt, first=0.05, cap=5))
                attempt += 1
                if isinstance(e, LostConnectionError):
                    self._release_orphans()  # the lost reply may have been a reservation that committed

    def _may_hold_orphans(self) -> bool:
        """Whether a reservation's reply may have been lost since this loop first reserved: only then can the
        worker hold rows it does not know of (a connection that never dropped delivered every reply)."""
        if self._opens_at_reserve is None:
            return False
        conn = self.jobs.connection
        # a connection given back on purpose (release_after) read every reply before it went
        return (conn._raw is None and not conn._released) or conn.opens != self._opens_at_reserve

    def _release_orphans(self):
        """Give back rows under this worker's owner id that it does not know it holds (best effort: the database
        may still be away; the next lost reply, or the end of the loop, tries again)."""
        known = {c.token for c in self.held}
        if self.inflight.flight is not None:
            known.add(self.inflight.flight.claim.token)
        try:
            freed = self.jobs.release_orphans(known)
        except (TransientError, LostConnectionError) as e:
            log.warning("could not look for reservations this worker does not know of (%s)", e)
            return
        if freed:
            log.warning("gave back %d reservation(s) whose reply was lost", freed)

    def _reserve_batch(self, walker: KeyWalker, names):
        """Reserve the next batch: keys waiting for a retry first, then fresh keys from the walk."""
        self.target.check_alone()
        self.conn.check_file()
        if not self.restrictions and time.monotonic() >= self.next_pending_check:
            # keys waiting for a retry are rare: look at start, then every half minute
            self.next_pending_check = time.monotonic() + PENDING_CHECK_SECONDS
            self.held.extend(self.jobs.claim_pending(self.target.table_name, 1))
            if self.held:
                return
        n = self.policy.want(self._remaining_budget())
        while not self.held:
            # among other walks, offer more keys than wanted: the statement skips those held and stops when
            # it has enough, so the batch stays full and the rest is offered again next time
            offer = walker.peek(self.policy.offer(n), n)
            if not offer:
                self._walk_over()
                return
            self._reserve_offer(walker, names, offer, n)

    def _walk_over(self):
        """The walk is over: give back dead workers' keys once, then take pending keys until none is left."""
        if self.restrictions:
            return
        if not self.final_reap_done:
            self.final_reap_done = True
            self._reap_if_due(force=True)
        self.held.extend(self.jobs.claim_pending(self.target.table_name, 1))

    def _reserve_offer(self, walker: KeyWalker, names, offer: list[dict], n: int):
        prepared = [self._prepared(k, names) for k in offer]
        # MySQL: when the keys in hand run short, the same round trip reads the next window of the walk
        size = walker.window_size(n)
        window = walker.next_window(size) \
            if not self.conn.is_sqlite and len(walker.buffer) < len(offer) + n else None
        counts = self._counts_due(walker)
        then = ([window] if window else []) + counts
        t0 = time.monotonic()
        taken = self.jobs.take(ReserveRequest(
            self.target.table_name, offer, done_table=self.target.full_table_name, key_columns=names,
            encoded=[p[2] for p in prepared], hashes=[p[0] for p in prepared], packed=[p[1] for p in prepared],
            begin_next=self.target.begins_ahead and self.won_last, want=n, then=then))
        # after a reservation that won nothing, the next one sends no BEGIN ahead: among others' held keys
        # (the end of a run) a BEGIN that no make uses would cost its COMMIT too
        self.won_last = bool(taken.claims)
        walker.consume(taken.tried)
        for k in offer[:taken.tried]:
            self._prep.pop(id(k), None)
        if window:
            walker.accept(taken.then[0], size)
        if counts:
            self._read_counts(taken.then[-len(counts):], time.monotonic() - t0)
        missed = taken.seen_taken + taken.lost
        self.result.skipped_count += missed
        self.result.lost_count += taken.lost
        self.result.seen_taken_count += taken.seen_taken
        if missed:
            jump = self.policy.met_others(not taken.claims, walker.done)
            # among other walks offers are larger (passing over held keys): read windows that fill them
            walker.min_window = max(walker.min_window, 2 * CONTENDED_OFFER)
            if jump is not None:
                self._jump(walker, jump)
        self.held.extend(taken.claims)

    def _jump(self, walker: KeyWalker, jump: float):
        """Every key offered was held: this walk has caught up with another. Jump elsewhere (where the start
        is interpolated, without a count); after a few jumps count what is left: stop when every key left is
        held, walk on with full offers when few are free (the end of the run: W workers jumping about would each
        spin), else jump."""
        self._prep.clear()
        if not self.policy.count_before_jumping() and walker.interpolates:
            walker.reseek(jump)
            return
        left, held = self._left_and_held(walker)
        then = self.policy.after_count(left, held)
        if then == "stop" and not self.restrictions:
            walker.stop()
        elif then == "walk":
            walker.min_window = WINDOW
        else:
            walker.reseek(jump, left)

    def _counts_due(self, walker: KeyWalker) -> list:
        """Counts to send with this reservation: the keys left and held (the end game's batch cap, when due), or,
        with the second reservation on MySQL, the holders alone (once every worker started together has
        reserved: among many, reservers take no turns)."""
        self.reservations_sent += 1
        if self.policy.count_due(time.monotonic()):
            return self._left_statements(walker)
        if self.reservations_sent == 2 and not self.conn.is_sqlite:
            return [self.jobs.held_and_holders_statement(self.target.table_name)]
        return []

    def _read_counts(self, rows: list, seconds: float):
        """The rows of ``_counts_due``'s statements, read with a reservation that took ``seconds``."""
        held, holders = rows[-1][0]
        if len(rows) == 2:
            self.policy.end_game(rows[0][0][0], held, holders, seconds, time.monotonic())
        self.holders_seen = int(holders)
        self._settle_turns()

    def _settle_turns(self):
        """Reservers take turns only among a few workers: the most seen by the reaper or by the last count."""
        self.jobs.in_turn = takes_turns(max(self.reaper.owners_seen, self.holders_seen))

    def _left_and_held(self, walker: KeyWalker) -> tuple[int, int]:
        """(keys not made yet, keys reserved) of the table, in one round trip on MySQL. Only reserved rows count
        as held: a key that failed or waits for a retry is left but not held, so ``left <= held`` means that no
        key is free (without restrictions, where every reserved row is a key of the walk)."""
        statements = self._left_statements(walker)
        if self.conn.is_sqlite:
            results = [self.conn.query(sql, params, context="count").fetchall() for sql, params in statements]
        else:
            results = [rows for _, rows in self.conn.script(statements, context="count")]
        return int(results[0][0][0]), int(results[1][0][0])

    def _left_statements(self, walker: KeyWalker) -> list:
        """Counts of the keys left and of the keys held and their holders, sent with a reservation."""
        return [walker.q.count_sql(), self.jobs.held_and_holders_statement(self.target.table_name)]

    def _prepared(self, key: dict, names) -> tuple:
        """(hash, blob, encoded key columns) of a key in the walk's buffer, computed once however often the
        key is offered."""
        got = self._prep.get(id(key))
        if got is None or got[3] is not key:
            got = (key_hash(key), blob.pack(key), self.target.encode(key, names), key)
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

    # ---------------------------------------------------------------- one key
    def _one(self, key: dict, claim: Claim | None):
        """Make one key in one transaction; errors are recorded, interruptions give the key back.

        On MySQL the commit of a reserved key is confirmed while the next key is made: the key before this
        one is accounted for here, once this one's make has ended (its reply has been read by then)."""
        previous = self.inflight.take()
        try:
            self._make_one(key, claim)
        finally:
            self._collect(previous)
        if self.timed_out:
            self._stopped_by_deadline(*self.timed_out)

    def _stopped_by_deadline(self, key, claim, error, started):
        """A make stopped at its time limit: the alarm may have cut a database read short, so the make's
        connection starts afresh (after the previous key's reply was read) before the key's error is written."""
        self.timed_out = None
        try:
            self.target.reconnect()
        except Exception as e:  # the error row is written once the database answers again, or the reaper acts
            log.warning("could not reconnect after a make's time limit (%s)", e)
        self._failed(key, claim, error, started)

    def _make_one(self, key: dict, claim: Claim | None):
        started = time.time()
        self._report(key, started, "start", "", ended=None)
        since, attempt = time.monotonic(), -1
        while True:
            attempt += 1
            try:
                self.result.make_calls += 1
                if self._make_in_transaction(key, claim, started):
                    self._succeeded(key, started, time.time() - started, None)
                return
            except Interrupted as e:  # djhpc's own stop signal (a preempted worker): the key goes back
                self._give_back(key, claim, started, e)
                raise
            except BaseException as e:
                then = self._after_failure(key, claim, started, e, attempt, since)
                if then is _RAISE:
                    raise
                if then is _DONE:
                    return

    def _after_failure(self, key, claim, started, e: BaseException, attempt: int, since: float):
        """What a make that raised ``e`` means: _AGAIN (a transient database failure: make it again), _DONE, or
        _RAISE. djhpc's own errors mean what djhpc meant only where djhpc (or the driver) raised them: the same
        class raised by make() itself is that key's error, as DataJoint records it (dj.errors is make's too)."""
        if raised_by_djhpc(e):
            if isinstance(e, ReservationLostError):
                log.warning("%s", e)
                self._lost(key, started, str(e))
                return _DONE
            if isinstance(e, KeyMadeElsewhere):
                log.info("%s", e)
                if claim:
                    self._give_back(key, claim, started, e, outcome="lost")
                return _DONE
            if isinstance(e, (TransientError, LostConnectionError)):
                return self._transient(key, claim, started, e, attempt, since)
            if isinstance(e, MakeTimeout):
                self.timed_out = (key, claim, e, started)
                return _DONE
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            self._ended_in_make(key, claim, started, e)
            return _RAISE
        if not isinstance(e, Exception):  # GeneratorExit and the like: not a make's failure
            return _RAISE
        if claim and self._lost_quietly(claim):
            log.warning("%s failed after its reservation was reclaimed: dropped (%s)", key, e)
            self._lost(key, started, error_message(e))
            return _DONE
        self._failed(key, claim, e, started)
        return _DONE

    def _transient(self, key, claim, started, e, attempt: int, since: float):
        """A deadlock or a lost connection inside make's transaction: make the key again, with back-off."""
        if _gives_up(e, attempt, since):
            self._failed(key, claim, e, started)
            return _DONE
        log.warning("%s; retrying %s", e, key)
        backoff.sleep(backoff.delay(attempt, first=0.1, cap=5))
        if claim and not self._still_mine(claim):
            log.warning("reservation of %s was reclaimed while the database was away", key)
            self._lost(key, started, "reclaimed while the database was away")
            return _DONE
        return _AGAIN

    def _give_back(self, key, claim, started, exc, outcome="interrupted"):
        if claim:
            try:
                self.jobs.release(claim)
            except Exception as failure:  # reclaimed later if this fails
                log.warning("could not give back %s (%s): it is reclaimed once this worker is seen dead",
                            key, failure)
        if outcome == "lost":
            self.result.skipped_count += 1
        self._report(key, started, outcome, str(exc) or type(exc).__name__)

    def _ended_in_make(self, key, claim, started, exc: KeyboardInterrupt | SystemExit):
        """make() raised KeyboardInterrupt or SystemExit (sys.exit, or a handler of its own): the key's error with
        DataJoint's message, not a worker death later; the caller raises it on and the loop's end gives back the
        batch's other keys. djhpc's own stop signals raise Interrupted instead, which gives the key back."""
        message = error_message(exc)
        if isinstance(exc, SystemExit):
            hint = f"make() called sys.exit({exc.code!r}): the worker stopped; fix make, then djhpc jobs retry"
        else:
            hint = "make() was interrupted (KeyboardInterrupt): djhpc jobs retry runs the key again"
        log.warning("%s: %s", key, hint)
        if claim:
            try:
                self.jobs.fail(claim, message, f"{traceback.format_exc()}\n{hint}\n")
            except Exception as e:  # the reaper finds the key once this worker is gone
                log.warning("could not record the error of %s (%s)", key, e)
        self.result.error_list.append((key, exc if self.o.return_exception_objects else message))
        self._report(key, started, "error", message)

    def _succeeded(self, key, started, elapsed, duration):
        self.result.success_count += 1
        self.policy.made(elapsed)
        if self.o.walltime and duration is not None:
            self.o.walltime.observe(duration)
        self._report(key, started, "success", "")

    def _collect(self, flight: InFlight | None):
        """Account for a key whose commit was sent without waiting: made, lost, to be made again, or failed.
        Never raises: an error that populate must raise is kept in ``raise_after``."""
        if flight is None:
            return
        verdict, err = self.inflight.verdict(flight, self._still_mine)
        if verdict is Verdict.MADE:
            self._succeeded(flight.key, flight.started, flight.elapsed, flight.elapsed)
        elif verdict is Verdict.LOST:
            log.warning("%s", err)
            self._lost(flight.key, flight.started, str(err))
        elif verdict is Verdict.AGAIN:
            log.warning("%s; making %s again", err, flight.key)
            self.held.appendleft(flight.claim)  # not committed: next in line
        else:
            self._record_failure(flight.key, flight.claim, err, flight.started)

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
        for delay in backoff.delays(first=0.2, cap=5, attempts=TRANSIENT_RETRIES, jitter="none"):
            try:
                return self.jobs.still_mine(claim)
            except (TransientError, LostConnectionError):
                backoff.sleep(delay)
        return self.jobs.still_mine(claim)

    def _failed(self, key, claim, exc, started):
        message = error_message(exc)
        if isinstance(exc, MemoryError) and not str(exc):  # say what ran out, not "MemoryError: "
            message = f"MemoryError: make() ran out of memory (this worker's peak RSS {usage_snapshot()[1]:.0f} MB)"
        # an error read from a commit's reply was never raised here: its own text is all there is
        stack = traceback.format_exc() if sys.exc_info()[1] is exc else "".join(
            traceback.format_exception_only(type(exc), exc))
        if claim:
            attempts = max(self.o.max_attempts, claim.failures + 1) if self.o.max_attempts > 1 else 1
            try:
                self.jobs.fail(claim, message, stack, max_attempts=attempts,
                               retry_delay_seconds=self.o.retry_delay_seconds)
            except Exception:  # the error row is a courtesy; the original error matters more
                log.warning("could not record the error of %s: %s", key, sys.exc_info()[1])
        self.result.error_list.append((key, exc if self.o.return_exception_objects else message))
        self.policy.failed()
        self._report(key, started, "error", message)
        if not self.o.suppress_errors:
            raise exc

    def _report(self, key, started, outcome, message, ended: float | None | bool = True):
        if self.o.on_key:  # a log line per key: no password, whatever make's error quoted
            self.o.on_key(key, started, time.time() if ended is True else ended, outcome, self.conn.url.scrub(message))

    def _make_in_transaction(self, key: dict, claim: Claim | None, first_started: float) -> bool:
        """Make one key and end its transaction with the closing statements. True when it committed; False when
        its commit is in flight (a reserved key on MySQL: ``self.inflight``, confirmed while the next is made)."""
        started = time.time()
        cpu_before, _ = usage_snapshot()
        closing = Closing([], None)

        def closing_statements():
            """Called once make() has run: the fenced completion (which also requires the key's row in the
            table) and the history row of its duration."""
            nonlocal closing
            self.deadline.disarm()  # make has returned: the commit is not cut short
            if claim:
                made = Made(self.target.name, self.target.full_table_name, self.names,
                            self.target.encode(key, self.names), self.target.inserted())
                closing = self.jobs.closing(claim, made)
            statements = list(closing.statements)
            if self.history:
                cpu_after, rss_mb = usage_snapshot()
                statements.append(self.history.record_statement(
                    self.target.table_name, claim.key_hash if claim else key_hash(key), self.identity, started,
                    time.time() - started, cpu_after - cpu_before, rss_mb))
            return statements, closing.fence_at

        # MySQL: one round trip: make's inserts, completion, history, COMMIT, and BEGIN for the next key held;
        # a reserved key's reply is read while the next key is made
        wait = claim is None or self.target.wait_for_commit
        self.deadline.arm()
        try:
            pending = self.target.make(key, closing_statements, make_kwargs=self.o.make_kwargs,
                                       begin_next=bool(self.held) and self.target.begins_ahead, wait=wait)
        finally:
            self.deadline.disarm()
        if not wait:
            self.inflight.send(InFlight(key, claim, first_started, time.time() - first_started, pending, closing))
            return False
        err = closing.error(pending, self._still_mine)
        if err is not None:
            raise err
        if self.o.walltime:
            self.o.walltime.observe(time.time() - started)
        return True


def error_message(exc: BaseException) -> str:
    """A make's error as DataJoint writes it into the jobs table: "ValueError: bad item 3", or the bare class
    name when the exception has no text ("KeyboardInterrupt")."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: where djhpc raises its own errors: its modules, and the database drivers under its connection
_OWN_MODULES = frozenset({"djhpc", "pymysql", "sqlite3"})


def raised_by_djhpc(exc: BaseException) -> bool:
    """Whether djhpc (or the driver under it) raised ``exc``, told by the module of the innermost frame of its
    traceback, never by its class: make() may raise any class of dj.errors itself. An error that was never raised
    (a commit's reply read later) is djhpc's."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__") or ""
    return module.partition(".")[0] in _OWN_MODULES


def _check_timeout(value, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise UsageError(f"{name} must be a number of seconds > 0 (got {value!r})")


def _gives_up(error: Exception, attempt: int, since: float) -> bool:
    """Whether a transient failure ends the retrying: after TRANSIENT_RETRIES tries; a full disk (SQLite) is
    waited for as long as a server that went away (DJHPC_RECONNECT_SECONDS)."""
    if isinstance(error, DiskFullError):
        return time.monotonic() - since > reconnect_seconds()
    return attempt >= TRANSIENT_RETRIES


def _current_worker(conn) -> Worker:
    job_id, task_id = taskenv.current().ids()
    return Worker.current(conn, job_id=job_id, task_id=task_id)


def _task_position() -> float | None:
    return taskenv.current().position()


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
