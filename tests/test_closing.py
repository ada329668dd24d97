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



def _history_row(db, schema, k):
    from djhpc.history import History
    from djhpc.reservation import Worker

    history = History(db, schema.database)
    history.ensure_table()
    return history, history.record_statement("__t", f"h{k}", Worker(), 0.0, 1.0, 0.5, 10.0)


def _make_and_close(db, jobs, target, k, record, reaper=None):
    """Reserve key k, make it (insert its row) and close the transaction with ``record`` after the fence; the
    closing, its outcome, and how many statements the server ran meanwhile (MySQL; None on SQLite). With
    ``reaper``, the reservation is reclaimed before the make."""
    (claim,) = jobs.reserve("__t", [{"k": k}])
    if reaper is not None:
        (row,) = [r for r in reaper.reserved_rows() if r.key_hash == claim.key_hash]
        assert reaper.reclaim(row, status="pending", death=True, history=[], message="")
    before = _questions(db)
    db.start_transaction()
    db.defer_writes = True
    insert_k(db, target, k)
    closing = jobs.closing(claim)
    pending = close(db, closing, [record])
    err = closing.error(pending)
    db.drop_deferred()
    after = _questions(db)
    return closing, pending, err, None if before is None else after - before


@pytest.mark.parametrize("reclaimed", [False, True])
def test_the_history_row_after_the_fence_checks_it_in_one_statement_less(db, schema, target, reclaimed):
    """MySQL: the history row that follows the fenced completion checks the fence itself (ChecksFence), so the
    packet carries no separate fence_check; a reclaimed reservation still fails at the fence and nothing commits."""
    jobs, reaper = quiet(db, schema.database), quiet(db, schema.database)
    history, record = _history_row(db, schema, 1)
    plain = (record[0], record[1])  # the same row without the check: the separate fence_check goes along
    _, _, err, sent_plain = _make_and_close(db, jobs, target, 2, plain)
    assert err is None
    closing, pending, err, sent = _make_and_close(db, jobs, target, 1, record, reaper if reclaimed else None)
    written = db.query(f"SELECT COUNT(*) FROM {history.table}").fetchone()[0]
    if reclaimed:
        assert isinstance(err, ReservationLostError) and pending.failed_at == closing.fence_at == 0
        assert rows(db, target) == [2] and written == 1
    else:
        assert err is None and rows(db, target) == [1, 2] and written == 2
        if sent is not None:
            assert sent == sent_plain - 1, (sent, sent_plain)


def test_a_history_row_that_fails_on_its_own_is_its_own_error_not_the_fences(db, schema, target):
    """The checked history row failing for another reason (its table is gone) is not taken for the fence's."""
    from djhpc.db.pending import ChecksFence

    jobs = quiet(db, schema.database)
    history, record = _history_row(db, schema, 1)
    missing = db.dialect.table(schema.database, "no_such_history")
    checked = getattr(record, "checked", record[0])
    broken = ChecksFence(record[0].replace(history.table, missing), record[1], checked.replace(history.table, missing))
    (claim,) = jobs.reserve("__t", [{"k": 1}])
    db.start_transaction()
    db.defer_writes = True
    insert_k(db, target, 1)
    closing = jobs.closing(claim)
    pending = close(db, closing, [broken])
    err = closing.error(pending)
    db.drop_deferred()
    assert pending.failed_at == 1
    assert isinstance(err, DatabaseError) and not isinstance(err, ReservationLostError)
    assert rows(db, target) == [] and jobs.still_mine(claim)


def _questions(db):
    """How many statements the server has run in this connection's session (MySQL); None on SQLite."""
    if db.is_sqlite:
        return None
    return int(db.query("SHOW SESSION STATUS LIKE 'Questions'").fetchone()[1])
