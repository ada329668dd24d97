"""Tables written with DataJoint itself (0.14.x and 2.x), filled by djhpc's populate loop.

A lab's pipeline stays as it is: its Computed and Imported tables, their ``make``/``_make_tuples`` or tripartite
``make_fetch``/``make_compute``/``make_insert``, their ``key_source`` and DataJoint's connection settings. What
djhpc brings is the loop around them: reservation, dead-worker reclaim, fencing, stop signals, walltime fit.

How one key is made: DataJoint's own ``_populate1(key)`` runs make() exactly as DataJoint's populate does
(transactions, ``_allow_insert``, the tripartite re-fetch and compare, 2.x's provenance and job metadata), with no
DataJoint jobs table. Its ``commit_transaction`` is wrapped for that call, so that the reservation's fenced
``DELETE`` (and the history row) run as the last statements of DataJoint's own transaction: a reclaimed key's
make never commits.

Reservations live in the pipeline's schema in ``~djhpc_jobs`` (and ``~djhpc_history``): DataJoint 0.14 owns
``~jobs`` there and 2.x ``~~<table>``, which djhpc only reads. DataJoint's own ``populate(reserve_jobs=True)``
does not see djhpc's reservations, so djhpc refuses to run beside it: before each batch it counts the keys of the
table that DataJoint's jobs table holds reserved, and stops with a usage error when there are any
(``check_alone``). Within the one batch a DataJoint worker could start in, no row is written twice either (the
table's primary key, and DataJoint's check for the key inside make's transaction: a key found made is given
back as ``KeyMadeElsewhere``).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable

from .config import DatabaseURL
from .db.connection import Connection
from .db.pending import PendingCommit, run_in_turn
from .djrelease import IdleRelease, computes_apart
from .errors import KeyMadeElsewhere, UsageError
from .query import AndList, keyset_condition

__all__ = ["DJHPC_HISTORY", "DJHPC_JOBS", "DataJointTarget", "SQLKeys", "is_datajoint_class"]

DJHPC_JOBS = "~djhpc_jobs"
DJHPC_HISTORY = "~djhpc_history"
SUPPORTED = ((0, 14), (2,))  # DataJoint 0.14.x and 2.x


def is_datajoint_class(obj) -> bool:
    """Whether ``obj`` is a table class written with the ``datajoint`` package."""
    return isinstance(obj, type) and any(k.__module__.split(".")[0] == "datajoint" for k in obj.__mro__)


def datajoint_version() -> tuple[int, ...]:
    dj = sys.modules.get("datajoint")
    text = getattr(dj, "__version__", "0")
    parts = tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
    if not any(parts[: len(s)] == s for s in SUPPORTED):
        raise UsageError(f"DataJoint {text} is not supported: djhpc drives DataJoint 0.14.x and 2.x; "
                         "upgrade or pin datajoint in the pipeline's environment")
    return parts


class _Aborted(BaseException):
    """Leaves DataJoint's ``_populate1`` from inside its commit, when a closing statement failed."""

    def __init__(self, pending: PendingCommit):
        super().__init__("closing statement failed")
        self.pending = pending


class DataJointTarget:
    """A DataJoint Computed or Imported table, as the populate loop sees it."""

    jobs_table = DJHPC_JOBS
    history_table = DJHPC_HISTORY
    begins_ahead = False  # make's transaction is DataJoint's, on DataJoint's connection
    wait_for_commit = True
    release_after: float | None = None  # populate's: DataJoint's connection too is given back in make_compute

    def __init__(self, table_class, connection: Connection | None = None):
        self.version = datajoint_version()
        from datajoint.autopopulate import AutoPopulate

        if not (isinstance(table_class, type) and issubclass(table_class, AutoPopulate)):
            raise UsageError(f"{getattr(table_class, '__name__', table_class)} is a DataJoint table without make(): "
                             "name a dj.Computed or dj.Imported table")
        self.cls = table_class
        self.table = table_class()
        self.name = table_class.__name__
        self.dj_connection = self.table.connection
        self.connection = connection or Connection(url_of(self.dj_connection))
        self.database = self.table.database
        self.table_name = self.table.table_name
        self.full_table_name = self.table.full_table_name
        self.uuid_names = {a.name for a in self.table.heading.attributes.values() if getattr(a, "uuid", False)}
        self._datajoint_jobs: str | None = None  # DataJoint's own jobs table of this table, "" when it has none

    def candidates(self, restrictions):
        """(the keys of the key source, restricted, that are not in the table yet; the key's attribute names)."""
        todo = self.table._jobs_to_do(tuple(_for_datajoint(r) for r in restrictions))
        names = list(todo.primary_key)
        return SQLKeys(self.connection, (todo - self.table).make_sql(), names, self.uuid_names), names

    @property
    def make_timeout(self) -> float | None:
        """Seconds one make may run, from the DataJoint class's ``make_timeout`` attribute (None: no limit)."""
        return getattr(self.cls, "make_timeout", None)

    def after_fork(self):
        """In a forked child (djhpc work --processes): a DataJoint connection of its own (DataJoint's connect()
        opens a new socket; the parent's, inherited, is neither used nor closed here). djhpc's reopens by itself."""
        self.dj_connection.connect()

    def reconnect(self):
        """Fresh connections after a time limit cut make short: DataJoint's (make's) and djhpc's."""
        _cancel(self.dj_connection)
        self.dj_connection.connect()
        self.connection.reconnect()

    def check_alone(self):
        """Refuse to go on while DataJoint's own ``populate(reserve_jobs=True)`` workers hold keys of this table:
        they do not see djhpc's reservations, so both could make one key. Asked before each batch."""
        held = self._datajoint_reservations()
        if held:
            raise UsageError(f"DataJoint's own populate(reserve_jobs=True) holds {held} key(s) of {self.name} "
                             f"({self._datajoint_jobs}): run djhpc or DataJoint's workers on a table, not both; "
                             "stop them (or clear their stale rows) and start djhpc again")

    def _datajoint_reservations(self) -> int:
        if self._datajoint_jobs is None:
            name = "~jobs" if self.version[0] == 0 else "~~" + self.table_name.lstrip("_#")
            table = self.connection.dialect.table(self.database, name)
            self._datajoint_jobs = table if self.connection.has_table(table) else ""
        if not self._datajoint_jobs:
            return 0
        where, params = ("`status` = 'reserved' AND `table_name` = %s", (self.table_name,)) \
            if self.version[0] == 0 else ("`status` = 'reserved'", ())
        sql = f"SELECT COUNT(*) FROM {self._datajoint_jobs} WHERE {where}"
        return int(self.connection.query(sql, params, context="datajoint_reservations").fetchone()[0])

    def encode(self, key: dict, names) -> tuple:
        return tuple(_to_column(key[n]) for n in names)

    def inserted(self) -> list:
        """DataJoint's inserts are not watched: a make that misses its key is named without them."""
        return []

    def progress(self, restrictions=()) -> dict:
        """total (DataJoint's key source under ``restrictions``), done, remaining, and the ``~djhpc_jobs`` rows
        of the table by status: one statement on djhpc's connection, no key fetched."""
        from .reservation import Reservations

        todo = self.table._jobs_to_do(tuple(_for_datajoint(r) for r in restrictions))
        jobs = Reservations(self.connection, self.database, jobs_table=self.jobs_table)
        jobs.ensure_table()
        statuses = ("reserved", "error", "ignore", "pending")
        parts = [(f"SELECT COUNT(*) FROM ({q.make_sql().replace('%', '%%')}) AS k", ())
                 for q in (todo, todo - self.table)]
        parts += [jobs.count_statement(self.table_name, status) for status in statuses]
        sql = "SELECT " + ", ".join(f"({p})" for p, _ in parts)
        row = self.connection.query(sql, tuple(v for _, ps in parts for v in ps), context="progress").fetchone()
        total, remaining = int(row[0]), int(row[1])
        out = {"total": total, "done": total - remaining, "remaining": remaining}
        out.update({s: int(n) for s, n in zip(statuses, row[2:], strict=True)})
        if restrictions:  # the jobs rows of the restricted keys only, as the total and remaining are
            out.update(jobs.counts_within(self.table_name, lambda keys: len(todo & keys)))
        return out

    def typed_key(self, key: dict) -> dict:
        """A key given as JSON (``djhpc jobs show/ignore``), its values converted to the primary key's types as
        the key walk reads them from the database, so it hashes as the worker's key did."""
        names = list(self.table.primary_key)
        if sorted(key) != sorted(names):
            raise UsageError(f"key names {', '.join(sorted(key))} but {self.name}'s primary key is "
                             f"{', '.join(names)}: give exactly those")
        attributes = self.table.heading.attributes
        out = {}
        for name in names:
            attr = attributes[name]
            try:
                out[name] = _typed_value(attr, key[name], name in self.uuid_names)
            except (TypeError, ValueError, ArithmeticError) as e:
                raise UsageError(f"key value {name}={key[name]!r} does not fit {attr.type}: {e}") from e
        return out

    def make(self, key: dict, closing: Callable[[], tuple[list, int | None]], *, make_kwargs: dict,
             begin_next: bool, wait: bool) -> PendingCommit:
        """DataJoint's ``_populate1(key)``, whose commit first runs the closing statements in its transaction."""
        conn = self.dj_connection
        commit = conn.commit_transaction

        def fenced_commit():
            statements, fence_at = closing()
            # the fenced completion ends DataJoint's transaction; what follows the fence (the history row) rides
            # on djhpc's own connection after the commit, not waited for: one round trip less per key on
            # DataJoint's connection (a crash between the two loses a history row, never a result)
            split = len(statements) if fence_at is None else fence_at + 1
            inside, after = statements[:split], statements[split:]
            # DataJoint raises its own errors: any of them, and the statement's position decides what it means
            failed = run_in_turn(inside, lambda sql, params: conn.query(sql, args=params).rowcount, Exception,
                                 one_row_at=fence_at, context="complete")
            if failed is not None:
                raise _Aborted(failed)
            commit()
            if after:
                self.connection.send_later(after, context="history")

        conn.commit_transaction = fenced_commit
        released = self.release_after is not None and computes_apart(self.table)
        if released:
            self.table.make_compute = IdleRelease(conn, self.release_after).wrap(self.table.make_compute)
        try:
            outcome = self.table._populate1(dict(key), None, True, True, make_kwargs or None)
        except _Aborted as aborted:
            _cancel(conn)
            return aborted.pending
        except BaseException:
            _cancel(conn)  # Interrupted is no Exception: DataJoint left the transaction open
            raise
        finally:
            del conn.commit_transaction
            if released:
                del self.table.make_compute
        if outcome is True:
            return PendingCommit.settled(None)
        if outcome is False:
            raise KeyMadeElsewhere(f"{self.name} {key} is in the table already: made by another worker")
        error = outcome[1]
        raise error


def url_of(dj_connection) -> DatabaseURL:
    """The database URL of a DataJoint connection (its host, port, user and password; never printed)."""
    info = dj_connection.conn_info
    host, port = str(info["host"]), info.get("port")
    if ":" in host and not host.startswith("["):
        host, _, text = host.rpartition(":")
        port = port or int(text)
    return DatabaseURL(scheme="mysql", host=host, port=int(port or 3306), user=info.get("user") or "",
                       password=info.get("passwd") or "")


def _cancel(conn):
    try:
        if conn.in_transaction:
            conn.cancel_transaction()
    except Exception:  # a lost connection has no transaction left to cancel
        pass


def _typed_value(attr, value, is_uuid: bool):
    """A JSON value as the database driver returns the column's value (int, float, Decimal, date, UUID, str)."""
    import datetime as dt
    import decimal

    if value is None:
        return None
    if is_uuid:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    kind = str(getattr(attr, "sql_type", None) or attr.type).lower()
    if kind.startswith(("int", "tinyint", "smallint", "mediumint", "bigint", "uint")):
        return int(value)
    if kind.startswith(("float", "double", "real")):
        return float(value)
    if kind.startswith(("decimal", "numeric")):
        return decimal.Decimal(str(value))
    if kind.startswith(("datetime", "timestamp")):
        return dt.datetime.fromisoformat(str(value))
    if kind.startswith("date"):
        return dt.date.fromisoformat(str(value))
    return value


def _for_datajoint(restriction):
    """A restriction as DataJoint reads it: djhpc's AndList (``djhpc work --restrict``) becomes DataJoint's, since
    DataJoint reads a plain list as OR."""
    if isinstance(restriction, AndList):
        from datajoint import AndList as DataJointAndList

        return DataJointAndList(list(restriction))
    return restriction


def _to_column(value):
    return value.bytes if isinstance(value, uuid.UUID) else value


class SQLKeys:
    """The pending keys of a DataJoint query, as the key walk reads them: a window at a time, after a key.

    DataJoint writes its values into the SQL text; djhpc adds its own conditions as parameters (so a literal
    ``%`` in DataJoint's text is doubled whenever there are any)."""

    def __init__(self, connection: Connection, sql: str, names: list[str], uuid_names=(), conditions=()):
        self.connection = connection
        self.sql = sql
        self.names = names
        self.uuid_names = set(uuid_names)
        self.conditions = tuple(conditions)  # (sql, params) over the alias k

    def _q(self, name: str) -> str:
        return "k." + self.connection.dialect.quote(name)

    def key_range(self, names, *, after=None, after_inclusive=False, before=None, descending=False) -> SQLKeys:
        gt, lt = ("<", ">") if descending else (">", "<")
        extra = []
        if after is not None:
            extra.append(self._tuple_condition(names, after, gt, after_inclusive))
        if before is not None:
            extra.append(self._tuple_condition(names, before, lt, False))
        return SQLKeys(self.connection, self.sql, self.names, self.uuid_names, self.conditions + tuple(extra))

    def _tuple_condition(self, names, key: dict, op: str, inclusive: bool):
        return keyset_condition([self._q(n) for n in names], [_to_column(key[n]) for n in names], op, inclusive)

    def _from(self, params) -> str:
        inner = self.sql.replace("%", "%%") if params else self.sql
        where = " WHERE " + " AND ".join(s for s, _ in self.conditions) if self.conditions else ""
        return f"FROM ({inner}) AS k{where}"

    def _params(self) -> tuple:
        return tuple(p for _, ps in self.conditions for p in ps)

    def count_sql(self) -> tuple[str, tuple]:
        params = self._params()
        return f"SELECT COUNT(*) {self._from(params)}", params

    def __len__(self) -> int:
        sql, params = self.count_sql()
        return int(self.connection.query(sql, params, context="count").fetchone()[0])

    def select_sql(self, names=None, order_by=None, limit=None, offset=None) -> tuple[str, tuple]:
        names = names or self.names
        params = self._params()
        order = ""
        if order_by:
            order = " ORDER BY " + ", ".join(
                self._q(item.split()[0]) + (" DESC" if item.upper().endswith(" DESC") else "") for item in order_by)
        sql = f"SELECT {', '.join(self._q(n) for n in names)} {self._from(params)}{order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}" + (f" OFFSET {int(offset)}" if offset else "")
        return sql, params

    def decode_rows(self, rows, names) -> list[dict]:
        return [{n: (uuid.UUID(bytes=bytes(v)) if n in self.uuid_names and v is not None else v)
                 for n, v in zip(names, row, strict=True)} for row in rows]

    def fetch(self, *names, as_dict=True, order_by=None, limit=None, offset=None) -> list[dict]:
        sql, params = self.select_sql(list(names), order_by, limit, offset)
        return self.decode_rows(self.connection.query(sql, params, context="fetch").fetchall(), list(names))
