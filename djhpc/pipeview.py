"""What the operator commands show of a whole pipeline: each table's progress with its rate and ETA, its jobs
rows, errors, running makes and reservations, table by table in dependency order.

``progress``, ``jobs``, ``status`` and ``report`` stand on this when TARGET names a pipeline; it prints nothing.
A pipeline's tables may live in several schemas (a DataJoint pipeline's modules, or one module declaring
tables in two schemas): the jobs and history rows are read from each schema's own bookkeeping tables
(``table_groups``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from . import jobrows
from .errors import UsageError
from .pipeline import Pipeline
from .pipeprogress import FIELDS, pipeline_progress
from .progress import RATE_WINDOW_SECONDS, TableProgress, add_history, estimated_seconds, eta_text, live_workers

# the keys pipeline_progress gives per table, in its order: --json keeps them
PIPELINE_FIELDS = FIELDS


@dataclass
class PipelineTableProgress(TableProgress):
    """A pipeline table's progress: what one table's says, plus the keys still to come from upstream.

    ``total`` counts the key source now; ``waiting`` the keys that will join it once their inputs are made
    (None: not foreseeable, a custom key_source), ``blocked`` those of them a failed or ignored key upstream
    holds back. A table is done when every key, those to come included, is made."""

    ready: int = 0  # in the key source, not made, not reserved nor failed
    waiting: int | None = None
    blocked: int | None = None
    depends_on: tuple = ()  # class names of the pipeline tables it reads directly

    @property
    def expected(self) -> int | None:
        """Keys the table will hold once everything upstream is made (the blocked ones included)."""
        return None if self.total is None else self.total + (self.waiting or 0)

    @property
    def coming(self) -> int:
        """Keys still to come from upstream that nothing blocks."""
        return max((self.waiting or 0) - (self.blocked or 0), 0)

    @property
    def percent(self) -> float | None:
        return 100.0 * self.done / self.expected if self.expected else None

    @property
    def left(self) -> int | None:
        """Keys still to run: those of the key source not failed or ignored, and those coming from upstream."""
        if self.remaining is None:
            return None
        return max(self.remaining - self.error - self.ignore, 0) + self.coming

    @property
    def done_all(self) -> bool:
        return bool(self.expected) and self.remaining == 0 and self.reserved == 0 and not self.waiting

    @property
    def empty(self) -> bool:
        return self.total == 0 and not self.waiting

    @property
    def waiting_upstream(self) -> bool:
        """Nothing of its own to run or running, keys still to come from upstream."""
        own = (self.remaining or 0) - self.error - self.ignore
        return own <= 0 and not self.reserved and self.coming > 0

    def as_dict(self) -> dict:
        out = {"table": self.name, **super().as_dict(), "expected": self.expected, "coming": self.coming,
               "depends_on": list(self.depends_on)}
        return out


@dataclass
class TableGroup:
    """Pipeline tables whose jobs and history rows live in the same schema's bookkeeping tables."""

    connection: object
    schema: str
    jobs_table: str
    history_table: str
    table_names: list = field(default_factory=list)  # in dependency order


def table_groups(pipeline: Pipeline, targets: dict) -> list[TableGroup]:
    """The pipeline's tables grouped by where their jobs and history rows are, in order of their first table."""
    groups: dict[tuple, TableGroup] = {}
    for cls in pipeline.tables:
        t = targets[cls]
        key = (id(t.connection), t.database, t.jobs_table)
        if key not in groups:
            groups[key] = TableGroup(t.connection, t.database, t.jobs_table, t.history_table)
        groups[key].table_names.append(t.table_name)
    return list(groups.values())


def table_order(pipeline: Pipeline, targets: dict) -> dict[str, int]:
    """table_name -> its position in the pipeline (upstream first)."""
    out: dict[str, int] = {}
    for i, cls in enumerate(pipeline.tables):
        out.setdefault(targets[cls].table_name, i)
    return out


# ---------------------------------------------------------------------------- progress
def pipeline_table_progress(pipeline: Pipeline, targets: dict, restrictions=(), *, whole: Pipeline | None = None,
                            window_seconds: float = RATE_WINDOW_SECONDS,
                            now: dt.datetime | None = None) -> list[PipelineTableProgress]:
    """One row per table of ``pipeline``, upstream first: pipeline_progress's counts, with each table's history
    (rate, ETA, percentiles) and the live workers of the whole pipeline (a worker on an upstream table works
    for the tables below it too).

    ``whole``: the pipeline ``pipeline`` was limited from (--tables, --downstream-of): the keys to come and
    those blocked are foreseen in it, so that a table keeps counting what its upstream tables will give it
    when they are not shown. ``targets`` covers its tables."""
    whole = whole or pipeline
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    counts = dict(zip(whole.tables, pipeline_progress(whole, targets, restrictions), strict=True))
    every = []
    for cls in whole.tables:
        c = counts[cls]
        every.append(PipelineTableProgress(
            cls.__name__, c["table_name"], c["total"], c["done"], c["remaining"], c["reserved"], c["error"],
            c["ignore"], c["pending"], window_seconds=window_seconds, ready=c["ready"], waiting=c["waiting"],
            blocked=c["blocked"], depends_on=tuple(a.__name__ for a in whole.parents(cls))))
    by_name = {r.table_name: r for r in every}
    for g in table_groups(whole, targets):
        members = [by_name[n] for n in g.table_names]
        workers = live_workers(g.connection, g.schema, set(g.table_names), g.jobs_table) \
            if any(r.reserved for r in members) else 0
        for r in members:
            r.workers = workers
    shown = set(pipeline.tables)
    rows = [r for cls, r in zip(whole.tables, every, strict=True) if cls in shown]
    for cls, r in zip(pipeline.tables, rows, strict=True):
        t = targets[cls]
        add_history(r, t.connection, t.database, t.history_table, now)
    for r in rows:
        r.eta_seconds = estimated_seconds(r)
    return rows


def blocked_total(rows) -> int:
    """Keys of all tables held back by a failure upstream."""
    return sum(r.blocked or 0 for r in rows)


def outlook(p: PipelineTableProgress, *, clock_format: str | None = None) -> str:
    """eta_text, or 'waiting for upstream' while the table has nothing of its own left and keys to come."""
    if p.total is not None and p.waiting_upstream:
        return "waiting for upstream"
    return eta_text(p, clock_format=clock_format)


def blocked_text(rows) -> str | None:
    """'4 keys blocked by failures upstream (Segment 1, Trace 1, ...)', or None when nothing is blocked."""
    n = blocked_total(rows)
    if not n:
        return None
    each = ", ".join(f"{r.name} {r.blocked:,}" for r in rows if r.blocked)
    return f"{n:,} {'key' if n == 1 else 'keys'} blocked by failures upstream ({each})"


# ---------------------------------------------------------------------------- jobs rows
def select(pipeline: Pipeline, targets: dict, **filters) -> list:
    """The jobs rows of the pipeline's tables that pass jobrows.select's ``filters``: one selection per schema
    (count them, fetch them, delete them)."""
    return [jobrows.select(g.connection, g.schema, table_name=g.table_names, jobs_table_name=g.jobs_table,
                           **filters) for g in table_groups(pipeline, targets)]


def job_rows(pipeline: Pipeline, targets: dict, *, limit: int | None = None,
             **filters) -> tuple[list[jobrows.JobRow], int]:
    """(the oldest ``limit`` jobs rows of the pipeline's tables that pass jobrows.select's ``filters``, grouped by
    table upstream first; how many rows pass the filters in all)."""
    rows, total = [], 0
    for q in select(pipeline, targets, **filters):
        total += len(q)
        rows += jobrows.fetch_rows(q, limit=limit)
    rows.sort(key=lambda r: (r.timestamp is None, r.timestamp or dt.datetime.min))
    rows = rows[:limit] if limit is not None else rows
    order = table_order(pipeline, targets)
    rows.sort(key=lambda r: order.get(r.table_name, len(order)))  # stable: oldest first within a table
    return rows, total


def find(pipeline: Pipeline, targets: dict, key_or_hash: str) -> list[jobrows.JobRow]:
    """The jobs rows of one key in any of the pipeline's tables (full detail), upstream tables first: a key is
    looked for in the tables whose primary key it names (typed as each one's), a key_hash or a unique prefix
    of one in all of them."""
    key, h = jobrows.parse_key(key_or_hash)
    order = table_order(pipeline, targets)
    rows = []
    if key is None:
        for g in table_groups(pipeline, targets):
            rows += jobrows.hash_rows(g.connection, g.schema, h, table_name=g.table_names, jobs_table_name=g.jobs_table)
        if len({r.key_hash for r in rows}) > 1:
            raise UsageError(f"key_hash prefix {h!r} matches {len(rows)} keys: give more of it")
    else:
        for cls in pipeline.tables:
            t = targets[cls]
            if sorted(cls().primary_key) != sorted(key):
                continue
            _, typed = jobrows.parse_key(key_or_hash, t)
            rows += jobrows.hash_rows(t.connection, t.database, typed, table_name=t.table_name,
                                      jobs_table_name=t.jobs_table)
    if not rows:
        raise UsageError(f"no jobs row for {key_or_hash} in the tables of pipeline {pipeline.name}: it is not "
                         "reserved, failed or ignored (list rows with djhpc jobs)")
    return sorted(rows, key=lambda r: order.get(r.table_name, len(order)))


def error_groups(pipeline: Pipeline, targets: dict, *, exact: bool = False) -> list[jobrows.ErrorGroup]:
    """The failed keys of the pipeline's tables grouped by exception and message, upstream tables first, the
    largest group first within a table."""
    order = table_order(pipeline, targets)
    out = []
    for g in table_groups(pipeline, targets):
        names = set(g.table_names)
        out += [e for e in jobrows.error_groups(g.connection, g.schema, exact=exact, jobs_table_name=g.jobs_table)
                if e.table_name in names]
    return sorted(out, key=lambda e: (order.get(e.table_name, len(order)), -e.count))


def running_makes(pipeline: Pipeline, targets: dict) -> list:
    """The makes running now in the pipeline's tables, longest running first."""
    from .running import running_makes as running

    out = []
    for g in table_groups(pipeline, targets):
        names = set(g.table_names)
        out += [m for m in running(g.connection, g.schema, jobs_table=g.jobs_table, history_table=g.history_table)
                if m.table_name in names]
    return sorted(out, key=lambda m: -m.seconds)


# ---------------------------------------------------------------------------- status
@dataclass
class TableStatus:
    """One pipeline table in ``djhpc status``: its keys reserved now, those held by tasks that are gone, the
    live array tasks holding its keys and the recorded runs that work on it."""

    table: str
    table_name: str
    reserved: int = 0
    gone: int = 0
    tasks: int = 0
    runs: list = field(default_factory=list)  # job ids, newest first

    def as_dict(self) -> dict:
        return {"table": self.table, "table_name": self.table_name, "reserved": self.reserved, "gone": self.gone,
                "tasks": self.tasks, "runs": list(self.runs)}


def pipeline_status(pipeline: Pipeline, targets: dict, *, limit: int = 10, default_scheduler: str | None = None,
                    **options):
    """(status.collect over the pipeline's tables, schema by schema, merged; a TableStatus per table, upstream
    first). ``options`` go to status.collect (``scheduler_for``)."""
    from .status import StatusReport, collect, serves

    reports = [collect(g.connection, g.schema, table_name=g.table_names, limit=limit, jobs_table=g.jobs_table,
                       default_scheduler=default_scheduler, target=pipeline.name, **options)
               for g in table_groups(pipeline, targets)]
    subs = sorted((s for r in reports for s in r.submissions), key=lambda s: s.submission.submitted_at,
                  reverse=True)[:limit]
    by_table: dict[str, int] = {}
    for r in reports:
        for name, n in r.reserved_by_table.items():
            by_table[name] = by_table.get(name, 0) + n
    merged = StatusReport(reports[0].schema, subs, [g for r in reports for g in r.gone],
                          sum(r.reserved for r in reports), by_table)
    rows = []
    for cls in pipeline.tables:
        name = targets[cls].table_name
        gone = [g for g in merged.gone if g.table_name == name]
        tasks = {h.task for s in subs for h in s.holding if any(tn == name for tn, _ in h.keys)}
        rows.append(TableStatus(cls.__name__, name, by_table.get(name, 0), len(gone),
                                len(tasks - {g.task for g in gone}),
                                [s.submission.job_id for s in subs if serves(s.submission, {name})]))
    return merged, rows
