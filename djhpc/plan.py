"""What ``djhpc submit PIPELINE`` does: one run per resource class, sized to what is left of its tables, and
(``--plan``) what the run will take and cost, from the completion history of past makes.

Keys left of a table: ready now, waiting for a retry, and still to come (pipeprogress's ``waiting``) less those
blocked by a failure upstream; keys being made, in error or ignored are not the new workers'. A table whose keys
to come cannot be foreseen (a custom key_source, a table written with DataJoint) is counted with the keys left of
its deepest-counted parent, one key each, and a note says so.

The plan (``estimate``), per table from its last ``progress.SAMPLE_SIZE`` makes: p50 and p95 of make time, CPU
seconds and peak memory. Per class:
  --time  each task's share of the class's makes at p95 (keys left x p95 / tasks, at least one p95 make), after
          the slowest share of the classes it waits for, plus one key's way down the pipeline (the longest chain
          of p95 makes ending at one of its tables); times walltime.SAFETY_FACTOR, up to the whole minute.
  --mem   the largest p95 peak memory of its tables, times SAFETY_FACTOR, up to a multiple of 64 MB.
  cost    keys left x make time x the CPUs (cpus, else 1) and GPUs (gpus, else none) a task holds, at p50 and at
          p95. Nothing is proposed or costed from a table without history: the plan says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Settings, load_settings
from .history import History
from .pipeline import Pipeline
from .pipeprogress import pipeline_progress
from .pipework import targets_for
from .progress import SAMPLE_SIZE, Spread, spread
from .submit import (
    Run,
    Share,
    ShareWork,
    check_partitions,
    concurrent_workers,
    is_datajoint,
    plan_share,
    worker_budget,
    worker_processes,
    worker_restrictions,
)
from .walltime import SAFETY_FACTOR

__all__ = ["PipelinePlan", "ShareCost", "TableCost", "estimate", "plan_pipeline"]

MEMORY_STEP_MB = 64


@dataclass
class PipelinePlan:
    """The runs of one pipeline submit, upstream classes first; a run without chunks has nothing left."""

    pipeline: Pipeline  # the tables submitted (limited by --tables/--downstream-of)
    runs: list[Run]
    rows: dict  # table class name -> pipeprogress row (every table of the module)
    left: dict  # table class name -> keys left (what sizes the runs)
    targets: dict  # table class -> populate target
    full: Pipeline = None  # the whole module (the graph the keys come down)
    notes: list[str] = field(default_factory=list)

    @property
    def submitted(self) -> list[Run]:
        return [r for r in self.runs if r.chunks]


def plan_pipeline(pipeline: Pipeline, *, target: str, tables: Sequence[str] | None = None,
                  downstream_of: Sequence[str] | None = None, whole: bool = False, array: int | None = None,
                  scheduler: str | None = None, profile_name: str | None = None,
                  flags: Mapping[str, Any] | None = None, worker_args: Sequence[str] = (),
                  template_dir: str | None = None, render: bool = True, need_array: bool = True,
                  settings: Settings | None = None) -> PipelinePlan:
    """One run per resource class of ``pipeline`` (limited to ``tables``/``downstream_of``), or with ``whole`` one
    run over all its tables (GNU parallel: one set of workers, no classes); nothing written or submitted. A
    partition the scheduler does not have is a usage error. ``need_array`` False (a plan): no --array is no
    error (``run.array_given`` False)."""
    settings = settings or load_settings()
    served = pipeline.restrict(tables, downstream_of) if tables or downstream_of else pipeline
    targets = targets_for(pipeline)
    rows = {r["table"]: r for r in pipeline_progress(pipeline, targets, worker_restrictions(worker_args))}
    notes: list[str] = []
    left = _keys_left(pipeline, rows, notes)
    shares = _shares(served, targets, whole, everything=served.tables == pipeline.tables)
    first = targets[served.tables[0]]
    per_worker = (2 if is_datajoint(first) else 1) * worker_processes(worker_args)
    budget = worker_budget(first.connection, per_worker=per_worker)
    runs = []
    for share, classes in shares:
        work = _work(rows, left, share.tables)
        run = plan_share(target, share, work, targets[classes[0]], array=array, scheduler=scheduler,
                         profile_name=profile_name, flags=flags, worker_args=worker_args, template_dir=template_dir,
                         render=render, settings=settings, budget=budget, need_array=need_array)
        if budget is not None and run.chunks:
            budget = max(0, budget - concurrent_workers(run))
        runs.append(run)
    check_partitions(runs)
    return PipelinePlan(served, runs, rows, left, targets, pipeline, notes)


def _shares(served: Pipeline, targets: dict, whole: bool, everything: bool) -> list[tuple[Share, list]]:
    label = served.label
    if whole:  # one set of workers; --tables only when the pipeline was limited
        names = tuple(c.__name__ for c in served.tables)
        table_names = tuple(targets[c].table_name for c in served.tables)
        return [(Share(label, "", names, table_names, whole=everything), list(served.tables))]
    out = []
    for rc in served.classes():
        classes = [served.table(n) for n in rc.tables]
        out.append((Share(label, rc.name, rc.tables, tuple(targets[c].table_name for c in classes), rc.resources),
                    classes))
    return out


def _keys_left(pipeline: Pipeline, rows: dict, notes: list[str]) -> dict:
    """Table class name -> keys left; an unforeseeable table's keys to come counted as its parents'."""
    left = {}
    for cls in pipeline.tables:
        r = rows[cls.__name__]
        now = r["ready"] + r["pending"]
        if r["waiting"] is not None:
            left[cls.__name__] = max(0, now + r["waiting"] - (r["blocked"] or 0))
            continue
        parents = [p.__name__ for p in pipeline.parents(cls)]
        above = max((left[p] + rows[p]["reserved"] for p in parents), default=0)
        left[cls.__name__] = max(now, above)
        if above > now:
            notes.append(f"{cls.__name__}'s keys to come cannot be foreseen (a custom key_source or a DataJoint "
                         f"table): counted as {above:,}, the keys left above it")
    return left


def _work(rows: dict, left: dict, tables: Sequence[str]) -> ShareWork:
    def total(name):
        return sum(rows[t][name] or 0 for t in tables)

    available = sum(left[t] for t in tables)
    ready, pending, blocked = total("ready"), total("pending"), total("blocked")
    return ShareWork(total=total("total") + total("waiting"), remaining=available + total("error") + total("ignore"),
                     errors=total("error"), ignored=total("ignore"), reserved=total("reserved"), ready=ready,
                     pending=pending, waiting=available - ready - pending + blocked, blocked=blocked)


# --------------------------------------------------------------------------------------------- the plan


@dataclass
class TableCost:
    """One table's past makes (the newest SAMPLE_SIZE) and its keys left."""

    table: str
    keys_left: int
    makes: int  # history rows the spreads come from (0: no history)
    duration: Spread | None
    cpu_seconds: Spread | None
    max_rss_mb: Spread | None


@dataclass
class ShareCost:
    """What one class's run will take: proposed --time/--mem and the CPU- and GPU-hours of its makes."""

    run: Run
    tables: list[TableCost]
    cpus: int  # a task's (1 unless asked)
    gpus: int  # a task's (0 unless asked)
    time_seconds: int | None = None  # proposed --time; None without the history it needs
    mem_mb: int | None = None  # proposed --mem
    cpu_hours: tuple[float, float] | None = None  # at p50, p95
    gpu_hours: tuple[float, float] | None = None
    missing: list[str] = field(default_factory=list)  # tables with keys left and no history

    @property
    def name(self) -> str:
        return self.run.share.name


def estimate(plan: PipelinePlan) -> list[ShareCost]:
    """Per class, from the history: proposed --time and --mem and the run's cost at p50 and p95 (module
    docstring); None where a table it needs has no history."""
    by_name = {c.__name__: c for c in plan.full.tables}
    costs = {n: _table_cost(n, plan.targets[by_name[n]], plan.left[n]) for n in by_name}
    out = []
    for run in plan.runs:
        tables = [costs[t] for t in run.share.tables]
        cost = ShareCost(run, tables, run.profile.cpus or 1, run.profile.gpus or 0)
        cost.missing = [t.table for t in tables if t.keys_left and t.duration is None]
        if not cost.missing:
            cost.cpu_hours = _hours(tables, cost.cpus)
            cost.gpu_hours = _hours(tables, cost.gpus)
            memory = [t.max_rss_mb.p95 for t in tables if t.max_rss_mb is not None]
            if memory:
                cost.mem_mb = _round_up(max(memory) * SAFETY_FACTOR, MEMORY_STEP_MB)
        out.append(cost)
    shares = {c.name: _share_seconds(c) for c in out}
    for cost in out:
        cost.time_seconds = _time(plan, cost, costs, shares)
    return out


def _table_cost(name: str, target, keys_left: int) -> TableCost:
    history = History(target.connection, target.database, target.history_table)
    rows = []
    if target.connection.has_table(history.table):  # the plan writes nothing, not even an empty history table
        rows = target.connection.run("history_sample", (target.table_name, SAMPLE_SIZE),
                                     history=history.table).fetchall()
    return TableCost(name, keys_left, len(rows), spread([float(r[0]) for r in rows]),
                     spread([float(r[1]) for r in rows]), spread([float(r[2]) for r in rows]))


def _hours(tables: list[TableCost], per_task: int) -> tuple[float, float]:
    known = [t for t in tables if t.duration is not None]
    return (sum(t.keys_left * t.duration.median for t in known) * per_task / 3600,
            sum(t.keys_left * t.duration.p95 for t in known) * per_task / 3600)


def _share_seconds(cost: ShareCost) -> float | None:
    """One task's share of the class's makes at p95 (at least one p95 make); None without history or --array."""
    if cost.missing or not cost.run.tasks or not cost.run.array_given:
        return None
    known = [t for t in cost.tables if t.duration is not None]
    work = sum(t.keys_left * t.duration.p95 for t in known) / cost.run.tasks
    return max([work, *(t.duration.p95 for t in known)])


def _time(plan: PipelinePlan, cost: ShareCost, costs: dict, shares: dict) -> int | None:
    """The proposed --time of a class (module docstring); None when a table it waits on has no history."""
    own = shares[cost.name]
    if own is None:
        return None
    pipeline = plan.full
    mine = [pipeline.table(t) for t in cost.run.share.tables]
    above = {a.__name__ for c in mine for a in pipeline.ancestors[c]} - set(cost.run.share.tables)
    waits = [o for o in plan.runs if o is not cost.run and above & set(o.share.tables)]
    slowest = [shares[o.share.name] for o in waits if o.chunks]
    if any(s is None for s in slowest):
        return None
    path = _longest_path(pipeline, mine, costs)
    if path is None:
        return None
    return _round_up((max([own, *slowest]) + path) * SAFETY_FACTOR, 60)


def _longest_path(pipeline: Pipeline, ends: list, costs: dict) -> float | None:
    """The longest chain of p95 makes (through the pipeline's tables) that ends at one of ``ends``; None when a
    table on it has keys left and no history."""
    memo: dict = {}

    def down_to(cls):
        if cls not in memo:
            c = costs[cls.__name__]
            above = [down_to(p) for p in pipeline.parents(cls)]
            if None in above:
                memo[cls] = None
            elif not c.keys_left:  # nothing left of it: not on the way
                memo[cls] = max(above, default=0.0)
            elif c.duration is None:
                memo[cls] = None
            else:
                memo[cls] = c.duration.p95 + max(above, default=0.0)
        return memo[cls]

    lengths = [down_to(c) for c in ends]
    return None if None in lengths else max(lengths, default=0.0)


def _round_up(value: float, step: int) -> int:
    return max(step, int(math.ceil(value / step)) * step)
