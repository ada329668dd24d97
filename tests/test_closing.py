"""Closing make's transaction: the fenced completion, recognised by its position in the reply, on both dialects."""

from __future__ import annotations

import pytest
from support.reservations import quiet

from djhpc.errors import DatabaseError, ReservationLostError


def insert_k(db, target, k):
    db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (k,))


def rows(db, target):
    return [r[0] for r in db.query(f"SELECT k FROM {target} ORDER BY k").fetchall()]


def close(db, closing, extra=(), wait=True):
    return db.commit_with(closing.statements + list(extra), one_row_at=closing.fence_at, wait=wait)


def test_a_held_reservation_commits_with_its_make(db, schema, target):
    jobs = quiet(db, schema.database)
    (claim,) = jobs.reserve("__t", [{"k": 1}])
    db.start_transaction()
    db.defer_writes = True
    insert_k(db, target, 1)
    closing = jobs.closing(claim)
    assert closing.error(close(db, closing)) is None
    db.drop_deferred()
    assert rows(db, target) == [1]
    assert jobs.counts("__t")["reserved"] == 0


@pytest.mark.parametrize("wait", [True, False])
def test_a_reclaimed_reservation_rolls_the_make_back(db, schema, target, wait):
    jobs, reaper = quiet(db, schema.database), quiet(db, schema.database)
    (claim,) = jobs.reserve("__t", [{"k": 1}])
    (row,) = reaper.reserved_rows()
    assert reaper.reclaim(row, status="pending", death=True, history=[], message="")
    db.start_transaction()
    db.defer_writes = True
    insert_k(db, target, 1)
    closing = jobs.closing(claim)
    pending = close(db, closing, wait=wait or db.is_sqlite)
    err = closing.error(pending)
    db.drop_deferred()
    assert isinstance(err, ReservationLostError) and pending.failed_at == closing.fence_at == 0
    assert rows(db, target) == []
    assert jobs.counts("__t")["pending"] == 1  # the reclaimed row is untouched


def test_a_failure_after_the_fence_is_not_taken_for_a_lost_reservation(db, schema, target):
    """Position decides: a closing statement that fails after the fence (a history row, say) is its own error."""
    jobs = quiet(db, schema.database)
    (claim,) = jobs.reserve("__t", [{"k": 1}])
    db.start_transaction()
    db.defer_writes = True
    insert_k(db, target, 1)
    closing = jobs.closing(claim)
    missing = db.dialect.table(schema.database, "no_such_history")
    pending = close(db, closing, [(f"INSERT INTO {missing} VALUES (1)", ())])
    err = closing.error(pending)
    db.drop_deferred()
    assert pending.failed_at == 1
    assert isinstance(err, DatabaseError) and not isinstance(err, ReservationLostError)
    assert rows(db, target) == []
    assert jobs.still_mine(claim)  # rolled back: the reservation is still held


def test_a_connection_lost_while_the_reply_is_read_is_no_statements_failure(db, schema):
    """Issue 15 (found by the kill -9 restart test): the server died after answering make's inserts; the lost
    connection is not the fence's failure (which would call a key still reserved lost, or not made)."""
    import pymysql

    from djhpc.db.pending import PendingCommit
    from djhpc.errors import LostConnectionError
    from djhpc.reservation import Claim, Closing

    if db.is_sqlite:
        closing = Closing([("DELETE ...", ())], 0, Claim("__t", {"k": 1}, "h", "tok"))
        pending = PendingCommit.settled(LostConnectionError("gone"), 0)
        assert isinstance(closing.error(pending, lambda c: True), LostConnectionError)
        return
    pending = PendingCommit(db.session, queued=[("INSERT ...", "insert", ""), ("INSERT ...", "insert", "")],
                            statements=2, context="complete", one_row_at=0)
    err, at = db.session._packet_error(pymysql.err.OperationalError(2013, "Lost connection"), pending, 2)
    assert isinstance(err, LostConnectionError) and at is None
