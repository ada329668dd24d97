"""What a commit sent ahead of its reply, and an insert queued for later, hand back to the caller."""

from __future__ import annotations

from ..errors import FenceError


class PendingCommit:
    """A commit and the statements that close its transaction, sent to the server.

    ``result()`` reads the reply if it has not been read yet and returns None when the transaction committed,
    else its error, without raising it. ``failed_at`` is the index, among the closing statements passed, of the
    one that failed (None when nothing failed, or make's own insert or the COMMIT did): callers recognise a
    failure by the position of the statement, never by its message.
    """

    def __init__(self, session=None, *, queued=(), statements: int = 0, context: str = "",
                 one_row_at: int | None = None):
        self._session = session
        self.one_row_at = one_row_at
        self.checked_by_next = False  # the statement after the fence checks it (ChecksFence)
        self.queued = queued
        self.statements = statements
        self.context = context
        self.error: Exception | None = None
        self.failed_at: int | None = None
        self.done = session is None

    def settle(self, error: Exception | None, failed_at: int | None = None):
        self.error, self.failed_at, self.done = error, failed_at, True

    def result(self) -> Exception | None:
        if not self.done:
            self._session.settle(self)
        return self.error

    @classmethod
    def settled(cls, error: Exception | None = None, failed_at: int | None = None) -> PendingCommit:
        pending = cls()
        pending.settle(error, failed_at)
        return pending


class ChecksFence(tuple):
    """A closing statement ``(sql, params)`` with a variant, ``checked``, that also fails (error 1242) unless the
    statement before it changed exactly one row: placed right after a fence, it saves the fence_check statement
    (MySQL's commit packet). Elsewhere it is the plain statement."""

    def __new__(cls, sql: str, params: tuple, checked: str):
        self = super().__new__(cls, (sql, params))
        self.checked = checked
        return self


FENCE_CHECK_FAILED = 1242  # the checked statements' error: a subquery that returns two rows


def run_in_turn(statements, execute, errors, *, one_row_at: int | None = None,
                context: str = "") -> PendingCommit | None:
    """Run closing statements one by one with ``execute(sql, params)``, which returns the rows changed. The first
    failure (an error among ``errors``, or the statement at ``one_row_at`` changing other than one row) comes back
    as a settled PendingCommit that names its position; None when every statement ran. The caller rolls back."""
    for index, (sql, params) in enumerate(statements):
        try:
            changed = execute(sql, params)
        except errors as e:
            return PendingCommit.settled(e, index)
        if index == one_row_at and changed != 1:
            return PendingCommit.settled(FenceError(f"{context}: changed {changed} rows, not 1"), index)
    return None


class DeferredCursor:
    """What a queued write returns: the row count it will have if nothing conflicts."""

    def __init__(self, rowcount: int):
        self.rowcount = rowcount
        self.lastrowid = None

    def fetchall(self):
        return []

    def fetchone(self):
        return None
