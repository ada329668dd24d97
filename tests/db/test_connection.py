"""MySQL connection: inserts queued inside make() and commits whose reply is read while the next key is made."""

from __future__ import annotations

import pytest

import djhpc as dj
from djhpc.errors import DuplicateError, LostConnectionError

pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


def rows(db, target) -> list[int]:
    return [r[0] for r in db.query(f"SELECT k FROM {target} ORDER BY k").fetchall()]


def test_queued_inserts_go_with_the_commit(db, target):
    db.start_transaction()
    db.defer_writes = True
    before = db.stats.statements
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    db.query(f"INSERT INTO {target} (k) VALUES (%s)", [(2,), (3,)], many=True)
    assert db.stats.statements == before  # nothing sent yet
    db.commit_with([("SELECT 1", ())])
    assert db.stats.statements == before + 1
    db.drop_deferred()
    assert rows(db, target) == [1, 2, 3]


def test_a_read_sends_the_queued_inserts_first(db, target):
    db.start_transaction()
    db.defer_writes = True
    db.query(f"INSERT INTO {target} VALUES (%s)", (5,))
    assert db.query(f"SELECT COUNT(*) FROM {target}").fetchone()[0] == 1  # sees its own insert
    db.rollback()
    assert rows(db, target) == []


def test_a_commit_not_waited_for_is_confirmed_before_the_next_statement(db, target):
    db.start_transaction()
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    pending = db.commit_with([], wait=False)
    other = dj.Connection(db.url)
    try:
        assert rows(db, target) == [1]  # this statement read the commit's reply first
        assert pending.result() is None
        assert rows(other, target) == [1]
    finally:
        other.close()


def test_a_failed_commit_is_kept_for_its_owner_and_the_next_transaction_goes_on(db, target):
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    db.start_transaction()
    db.defer_writes = True
    db.query(f"INSERT INTO {target} VALUES (%s)", (2,))
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))  # a duplicate: the packet stops here
    pending = db.commit_with([], begin_next=True, wait=False)
    db.defer_writes = False
    db.start_transaction()  # begun by the packet, had it not failed
    db.query(f"INSERT INTO {target} VALUES (%s)", (3,))  # reads the reply: rolled back, begun again
    db.commit()
    err = pending.result()
    assert isinstance(err, DuplicateError)
    assert "queued at test_connection.py:" in str(err)
    assert rows(db, target) == [1, 3]  # 2 went with the failed commit; 3 in a transaction of its own
    assert pending.result() is err  # the same answer however often it is asked


def test_a_connection_lost_before_the_reply_says_so_and_loses_the_open_transaction(db, target):
    other = dj.Connection(db.url)
    try:
        db.start_transaction()
        db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
        pending = db.commit_with([("SELECT SLEEP(5)", ())], begin_next=True, wait=False)
        other.query(f"KILL {int(db.connection_id)}")
        db.start_transaction()
        with pytest.raises(LostConnectionError):
            db.query(f"INSERT INTO {target} VALUES (%s)", (2,))
        assert isinstance(pending.result(), LostConnectionError)
        db.rollback()
        assert rows(db, target) == []  # reconnects; the killed packet never reached its COMMIT
    finally:
        other.close()


def test_a_reply_read_half_way_when_a_signal_arrives_leaves_the_outcome_unknown(db, target, monkeypatch):
    db.start_transaction()
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    pending = db.commit_with([("SELECT 1", ())], wait=False)
    raw = db._raw
    real = type(raw).next_result

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(raw), "next_result", interrupted)
    with pytest.raises(KeyboardInterrupt):
        db.query("SELECT 1")
    monkeypatch.setattr(type(raw), "next_result", real)
    assert isinstance(pending.result(), LostConnectionError)  # may or may not be made: the caller checks
    assert rows(db, target) == [1]  # a new session; the commit itself went through


def test_queued_inserts_larger_than_a_packet_are_sent_in_pieces(db, schema):
    """Rows that together pass the server's max_allowed_packet: queued in statements of about a megabyte,
    sent before the queue grows past one."""
    blobs = db.dialect.table(schema.database, "blobs")
    db.query(f"CREATE TABLE {blobs} (k INT PRIMARY KEY, b LONGBLOB)")
    limit = int(db.query("SELECT @@max_allowed_packet").fetchone()[0])
    n = limit // 500_000 + 4
    db.start_transaction()
    db.defer_writes = True
    before = db.stats.statements
    db.query(f"INSERT INTO {blobs} (k, b) VALUES (%s, %s)", [(i, b"x" * 500_000) for i in range(n)], many=True)
    assert db.stats.statements > before  # sent while make goes on, not kept for the commit
    db.commit_with([])
    db.drop_deferred()
    assert db.query(f"SELECT COUNT(*), SUM(LENGTH(b)) FROM {blobs}").fetchone() == (n, n * 500_000)


def test_a_reply_never_read_because_the_connection_was_replaced_is_unknown_not_made(db, target):
    db.start_transaction()
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    pending = db.commit_with([], wait=False)
    db.reconnect()  # the packet's reply went with the old connection
    assert isinstance(pending.result(), LostConnectionError)  # may or may not be made: the caller checks
