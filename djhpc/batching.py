"""How many keys a worker reserves at once: a pure policy, testable without a database.

Batches hold about HOLD_SECONDS of work: fast makes share a reservation, slow ones are taken one at a time,
so that no worker ends the run with keys in hand that idle workers could make. Among other walks
(``contended``) batches are smaller, offers larger than the batch, and near the end of the keys a batch is
at most half a fair share of what nobody holds yet (guided self-scheduling).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_BATCH = 32
CONTENDED_BATCH = 8
HOLD_SECONDS = 0.5  # work a batch holds
COUNT_SECONDS = 0.25  # among other workers, count what is left at most this often (and at most 2 % of the time)
COUNTERS = 4  # among many holders, counts per COUNT_SECONDS over all of them
MAX_RESEEKS = 16  # jumps per worker after losing races: bounded, so the end game cannot spin
FREE_JUMPS = 2  # jumps before a worker counts what is left (a count reads every key: the end game's sign)
END_WALK_SHARE = 4  # keys left per key held below which the end game walks on instead of jumping
OFFER_MAX = 128  # keys offered at most in one reservation
CONTENDED_OFFER = 16  # keys offered at least among other walks: one reservation passes over others' held keys


def end_game_batch(left: int, held: int, holders: int) -> int:
    """The most keys to reserve at once when ``left`` keys are not made yet, ``held`` of them reserved by
    ``holders`` workers: half a fair share of the keys nobody holds (guided self-scheduling), so that near
    the end workers run out of work together instead of some waiting on another's batch."""
    free = max(left - held, 0)
    return max(1, min(MAX_BATCH, -(-free // (2 * max(holders, 1)))))


@dataclass
class BatchPolicy:
    """The batch size of one worker, from what its makes took and what its reservations met."""

    batch: int = 1
    contended: bool = False  # set once this worker met keys others held
    end_cap: int = MAX_BATCH  # batch limit near the end of the keys (see end_game)
    next_count_at: float = 0.0  # monotonic time of the next count of keys left
    reseeks: int = 0
    end_walk: bool = False  # the end of the keys: walk on through what is left with full offers, no more jumps

    def want(self, budget: int) -> int:
        """Keys to reserve now, with ``budget`` keys left to this worker (limit, max_calls)."""
        return max(1, min(self.batch, budget, self.end_cap))

    def offer(self, want: int) -> int:
        """Keys to offer for ``want``: among other walks twice as many and at least CONTENDED_OFFER, since some
        will turn out held (the statement takes the first free ones: a reservation that wins nothing costs a
        whole round of statements, offering more costs a few index reads); in the end walk, all it may."""
        if self.end_walk:
            return OFFER_MAX
        return min(OFFER_MAX, max(CONTENDED_OFFER, 2 * want)) if self.contended else want

    def made(self, seconds: float):
        """A make took ``seconds``: hold about HOLD_SECONDS of work (fewer keys among other walks); batches at
        most double from one make to the next."""
        limit = CONTENDED_BATCH if self.contended else MAX_BATCH
        fit = int(HOLD_SECONDS / seconds) if seconds > 0 else limit
        self.batch = max(1, min(limit, fit, self.batch * 2))

    def failed(self):
        """A make failed: the next keys are taken one at a time."""
        self.batch = 1

    def count_due(self, now: float) -> bool:
        """Whether to count the keys left along with the next reservation: only among other walks, and only
        while batches hold more than one key (the count caps the batch; one key at a time needs no cap)."""
        return self.contended and self.batch > 1 and now >= self.next_count_at

    def end_game(self, left: int, held: int, holders: int, seconds: float, now: float):
        """Counts read with a reservation that took ``seconds``: cap the batch, count again later; among many
        holders less often (each count reads every key left: with W workers counting every COUNT_SECONDS, rows
        read per key would grow with W)."""
        self.end_cap = end_game_batch(int(left), int(held), int(holders))
        among = max(1.0, int(holders) / COUNTERS)
        self.next_count_at = now + max(COUNT_SECONDS * among, 50 * seconds)

    def met_others(self, won_nothing: bool, walk_done: bool) -> float | None:
        """Some offered keys were held. Returns where to jump (a fraction of the keys) when every key offered
        was held (this walk caught up with another), else None."""
        self.contended = True
        if won_nothing and self.reseeks < MAX_RESEEKS and not walk_done and not self.end_walk:
            self.reseeks += 1
            return random.random()
        return None

    def count_before_jumping(self) -> bool:
        """Whether to count what is left before this jump: after FREE_JUMPS jumps that found only held keys."""
        return self.reseeks > FREE_JUMPS

    def after_count(self, left: int, held: int) -> str:
        """What a walk that won nothing does once it has counted: "stop" when every key left is held,
        "walk" on through them (the end game: few keys left for each one held, so a jump would land among held
        keys again), else "jump"."""
        if left <= held:
            return "stop"
        if left < END_WALK_SHARE * max(held, 1):
            self.end_walk = True
            return "walk"
        return "jump"
