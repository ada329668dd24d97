"""One database connection per process: the URL, connect and reconnect, statements, transactions, counters.

The connection re-opens itself in a forked child (it never touches the parent's socket) and after the
server dropped it, unless a transaction was open: then the transaction is lost and the caller hears
``LostConnectionError``. What differs between drivers lives in one session class each:
``sqlite_session.SQLiteSession`` (WAL, the write lock taken late) and ``mysql_session.MySQLSession``
(multi-statement packets, queued inserts, commits confirmed while the next make runs).

``commit_with(statements)`` ends a transaction with the statements that close it (a reservation's fenced
completion, a history row) on both: it returns a ``PendingCommit`` whose ``result()`` is None once committed,
else the error, with ``failed_at`` the position of the closing statement that failed.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

from .. import backoff
from ..config import DatabaseURL, resolve_database_url
from ..errors import ConnectError, DatabaseError
from .dialects import DIALECTS, Dialect
from .mysql_session import MySQLSession
from .pending import PendingCommit
from .sqlite_session import SQLiteSession

log = logging.getLogger(__name__)

_SESSIONS = {"mysql": MySQLSession, "sqlite": SQLiteSession}

__all__ = ["Connection", "PendingCommit", "Stats", "conn"]


@dataclass
class Stats:
    """Round trips and commits since the connection was made: what the budget tests count."""

    statements: int = 0
    commits: int = 0

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.commits


class _Transaction:
    """``with conn.transaction:`` groups statements; an exception rolls everything back."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.start_transaction()
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        return False


class Connection:
    def __init__(self, url: str | DatabaseURL | None = None, *, connect_timeout: float = 10):
        self.url = url if isinstance(url, DatabaseURL) else resolve_database_url(url)
        self.dialect: Dialect = DIALECTS[self.url.scheme]
        self.connect_timeout = connect_timeout
        self.stats = Stats()
        self._raw = None
        self._pid = None
        self._depth = 0  # nesting of transaction()
        self.connection_id = 0
        #: called with the connection after each (re)connect, e.g. to take a worker's session lock again
        self.on_connect: list = []
        #: inside make(): writes are queued. SQLite runs them in one short write transaction at the end; MySQL
        #: sends inserts with the closing statements (commit_with), or before the next statement of another kind
        self.defer_writes = False
        self.session = _SESSIONS[self.dialect.name](self)

    # ------------------------------------------------------------------ lifecycle
    def __repr__(self):
        return f"Connection({self.url.redacted!r})"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    @property
    def raw(self):
        """The driver connection, opened on first use and again in a forked child."""
        if self._raw is None or self._pid != os.getpid():
            if self._pid is not None and self._pid != os.getpid():
                # forked: drop the parent's handle without closing it (closing would end the parent's session)
                self._forget()
                self._open()
            elif self._pid is not None:
                self.reconnect_with_backoff()  # it was lost: the server may be restarting
            else:
                self._open()  # first connection: a wrong URL fails at once
        return self._raw

    def _forget(self):
        self._raw = None
        self._depth = 0
        self.session.forget()

    def _open(self):
        self._raw = self.session.open()
        self._pid = os.getpid()
        for hook in self.on_connect:
            hook(self)

    def close(self):
        mine = self._raw is not None and self._pid == os.getpid()
        if mine:
            self.session.close()
            try:
                self._raw.close()
            except Exception:  # closing a dead connection may fail; nothing to keep
                pass
        self._raw = None
        self._pid = None
        self._depth = 0

    def reconnect(self):
        """Drop the connection and open a new one (any open transaction is lost)."""
        self._forget()
        self._open()

    def reconnect_with_backoff(self, give_up_after: float | None = None):
        """Reconnect after a drop, waiting longer each time; gives up after ``give_up_after`` seconds."""
        limit = give_up_after if give_up_after is not None else float(os.environ.get("DJHPC_RECONNECT_SECONDS", 60))
        for delay in backoff.delays(first=0.1, cap=5, seconds=limit):
            try:
                self._open()
                return
            except ConnectError:
                if delay is None:
                    raise
                backoff.sleep(delay)

    # ------------------------------------------------------------------ statements
    def query(self, sql: str, params=(), *, many: bool = False, context: str = ""):
        """Run one statement; returns the driver cursor (``fetchall``, ``rowcount``, ``lastrowid``)."""
        return self.session.query(sql, params, many, context)

    def run(self, name: str, params=(), **fmt):
        """Run a named query from the dialect's ``.sql`` file; ``fmt`` fills ``{table}``-style names."""
        sql = self.dialect.queries[name]
        return self.query(sql.format(**fmt) if fmt else sql, params, context=name)

    def has_table(self, table: str) -> bool:
        """Whether ``table`` (a quoted, qualified name) exists: one cheap read, where ``CREATE TABLE IF NOT
        EXISTS`` of an existing table costs a DDL statement on MySQL (milliseconds when workers start together)."""
        try:
            self.query(f"SELECT 1 FROM {table} LIMIT 0", context="has_table").fetchall()
        except DatabaseError:
            return False
        return True

    def script(self, statements, *, begin_next: bool = False, context: str = "") -> list[tuple[int, list]]:
        """MySQL, outside a transaction: ``statements`` (sql, params) in one round trip; (rowcount, rows) of each.
        The server stops at the first failing statement. ``begin_next`` appends BEGIN for the next transaction."""
        if self.is_sqlite:
            raise AssertionError("script() sends one packet of statements: MySQL only")
        return self.session.script(statements, begin_next=begin_next, context=context)

    def flush_deferred(self):
        """Send or run the writes queued inside make() now, and queue no more."""
        self.defer_writes = False
        self.session.flush_deferred()

    def drop_deferred(self):
        self.session.drop_deferred()
        self.defer_writes = False

    # ------------------------------------------------------------------ transactions
    @property
    def transaction(self) -> _Transaction:
        return _Transaction(self)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0 and self._pid == os.getpid()

    def start_transaction(self):
        if self._depth == 0:
            self.session.begin()
        self._depth += 1

    def commit(self):
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self.session.commit()

    def commit_with(self, statements, *, begin_next: bool = False, wait: bool = True, context: str = "commit",
                    one_row_at: int | None = None) -> PendingCommit:
        """End the outermost transaction: make's queued writes, ``statements`` (sql, params), COMMIT.

        MySQL sends them in one round trip (and BEGIN for the next transaction with ``begin_next``); with
        ``wait=False`` it returns before the reply, which is read before the next statement goes out or by
        ``result()``. SQLite runs them in turn and returns settled. Either way a failure rolls everything back
        and is returned by ``result()``, not raised; a lost connection is raised. ``one_row_at``: the statement
        at that position must change exactly one row (a fence), else everything rolls back and ``failed_at`` is
        that position (MySQL checks it in the packet with the ``fence_check`` statement)."""
        if self._depth != 1:
            raise AssertionError("commit_with ends the outermost transaction")
        return self.session.commit_with(list(statements), begin_next=begin_next, wait=wait, context=context,
                                        one_row_at=one_row_at)

    def rollback(self):
        """Roll back the whole transaction, whatever the nesting depth."""
        self.drop_deferred()
        if self._depth == 0:
            return
        if not self.session.rollback():
            return  # the transaction went with the connection
        self._depth = 0
        if self._raw is None:
            return
        try:
            self.session.rollback_raw()
        except Exception:  # a dead connection has nothing to roll back
            self._raw = None

    @contextmanager
    def counting(self):
        """Yield a dict that holds the statements and commits run inside the block."""
        before = self.stats.snapshot()
        out = {}
        try:
            yield out
        finally:
            out["statements"] = self.stats.statements - before[0]
            out["commits"] = self.stats.commits - before[1]


_connection: Connection | None = None


def conn(url: str | None = None, *, reset: bool = False) -> Connection:
    """The process's connection, created on first use (``dj.conn()``)."""
    global _connection
    if reset or _connection is None or (url and resolve_database_url(url) != _connection.url):
        if _connection is not None:
            _connection.close()
        _connection = Connection(url)
    return _connection


def _forget_after_fork():
    if _connection is not None:
        _connection._forget()


os.register_at_fork(after_in_child=_forget_after_fork)
