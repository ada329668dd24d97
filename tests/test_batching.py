"""The batch policy, without a database: how many keys a worker reserves and offers."""

from __future__ import annotations

import pytest

from djhpc.batching import (
    CONTENDED_BATCH,
    CONTENDED_OFFER,
    HOLD_SECONDS,
    MAX_BATCH,
    MAX_RESEEKS,
    OFFER_MAX,
    BatchPolicy,
)


def test_batches_grow_while_makes_are_fast_at_most_doubling():
    p = BatchPolicy()
    sizes = []
    for _ in range(8):
        p.made(0.001)
        sizes.append(p.batch)
    assert sizes == [2, 4, 8, 16, 32, 32, 32, 32] and MAX_BATCH == 32


def test_slow_makes_are_taken_one_at_a_time():
    p = BatchPolicy(batch=16)
    p.made(HOLD_SECONDS * 2)
    assert p.batch == 1
    p.made(HOLD_SECONDS / 4)
    assert p.batch == 2  # doubling from 1, below the four that would fit
    p.made(HOLD_SECONDS / 4)
    assert p.batch == 4


def test_a_failure_drops_the_batch_to_one():
    p = BatchPolicy(batch=32)
    p.failed()
    assert p.batch == 1


def test_among_other_walks_batches_are_smaller_and_offers_larger():
    p = BatchPolicy(batch=32)
    assert p.offer(p.want(32)) == 32  # alone: offer what is wanted
    assert p.met_others(won_nothing=False, walk_done=False) is None
    p.made(0.0001)
    assert p.batch == CONTENDED_BATCH
    assert p.offer(p.want(32)) == 2 * CONTENDED_BATCH
    assert p.offer(100) == OFFER_MAX
    assert p.offer(1) == CONTENDED_OFFER  # one key wanted: a few offered, so held keys are passed over at once


def test_a_worker_taking_one_key_at_a_time_never_counts_what_is_left():
    """Issue 16: the count caps batches; slow makes are taken one at a time, so each count (which reads every key
    left) would be wasted."""
    p = BatchPolicy()
    p.met_others(won_nothing=False, walk_done=False)
    p.made(HOLD_SECONDS * 4)
    assert p.batch == 1 and not p.count_due(1e9)
    p.made(0.001)
    assert p.batch == 2 and p.count_due(1e9)


def test_want_respects_the_budget_and_the_end_game_cap():
    p = BatchPolicy(batch=32)
    assert p.want(5) == 5
    assert p.want(0) == 1  # never zero: the budget check stops the loop, not the batch size
    p.end_game(left=40, held=30, holders=5, seconds=0.001, now=100.0)
    assert p.end_cap == 1 and p.want(32) == 1  # 10 free keys, 5 holders: half a fair share rounds to 1
    p.end_game(left=1000, held=0, holders=2, seconds=0.001, now=100.0)
    assert p.want(32) == 32


def test_counts_are_due_only_among_others_and_not_too_often():
    p = BatchPolicy(batch=4)
    assert not p.count_due(0.0)  # alone: never counts
    p.met_others(won_nothing=False, walk_done=False)
    assert p.count_due(0.0)
    p.end_game(left=10, held=0, holders=1, seconds=0.1, now=50.0)  # a count that took 0.1 s: at most 2 %
    assert not p.count_due(54.9) and p.count_due(55.0)


@pytest.mark.parametrize("walk_done", [False, True])
def test_a_walk_that_caught_up_with_another_jumps_a_bounded_number_of_times(walk_done):
    p = BatchPolicy()
    jumps = [p.met_others(won_nothing=True, walk_done=walk_done) for _ in range(MAX_RESEEKS + 5)]
    taken = [j for j in jumps if j is not None]
    assert len(taken) == (0 if walk_done else MAX_RESEEKS)
    assert all(0 <= j < 1 for j in taken)
    assert p.contended


def test_among_many_holders_each_counts_less_often():
    """Issue 16: each count reads every key left; among W holders each worker counts every COUNT_SECONDS x W/4,
    so rows read per key stay flat in W."""
    from djhpc.batching import COUNT_SECONDS, COUNTERS

    p = BatchPolicy(batch=4)
    p.met_others(won_nothing=False, walk_done=False)
    p.end_game(left=2000, held=256, holders=256, seconds=0.001, now=10.0)
    later = 10.0 + COUNT_SECONDS * 256 / COUNTERS
    assert not p.count_due(later - 0.01) and p.count_due(later)
