"""Count round trips and durable commits at the PyMySQL layer, the same way for djhpc and DataJoint.

Both libraries talk to MariaDB through PyMySQL, so wrapping ``pymysql.connections.Connection`` sees every
command either sends, whatever path inside the library it came from:

- a **round trip** is one command sent and answered: ``query`` (one statement, or several joined by ``;``
  in one multi-statement packet), ``begin``, ``commit``, ``rollback`` and ``ping``, and a query sent on
  its own whose reply is read later (``_execute_command``, as djhpc sends a commit it confirms while
  the next key is made);
- a **durable commit** is the end of a transaction that changed rows, which is what makes InnoDB flush its
  redo log (an fsync with ``innodb_flush_log_at_trx_commit=1``): a ``COMMIT`` (text or ``commit()``) after
  a write that changed something, or a write (INSERT, UPDATE, DELETE, REPLACE) that changed rows under
  autocommit outside a transaction. A write that changed nothing (a lost ``UPDATE ... WHERE
  status='pending'``, an ``INSERT IGNORE`` that skipped every row, a duplicate-key error) and a COMMIT of
  a transaction that only read leave nothing to flush and are not counted.

The server's own counters (``SHOW GLOBAL STATUS``: Questions, Com_commit, Handler_commit,
Innodb_os_log_fsyncs) are read by the runner before and after each run as a cross-check.

This module needs only the standard library and PyMySQL: DataJoint workers import it from their own venv.
"""

from __future__ import annotations

import re
import threading

_WRITES = (b"INSERT", b"UPDATE", b"DELETE", b"REPLACE")
_BEGINS = (b"BEGIN", b"START")
_IN_TRANS = 1  # pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = 2  # SERVER_STATUS_AUTOCOMMIT
COM_QUERY = 3  # pymysql.constants.COMMAND.COM_QUERY
# djhpc joins the statements of one packet with ";\n"; PyMySQL escapes newlines inside quoted values
_SEPARATOR = re.compile(rb";\s*\n\s*")


class Counts:
    """Totals for this process (every connection and thread)."""

    def __init__(self):
        self.round_trips = 0
        self.commits = 0
        self.autocommit_writes = 0
        self.multi_statement_packets = 0
        self._lock = threading.Lock()

    def snapshot(self) -> dict:
        with self._lock:
            return {"round_trips": self.round_trips, "commits": self.commits,
                    "autocommit_writes": self.autocommit_writes,
                    "multi_statement_packets": self.multi_statement_packets}

    def add(self, round_trips=0, commits=0, autocommit_writes=0, multi=0):
        with self._lock:
            self.round_trips += round_trips
            self.commits += commits
            self.autocommit_writes += autocommit_writes
            self.multi_statement_packets += multi


COUNTS = Counts()
_installed = False


def _heads(sql) -> list[bytes]:
    """The first word of each statement in the packet, upper case."""
    if isinstance(sql, str):
        if ";\n" not in sql:
            return [sql[:64].lstrip()[:12].strip().upper().encode("ascii", "replace")]
        sql = sql.encode("utf-8", "surrogateescape")
    elif b";\n" not in sql:
        return [bytes(sql[:64]).lstrip()[:12].strip().upper()]
    return [part.lstrip()[:12].strip().upper() for part in _SEPARATOR.split(bytes(sql)) if part.strip()]


def _account(conn, heads, status, rows, ok):
    """Walk the statements of one packet, tracking whether the open transaction changed anything."""
    in_tx = bool(status & _IN_TRANS) or not (status & _AUTOCOMMIT)
    dirty = getattr(conn, "_bench_dirty", False) and in_tx
    commits = autocommit_writes = 0
    for head in heads:
        if head.startswith(_BEGINS):
            in_tx, dirty = True, False
        elif head.startswith(b"COMMIT"):
            commits += dirty
            in_tx = dirty = False
        elif head.startswith(b"ROLLBACK"):
            in_tx = dirty = False
        elif head.startswith(_WRITES) and ok and (len(heads) > 1 or rows > 0):
            if in_tx:
                dirty = True
            else:
                commits += 1
                autocommit_writes += 1
    conn._bench_dirty = dirty
    COUNTS.add(1, commits=commits, autocommit_writes=autocommit_writes, multi=int(len(heads) > 1))


def install() -> Counts:
    """Wrap PyMySQL's connection methods (once per process); returns the process's Counts."""
    global _installed
    if _installed:
        return COUNTS
    from pymysql.connections import Connection

    original_query = Connection.query

    original_send = Connection._execute_command

    def query(self, sql, unbuffered=False):
        status = self.server_status or 0
        rows, ok = 0, False
        self._bench_inside = True
        try:
            rows = original_query(self, sql, unbuffered)
            ok = True
            return rows
        finally:
            self._bench_inside = False
            _account(self, _heads(sql), status, rows or 0, ok)

    def send(self, command, sql):
        """A query sent on its own, its reply read later (djhpc's commit confirmed while the next key is
        made): counted when sent. Its statements' row counts are not known yet, which matters only for a
        lone autocommit write; in a multi-statement packet every write counts."""
        if not getattr(self, "_bench_inside", False) and command == COM_QUERY:
            _account(self, _heads(sql), self.server_status or 0, 0, True)
        return original_send(self, command, sql)

    def command(name, head):
        original = getattr(Connection, name)

        def wrapper(self, *args, **kwargs):
            status = self.server_status or 0
            self._bench_inside = True
            try:
                return original(self, *args, **kwargs)
            finally:
                self._bench_inside = False
                _account(self, [head], status, 0, True)

        wrapper.__name__ = name
        return wrapper

    Connection.query = query
    Connection._execute_command = send
    Connection.begin = command("begin", b"BEGIN")
    Connection.commit = command("commit", b"COMMIT")
    Connection.rollback = command("rollback", b"ROLLBACK")
    Connection.ping = command("ping", b"PING")
    _installed = True
    return COUNTS
