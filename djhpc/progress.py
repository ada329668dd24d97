"""Progress of auto-populated tables: counts, rate, ETA and how big a make is, from a handful of queries.

For a table class: two COUNTs (key source, key source minus table), one GROUP BY over the jobs table,
one summary of the completion history and one bounded sample of it (the last ``SAMPLE_SIZE`` makes).
Nothing fetches keys, so the cost does not grow with the table.

Without the pipeline's code (``schema_progress``) the key source cannot be computed: total, remaining
and ETA are unknown, and what the database holds is reported instead (rows made, jobs, history).

A table written with DataJoint is measured through its populate target (djtarget.DataJointTarget): its key
source is DataJoint's, its jobs and history are djhpc's ``~djhpc_jobs`` and ``~djhpc_history``.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import asdict, dataclass

from .errors import UsageError
from .history import HISTORY_TABLE, History
from .reservation import JOBS_TABLE, Reservations

RATE_WINDOW_SECONDS = 600.0
EMPTY_KEY_SOURCE = "the key source is empty: nothing to make (is the upstream table filled?)"
SAMPLE_SIZE = 1000  # recent makes the percentiles are computed from


@dataclass
class Spread:
    """Median and 95th percentile of recent makes."""

    median: float
    p95: float


@dataclass
class TableProgress:
    name: str  # the class name
    table_name: str
    total: int | None  # keys in the key source; None without the pipeline's code
    done: int
    remaining: int | None
    reserved: int = 0
    error: int = 0
    ignore: int = 0
    pending: int = 0
    completions: int = 0  # makes in the history
    recent: int = 0  # of them started within the rate window
    window_seconds: float = RATE_WINDOW_SECONDS
    rate_per_minute: float | None = None
    eta_seconds: float | None = None
    duration: Spread | None = None  # seconds of make
    cpu_seconds: Spread | None = None
    max_rss_mb: Spread | None = None
    last_started_at: dt.datetime | None = None  # UTC
    workers: int | None = None  # workers holding keys of the table that look alive; None: not asked

    @property
    def percent(self) -> float | None:
        """Done of total; None without a total or with an empty key source (nothing is 100 % of nothing)."""
        if not self.total:
            return None
        return 100.0 * self.done / self.total

    @property
    def left(self) -> int | None:
        """Keys still to run: remaining, less those that failed or are ignored (they wait for the user)."""
        if self.remaining is None:
            return None
        return max(self.remaining - self.error - self.ignore, 0)

    @property
    def finished(self) -> bool:
        """Nothing left to run and nothing running (failed or ignored keys may remain: see ``done``)."""
        return self.left == 0 and self.reserved == 0

    @property
    def done_all(self) -> bool:
        """Every key of a non-empty key source made: the only state called done."""
        return bool(self.total) and self.remaining == 0 and self.reserved == 0

    @property
    def empty(self) -> bool:
        """The key source has no keys at all (an upstream table not filled, or a restriction that matches none)."""
        return self.total == 0

    @property
    def no_workers(self) -> bool:
        """Keys are left but no live worker holds any: nothing moves until workers start."""
        return bool(self.left) and self.workers == 0

    @property
    def stuck(self) -> str | None:
        """Why the table cannot reach done without the user, or None: failed or ignored keys with nothing left
        to run and nothing running, or an empty key source."""
        if self.total is None:
            return None
        if self.empty:
            return EMPTY_KEY_SOURCE
        if self.finished and not self.done_all:
            return waiting_text(self)
        return None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["percent"] = self.percent
        out["left"] = self.left
        out["finished"] = self.finished if self.total is not None else None
        out["done_all"] = self.done_all if self.total is not None else None
        out["stuck"] = self.stuck
        if self.last_started_at is not None:
            out["last_started_at"] = self.last_started_at.replace(tzinfo=dt.timezone.utc).isoformat()
        return out


# ---------------------------------------------------------------------------- table names
def is_auto_populated(table_name: str) -> bool:
    """Imported (``_name``) or Computed (``__name``), not a part (``__master__part``) nor a djhpc table."""
    if not table_name.startswith("_"):
        return False
    return "__" not in table_name.lstrip("_") and bool(table_name.lstrip("_"))


def class_name(table_name: str) -> str:
    """``__spike_sorting`` -> ``SpikeSorting`` (how the table's class is named)."""
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"_+", table_name.lstrip("_#")) if w)


def schema_tables(connection, schema: str) -> list[str]:
    """Table names of a schema; an unknown schema is a UsageError naming the known ones."""
    from .schemas import Schema

    try:
        tables = Schema(schema, connection=connection, create_schema=False).table_names()
    except UsageError:
        tables = []
    if not tables:
        raise UsageError(f"schema '{schema}' does not exist or has no tables: check the name{_known(connection)}")
    return tables


def bookkeeping_tables(connection, schema: str, tables=None) -> tuple[str, str]:
    """(jobs table, history table) djhpc keeps in a schema, told from the tables there (``tables``: its names).

    A DataJoint pipeline's schema has ``~djhpc_jobs`` and ``~djhpc_history`` (DataJoint 0.14 owns ``~jobs``
    there, 2.x ``~~<table>``; djhpc never reads those); a djhpc pipeline's has ``~jobs`` and ``~history``.
    """
    from .djtarget import DJHPC_HISTORY, DJHPC_JOBS

    names = set(schema_tables(connection, schema) if tables is None else tables)
    datajoint = (DJHPC_JOBS, DJHPC_HISTORY)
    if names & set(datajoint):
        return datajoint
    if JOBS_TABLE in names:
        return (JOBS_TABLE, HISTORY_TABLE) if _djhpc_jobs_table(connection, schema) else datajoint
    if HISTORY_TABLE in names:
        return JOBS_TABLE, HISTORY_TABLE
    if names & {"~log", "~lineage"} or any(n.startswith("~~") for n in names):  # DataJoint's own tables
        return datajoint
    return JOBS_TABLE, HISTORY_TABLE


def _djhpc_jobs_table(connection, schema: str) -> bool:
    """Whether ``~jobs`` is djhpc's (it has reservation tokens) and not DataJoint 0.14's."""
    if connection.is_sqlite:
        return True
    row = connection.query("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                           "TABLE_NAME = %s AND COLUMN_NAME = 'token'", (schema, JOBS_TABLE)).fetchone()
    return bool(row and int(row[0]))


def is_target(obj) -> bool:
    """Whether ``obj`` is a populate target (target.TableTarget, djtarget.DataJointTarget), not a table."""
    return hasattr(obj, "jobs_table") and hasattr(obj, "candidates") and hasattr(obj, "history_table")


def as_target(table):
    """The populate target of a table class or instance (djhpc or DataJoint); a target is returned as it is."""
    if is_target(table):
        return table
    from .djtarget import is_datajoint_class
    from .target import TableTarget, target_for

    if isinstance(table, type):
        return target_for(table)
    if is_datajoint_class(type(table)):
        return target_for(type(table))
    return TableTarget(table)


def _known(connection) -> str:
    if connection.is_sqlite:
        rows = connection.query("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        names = sorted({r[0].split(".", 1)[0] for r in rows if "." in r[0]})
    else:
        rows = connection.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA").fetchall()
        names = sorted(r[0] for r in rows if r[0] not in ("information_schema", "mysql", "performance_schema",
                                                            "sys"))
    if not names:
        return ""
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f" (schemas here: {shown})"


# ---------------------------------------------------------------------------- statistics
def spread(values: list[float]) -> Spread | None:
    if not values:
        return None
    if len(values) == 1:
        return Spread(values[0], values[0])
    p95 = statistics.quantiles(values, n=100, method="inclusive")[94]
    return Spread(statistics.median(values), p95)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _as_datetime(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _sql_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _history_stats(connection, schema: str, table_name: str, window_seconds: float, now: dt.datetime,
                   history_table: str = HISTORY_TABLE) -> dict:
    """Completions, recent completions, rate and percentiles: two statements."""
    history = History(connection, schema, history_table)
    history.ensure_table()
    cutoff = _sql_time(now - dt.timedelta(seconds=window_seconds))
    count, recent, first_recent, last = connection.run("history_summary", (cutoff, cutoff, table_name),
                                                       history=history.table).fetchone()
    count, recent = int(count or 0), int(recent or 0)
    out = {"completions": count, "recent": recent, "last_started_at": _as_datetime(last)}
    if count:
        first = _as_datetime(first_recent)
        if recent and first is not None:
            span = min(window_seconds, max((now - first).total_seconds(), 1.0))
            out["rate_per_minute"] = recent * 60.0 / span
        else:
            out["rate_per_minute"] = 0.0
        rows = connection.run("history_sample", (table_name, SAMPLE_SIZE), history=history.table).fetchall()
        out["duration"] = spread([float(r[0]) for r in rows])
        out["cpu_seconds"] = spread([float(r[1]) for r in rows])
        out["max_rss_mb"] = spread([float(r[2]) for r in rows])
    return out


def estimated_seconds(p: TableProgress) -> float | None:
    """Seconds until the keys left are made at the recent rate; None without a rate or a live worker."""
    left = p.left
    if left is None:
        return None
    if left == 0:
        return 0.0
    if not p.rate_per_minute or p.workers == 0:
        return None
    return left / p.rate_per_minute * 60.0


def live_workers(connection, schema: str, table_name, jobs_table: str = JOBS_TABLE) -> int:
    """Workers holding keys of the table (or of any of several: a set of table names) that look alive: their
    process runs (on this host) or their heartbeat is younger than a lease. One read of the reserved rows; a
    worker between batches holds none for a moment."""
    from .liveness import LEASE_SECONDS, judge

    names = {table_name} if isinstance(table_name, str) else set(table_name)
    rows = [r for r in Reservations(connection, schema, jobs_table=jobs_table).reserved_rows()
            if r.table_name in names]
    return len({r.owner for r in rows
                if judge(r, lock_free=None, scheduler_state=None, lease_seconds=LEASE_SECONDS) is None})


def _count_workers(p: TableProgress, connection, schema: str, jobs_table: str) -> None:
    p.workers = live_workers(connection, schema, p.table_name, jobs_table) if p.reserved else 0


# ---------------------------------------------------------------------------- progress
def table_progress(table, *restrictions, window_seconds: float = RATE_WINDOW_SECONDS,
                   now: dt.datetime | None = None) -> TableProgress:
    """Progress of one auto-populated table, optionally of a restricted key source.

    ``table``: a djhpc table class or instance, a DataJoint table class, or a populate target."""
    if is_target(table) or _is_datajoint(table if isinstance(table, type) else type(table)):
        return target_progress(as_target(table), *restrictions, window_seconds=window_seconds, now=now)
    if isinstance(table, type):
        table = table()
    if not hasattr(table, "_key_source"):
        raise UsageError(f"{type(table).__name__} is not a Computed or Imported table: name one that has make()")
    connection, schema = table.connection, type(table).database
    now = now or _utc_now()
    counts = table.progress(*restrictions, detail=True)
    total, remaining = counts["total"], counts["remaining"]
    p = TableProgress(type(table).__name__, table.table_name, total, total - remaining, remaining,
                      counts["reserved"], counts["error"], counts["ignore"], counts["pending"],
                      window_seconds=window_seconds)
    for k, v in _history_stats(connection, schema, table.table_name, window_seconds, now).items():
        setattr(p, k, v)
    _count_workers(p, connection, schema, JOBS_TABLE)
    p.eta_seconds = estimated_seconds(p)
    return p


def _is_datajoint(cls) -> bool:
    from .djtarget import is_datajoint_class

    return is_datajoint_class(cls)


def target_progress(target, *restrictions, window_seconds: float = RATE_WINDOW_SECONDS,
                    now: dt.datetime | None = None) -> TableProgress:
    """Progress of the table a populate target fills: its counts (``target.progress``), its jobs and history."""
    now = now or _utc_now()
    counts = target.progress(restrictions)
    p = TableProgress(target.name, target.table_name, counts["total"], counts["done"], counts["remaining"],
                      counts["reserved"], counts["error"], counts["ignore"], counts["pending"],
                      window_seconds=window_seconds)
    add_history(p, target.connection, target.database, target.history_table, now)
    _count_workers(p, target.connection, target.database, target.jobs_table)
    p.eta_seconds = estimated_seconds(p)
    return p


def add_history(p: TableProgress, connection, schema: str, history_table: str = HISTORY_TABLE,
                now: dt.datetime | None = None) -> None:
    """Fill in what the completion history says of p's table: completions, rate, percentiles, last start."""
    stats = _history_stats(connection, schema, p.table_name, p.window_seconds, now or _utc_now(), history_table)
    for k, v in stats.items():
        setattr(p, k, v)


def schema_progress(connection, schema: str, *, window_seconds: float = RATE_WINDOW_SECONDS,
                    now: dt.datetime | None = None, jobs_table: str | None = None,
                    history_table: str | None = None) -> list[TableProgress]:
    """What the database alone tells of every auto-populated table of a schema (no total, no ETA).

    The jobs and history tables are the schema's own (``bookkeeping_tables``) unless named."""
    now = now or _utc_now()
    tables = schema_tables(connection, schema)
    names = [t for t in tables if is_auto_populated(t)]
    if not names:
        raise UsageError(f"schema '{schema}' has no Imported or Computed tables (names starting with _ or __)")
    if jobs_table is None or history_table is None:
        found_jobs, found_history = bookkeeping_tables(connection, schema, tables)
        jobs_table, history_table = jobs_table or found_jobs, history_table or found_history
    res = Reservations(connection, schema, jobs_table=jobs_table)
    res.ensure_table()
    jobs = {}
    for table_name, status, n in connection.run("count_jobs_by_table", jobs=res.jobs).fetchall():
        jobs.setdefault(table_name, {})[status] = int(n)
    out = []
    for name in names:
        rows = int(connection.run("count_rows", table=connection.dialect.table(schema, name)).fetchone()[0])
        c = jobs.get(name, {})
        p = TableProgress(class_name(name), name, None, rows, None, c.get("reserved", 0), c.get("error", 0),
                          c.get("ignore", 0), c.get("pending", 0), window_seconds=window_seconds)
        for k, v in _history_stats(connection, schema, name, window_seconds, now, history_table).items():
            setattr(p, k, v)
        out.append(p)
    return out


# ---------------------------------------------------------------------------- text (CLI and report share it)
def seconds_text(seconds: float | None) -> str:
    """0.42 s, 12.3 s, 4m 05s, 2h 01m, 3d 04h."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 0.1:
        return f"{s * 1000:.1f} ms"
    if s < 60:
        return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def waiting_text(p: TableProgress) -> str:
    """What keeps a table from done: '3 failed — see djhpc jobs errors', '1 ignored', or both."""
    parts = []
    if p.error:
        parts.append(f"{p.error:,} failed")
    if p.ignore:
        parts.append(f"{p.ignore:,} ignored")
    blocked = getattr(p, "blocked", None)  # a pipeline's table: keys a failure upstream holds back
    if blocked:
        parts.append(f"{blocked:,} blocked by failures upstream")
    if not parts:
        return f"{p.remaining or 0:,} not made"
    hint = "see djhpc jobs errors" if p.error or blocked else "see djhpc jobs --status ignore"
    return f"{', '.join(parts)} — {hint}"


def eta_text(p: TableProgress, *, clock_format: str | None = None) -> str:
    """'done' (every key made), 'nothing to make', '3 failed', 'finishing', 'no workers running', 'stalled',
    'not started', or how long and when (local time)."""
    if p.total is None:
        return "—"
    if p.empty:
        return "nothing to make"
    if p.done_all:
        return "done"
    if p.finished:
        return waiting_text(p).split(" — ")[0]
    if p.left == 0:
        return "finishing"
    if p.workers == 0:
        return "no workers running"
    if p.eta_seconds is None:
        return "stalled" if p.completions else "not started"
    at = dt.datetime.now().astimezone() + dt.timedelta(seconds=p.eta_seconds)
    fmt = clock_format or ("%H:%M" if p.eta_seconds < 86400 else "%Y-%m-%d %H:%M")
    return f"{seconds_text(p.eta_seconds)} ({at.strftime(fmt)})"
