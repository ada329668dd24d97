"""The completion history: one compact row per successful make, written in make's own transaction.

It is what rate, ETA, reports and the walltime fit are computed from, and what a user sizes
``--time`` and ``--mem`` with. Switch it off with ``DJHPC_HISTORY=0``; prune it with
``djhpc history prune --older-than 30d``.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import statistics
import sys

from .db.pending import ChecksFence

HISTORY_TABLE = "~history"
_created: set = set()


def forget_tables(connection) -> None:
    """Forget which history tables this process made on ``connection``'s database (a schema was dropped)."""
    _created.difference_update({m for m in _created if m[0] == connection.url.redacted})


def enabled() -> bool:
    return os.environ.get("DJHPC_HISTORY", "1").lower() not in ("0", "false", "no", "off")


class History:
    def __init__(self, connection, schema: str, table_name: str = HISTORY_TABLE):
        self.connection = connection
        self.schema = schema
        self.table = connection.dialect.table(schema, table_name)

    def ensure_table(self):
        marker = (self.connection.url.redacted, self.table, os.getpid())
        if marker not in _created:
            if not self.connection.has_table(self.table):
                self.connection.run("create_history", history=self.table)
            _created.add(marker)

    def record(self, table_name: str, key_hash: str, worker, started: float, duration: float,
               cpu_seconds: float, max_rss_mb: float):
        """Append one row; call it inside make's transaction so it lands with the result or not at all."""
        sql, params = self.record_statement(table_name, key_hash, worker, started, duration, cpu_seconds, max_rss_mb)
        self.connection.query(sql, params, context="record_history")

    def record_statement(self, table_name: str, key_hash: str, worker, started: float, duration: float,
                         cpu_seconds: float, max_rss_mb: float) -> tuple[str, tuple]:
        """The row as (sql, params); on MySQL a ``ChecksFence``, which can also check the fence before it."""
        started_at = dt.datetime.fromtimestamp(started, dt.timezone.utc).replace(tzinfo=None)
        queries = self.connection.dialect.queries
        sql = queries["record_history"].format(history=self.table)
        params = (table_name, key_hash, worker.host, worker.pid, worker.sched_job_id, worker.sched_task_id,
                  started_at.isoformat(sep=" "), duration, cpu_seconds, max_rss_mb)
        checked = queries.get("record_history_checked")
        return ChecksFence(sql, params, checked.format(history=self.table)) if checked else (sql, params)

    def recent_durations(self, table_name: str, limit: int = 200) -> list[float]:
        self.ensure_table()
        rows = self.connection.run("recent_durations", (table_name, int(limit)), history=self.table).fetchall()
        return [float(r[0]) for r in rows]

    def typical_duration(self, table_name: str, quantile: float = 0.9) -> float | None:
        """The ``quantile`` of recent make durations of a table, or None without history."""
        durations = self.recent_durations(table_name)
        if len(durations) < 3:
            return None
        return statistics.quantiles(durations, n=100, method="inclusive")[int(quantile * 100) - 1]

    def prune(self, older_than_seconds: float) -> int:
        self.ensure_table()
        return self.connection.run("prune_history", (float(older_than_seconds),), history=self.table).rowcount


def usage_snapshot() -> tuple[float, float]:
    """(CPU seconds used by this process so far, its peak resident memory in MB so far)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    rss_kb = r.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return r.ru_utime + r.ru_stime, rss_kb / 1024
