"""The makes running now, how long each has run, and which run longer than their table's p95: the hung or
slow ones an operator looks for (``djhpc jobs running``).

A worker reserves a batch and makes it in order, so of the rows under one token the first left is the key being
made. Its make began when the worker's previous make ended (the completion history says when), or when the
batch was reserved if that came later. Two statements, both aged on the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import blob
from .errors import DatabaseError
from .history import HISTORY_TABLE, History
from .reservation import JOBS_TABLE


@dataclass
class RunningMake:
    table_name: str
    key: dict
    host: str
    pid: int
    task: str  # JOBID_TASK, the job id alone, or ""
    seconds: float  # how long this make has run (at most)
    p95: float | None  # the table's recent p95 make time, None without history

    @property
    def over_p95(self) -> bool:
        return self.p95 is not None and self.seconds > self.p95


def running_makes(connection, schema: str, *, table_name: str | None = None, jobs_table: str = JOBS_TABLE,
                  history_table: str = HISTORY_TABLE) -> list[RunningMake]:
    """Every make running now in ``schema`` (of one table, with ``table_name``), longest running first."""
    d = connection.dialect
    jobs = d.table(schema, jobs_table)
    first: dict[str, tuple] = {}
    for row in connection.run("running_makes", jobs=jobs).fetchall():
        if table_name and row[0] != table_name:
            continue
        token, position = row[6], row[7]
        if token not in first or position < first[token][7]:
            first[token] = row
    if not first:
        return []
    ended = _last_ends(connection, d.table(schema, history_table))
    history = History(connection, schema, history_table)
    p95: dict[str, float | None] = {}
    out = []
    for name, key, host, pid, job, task, _, _, age in first.values():
        if name not in p95:
            p95[name] = _p95(history, name)
        since_last = ended.get((name, host, int(pid)))
        seconds = float(age) if since_last is None else min(float(age), since_last)
        out.append(RunningMake(name, blob.unpack(key) if isinstance(key, bytes | bytearray) else key, host,
                               int(pid), f"{job}_{task}" if job and task else job or "", max(seconds, 0.0),
                               p95[name]))
    return sorted(out, key=lambda m: -m.seconds)


def _last_ends(connection, history) -> dict[tuple, float]:
    try:
        rows = connection.run("last_make_ends", history=history).fetchall()
    except DatabaseError:  # no history table (DJHPC_HISTORY=0): the reservation time alone
        return {}
    return {(r[0], r[1], int(r[2])): float(r[3]) for r in rows if r[3] is not None}


def _p95(history: History, table_name: str) -> float | None:
    try:
        return history.typical_duration(table_name, 0.95)
    except DatabaseError:
        return None
