"""What a MySQL/MariaDB connection does that SQLite's does not: multi-statement packets.

Three things make a reserved key cost one round trip:
- **Queued inserts.** Inside make() (``Connection.defer_writes``) inserts are queued as text and travel in the
  packet that commits them; any other statement sends them first, so make still reads its own writes.
- **Pipelined commits.** ``commit_with(wait=False)`` sends make's inserts, the closing statements, COMMIT and
  optionally BEGIN, and returns a ``PendingCommit`` at once; its reply is read before the next statement goes
  out, or by ``PendingCommit.result()``.
- **Begin-ahead.** The BEGIN sent at the end of such a packet is held by ``BegunAhead`` until the next
  transaction starts (it is then free) or a statement outside a transaction needs it closed.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import pymysql
from pymysql.constants import CLIENT

from ..errors import ConnectError, DatabaseError, LostConnectionError, ServerFullError, UnreachableError
from . import wire
from .pending import FENCE_CHECK_FAILED, ChecksFence, DeferredCursor, PendingCommit

log = logging.getLogger(__name__)

_DEFERRABLE_WORDS = ("INSERT", "REPLACE")  # writes whose row count is known before they run
_READ_WORDS = ("SELECT", "SHOW", "DESC", "EXPLAIN", "WITH", "(SELECT")
_LOCKING = re.compile(r"\bFOR\s+(?:UPDATE|SHARE)\b|\bLOCK\s+IN\s+SHARE\s+MODE\b|\bGET_LOCK\b", re.IGNORECASE)
DEFER_BYTES = 1_000_000  # queued inserts are sent once they pass this size (PyMySQL's own statement limit)
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
_SQL_MODE = ("STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
             "NO_ENGINE_SUBSTITUTION")


class BegunAhead:
    """A BEGIN sent at the end of a commit's packet for the next transaction, not used yet."""

    def __init__(self):
        self.open = False

    def take(self) -> bool:
        """The next transaction starts: True if it is begun already (and costs no statement)."""
        was, self.open = self.open, False
        return was

    def forget(self):
        """The connection went: so did the transaction begun ahead."""
        self.open = False

    def close_unused(self, conn):
        """A statement runs outside any transaction: commit the empty transaction begun ahead first."""
        if not self.open:
            return
        self.open = False
        try:
            conn.stats.statements += 1
            conn._raw.commit()
        except (pymysql.err.Error, ConnectionError, AttributeError):
            conn._raw = None


class MySQLSession:
    """Driver-specific half of a ``Connection`` to MySQL/MariaDB (packets, queued inserts, pipelined commits)."""

    def __init__(self, conn):
        self.conn = conn
        self.ahead = BegunAhead()
        self.reply: PendingCommit | None = None  # sent without waiting, reply not read yet
        self.deferred: list = []  # (text, context, make() line) of queued inserts
        self.deferred_bytes = 0
        self.returning = False  # the server takes INSERT ... RETURNING (MariaDB >= 10.5), from the handshake
        self.escaper = None  # a released connection's closed handle: it still formats queued inserts' text

    # ------------------------------------------------------------------ connect
    def open(self):
        self.forget()
        u = self.conn.url
        try:
            raw = pymysql.connect(
                host=u.host, port=u.port or 3306, user=u.user, password=u.password, autocommit=True,
                charset="utf8mb4",
                # lets a make's closing statements travel in one round trip; every value is still a parameter
                # (escaped by the driver), so this adds no injection surface of our own
                client_flag=CLIENT.MULTI_STATEMENTS, connect_timeout=self.conn.connect_timeout,
                init_command=f"SET SESSION time_zone = '+00:00', SESSION sql_mode = '{_SQL_MODE}'",
                ssl=self.conn.ssl_options,
            )
        except pymysql.err.Error as e:
            code = e.args[0] if e.args else 0
            if code == 2026:  # PyMySQL: TLS asked for (use_tls) but the server offers none
                raise ConnectError(f"the database at {u.host}:{u.port} offers no TLS but use_tls asks for it: set "
                                   "use_tls=False (or database.use_tls) or enable TLS on the server") from e
            if code in (1045, 1698):
                raise ConnectError(
                    f"the database at {u.host}:{u.port} refused user '{u.user}': check the user name and password"
                ) from e
            if code == 1040:
                raise ServerFullError(f"the database at {u.host}:{u.port} has no free connection (max_connections "
                                      "reached): waiting for one; a smaller --throttle keeps an array within it") from e
            raise UnreachableError(
                f"cannot reach the database at {u.host}:{u.port}: check the host and port, and that the server runs"
            ) from e
        self.conn.connection_id = raw.thread_id()  # CONNECTION_ID(), from the handshake: no statement
        self.returning = _takes_returning(raw.get_server_info())
        with raw.cursor() as cur:
            if self.conn.init_fun:  # DataJoint's init_fun: the caller's SQL, after djhpc's session settings
                try:
                    cur.execute(self.conn.init_fun)
                except pymysql.err.Error as e:
                    raw.close()
                    raise ConnectError(f"init_fun failed: {e.args[-1] if e.args else e}: fix the SQL given "
                                       "as init_fun (or connection.init_function)") from e
        return raw

    def forget(self):
        """The connection is gone (or, after a fork, not this process's): so are the transaction begun ahead and
        the reply of a packet sent without waiting, whose outcome is then unknown."""
        self.ahead.forget()
        if self.reply is not None:
            self.reply.settle(LostConnectionError(
                "lost the connection before the commit was confirmed: it may or may not have been made"))
            self.reply = None

    def release(self) -> bool:
        """Before the connection is closed on purpose (Connection.release_if_idle): read a reply still unread.
        False when the session holds what a new one would not (a write sent in the open transaction) or was
        lost meanwhile."""
        try:
            self.settle()
        except LostConnectionError:
            return False
        conn = self.conn
        if conn._raw is None or (conn._depth and conn._wrote):
            return False
        self.ahead.forget()
        self.escaper = conn._raw
        return True

    def abandon(self):
        """A stop signal (Interrupted, KeyboardInterrupt) cut a reply short: the rest of it would be taken for the
        next statement's. The connection goes, and with it any open transaction, as when it is lost."""
        conn = self.conn
        raw, conn._raw, conn._depth = conn._raw, None, 0
        self.ahead.forget()
        if raw is not None:
            try:
                raw.close()
            except Exception:  # closing a socket in an unknown state may fail; it is dropped either way
                pass

    @contextmanager
    def abandoned_on_stop(self, pending: PendingCommit | None = None):
        """Around reading a reply: an error passes through; a stop signal (not an Exception) abandons the
        connection, whose half-read reply would be taken for the next statement's, and a commit's ``pending``
        outcome becomes unknown."""
        try:
            yield
        except Exception:
            raise
        except BaseException:
            if pending is not None:
                pending.settle(LostConnectionError("the commit's reply was not read: it may or may not be made"))
            self.abandon()
            raise

    def close(self):
        if self.reply is not None:
            try:
                self.settle()
            except Exception:  # the outcome is kept for whoever asks; closing goes on
                pass

    # ------------------------------------------------------------------ statements
    def query(self, sql, params, many, context):
        conn = self.conn
        if conn.defer_writes and conn._depth and sql.lstrip()[:7].upper().startswith(_DEFERRABLE_WORDS):
            # inside make(): the insert travels with the completion, in the round trip that commits it (and
            # sends nothing now, so the commit before it is still confirmed while make goes on)
            self.queue(sql, params, many, context)
            return DeferredCursor(len(params) if many else 1)
        self.settle()
        if conn._depth == 0:
            self.ahead.close_unused(conn)
        elif not conn._wrote and not _plain_read(sql):
            conn._wrote = True  # the session now holds a change (or a lock) of the open transaction
        if self.deferred:
            self.send_deferred()  # anything else (a read, an update, a delete) sees the inserts made before it
        for attempt in range(2):
            cur = conn.raw.cursor()
            try:
                with self.abandoned_on_stop():
                    conn.stats.statements += 1
                    if many:
                        cur.executemany(sql, params)
                    else:
                        cur.execute(sql, params or None)
                return cur
            except pymysql.err.Error as e:
                err = conn.dialect.translate(e, context=context)
                if not isinstance(err, LostConnectionError):
                    raise err from e
                lost = err
            except (BrokenPipeError, ConnectionError) as e:
                lost = LostConnectionError(f"lost the connection to the database server ({e})")
                lost.__cause__ = e
            conn._raw = None
            if conn._depth or attempt or not conn.reconnects:
                conn._depth = 0
                raise lost
            log.warning("lost the database connection; reconnecting")
            conn.reconnect_with_backoff()
        raise AssertionError("unreachable")

    def queue(self, sql, params, many, context):
        """Inside make(): queue an insert's text. Many rows become multi-row INSERTs of at most ``DEFER_BYTES``
        each, as the driver would send them; the queue is sent before it would pass ``DEFER_BYTES``, so that no
        packet nears the server's max_allowed_packet."""
        conn = self.conn
        # text only: a released connection's closed handle formats it as well, without reopening
        cur = (self.escaper if conn._raw is None and conn._released and self.escaper else conn.raw).cursor()
        site = _call_site()
        m = wire.RE_INSERT_VALUES.match(sql) if many else None
        if not many:
            texts = [cur.mogrify(sql, params or None)]
        elif not m:
            texts = [cur.mogrify(sql, p) for p in params]
        else:
            texts = _multi_row_inserts(cur, m, params)
        for text in texts:
            if self.deferred and self.deferred_bytes + len(text) > DEFER_BYTES:
                self.send_deferred()
            self.deferred.append((text, context, site))
            self.deferred_bytes += len(text)

    def take_deferred(self) -> list:
        queued, self.deferred, self.deferred_bytes = self.deferred, [], 0
        return queued

    def drop_deferred(self):
        self.deferred, self.deferred_bytes = [], 0

    def flush_deferred(self):
        if self.deferred:
            self.send_deferred()

    def send_deferred(self):
        """Send the queued inserts, in one round trip, inside the open transaction."""
        conn = self.conn
        queued = self.take_deferred()
        self.settle()
        conn._wrote = True
        cur = conn.raw.cursor()
        conn.stats.statements += 1
        done = 0
        try:
            with self.abandoned_on_stop():
                cur.execute(";\n".join(text for text, _, _ in queued))
                done = 1
                while cur.nextset():
                    done += 1
        except pymysql.err.Error as e:
            _drain(cur)
            raise self.deferred_error(e, queued, done) from e
        except ConnectionError as e:
            conn._raw = None
            conn._depth = 0
            raise LostConnectionError(f"lost the connection to the database server ({e})") from e

    def deferred_error(self, exc, queued, index):
        """The error of the ``index``-th statement of a packet, named after the make() line that queued it."""
        if index < len(queued):
            _, context, site = queued[index]
            return self.conn.dialect.translate(exc, context=f"{context} (queued at {site})" if site else context)
        return None

    # ------------------------------------------------------------------ transactions
    def begin(self):
        conn = self.conn
        if conn._raw is not None and conn._pid == os.getpid() and self.ahead.take():
            return  # the last commit's packet already sent BEGIN for this transaction
        self.settle()
        raw = conn.raw
        conn.stats.statements += 1
        try:
            raw.begin()
        except (pymysql.err.Error, ConnectionError) as e:
            conn._raw = None
            conn.reconnect_with_backoff()
            conn.stats.statements += 1
            try:
                conn._raw.begin()
            except pymysql.err.Error as again:
                raise conn.dialect.translate(e) from again

    def commit(self):
        conn = self.conn
        self.settle()
        conn.stats.statements += 1
        conn.stats.commits += 1
        try:
            conn._raw.commit()
        except (pymysql.err.Error, ConnectionError) as e:
            conn._raw = None
            err = conn.dialect.translate(e, context="commit")
            if not isinstance(err, DatabaseError):
                err = LostConnectionError(f"lost the connection during commit ({e})")
            raise err from e

    def rollback(self) -> bool:
        """Read a pending reply first; False when the transaction went with the connection meanwhile."""
        if self.reply is not None:
            try:
                self.settle()  # the commit before this transaction: its outcome is kept
            except LostConnectionError:
                return False
        return True

    def rollback_raw(self):
        self.conn.stats.statements += 1
        self.conn._raw.rollback()

    def commit_with(self, statements, *, begin_next: bool, wait: bool, context: str,
                    one_row_at: int | None = None) -> PendingCommit:
        """Make's queued inserts, ``statements``, COMMIT and optionally BEGIN, in one packet. The statement at
        ``one_row_at`` is followed by the ``fence_check`` statement, which fails unless it changed one row, or
        checked by the statement after it when that one can (``ChecksFence``: the history row)."""
        conn = self.conn
        self.settle()
        cur = conn._raw.cursor()
        queued = self.take_deferred()  # make's inserts go first
        parts = [text for text, _, _ in queued]
        checked_by_next = one_row_at is not None and one_row_at + 1 < len(statements) \
            and isinstance(statements[one_row_at + 1], ChecksFence)
        for index, (sql, params) in enumerate(statements):
            if checked_by_next and index == one_row_at + 1:
                sql = statements[index].checked  # the statement after the fence checks it: one statement less
            parts.append(cur.mogrify(sql, params))
            if index == one_row_at and not checked_by_next:
                parts.append(conn.dialect.queries["fence_check"])
        parts.append("COMMIT")
        if begin_next:
            parts.append("BEGIN")
        conn.stats.statements += 1
        conn.stats.commits += 1
        pending = PendingCommit(self, queued=queued, statements=len(statements), context=context,
                                one_row_at=one_row_at)
        pending.checked_by_next = checked_by_next
        text = ";\n".join(parts)
        try:
            if not wait:
                wire.send(conn._raw, text)
                self.reply = pending
            else:
                self._run_commit_packet(cur, text, pending)
        except ConnectionError as e:
            conn._raw = None
            conn._depth = 0
            raise LostConnectionError(f"lost the connection during commit ({e})") from e
        conn._depth = 0
        self.ahead.open = begin_next and pending.error is None
        return pending

    def _run_commit_packet(self, cur, text, pending):
        done = 0
        try:
            with self.abandoned_on_stop(pending):
                cur.execute(text)
                done = 1
                while cur.nextset():
                    done += 1
        except pymysql.err.Error as e:
            _drain(cur)
            pending.settle(*self._packet_error(e, pending, done))
            self.conn._depth = 1
            self.conn.rollback()
            return
        pending.settle(None)

    def _packet_error(self, exc, pending, done) -> tuple[Exception, int | None]:
        """(error, index among the closing statements of the one that failed, or None)."""
        err = self.deferred_error(exc, pending.queued, done) or self.conn.dialect.translate(exc,
                                                                                          context=pending.context)
        err.__cause__ = exc
        if isinstance(err, LostConnectionError):
            # the connection broke while the reply was read: no statement failed, whichever was being answered
            # (taken for the fence's failure, a key still reserved would count as lost or not made)
            return err, None
        at = done - len(pending.queued)
        fence = pending.one_row_at
        if fence is not None and pending.checked_by_next:
            if at == fence + 1 and getattr(exc, "args", (None,))[0] == FENCE_CHECK_FAILED:
                at = fence  # the statement after the fence failed its check: the fence changed other than one row
        elif fence is not None and at > fence:
            at -= 1  # the fence check after statement ``fence`` is not one of the caller's: its failure is fence's
        return err, (at if 0 <= at < pending.statements else None)

    def settle(self, pending: PendingCommit | None = None):
        """Read the reply of the packet sent without waiting, and keep its outcome in its ``PendingCommit``.

        On an error the server ran none of the packet's later statements: the transaction is rolled back, and
        if the caller has begun its next transaction meanwhile (the packet's BEGIN never ran), it is begun
        again. A lost connection loses that next transaction too: raised when one is open, as any statement
        would raise it."""
        pending = self.reply if pending is None else pending
        if pending is None:
            return
        with self.conn.guard():  # PendingCommit.result() calls this from the main thread, release_if_idle too
            self._settle(pending)

    def _settle(self, pending: PendingCommit):
        if pending is not self.reply:  # its connection is gone: the reply will never be read
            if not pending.done:
                pending.settle(LostConnectionError("the commit's reply was not read: it may or may not be made"))
            return
        self.reply = None
        conn = self.conn
        # until the reply is read, nothing is known: that is the outcome if reading it is interrupted
        pending.settle(LostConnectionError("the commit's reply was not read: it may or may not be made"))
        raw, done = conn._raw, 0
        if raw is None:
            self._lost_while_settling()
            return
        try:
            wire.read_first(raw)
            done = 1
            while wire.has_more(raw):
                wire.read_next(raw)
                done += 1
        except (pymysql.err.Error, ConnectionError, OSError) as e:
            self._settle_failed(e, pending, raw, done)
            return
        except BaseException:
            self.abandon()
            raise
        pending.settle(None)

    def _settle_failed(self, e, pending, raw, done):
        if isinstance(e, pymysql.err.Error):
            err, at = self._packet_error(e, pending, done)
            pending.settle(err, at)
            self.ahead.forget()
            if not isinstance(err, LostConnectionError):
                try:
                    raw.rollback()
                    if self.conn._depth:
                        raw.begin()
                    return
                except (pymysql.err.Error, ConnectionError):
                    pass
        else:
            err = LostConnectionError(f"lost the connection during commit ({e})")
            err.__cause__ = e
            pending.settle(err)
        self._lost_while_settling()

    def _lost_while_settling(self):
        conn = self.conn
        conn._raw = None
        self.ahead.forget()
        if conn._depth:
            conn._depth = 0
            raise LostConnectionError("lost the connection to the database server (while a commit was confirmed)")

    def send_later(self, statements, *, context: str) -> PendingCommit:
        """Outside a transaction: ``statements`` that need no answer now (a history row) in one packet, not
        waited for; the reply is read before the next statement goes out (or by ``result()``)."""
        conn = self.conn
        if conn._depth:
            raise AssertionError("send_later() runs outside transactions")
        self.settle()
        self.ahead.close_unused(conn)
        raw = conn.raw
        cur = raw.cursor()
        text = ";\n".join(cur.mogrify(sql, params) for sql, params in statements)
        pending = PendingCommit(self, statements=len(statements), context=context)
        conn.stats.statements += 1
        try:
            wire.send(raw, text)
        except ConnectionError as e:
            conn._raw = None
            self.ahead.forget()
            pending.settle(LostConnectionError(f"lost the connection ({e})"))
            return pending
        self.reply = pending
        return pending

    def script(self, statements, *, begin_next: bool, context: str) -> list[tuple[int, list]]:
        """Outside a transaction: ``statements`` in one round trip; (rowcount, rows) of each. The server stops
        at the first failing statement. ``begin_next`` appends BEGIN for the caller's next transaction."""
        conn = self.conn
        if conn._depth:
            raise AssertionError("script() runs outside transactions")
        self.settle()
        self.ahead.close_unused(conn)
        cur = conn.raw.cursor()
        text = ";\n".join([cur.mogrify(sql, params or None) for sql, params in statements]
                          + (["BEGIN"] if begin_next else []))
        conn.stats.statements += 1
        results = ScriptResults()
        try:
            # a stop signal may cut a reservation's reply short: whether it committed is for release_orphans
            with self.abandoned_on_stop():
                cur.execute(text)
                while True:
                    results.append((cur.rowcount, list(cur.fetchall() or ())))
                    results.warnings.append(cur._result.warning_count if cur._result is not None else 0)
                    if not cur.nextset():
                        break
        except pymysql.err.Error as e:
            err = conn.dialect.translate(e, context=context)
            if isinstance(err, LostConnectionError):
                conn._raw = None
            else:
                _drain(cur)
            raise err from e
        except ConnectionError as e:
            conn._raw = None
            raise LostConnectionError(f"lost the connection to the database server ({e})") from e
        if begin_next:
            results.pop()
            results.warnings.pop()
            self.ahead.open = True
        return results


class ScriptResults(list):
    """(rowcount, rows) of each statement of a packet; ``warnings``: each one's warning count (an INSERT IGNORE's
    skipped duplicates)."""

    def __init__(self):
        super().__init__()
        self.warnings: list[int] = []


def _plain_read(sql: str) -> bool:
    """A statement that changes nothing and locks nothing (a new session can run it as well)."""
    return sql.lstrip()[:7].upper().startswith(_READ_WORDS) and not _LOCKING.search(sql)


def _takes_returning(version: str) -> bool:
    """Whether a server of this version string takes ``INSERT ... RETURNING``: MariaDB from 10.5 (MySQL: no)."""
    if "mariadb" not in version.lower():
        return False
    if version.startswith("5.5.5-"):  # the prefix MariaDB puts in the handshake for old clients
        version = version[len("5.5.5-"):]
    try:
        major, minor = (int(x) for x in version.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (10, 5)


def _multi_row_inserts(cur, m, params) -> list[str]:
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
    return texts


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
