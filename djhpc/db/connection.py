"""One database connection per process: connect, run statements, transactions, reconnect, counters.

The connection re-opens itself in a forked child (it never touches the parent's socket) and after the
server dropped it, unless a transaction was open: then the transaction is lost and the caller hears
``LostConnectionError``.

On SQLite, a transaction does not take the write lock when it starts: reads run without it, and the
first write issues ``BEGIN IMMEDIATE``. A long ``make()`` that reads for minutes and writes at the end
therefore holds the single writer lock only for its final inserts.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
from pymysql.constants import CLIENT, COMMAND

from ..config import DatabaseURL, resolve_database_url
from ..errors import ConnectError, DatabaseError, LostConnectionError, TransientError
from .dialects import DIALECTS, Dialect

log = logging.getLogger(__name__)

_WRITE_WORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_DEFERRABLE_WORDS = ("INSERT", "REPLACE")  # MySQL: writes whose row count is known before they run
DEFER_BYTES = 1_000_000  # MySQL: queued inserts sent once they pass this size (PyMySQL's own statement limit)
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
SQLITE_BUSY_TIMEOUT_MS = 60_000


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
        self._sqlite_writing = False  # SQLite: BEGIN IMMEDIATE issued in this transaction
        self.connection_id = 0
        #: called with the connection after each (re)connect, e.g. to take a worker's session lock again
        self.on_connect: list = []
        #: MySQL: a transaction begun ahead of time by commit_batch(begin_next=True), not yet used
        self._prebegun = False
        #: MySQL: a packet sent by commit_batch(wait=False) whose reply is not read yet, and the outcomes read
        self._reply = None
        self._sent = 0
        self._outcomes: dict[int, Exception | None] = {}
        #: inside make(): writes are queued. SQLite runs them in one short write transaction at the end; MySQL
        #: sends inserts with the completion (commit_batch), or before the next statement of another kind
        self.defer_writes = False
        self._deferred: list = []
        self._deferred_bytes = 0

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
                self._raw = None
                self._depth = 0
                self._sqlite_writing = False
                self._open()
            elif self._pid is not None:
                self._reconnect_with_backoff()  # it was lost: the server may be restarting
            else:
                self._open()  # first connection: a wrong URL fails at once
        return self._raw

    def _open(self):
        self._prebegun = False
        if self._reply is not None:
            self._outcomes[self._reply[0]] = LostConnectionError(
                "lost the connection before the commit was confirmed: it may or may not have been made")
            self._reply = None
        if self.is_sqlite:
            self._raw = self._open_sqlite()
            self.connection_id = os.getpid()
        else:
            self._raw = self._open_mysql()
        self._pid = os.getpid()
        for hook in self.on_connect:
            hook(self)

    def _open_sqlite(self):
        path = Path(self.url.path)
        if not path.parent.exists():
            raise ConnectError(f"cannot create the SQLite file {path}: its folder does not exist")
        try:
            raw = sqlite3.connect(
                str(path), timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            mode = self._sqlite_wal(raw)
            if mode.lower() != "wal":
                log.warning("SQLite file %s is not in WAL mode (%s): concurrent workers will wait more", path, mode)
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise ConnectError(f"cannot open the SQLite file {path}: {e}") from None
        return raw

    @staticmethod
    def _sqlite_wal(raw) -> str:
        """Switch the file to WAL; retried, because the switch can fail "locked" without waiting the busy timeout."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                return mode
            except sqlite3.OperationalError as e:
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    def _open_mysql(self):
        u = self.url
        try:
            raw = pymysql.connect(
                host=u.host,
                port=u.port or 3306,
                user=u.user,
                password=u.password,
                autocommit=True,
                charset="utf8mb4",
                # lets commit_batch() send a make's closing statements in one round trip; every value is
                # still a parameter (escaped by the driver), so this adds no injection surface of our own
                client_flag=CLIENT.MULTI_STATEMENTS,
                connect_timeout=self.connect_timeout,
                init_command="SET SESSION time_zone = '+00:00', "
                "SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                "NO_ENGINE_SUBSTITUTION'",
            )
        except pymysql.err.Error as e:
            code = e.args[0] if e.args else 0
            if code in (1045, 1698):
                raise ConnectError(
                    f"the database at {u.host}:{u.port} refused user '{u.user}': check the user name and password"
                ) from None
            raise ConnectError(
                f"cannot reach the database at {u.host}:{u.port}: check the host and port, and that the server runs"
            ) from None
        with raw.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            self.connection_id = cur.fetchone()[0]
        return raw

    def close(self):
        if self._reply is not None and self._raw is not None and self._pid == os.getpid():
            try:
                self._settle()
            except Exception:  # the outcome is kept for whoever asks; closing goes on
                pass
        if self._raw is not None and self._pid == os.getpid():
            try:
                self._raw.close()
            except Exception:  # closing a dead connection may fail; nothing to keep
                pass
        self._raw = None
        self._pid = None
        self._depth = 0

    def reconnect(self):
        """Drop the connection and open a new one (any open transaction is lost)."""
        self._prebegun = False
        self._raw = None
        self._depth = 0
        self._sqlite_writing = False
        self._open()

    # ------------------------------------------------------------------ statements
    def query(self, sql: str, params=(), *, many: bool = False, context: str = ""):
        """Run one statement; returns the driver cursor (``fetchall``, ``rowcount``, ``lastrowid``)."""
        if self.is_sqlite:
            return self._query_sqlite(sql, params, many, context)
        return self._query_mysql(sql, params, many, context)

    def has_table(self, table: str) -> bool:
        """Whether ``table`` (a quoted, qualified name) exists: one cheap read, where ``CREATE TABLE IF NOT
        EXISTS`` of an existing table costs a DDL statement on MySQL (milliseconds when workers start together)."""
        try:
            self.query(f"SELECT 1 FROM {table} LIMIT 0", context="has_table").fetchall()
        except DatabaseError:
            return False
        return True

    def run(self, name: str, params=(), **fmt):
        """Run a named query from the dialect's ``.sql`` file; ``fmt`` fills ``{table}``-style names."""
        sql = self.dialect.queries[name]
        if fmt:
            sql = sql.format(**fmt)
        return self.query(sql, params, context=name)

    def _query_mysql(self, sql, params, many, context):
        if self.defer_writes and self._depth and sql.lstrip()[:7].upper().startswith(_DEFERRABLE_WORDS):
            # inside make(): the insert travels with the completion, in the round trip that commits it (and
            # sends nothing now, so the commit before it is still confirmed while make goes on)
            self._queue(sql, params, many, context)
            return _DeferredCursor(len(params) if many else 1)
        if self._reply is not None:
            self._settle()
        if self._prebegun and self._depth == 0:
            self._end_prebegun()
        if self._deferred:
            self._send_deferred()  # anything else (a read, an update, a delete) sees the inserts made before it
        for attempt in range(2):
            raw = self.raw
            cur = raw.cursor()
            try:
                self.stats.statements += 1
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params or None)
                return cur
            except pymysql.err.Error as e:
                err = self.dialect.translate(e, context=context)
                if isinstance(err, LostConnectionError):
                    self._raw = None
                    if self._depth or attempt:
                        self._depth = 0
                        raise err from None
                    log.warning("lost the database connection; reconnecting")
                    self._reconnect_with_backoff()
                    continue
                raise err from None
            except (pymysql.err.InterfaceError, BrokenPipeError, ConnectionError) as e:
                self._raw = None
                if self._depth or attempt:
                    self._depth = 0
                    raise LostConnectionError(f"lost the connection to the database server ({e})") from None
                self._reconnect_with_backoff()
        raise AssertionError("unreachable")

    def _reconnect_with_backoff(self, give_up_after: float | None = None):
        """Reconnect after a drop, waiting longer each time; gives up after ``give_up_after`` seconds."""
        limit = give_up_after if give_up_after is not None else float(os.environ.get("DJHPC_RECONNECT_SECONDS", 60))
        deadline = time.monotonic() + limit
        delay = 0.1
        while True:
            try:
                self._open()
                return
            except ConnectError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5)

    def _query_sqlite(self, sql, params, many, context):
        raw = self.raw
        if self.defer_writes and sql.lstrip()[:7].upper().startswith(_WRITE_WORDS):
            self._deferred.append((sql, params, many, context))
            return _DeferredCursor(len(params) if many else 1)
        if self._depth and not self._sqlite_writing and sql.lstrip()[:7].upper().startswith(_WRITE_WORDS):
            self._begin_immediate()
        self.stats.statements += 1
        try:
            if many:
                return raw.executemany(sql, params)
            return raw.execute(sql, params)
        except sqlite3.Error as e:
            err = self.dialect.translate(e, context=context)
            raise err from None

    def flush_deferred(self):
        """Run the queued writes now (SQLite: the first one takes the write lock)."""
        if not self.is_sqlite:
            self.defer_writes = False
            if self._deferred:
                self._send_deferred()
            return
        queued, self._deferred = self._deferred, []
        self.defer_writes = False
        for sql, params, many, context in queued:
            self._query_sqlite(sql, params, many, context)

    def _queue(self, sql, params, many, context):
        """MySQL, inside make(): queue an insert's text. Many rows become multi-row INSERTs of at most
        ``DEFER_BYTES`` each, as the driver would send them; the queue is sent before it would pass
        ``DEFER_BYTES``, so that no packet nears the server's max_allowed_packet."""
        cur = self.raw.cursor()
        site = _call_site()
        m = pymysql.cursors.RE_INSERT_VALUES.match(sql) if many else None
        if not many:
            texts = [cur.mogrify(sql, params or None)]
        elif not m:
            texts = [cur.mogrify(sql, p) for p in params]
        else:
            head, values, tail = m.group(1), m.group(2).rstrip(), m.group(3) or ""
            texts, rows, size = [], [], 0
            for p in params:
                row = cur.mogrify(values, p)
                if rows and size + len(row) > DEFER_BYTES:
                    texts.append(head + ",".join(rows) + tail)
                    rows, size = [], 0
                rows.append(row)
                size += len(row) + 1
            if rows:
                texts.append(head + ",".join(rows) + tail)
        for text in texts:
            if self._deferred and self._deferred_bytes + len(text) > DEFER_BYTES:
                self._send_deferred()
            self._deferred.append((text, context, site))
            self._deferred_bytes += len(text)

    def _send_deferred(self):
        """MySQL: send the queued inserts, in one round trip, inside the open transaction."""
        queued, self._deferred, self._deferred_bytes = self._deferred, [], 0
        if self._reply is not None:
            self._settle()
        cur = self._raw.cursor()
        self.stats.statements += 1
        done = 0
        try:
            cur.execute(";\n".join(text for text, _, _ in queued))
            done = 1
            while cur.nextset():
                done += 1
        except pymysql.err.Error as e:
            _drain(cur)
            raise self._deferred_error(e, queued, done) from None
        except (pymysql.err.InterfaceError, ConnectionError) as e:
            self._raw = None
            self._depth = 0
            raise LostConnectionError(f"lost the connection to the database server ({e})") from None

    def _deferred_error(self, exc, queued, index):
        """The error of the ``index``-th statement of a packet, named after the make() line that queued it."""
        if index < len(queued):
            _, context, site = queued[index]
            return self.dialect.translate(exc, context=f"{context} (queued at {site})" if site else context)
        return None

    def drop_deferred(self):
        self._deferred, self._deferred_bytes = [], 0
        self.defer_writes = False

    def _begin_immediate(self):
        """Take SQLite's write lock now; retry past the busy timeout rather than fail the caller."""
        for attempt in range(100):
            try:
                self.stats.statements += 1
                self._raw.execute("BEGIN IMMEDIATE")
                self._sqlite_writing = True
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise self.dialect.translate(e) from None
                time.sleep(min(0.01 * 2**attempt, 1.0) * random.random())
        raise TransientError("the SQLite file stayed locked for minutes: is a process stuck holding it?")

    # ------------------------------------------------------------------ transactions
    @property
    def transaction(self) -> _Transaction:
        return _Transaction(self)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0 and self._pid == os.getpid()

    def start_transaction(self):
        if self._depth == 0 and self._prebegun and self._pid == os.getpid() and self._raw is not None:
            self._prebegun = False  # commit_batch() already sent BEGIN for this transaction
            self._depth = 1
            return
        if self._depth == 0:
            if self._reply is not None:
                self._settle()
            raw = self.raw
            if not self.is_sqlite:
                self.stats.statements += 1
                try:
                    raw.begin()
                except (pymysql.err.Error, ConnectionError) as e:
                    self._raw = None
                    self._reconnect_with_backoff()
                    self.stats.statements += 1
                    try:
                        self._raw.begin()
                    except pymysql.err.Error:
                        raise self.dialect.translate(e) from None
            self._sqlite_writing = False
        self._depth += 1

    def commit(self):
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth:
            return
        if self.is_sqlite:
            if self._sqlite_writing:
                self.stats.statements += 1
                self.stats.commits += 1
                self._sqlite_writing = False
                try:
                    self._raw.execute("COMMIT")
                except sqlite3.Error as e:
                    self._safe_rollback()
                    raise self.dialect.translate(e, context="commit") from None
            return
        if self._reply is not None:
            self._settle()
        self.stats.statements += 1
        self.stats.commits += 1
        try:
            self._raw.commit()
        except (pymysql.err.Error, ConnectionError) as e:
            self._raw = None
            err = self.dialect.translate(e, context="commit")
            if not isinstance(err, DatabaseError):
                err = LostConnectionError(f"lost the connection during commit ({e})")
            raise err from None

    def _end_prebegun(self):
        """A statement outside any transaction follows a BEGIN sent ahead: close that empty transaction."""
        self._prebegun = False
        try:
            self.stats.statements += 1
            self._raw.commit()
        except (pymysql.err.Error, ConnectionError, AttributeError):
            self._raw = None

    def commit_batch(self, statements, *, begin_next: bool = False, context: str = "commit",
                     wait: bool = True) -> int:
        """MySQL: run ``statements`` (sql, params), COMMIT, and optionally BEGIN the next transaction, in one
        round trip. If a statement fails the server runs none of the rest, so nothing is committed: the
        transaction is rolled back and the error raised.

        ``wait=False`` sends the packet and returns at once, so the caller's next work overlaps the server's
        (and the disk's) work on this commit. The reply is read before the next statement goes out, or by
        ``outcome(n)`` with the number returned: None if it committed, else the error, which it does not raise.
        """
        if self._depth != 1 or self.is_sqlite:
            raise AssertionError("commit_batch ends the outermost transaction on MySQL only")
        if self._reply is not None:
            self._settle()
        cur = self._raw.cursor()
        queued, self._deferred, self._deferred_bytes = self._deferred, [], 0  # make's inserts go first
        parts = [text for text, _, _ in queued] + [cur.mogrify(sql, params) for sql, params in statements]
        parts.append("COMMIT")
        if begin_next:
            parts.append("BEGIN")
        self.stats.statements += 1
        self.stats.commits += 1
        self._sent += 1
        if not wait:
            try:
                self._raw._execute_command(COMMAND.COM_QUERY, ";\n".join(parts))
            except (pymysql.err.Error, ConnectionError) as e:
                self._raw = None
                self._depth = 0
                raise LostConnectionError(f"lost the connection during commit ({e})") from None
            self._reply = (self._sent, queued, context)
            self._depth = 0
            self._prebegun = begin_next
            return self._sent
        done = 0
        try:
            cur.execute(";\n".join(parts))
            done = 1
            while cur.nextset():
                done += 1
        except pymysql.err.Error as e:
            _drain(cur)
            self._depth = 1
            self.rollback()
            raise (self._deferred_error(e, queued, done) or self.dialect.translate(e, context=context)) from None
        except (pymysql.err.InterfaceError, ConnectionError) as e:
            self._raw = None
            self._depth = 0
            raise LostConnectionError(f"lost the connection during commit ({e})") from None
        self._depth = 0
        self._prebegun = begin_next
        return self._sent

    def outcome(self, sent: int) -> Exception | None:
        """What became of the packet ``commit_batch(wait=False)`` returned ``sent`` for: None if it committed,
        else its error (a LostConnectionError when the reply never came: it may or may not have committed)."""
        if self._reply is not None and self._reply[0] == sent:
            self._settle()
        return self._outcomes.pop(sent, None)

    def _settle(self):
        """Read the reply of the packet sent without waiting, and keep its outcome.

        On an error the server ran none of the packet's later statements: the transaction is rolled back,
        and if the caller has begun its next transaction meanwhile (the packet's BEGIN never ran), it is begun
        again. A lost connection loses that next transaction too: raised when one is open, as any statement
        would raise it."""
        sent, queued, context = self._reply
        self._reply = None
        # until the reply is read, nothing is known: that is the outcome if reading it is interrupted
        self._outcomes[sent] = LostConnectionError("the commit's reply was not read: it may or may not be made")
        raw, done = self._raw, 0
        if raw is None:
            self._lost_while_settling()
            return
        try:
            raw._read_query_result()
            done = 1
            while raw._result is not None and raw._result.has_next:
                raw.next_result()
                done += 1
        except BaseException as e:
            if not isinstance(e, (pymysql.err.Error, ConnectionError, OSError)):
                # a signal stopped the read half-way: the rest of the reply would be taken for the next one's
                self._raw, self._prebegun, self._depth = None, False, 0
                try:
                    raw.close()
                except Exception:  # closing a socket in an unknown state may fail; it is dropped either way
                    pass
                raise
            self._settle_failed(e, sent, queued, context, raw, done)
            return
        self._outcomes[sent] = None

    def _settle_failed(self, e, sent, queued, context, raw, done):
        if isinstance(e, pymysql.err.Error):
            err = self._deferred_error(e, queued, done) or self.dialect.translate(e, context=context)
            self._outcomes[sent] = err
            self._prebegun = False
            if not isinstance(err, LostConnectionError):
                try:
                    raw.rollback()
                    if self._depth:
                        raw.begin()
                    return
                except (pymysql.err.Error, ConnectionError):
                    pass
        else:
            self._outcomes[sent] = LostConnectionError(f"lost the connection during commit ({e})")
        self._lost_while_settling()

    def _lost_while_settling(self):
        self._raw = None
        self._prebegun = False
        if self._depth:
            self._depth = 0
            raise LostConnectionError("lost the connection to the database server (while a commit was confirmed)")

    def script(self, statements, *, begin_next: bool = False, context: str = "") -> list[tuple[int, list]]:
        """MySQL, outside a transaction: run ``statements`` (sql, params) in one round trip; returns
        (rowcount, rows) of each. The server stops at the first failing statement and runs none after it.
        ``begin_next`` appends BEGIN, so that the caller's next transaction costs no round trip of its own."""
        if self._depth or self.is_sqlite:
            raise AssertionError("script() runs outside transactions, on MySQL only")
        if self._reply is not None:
            self._settle()
        if self._prebegun:
            self._end_prebegun()
        cur = self.raw.cursor()
        text = ";\n".join([cur.mogrify(sql, params or None) for sql, params in statements]
                          + (["BEGIN"] if begin_next else []))
        self.stats.statements += 1
        results = []
        try:
            cur.execute(text)
            while True:
                results.append((cur.rowcount, list(cur.fetchall() or ())))
                if not cur.nextset():
                    break
        except pymysql.err.Error as e:
            err = self.dialect.translate(e, context=context)
            if isinstance(err, LostConnectionError):
                self._raw = None
            else:
                _drain(cur)
            raise err from None
        except (pymysql.err.InterfaceError, ConnectionError) as e:
            self._raw = None
            raise LostConnectionError(f"lost the connection to the database server ({e})") from None
        if begin_next:
            results.pop()
            self._prebegun = True
        return results

    def rollback(self):
        """Roll back the whole transaction, whatever the nesting depth."""
        self.drop_deferred()
        if self._depth == 0:
            return
        if self._reply is not None:
            try:
                self._settle()  # the commit before this transaction: its outcome is kept
            except LostConnectionError:
                return  # the transaction went with the connection
        self._depth = 0
        self._safe_rollback()

    def _safe_rollback(self):
        if self._raw is None:
            return
        try:
            if self.is_sqlite:
                if self._sqlite_writing:
                    self._raw.execute("ROLLBACK")
            else:
                self.stats.statements += 1
                self._raw.rollback()
        except Exception:  # a dead connection has nothing to roll back
            self._raw = None
        self._sqlite_writing = False

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


def _drain(cursor):
    """Read what is left of a multi-statement reply after an error, so the connection stays usable."""
    for _ in range(100):
        try:
            if not cursor.nextset():
                return
        except pymysql.err.Error:
            return
        except Exception:  # a broken connection: the caller reconnects
            return


def _call_site() -> str:
    """file:line of the nearest caller outside djhpc (the make() line that inserted), for error messages."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


class _DeferredCursor:
    """What a queued write returns: the row count it will have if nothing conflicts."""

    def __init__(self, rowcount: int):
        self.rowcount = rowcount
        self.lastrowid = None

    def fetchall(self):
        return []

    def fetchone(self):
        return None


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
        _connection._raw = None
        _connection._depth = 0


os.register_at_fork(after_in_child=_forget_after_fork)
