"""DataJoint's own connection given back while a tripartite make computes (``djhpc work --release-after``).

A tripartite make's ``make_compute`` runs outside DataJoint's transaction and, by the pattern's contract, reads
and writes no table: DataJoint's connection sits idle for as long as the computation runs, one of the lab
server's ``max_connections`` (often 151) per worker. With ``release_after``, once make_compute has left it unused
that long it is closed; it is opened again when make_compute returns, or at the first statement make_compute
sends after all. A worker computing then holds no connection at all: djhpc's own is given back by its heartbeat.

A reopening the server refuses for want of a free connection waits for one, as djhpc's connections do
(DJHPC_CONNECTION_WAIT_SECONDS). A classic ``make`` runs inside DataJoint's transaction from start to end: its
connection is never given back.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from . import backoff
from .db.connection import connection_wait_seconds

__all__ = ["IdleRelease", "computes_apart"]

log = logging.getLogger("djhpc")

TOO_MANY_CONNECTIONS = (1040, 1203)  # max_connections, max_user_connections


def computes_apart(table) -> bool:
    """Whether a DataJoint table's make is tripartite (make_fetch, make_compute, make_insert): its compute step
    runs outside the transaction, apart from the database."""
    return all(callable(getattr(table, name, None)) for name in ("make_fetch", "make_compute", "make_insert"))


class IdleRelease:
    """Around one make_compute: a thread closes DataJoint's connection ``conn`` once it has been unused for
    ``seconds`` outside a transaction; its ``query`` (every statement DataJoint sends) reopens it first; leaving
    reopens it. ``releases`` counts the closes."""

    def __init__(self, conn, seconds: float):
        self.conn = conn
        self.seconds = seconds
        self.releases = 0
        self._lock = threading.Lock()
        self._released = False
        self._last_used = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wrap(self, compute):
        """``compute`` (a bound make_compute) run with the connection given back while it is idle."""

        @functools.wraps(compute)
        def released_while_computing(*args, **kwargs):
            with self:
                return compute(*args, **kwargs)

        return released_while_computing

    def __enter__(self) -> IdleRelease:
        query = self.conn.query

        def query_reopened(*args, **kwargs):
            with self._lock:
                self._reopen()
                try:
                    return query(*args, **kwargs)
                finally:
                    self._last_used = time.monotonic()

        self.conn.query = query_reopened  # an instance attribute: DataJoint's own calls go through it
        self._last_used = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="djhpc-datajoint-release", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            del self.conn.query
        except AttributeError:
            pass
        with self._lock:
            if exc_type is None:
                self._reopen()  # make_insert's stage finds the connection as DataJoint left it: open
                return
            try:  # make_compute raised: its error is the key's, not a failed reopening's
                self._reopen()
            except Exception as e:  # DataJoint reconnects at its next statement by itself
                log.info("DataJoint's connection not opened again after make_compute failed: %s", e)

    def _watch(self) -> None:
        tick = min(max(self.seconds / 2, 0.05), 1.0)
        while not self._stop.wait(tick):
            with self._lock:
                if self._released or getattr(self.conn, "_in_transaction", True):
                    continue
                if time.monotonic() - self._last_used < self.seconds:
                    continue
                try:
                    self.conn.close()
                except Exception as e:  # a connection already broken is as good as closed
                    log.debug("closing DataJoint's connection: %s", e)
                self._released = True
                self.releases += 1
                log.debug("gave DataJoint's connection back while make_compute runs")

    def _reopen(self) -> None:
        """Under the lock: DataJoint's connection opened again if it was given back, waiting for a free one."""
        if not self._released:
            return
        limit = connection_wait_seconds()
        said = False
        for delay in backoff.delays(first=0.5, cap=10, seconds=limit):
            try:
                self.conn.connect()
                break
            except Exception as e:
                if not _server_full(e) or delay is None:
                    raise
                if not said:
                    said = True
                    log.warning("the database has no free connection for DataJoint's after make_compute: waiting "
                                "for one for up to %.0f s (DJHPC_CONNECTION_WAIT_SECONDS)", limit)
                backoff.sleep(delay)
        self._released = False
        try:  # DataJoint names its session by this id (its jobs table, kill): the new session's
            self.conn.connection_id = self.conn._conn.thread_id()
        except Exception:  # a driver without thread_id(): the old id stays, as after DataJoint's own reconnect
            pass


def _server_full(error: BaseException) -> bool:
    while error is not None:
        if error.args and error.args[0] in TOO_MANY_CONNECTIONS:
            return True
        error = error.__cause__ or error.__context__
    return False
