"""A stop signal (KeyboardInterrupt, djhpc's Interrupted) that lands in a COMMIT before it ran: the transaction is
rolled back, not left open with the connection believing it ended (whatever came next would then be written into
it and lost at exit)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("backend", ["sqlite", "mysql"], indirect=True)
def test_a_stop_signal_before_the_commit_rolls_the_transaction_back(db, target, monkeypatch):
    real_commit = db.session.commit

    def stopped():
        monkeypatch.setattr(db.session, "commit", real_commit)
        raise KeyboardInterrupt

    monkeypatch.setattr(db.session, "commit", stopped)
    with pytest.raises(KeyboardInterrupt), db.transaction:
        db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (1,))
    assert not db.in_transaction
    with db.transaction:
        db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (2,))
    db.close()
    assert [r[0] for r in db.query(f"SELECT k FROM {target}").fetchall()] == [2]


class _StoppedAfterBegin:
    """The SQLite driver connection, but a stop signal lands just after BEGIN IMMEDIATE ran (once)."""

    def __init__(self, raw):
        self.real, self.hit = raw, False

    def execute(self, sql, *args):
        out = self.real.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE" and not self.hit:
            self.hit = True
            raise KeyboardInterrupt
        return out

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_a_stop_signal_just_after_begin_immediate_is_rolled_back(db, target):
    """SQLite took the write lock, but the signal came before djhpc noted it: the rollback still ends the
    transaction (it looks at the driver's in_transaction), so the next one commits."""
    db.query("SELECT 1")
    real = db._raw
    db._raw = _StoppedAfterBegin(real)
    try:
        with pytest.raises(KeyboardInterrupt), db.transaction:
            db.query(f"INSERT INTO {target} VALUES (?)", (1,))
    finally:
        db._raw = real
    assert not real.in_transaction
    with db.transaction:
        db.query(f"INSERT INTO {target} VALUES (?)", (2,))
    assert [r[0] for r in db.query(f"SELECT k FROM {target}").fetchall()] == [2]
