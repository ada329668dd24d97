"""One database connection per process: the URL, connect and reconnect, statements, transactions, counters.

The connection re-opens itself in a forked child (it never touches the parent's socket) and after the
server dropped it, unless a transaction was open: then the transaction is lost and the caller hears
``LostConnectionError``. What differs between drivers lives in one session class each:
``sqlite_session.SQLiteSession`` (WAL, the write lock taken late) and ``mysql_session.MySQLSession``
(multi-statement packets, queued inserts, commits confirmed while the next make runs).

``commit_with(statements)`` ends a transaction with the statements that close it (a reservation's fenced
completion, a history row) on both: it returns a ``PendingCommit`` whose ``result()`` is None once committed,
else the error, with ``failed_at`` the position of the closing statement that failed.

``release_if_idle(seconds)`` closes a MySQL connection a long make leaves unused (from the heartbeat thread, which
is why every statement runs under the connection's lock); the next statement opens a new one and begins the
transaction again, as long as nothing but reads was sent in it (make's inserts are queued until its commit).

While DataJoint's query cache is on (``set_query_cache(name)``), ``query`` answers reads from db.querycache's files
and refuses every other statement.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .. import backoff, settings
from ..config import DatabaseURL, parse_url, resolve_database_url
from ..errors import ConfigError, DatabaseError, LostConnectionError, ServerFullError, UnreachableError
from . import querycache
from .dialects import DIALECTS, Dialect
from .mysql_session import MySQLSession
from .pending import PendingCommit, run_in_turn
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


def _guarded(method):
    """Run under the connection's lock (release_if_idle never closes the socket under a statement) and note when
    the connection was last used."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with self.guard():
            try:
                return method(self, *args, **kwargs)
            finally:
                self._last_used = time.monotonic()

    return guarded


class _Transaction:
    """``with conn.transaction:`` groups statements; an exception rolls everything back."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.start_transaction()
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.conn.commit()
            except BaseException:
                self.conn.rollback()  # a stop signal before the COMMIT ran leaves the transaction open
                raise
        else:
            self.conn.rollback()
        return False


class _ConnInfo(dict):
    """DataJoint's ``conn.conn_info`` (host, port, user, passwd, ...); its repr masks the password."""

    def __repr__(self):
        return repr({k: ("***" if k == "passwd" and v else v) for k, v in self.items()})

    __str__ = __repr__


def target(host=None, user=None, password=None, port=None) -> DatabaseURL:
    """The database ``dj.conn``/``dj.Connection`` arguments name: a URL (``mysql://...``, ``sqlite:///...``), a
    DataJoint host (``name`` or ``name:port``) with user and password, or nothing (config.resolve_database_url:
    flags, environment, dj.config, djhpc.yaml, SQLite). A host with no user or password takes dj.config's."""
    if isinstance(host, DatabaseURL) or (isinstance(host, str) and "://" in host):
        if user is not None or password is not None or port is not None:
            raise ConfigError("give the user, password and port inside the URL, or a host name with user= and "
                              "password=, not both")
        return host if isinstance(host, DatabaseURL) else parse_url(host)
    if host is None and user is None and password is None:
        return resolve_database_url(datajoint=settings.config)
    conf = settings.config
    return settings.server_url(
        conf["database.host"] if host is None else host,
        conf["database.user"] if user is None else user,
        conf["database.password"] if password is None else password,
        conf["database.port"] if port is None else port)


class Connection:
    """A connection to MySQL/MariaDB or SQLite: ``Connection("mysql://user@host")``, DataJoint's
    ``Connection(host, user, password, port=None, init_fun=None, use_tls=None)``, or ``Connection()`` (the
    database by config.resolve_database_url). It connects on first use, except the DataJoint form, which
    connects at once as DataJoint does (a wrong password fails here). ``init_fun``: SQL run after each
    connect; ``use_tls`` (MySQL): True requires TLS, False or None asks none, a dict gives PyMySQL's ``ssl``
    options (DataJoint's None means "TLS if the server offers it"; djhpc keeps the plain connection it always
    made). Both default to dj.config's ``connection.init_function`` and ``database.use_tls``."""

    def __init__(self, host: str | DatabaseURL | None = None, user: str | None = None, password: str | None = None,
                 port: int | None = None, init_fun: str | None = None, use_tls=None, *,
                 connect_timeout: float = 10):
        self.url = target(host, user, password, port)
        self.dialect: Dialect = DIALECTS[self.url.scheme]
        self.init_fun = init_fun if init_fun is not None else settings.config["connection.init_function"]
        self.use_tls = use_tls if use_tls is not None else settings.config["database.use_tls"]
        if self.use_tls not in (None, True, False) and not isinstance(self.use_tls, dict):
            raise ConfigError(f"use_tls must be True, False, None or a dict of TLS options (got {self.use_tls!r})")
        self.connect_timeout = connect_timeout
        self.stats = Stats()
        self._raw = None
        self._pid = None
        self._depth = 0  # nesting of transaction()
        self.connection_id = 0
        self.opens = 0
        self.releases = 0  # closed on purpose by release_if_idle (each reopened by the next statement)
        self._released = False  # closed by release_if_idle: the next statement reopens (and begins again)
        self._wrote = False  # MySQL: a write was sent in the open transaction (it would go with the session)
        self._last_used = time.monotonic()
        self._lock = threading.RLock()
        self._lock_pid = os.getpid()
        #: called with the connection after each (re)connect, e.g. to take a worker's session lock again
        self.on_connect: list = []
        #: inside make(): writes are queued. SQLite runs them in one short write transaction at the end; MySQL
        #: sends inserts with the closing statements (commit_with), or before the next statement of another kind
        self.defer_writes = False
        self.session = _SESSIONS[self.dialect.name](self)
        #: DataJoint's registry of the schemas declared on this connection
        self.schemas: dict = {}
        self.dependencies = None  # DataJoint's connection.dependencies: set by the first schema activated on it
        #: DataJoint's query cache name (set_query_cache): while set, reads come from dj.config["query_cache"]
        self.query_cache: str | None = None
        is_url = isinstance(host, DatabaseURL) or (isinstance(host, str) and "://" in host)
        if not is_url and (host, user, password) != (None, None, None):
            _ = self.raw  # DataJoint's Connection connects at once: a wrong host or password fails here

    # ------------------------------------------------------------------ lifecycle
    def __repr__(self):
        # "connected" as DataJoint's repr says it, from what this process holds: a repr sends nothing
        state = "connected" if self._raw is not None and self._pid == os.getpid() else "disconnected"
        return f"Connection({self.url.redacted!r}, {state})"

    @property
    def conn_info(self) -> dict:
        """DataJoint's connection details: host, port, user, passwd (masked in its repr), ssl_input, host_input."""
        u = self.url
        if u.scheme == "sqlite":
            return _ConnInfo(host=u.path, port=None, user="", passwd="", ssl_input=None, host_input=u.path)
        return _ConnInfo(host=u.host, port=u.port, user=u.user, passwd=u.password, ssl_input=self.use_tls,
                         host_input=f"{u.host}:{u.port}")

    @property
    def ssl_options(self) -> dict | None:
        """PyMySQL's ``ssl`` argument for ``use_tls``: None for a plain connection."""
        if self.use_tls is True:
            return {"ssl": {}}  # what DataJoint passes: TLS without a CA to verify against
        return self.use_tls or None

    @property
    def reconnects(self) -> bool:
        """dj.config's ``database.reconnect``: whether a statement outside a transaction that finds the
        connection lost reconnects and runs again (True), or raises LostConnectionError (False, as DataJoint)."""
        return bool(settings.config["database.reconnect"])

    @property
    def is_connected(self) -> bool:
        """Whether the connection is open and answers (DataJoint's ``conn.is_connected``); opens nothing."""
        try:
            self.ping()
        except Exception:  # a closed or dead connection simply is not connected
            return False
        return True

    @_guarded
    def ping(self):
        """Raise LostConnectionError unless the connection is open and the server answers."""
        self._reopen_if_released()
        if self._raw is None or self._pid != os.getpid():
            raise LostConnectionError("not connected to the database")
        try:
            settle = getattr(self.session, "settle", None)
            if settle is not None:
                settle()  # a commit's reply still unread comes first: a ping must not overtake it
            ping = getattr(self._raw, "ping", None)
            ping(reconnect=False) if ping else self._raw.execute("SELECT 1")
        except Exception as e:
            raise LostConnectionError(f"the database connection does not answer ({type(e).__name__})") from e

    def set_query_cache(self, query_cache: str | None = None):
        """DataJoint's query caching: while ``query_cache`` names a cache state, only SELECT/SHOW run, and each
        one's rows are kept in (and then read from) files under dj.config["query_cache"] (db.querycache); a new
        name asks the server again. ``set_query_cache()`` turns it off."""
        if query_cache is not None and not isinstance(query_cache, str):
            raise ConfigError(f"query_cache names a cache state as a string (got {type(query_cache).__name__})")
        self.query_cache = query_cache

    def purge_query_cache(self):
        """Delete the answers cached under dj.config["query_cache"] (DataJoint's ``purge_query_cache``)."""
        querycache.purge()

    def register(self, schema):
        """Note a schema declared on this connection (DataJoint's ``conn.register``)."""
        self.schemas[schema.database] = schema

    def get_user(self) -> str:
        """The user and host the server knows this connection by (``user@host``; SQLite: the OS user)."""
        if self.is_sqlite:
            return getpass.getuser()
        return self.query("SELECT user()").fetchone()[0]

    @property
    def takes_returning(self) -> bool:
        """Whether the server takes ``INSERT ... RETURNING`` (MariaDB >= 10.5; known once connected)."""
        return bool(getattr(self.session, "returning", False)) and self._raw is not None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    @property
    def raw(self):
        """The driver connection, opened on first use and again in a forked child."""
        if self._raw is None or self._pid != os.getpid():
            if self._released and self._pid == os.getpid():
                self._reopen_released()
            elif self._pid is not None and self._pid != os.getpid():
                # forked: drop the parent's handle without closing it (closing would end the parent's session)
                self._forget()
                self._open()
            elif self._depth:
                raise self._transaction_lost()
            elif self._pid is not None:
                self.reconnect_with_backoff()  # it was lost: the server may be restarting
            elif _first_connect_seconds > 0:
                self.reconnect_with_backoff(_first_connect_seconds)  # a worker started while the server restarts
            else:
                try:
                    self._open()  # first connection: a wrong URL fails at once
                except ServerFullError:
                    self.reconnect_with_backoff()  # a task of an array larger than the server's budget waits
        return self._raw

    def _forget(self):
        self._raw = None
        self._depth = 0
        self._released = self._wrote = False
        self.session.forget()

    def guard(self) -> threading.RLock:
        """The lock every statement runs under (a forked child gets a fresh one: a thread of the parent may have
        held it at the fork)."""
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.RLock(), os.getpid()
        return self._lock

    def release_if_idle(self, seconds: float) -> bool:
        """MySQL: close the connection if it has been unused for ``seconds`` and nothing of its session would be
        lost (no write sent in the open transaction; a commit's reply still unread is read first). The next
        statement opens a new connection, waiting for a free one if the server is full, and begins the open
        transaction again; reads after the release see a new snapshot. Safe from another thread: a statement
        running now keeps the connection. True when it was released."""
        if self.is_sqlite or self._raw is None or self._pid != os.getpid() or self.query_cache:
            return False
        lock = self.guard()
        if not lock.acquire(blocking=False):
            return False
        try:
            if self._raw is None or time.monotonic() - self._last_used < seconds or not self.session.release():
                return False
            raw, self._raw = self._raw, None
            self._released = True
            self.releases += 1
            try:
                raw.close()
            except Exception:  # a socket the server dropped meanwhile: nothing to close
                pass
            return True
        finally:
            lock.release()

    def _reopen_if_released(self):
        """Before a statement that needs the session itself (not just a socket): one given back by
        release_if_idle is opened again first, with its transaction begun again."""
        if self._released:
            _ = self.raw

    def _reopen_released(self):
        """The first statement after release_if_idle: a new session; the open transaction begun again."""
        self._released = False
        opens = self.opens
        self.reconnect_with_backoff()  # a full server is waited for (connection_wait_seconds)
        self.opens = opens  # the release read every reply first: nothing can have been lost (populate's orphans)
        if self._depth:
            self.stats.statements += 1
            self._raw.begin()

    def _open(self):
        self._raw = self.session.open()
        self.opens += 1  # a reopened connection may have lost a reply (populate looks for orphans then)
        self._pid = os.getpid()
        for hook in self.on_connect:
            hook(self)

    def _transaction_lost(self) -> LostConnectionError:
        """The connection was closed inside a transaction: the transaction ends here, as in DataJoint, rather
        than its remaining statements running, each committed alone, on a new connection."""
        self._depth = 0
        self.session.forget()
        return LostConnectionError("the connection was closed during a transaction, which is lost: start the "
                                   "transaction again")

    @_guarded
    def close(self):
        """Close the connection; the next statement opens a new one, except inside a transaction open when it
        closed: that statement (or the commit) raises LostConnectionError."""
        self._released = False
        mine = self._raw is not None and self._pid == os.getpid()
        if mine:
            self.session.close()
            try:
                self._raw.close()
            except Exception:  # closing a dead connection may fail; nothing to keep
                pass
        self._raw = None
        self._pid = None
        if not mine:
            self._depth = 0  # a transaction kept open (``_depth``) is one this process's closing ends

    @_guarded
    def reconnect(self):
        """Drop the connection and open a new one (any open transaction is lost)."""
        self._forget()
        self._open()

    def reconnect_with_backoff(self, give_up_after: float | None = None):
        """Reconnect after a drop, waiting longer each time; gives up after ``give_up_after`` seconds."""
        limit = give_up_after if give_up_after is not None else reconnect_seconds()
        started = time.monotonic()
        for delay in backoff.delays(first=0.1, cap=5):
            try:
                self._open()
                _outage.clear()
                return
            except UnreachableError as e:
                if isinstance(e, ServerFullError):  # the server is up: waiting for a free slot may take longer
                    limit = max(limit, connection_wait_seconds())
                if time.monotonic() + delay > started + limit:
                    raise
                say_unreachable(e, limit)
                backoff.sleep(delay)

    def check_file(self):
        """SQLite: raise ConnectError when the file was deleted or replaced since it was opened (checked once per
        reserved batch: a stat, no statement). MySQL: nothing to check."""
        if self.is_sqlite and self._raw is not None and self._pid == os.getpid():
            self.session.check_file()

    # ------------------------------------------------------------------ statements
    @_guarded
    def query(self, sql: str, args=(), *, many: bool = False, context: str = "", as_dict: bool = False,
              suppress_warnings: bool = True, reconnect: bool | None = None):
        """Run one statement; returns the driver cursor (``fetchall``, ``rowcount``, ``lastrowid``), or with
        ``as_dict`` one whose rows are dicts.

        ``%`` reads as DataJoint's connection (PyMySQL) reads it: with ``args``, even none (``()``), ``%%`` is one
        ``%`` (``CREATE USER 'u'@'%%'`` makes host ``%``); with ``args=None`` the text goes as it is. A lone ``%``
        without args is left alone (DataJoint refuses it: "not enough arguments"). Placeholders are the
        dialect's: ``%s`` on MySQL, ``?`` on SQLite. ``suppress_warnings`` is DataJoint's; djhpc shows none.
        ``reconnect`` (DataJoint's) overrides ``database.reconnect`` for this statement: False raises
        LostConnectionError on a lost connection instead of reconnecting."""
        del suppress_warnings
        if self.query_cache:
            return self._cached(sql, args, as_dict)
        if reconnect is not None and bool(reconnect) != self.reconnects:
            with settings.config(database__reconnect=bool(reconnect)):
                return self.query(sql, args, many=many, context=context, as_dict=as_dict)
        sql, args = self._percent(sql, args)
        cursor = self.session.query(sql, args, many, context)
        return _DictCursor(cursor) if as_dict else cursor

    def _cached(self, sql: str, args, as_dict: bool):
        """query() while caching is on: a read-only statement's rows from the cache, else from the server (then
        kept); anything else refused."""
        querycache.check_read_only(sql)
        path = querycache.path_for(self.query_cache, sql, args)
        cursor = querycache.read(path)
        if cursor is None:
            sql, args = self._percent(sql, args)
            cursor = querycache.write(path, self.session.query(sql, args, False, "cached read"))
        return _DictCursor(cursor) if as_dict else cursor

    def _percent(self, sql: str, args) -> tuple[str, tuple]:
        if args is None:
            return sql, ()
        if args and self.dialect.placeholder == "%s":
            return sql, args  # the driver formats: %% -> %, %s -> the escaped value
        return (sql.replace("%%", "%") if "%%" in sql else sql), args

    def cancel_transaction(self):
        """DataJoint's name for rollback()."""
        self.rollback()

    def commit_transaction(self):
        """DataJoint's name for commit()."""
        self.commit()

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

    @_guarded
    def script(self, statements, *, begin_next: bool = False, context: str = "") -> list[tuple[int, list]]:
        """MySQL, outside a transaction: ``statements`` (sql, params) in one round trip; (rowcount, rows) of each.
        The server stops at the first failing statement. ``begin_next`` appends BEGIN for the next transaction."""
        if self.is_sqlite:
            raise AssertionError("script() sends one packet of statements: MySQL only")
        statements = self._uncached(statements)
        return self.session.script(statements, begin_next=begin_next, context=context)

    def _uncached(self, statements) -> list:
        """The statements of a packet, as a list; refused while query caching is on unless each one reads."""
        statements = list(statements)
        if self.query_cache:
            for sql, _ in statements:
                querycache.check_read_only(sql)
        return statements

    @_guarded
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

    @_guarded
    def start_transaction(self):
        if self._depth == 0:
            self._wrote = False
            self.session.begin()
        self._depth += 1

    @_guarded
    def commit(self):
        if self._depth == 0:
            return
        if self._depth > 1:
            self._depth -= 1
            return
        self._reopen_if_released()  # the transaction begun again: whatever is queued commits there
        if self._raw is None:
            self._depth = 0
            raise self._transaction_lost()
        self._wrote = False
        try:
            self.session.commit()
        except Exception:
            self._depth = 0
            raise
        except BaseException:
            raise  # a stop signal before the COMMIT ran: still in the transaction, for the caller's rollback
        self._depth = 0

    @_guarded
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
        self._reopen_if_released()
        self._wrote = False
        return self.session.commit_with(self._uncached(statements), begin_next=begin_next, wait=wait, context=context,
                                        one_row_at=one_row_at)

    @_guarded
    def send_later(self, statements, *, context: str = "later") -> PendingCommit:
        """Outside a transaction, statements whose outcome nobody waits for (a history row): MySQL sends them in
        one packet and reads the reply before its next statement; SQLite runs them now. A failure is kept in
        the returned ``PendingCommit``, not raised."""
        statements = self._uncached(statements)
        if self.is_sqlite:
            failed = run_in_turn(list(statements), lambda sql, params: self.query(sql, params).rowcount,
                                 DatabaseError, context=context)
            return failed or PendingCommit.settled(None)
        return self.session.send_later(list(statements), context=context)

    @_guarded
    def rollback(self):
        """Roll back the whole transaction, whatever the nesting depth."""
        self._wrote = False
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


def conn(host: str | None = None, user: str | None = None, password: str | None = None, *, init_fun=None,
         reset: bool = False, use_tls=None) -> Connection:
    """The process's connection (``dj.conn()``), made on first use, with ``reset``, or when the arguments name
    another database than the current one's: a URL (``dj.conn("mysql://...")``), DataJoint's ``host``/``user``/
    ``password`` (each missing one from dj.config), or nothing (config.resolve_database_url decides)."""
    global _connection
    given = host is not None or user is not None or password is not None
    wanted = target(host, user, password) if given else None
    current = _connection
    if (reset or current is None or (wanted is not None and wanted != current.url)
            or (init_fun is not None and init_fun != current.init_fun)
            or (use_tls is not None and use_tls != current.use_tls)):
        if current is not None:
            current.close()
        _connection = Connection(host, user, password, init_fun=init_fun, use_tls=use_tls)
    return _connection


class _DictCursor:
    """A driver cursor whose rows come as dicts of column name -> value (``query(..., as_dict=True)``)."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.names = [d[0] for d in cursor.description or ()]

    def __getattr__(self, name):
        return getattr(self.cursor, name)

    def fetchone(self):
        row = self.cursor.fetchone()
        return None if row is None else dict(zip(self.names, row, strict=True))

    def fetchall(self):
        return [dict(zip(self.names, row, strict=True)) for row in self.cursor.fetchall()]

    def __iter__(self):
        return iter(self.fetchall())


def _forget_after_fork():
    if _connection is not None:
        _connection._forget()


os.register_at_fork(after_in_child=_forget_after_fork)


_first_connect_seconds = 0.0


def reconnect_seconds() -> float:
    """How long a lost (or, in a worker, a first) connection is tried again: DJHPC_RECONNECT_SECONDS, 60 s."""
    return float(os.environ.get("DJHPC_RECONNECT_SECONDS", 60))


def connection_wait_seconds() -> float:
    """How long a connection the server refused for want of a free slot (max_connections) is tried again:
    DJHPC_CONNECTION_WAIT_SECONDS, 600 s; tasks of an array larger than the server's budget wait their turn."""
    return float(os.environ.get("DJHPC_CONNECTION_WAIT_SECONDS", 600))


def wait_for_server(seconds: float) -> None:
    """Let every first connection of this process try again for ``seconds`` while the server does not answer
    (a worker started during a database restart); a refused password still fails at once."""
    global _first_connect_seconds
    _first_connect_seconds = float(seconds)


_outage: set = set()  # not empty while this process has said it waits for the server


def say_unreachable(error: Exception, limit: float) -> None:
    """Say once per outage that the server does not answer and how long it is waited for."""
    if not _outage:
        _outage.add(True)
        knob = "DJHPC_CONNECTION_WAIT_SECONDS" if isinstance(error, ServerFullError) else "DJHPC_RECONNECT_SECONDS"
        log.warning("%s; trying again for up to %.0f s (%s)", error, limit, knob)
