"""Connection.release_if_idle: a long make gives its MySQL connection back and the next statement opens another,
beginning the open transaction again, as long as nothing of the session would be lost (issue 16: arrays larger
than the server's max_connections)."""

from __future__ import annotations

import threading

import pytest

import djhpc as dj
from djhpc.db.connection import Connection

on_mysql = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


def rows(db, target) -> list[int]:
    return [r[0] for r in db.query(f"SELECT k FROM {target} ORDER BY k").fetchall()]


@pytest.fixture
def other(db):
    c = Connection(db.url)
    yield c
    c.close()


def _alive(other, connection_id: int) -> bool:
    return bool(other.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                            (connection_id,)).fetchone()[0])


@on_mysql
def test_a_make_that_only_read_releases_and_commits_on_a_new_session(db, target, other):
    db.start_transaction()
    db.defer_writes = True
    assert db.query(f"SELECT COUNT(*) FROM {target}").fetchone()[0] == 0
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))  # queued: still nothing sent in the transaction
    first = db.connection_id
    assert db.release_if_idle(0)
    assert not _alive(other, first) and db.releases == 1
    db.query(f"INSERT INTO {target} (k) VALUES (%s)", [(2,), (3,)], many=True)  # queued without reopening
    assert db._raw is None
    pending = db.commit_with([(f"INSERT INTO {target} VALUES (%s)", (4,))])
    assert pending.result() is None and db.connection_id != first
    db.defer_writes = False
    assert rows(other, target) == [1, 2, 3, 4]
    assert not db.release_if_idle(3600)  # used just now


@on_mysql
def test_a_read_after_the_release_begins_the_transaction_again(db, target, other):
    db.start_transaction()
    db.defer_writes = True
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    assert db.release_if_idle(0)
    other.query(f"INSERT INTO {target} VALUES (%s)", (9,))
    # a new session, a new snapshot: the read sends the queued insert, in the transaction begun again
    assert rows(db, target) == [1, 9]
    assert not db.release_if_idle(0)  # a write was sent: it would go with the session
    db.rollback()
    db.defer_writes = False
    assert rows(other, target) == [9]


@on_mysql
@pytest.mark.parametrize("statement", ["UPDATE {t} SET k = k + 1", "SELECT k FROM {t} FOR UPDATE",
                                       "SELECT GET_LOCK('djhpc-test-release', 0)"])
def test_a_session_holding_a_change_or_a_lock_is_kept(db, target, statement):
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    db.start_transaction()
    db.query(statement.format(t=target))
    assert not db.release_if_idle(0)
    db.rollback()
    assert db.release_if_idle(0)  # outside the transaction nothing is held
    assert rows(db, target) == [1]


@on_mysql
def test_a_commit_whose_reply_is_unread_is_confirmed_before_the_release(db, target, other):
    db.start_transaction()
    db.defer_writes = True
    db.query(f"INSERT INTO {target} VALUES (%s)", (1,))
    pending = db.commit_with([(f"INSERT INTO {target} VALUES (%s)", (1,))], begin_next=True, wait=False)
    db.defer_writes = False
    db.start_transaction()  # the next key's transaction, begun in the packet
    assert db.release_if_idle(0)
    assert isinstance(pending.result(), dj.errors.DuplicateError)  # read by the release, kept for its owner
    assert rows(db, target) == []  # the transaction begun again; the failed commit wrote nothing
    db.commit()
    assert rows(other, target) == []


@on_mysql
def test_a_statement_running_in_another_thread_keeps_the_connection(db, target):
    db.query("SELECT 1")
    inside, leave = threading.Event(), threading.Event()

    def hold():
        with db.guard():
            inside.set()
            leave.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(30)
    try:
        assert not db.release_if_idle(0)
    finally:
        leave.set()
        t.join()
    assert db.release_if_idle(0) and rows(db, target) == []


def test_sqlite_is_never_released(tmp_path):
    c = Connection(f"sqlite:///{tmp_path}/x.db")
    c.query("SELECT 1")
    assert not c.release_if_idle(0)
    c.close()
