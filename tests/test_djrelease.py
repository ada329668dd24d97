"""djhpc/djrelease.py: DataJoint's connection given back while make_compute is idle, and opened again. The real
thing, with DataJoint 0.14.10 and 2.3.5 and the server's process list, is in tests/test_djtarget.py; here the
rules, on a stand-in for DataJoint's Connection (query, close, connect, _in_transaction)."""

from __future__ import annotations

import time

import pymysql
import pytest

from djhpc import djrelease
from djhpc.djrelease import IdleRelease, computes_apart


class FakeDataJointConnection:
    def __init__(self, refusals=()):
        self.open = True
        self._in_transaction = False
        self.connection_id = 1
        self.log: list[str] = []
        self.refusals = list(refusals)  # errors connect() raises first, in turn

    def query(self, sql, args=()):
        assert self.open, "a statement on a closed connection"
        self.log.append(sql)
        return sql

    def close(self):
        self.open = False
        self.log.append("close")

    def connect(self):
        if self.refusals:
            raise self.refusals.pop(0)
        self.open = True
        self.log.append("connect")


def _wait_until(holds, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not holds():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_idle_connection_goes_and_comes_back_at_the_next_statement_and_at_the_end():
    conn = FakeDataJointConnection()
    release = IdleRelease(conn, 0.05)
    with release:
        _wait_until(lambda: release.releases == 1)
        assert not conn.open
        assert conn.query("SELECT 1") == "SELECT 1"  # reopened first
        _wait_until(lambda: release.releases == 2)  # and given back again once idle
    assert conn.open and conn.log == ["close", "connect", "SELECT 1", "close", "connect"]
    assert "query" not in vars(conn)  # DataJoint's own query method again


def test_a_connection_in_a_transaction_or_busy_is_kept():
    conn = FakeDataJointConnection()
    conn._in_transaction = True
    release = IdleRelease(conn, 0.01)
    with release:
        time.sleep(0.2)
    assert release.releases == 0 and conn.open and conn.log == []
    conn._in_transaction = False
    with IdleRelease(conn, 60) as quick:  # a compute shorter than release_after
        conn.query("SELECT 2")
    assert quick.releases == 0 and conn.log == ["SELECT 2"]


def test_wrap_runs_the_compute_with_the_connection_released_and_returns_its_result():
    conn = FakeDataJointConnection()
    release = IdleRelease(conn, 0.02)

    def make_compute(key, value):
        _wait_until(lambda: release.releases == 1)
        return (2 * value,)

    assert release.wrap(make_compute)({"item": 1}, 21) == (42,)
    assert conn.open and conn.log == ["close", "connect"]


def test_reopening_waits_for_a_free_connection_and_other_errors_raise(monkeypatch):
    monkeypatch.setattr(djrelease.backoff, "sleep", lambda seconds: None)
    full = pymysql.err.OperationalError(1040, "Too many connections")
    conn = FakeDataJointConnection(refusals=[full, full])
    release = IdleRelease(conn, 0.01)
    with release:
        _wait_until(lambda: release.releases == 1)
    assert conn.open and conn.log == ["close", "connect"]

    # DataJoint's own error around the driver's (max_user_connections) is waited for too
    wrapped = RuntimeError("DataJoint's own error")
    wrapped.__cause__ = pymysql.err.OperationalError(1203, "max_user_connections")
    conn = FakeDataJointConnection(refusals=[wrapped])
    with IdleRelease(conn, 0.01) as release:
        _wait_until(lambda: release.releases == 1)
    assert conn.open and conn.refusals == []
    # a refusal that is no want of connections is not waited for
    denied = pymysql.err.OperationalError(1045, "Access denied")
    conn = FakeDataJointConnection(refusals=[denied])
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"), IdleRelease(conn, 0.01) as release:
        _wait_until(lambda: release.releases == 1)
    assert conn.refusals == []


def test_a_compute_that_raises_keeps_its_error_when_reopening_fails(monkeypatch):
    monkeypatch.setattr(djrelease.backoff, "sleep", lambda seconds: None)
    conn = FakeDataJointConnection(refusals=[pymysql.err.OperationalError(2003, "Can't connect")])
    release = IdleRelease(conn, 0.01)

    def make_compute():
        _wait_until(lambda: release.releases == 1)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        release.wrap(make_compute)()
    assert not conn.open and conn.refusals == []


def test_only_a_tripartite_make_computes_apart():
    class Classic:
        def make(self, key):
            pass

    class Tripartite:
        def make_fetch(self, key):
            pass

        def make_compute(self, key):
            pass

        def make_insert(self, key):
            pass

    assert computes_apart(Tripartite()) and not computes_apart(Classic())
