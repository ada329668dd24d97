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
