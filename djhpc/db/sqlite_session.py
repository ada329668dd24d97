"""What an SQLite connection does that MySQL's does not: WAL, and a write lock taken late.

A transaction does not take the write lock when it starts: reads run without it, and the first write issues
``BEGIN IMMEDIATE``. Inside make() (``Connection.defer_writes``) every write is queued and run at the end, so a
long make that reads for minutes holds the file's single writer lock only for its final inserts.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from .. import backoff
from ..errors import ConnectError, DatabaseError, TransientError
from .pending import DeferredCursor, PendingCommit, run_in_turn

log = logging.getLogger(__name__)

_WRITE_WORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
SQLITE_BUSY_TIMEOUT_MS = 60_000


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITE_WORDS)


def _is_busy(exc: Exception) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteSession:
    """Driver-specific half of a ``Connection`` to an SQLite file."""

    def __init__(self, conn):
        self.conn = conn
        self.writing = False  # BEGIN IMMEDIATE issued in this transaction
        self.deferred: list = []
        self.identity: tuple | None = None  # (device, inode) of the file when opened

    # ------------------------------------------------------------------ connect
    def open(self):
        path = Path(self.conn.url.path)
        if not path.parent.exists():
            raise ConnectError(f"cannot create the SQLite file {path}: its folder does not exist")
        created = not path.exists()  # a misspelt path opens a new, empty file: say so
        try:
            raw = sqlite3.connect(
                str(path), timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            mode = _switch_to_wal(raw)
            if mode.lower() != "wal":
                log.warning("SQLite file %s is not in WAL mode (%s): concurrent workers will wait more", path, mode)
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA foreign_keys = ON")
            if self.conn.init_fun:  # DataJoint's init_fun: the caller's SQL, after djhpc's settings
                raw.execute(self.conn.init_fun)
        except sqlite3.Error as e:
            raise ConnectError(f"cannot open the SQLite file {path}: {e}") from e
        self.conn.connection_id = os.getpid()
        self.writing = False
        self.identity = _identity(path)
        if created:
            log.warning("created a new, empty SQLite database %s (if you meant an existing one, fix the database "
                        "setting)", path.resolve())
        return raw

    def check_file(self):
        """Raise when the file this session opened was deleted or replaced since: its writes would reach a file
        nobody else reads (every worker would go on, and exit 0, writing into a deleted inode)."""
        path = Path(self.conn.url.path)
        if self.identity is not None and _identity(path) != self.identity:
            raise ConnectError(f"the SQLite file {path} was deleted or replaced while this process used it: "
                               "stopping, as nothing written now would be kept; start again on the file you mean")

    def forget(self):
        self.writing = False

    def close(self):
        pass

    # ------------------------------------------------------------------ statements
    def query(self, sql, params, many, context):
        conn = self.conn
        raw = conn.raw
        if conn.defer_writes and _is_write(sql):
            self.deferred.append((sql, params, many, context))
            return DeferredCursor(len(params) if many else 1)
        if conn._depth and not self.writing and _is_write(sql):
            self.begin_immediate()
        conn.stats.statements += 1
        try:
            if many:
                return raw.executemany(sql, params)
            return raw.execute(sql, params)
        except sqlite3.Error as e:
            raise conn.dialect.translate(e, context=context) from e

    def flush_deferred(self):
        """Run the queued writes now (the first one takes the write lock)."""
        queued, self.deferred = self.deferred, []
        self.conn.defer_writes = False
        for sql, params, many, context in queued:
            self.query(sql, params, many, context)

    def drop_deferred(self):
        self.deferred = []

    def begin_immediate(self):
        """Take the write lock now; retry past the busy timeout rather than fail the caller."""
        conn = self.conn
        for delay in backoff.delays(first=0.01, cap=1.0, attempts=100, jitter="full"):
            try:
                conn.stats.statements += 1
                conn._raw.execute("BEGIN IMMEDIATE")
                self.writing = True
                return
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise conn.dialect.translate(e) from e
                backoff.sleep(delay)
        raise TransientError("the SQLite file stayed locked for minutes: is a process stuck holding it?")

    # ------------------------------------------------------------------ transactions
    def begin(self):
        self.conn.raw  # noqa: B018 - opens the file (or re-opens it after a fork) before the transaction
        self.writing = False

    def commit(self):
        conn = self.conn
        if not self.writing:
            return
        conn.stats.statements += 1
        conn.stats.commits += 1
        self.writing = False
        try:
            conn._raw.execute("COMMIT")
        except sqlite3.Error as e:
            self.rollback_raw()
            raise conn.dialect.translate(e, context="commit") from e

    def rollback(self) -> bool:
        return True

    def rollback_raw(self):
        raw = self.conn._raw
        try:
            # in_transaction too: a stop signal may land just after BEGIN IMMEDIATE ran, before ``writing`` is set
            if self.writing or (raw is not None and raw.in_transaction):
                raw.execute("ROLLBACK")
        finally:
            self.writing = False

    def commit_with(self, statements, *, begin_next: bool, wait: bool, context: str,
                    one_row_at: int | None = None) -> PendingCommit:
        """Make's queued writes, then ``statements`` one by one, then COMMIT: settled when it returns.

        A failing closing statement, or the one at ``one_row_at`` changing other than one row, rolls the
        transaction back and is reported with its position."""
        conn = self.conn
        self.flush_deferred()
        failed = run_in_turn(statements, lambda sql, params: self.query(sql, params, False, context).rowcount,
                             DatabaseError, one_row_at=one_row_at, context=context)
        if failed is not None:
            conn.rollback()
            return failed
        conn.commit()
        return PendingCommit.settled(None)


def _identity(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _switch_to_wal(raw) -> str:
    """Switch the file to WAL; retried, because the switch can fail "locked" without waiting the busy timeout."""
    for delay in backoff.delays(first=0.005, cap=0.5, seconds=SQLITE_BUSY_TIMEOUT_MS / 1000):
        try:
            mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            return mode
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or delay is None:
                raise
            backoff.sleep(delay)
    raise AssertionError("unreachable")
