"""``djhpc work PIPELINE``: one worker over every table of a pipeline (or of one resource class), key by key.

A downstream key is in its table's key source as soon as the rows it depends on are made, so no barrier is
needed between tables: the worker runs the populate loop of one table at a time, looking first at the deepest
tables (finish what is started), and goes back to them whenever a deeper table has a ready key again (looked at
every few seconds, never more often). Each table's loop is the ordinary one (populate.py): exactly once,
reclaim, fencing, stop signals and walltime fit hold as for one table. When no table has a key this worker can
take, it waits while keys may still come (a key of a table it serves, or of a table above, is reserved by
another worker or waits for a retry), and leaves when none can (what is left failed, or is blocked by a failure
upstream). A worker whose upstream tables nobody works on, and for which no run recorded by ``djhpc submit``
is still queued or running, leaves after DJHPC_PIPELINE_IDLE_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, replace

from . import backoff, populate
from .errors import DjhpcError, LostConnectionError, TransientError
from .history import History
from .liveness import Reaper
from .pipeline import Pipeline
from .reservation import Reservations
from .walltime import Walltime
from .worker import EXIT_FAILURES, EXIT_OK, KeyLog, WorkOptions, guarded, scheduler_for_reaping

log = logging.getLogger(__name__)



def look_deeper_seconds() -> float:
    """How often a table's loop asks whether a deeper table has a ready key (DJHPC_PIPELINE_LOOK_SECONDS)."""
    return float(os.environ.get("DJHPC_PIPELINE_LOOK_SECONDS", 2.0))


def queue_look_seconds() -> float:
    """How often a waiting worker asks the scheduler whether the runs serving the tables above are still queued or
    running (DJHPC_PIPELINE_QUEUE_LOOK_SECONDS): squeue for each waiting task would load the controller."""
    return float(os.environ.get("DJHPC_PIPELINE_QUEUE_LOOK_SECONDS", 60))


LIVE_STATES = ("PENDING", "RUNNING", "SUSPENDED")


def idle_seconds() -> float:
    """How long a worker waits for upstream keys while no worker holds any of them."""
    return float(os.environ.get("DJHPC_PIPELINE_IDLE_SECONDS", 300))


@dataclass
class Totals:
    made: int = 0
    failed: int = 0
    skipped: int = 0
    calls: int = 0

    def add(self, result):
        self.made += result["success_count"]
        self.failed += result["error_count"]
        self.skipped += result["skipped_count"]
        self.calls += result["make_calls"]


def targets_for(pipeline: Pipeline) -> dict:
    """The populate target of each table; DataJoint tables share one djhpc connection (one per worker, not one
    per table: a lab database has few connections to give)."""
    from .djtarget import DataJointTarget, is_datajoint_class
    from .target import TableTarget

    out, shared = {}, None
    for cls in pipeline.tables:
        if is_datajoint_class(cls):
            target = DataJointTarget(cls, connection=shared)
            shared = target.connection
        else:
            target = TableTarget(cls())
        out[cls] = target
    return out


class PipelineWorker:
    def __init__(self, pipeline: Pipeline, options: WorkOptions, *, prefer: str = "deepest",
                 targets: dict | None = None):
        self.pipeline = pipeline
        self.options = options
        self.order = pipeline.ordered(prefer)
        self.targets = targets or targets_for(pipeline)
        self.totals = Totals()
        self.keylog = KeyLog(pipeline.label, options.log_path)
        self.walltimes = {}
        self.reapers: dict = {}
        self.next_reap = 0.0
        self.upstream: list = []
        self.queued = False
        self.next_queue_look = 0.0
        self.watched = [t for t in self.targets if t in pipeline.tables]  # refined by run(): served + upstream

    # ------------------------------------------------------------------------------------------ the loop
    def run(self, upstream: list | None = None) -> int:
        """Work until nothing more can come; the exit code of ``djhpc work``."""
        self.upstream = [t for t in (upstream or []) if t not in self.order]
        self.watched = list(self.order) + self.upstream
        stopped, _ = guarded(self._loop, self.keylog)
        if stopped is not None:
            return stopped
        t = self.totals
        log.info("%s: %d made, %d failed, %d skipped", self.pipeline.label, t.made, t.failed, t.skipped)
        return EXIT_FAILURES if t.failed else EXIT_OK

    def _loop(self):
        waits, idle_since = 0, None
        while not self._budget_spent():
            fitting = [c for c in self.order if self._fits(c)]
            if not fitting:
                log.warning("the next key of any table would not fit in the time left of this allocation: stopping")
                return
            if any(self._populate(c, deeper=fitting[:i]) for i, c in enumerate(fitting)):
                waits, idle_since = 0, None
                continue
            coming, working = self._coming()
            if not coming:
                return
            self._reap_if_due()
            now = time.monotonic()
            idle_since = None if working or self._upstream_queued() else (idle_since or now)
            if idle_since is not None and now - idle_since > idle_seconds():
                log.warning("no worker holds a key of the tables above for %.0f s: stopping (submit the "
                            "upstream tables' workers, or again later)", now - idle_since)
                return
            backoff.sleep(backoff.delay(waits, first=0.5, cap=10.0))
            waits += 1

    def _populate(self, cls, deeper: list) -> bool:
        """One table's populate loop, left when a deeper table has a ready key; True when it made a key. A table
        with no key to make (one statement says) is passed over without starting a loop."""
        if not has_candidates(self.targets[cls], self.options.restrictions):
            return False
        target = self.targets[cls]
        self.keylog.table_name = target.table_name
        look = _Lookout(self, deeper)
        options = replace(self.options.populate, reserve_jobs=True, on_key=self.keylog,
                          walltime=self.walltimes.get(cls), scheduler=scheduler_for_reaping(),
                          should_stop=look, max_calls=self._left("max_calls"), limit=self._left("limit"))
        result = populate.run(target, self.options.restrictions, options)
        self.totals.add(result)
        return bool(result["make_calls"])

    def _left(self, name: str):
        budget = getattr(self.options.populate, name)
        if budget is None:
            return None
        spent = self.totals.calls if name == "max_calls" else self.totals.made + self.totals.failed
        return max(budget - spent, 0)

    def _budget_spent(self) -> bool:
        return any(self._left(n) == 0 for n in ("max_calls", "limit"))

    def _fits(self, cls) -> bool:
        if cls not in self.walltimes:
            target = self.targets[cls]
            history = History(target.connection, target.database, target.history_table)
            self.walltimes[cls] = Walltime.detect(lambda h=history, n=target.table_name: h.typical_duration(n))
        walltime = self.walltimes[cls]
        return walltime is None or walltime.fits()

    def _reap_if_due(self):
        """While waiting, give back the keys of dead workers in the tables watched: the workers that would reap
        them (those of another resource class) may all be gone, and their keys would be waited for forever."""
        now = time.monotonic()
        if now < self.next_reap:
            return
        self.next_reap = now + populate.reap_interval(max((r.owners_seen for r in self.reapers.values()), default=1))
        for cls in self.watched:
            target = self.targets[cls]
            where = (id(target.connection), target.database, target.jobs_table)
            if where not in self.reapers:
                jobs = Reservations(target.connection, target.database, jobs_table=target.jobs_table)
                self.reapers[where] = Reaper(jobs, scheduler=scheduler_for_reaping(), scheduler_every_seconds=300)
        for reaper in self.reapers.values():
            try:
                reclaimed = reaper.reap()
            except (TransientError, LostConnectionError) as e:
                log.warning("could not look for dead workers (%s)", e)
                continue
            if reclaimed:
                log.info("gave back %d key(s) of dead workers", len(reclaimed))

    def _upstream_queued(self) -> bool:
        """Whether a run recorded by ``djhpc submit`` for a table above this worker's still has a task pending or
        running: its keys will come, however long the queue keeps them (a GPU class waiting on CPU workers)."""
        now = time.monotonic()
        if now < self.next_queue_look:
            return self.queued
        self.next_queue_look = now + queue_look_seconds()
        names = {self.targets[c].table_name for c in self.upstream}
        runs = {}
        for cls in self.upstream:
            target = self.targets[cls]
            where = (id(target.connection), target.database)
            if where not in runs:
                runs[where] = _recorded_runs(target.connection, target.database)
        self.queued = any(_live(s) for found in runs.values() for s in found if set(s.table_name.split(",")) & names)
        return self.queued

    def _coming(self) -> tuple[bool, bool]:
        """(whether a key may still come to this worker, whether another worker holds a key of the tables it
        serves or of those above them)."""
        coming = working = False
        for cls in self.watched:
            counts = self.targets[cls].progress(self.options.restrictions)
            held = counts.get("reserved", 0)
            free = counts["remaining"] - counts.get("error", 0) - counts.get("ignore", 0)
            working = working or held > 0
            coming = coming or held > 0 or counts.get("pending", 0) > 0 or free > 0
        return coming, working


def _recorded_runs(connection, database) -> list:
    from .submissions import SUBMISSIONS_TABLE, Submissions

    if not connection.has_table(connection.dialect.table(database, SUBMISSIONS_TABLE)):
        return []
    return Submissions(connection, database).recent(50)


def _live(submission) -> bool:
    """Whether the scheduler lists a task of a recorded run as pending, running or suspended (unknown: no)."""
    from .schedulers import get_scheduler

    if submission.scheduler == "parallel":
        return False
    try:
        states = get_scheduler(submission.scheduler).task_states([submission.job_id])
    except (DjhpcError, OSError) as e:
        log.info("could not ask %s about run %s (%s)", submission.scheduler, submission.job_id, e)
        return False
    return any(str(state) in LIVE_STATES for state in states.values())


def has_candidates(target, restrictions) -> bool:
    """Whether the table has a key in its key source not made yet (held by a worker or not): one statement."""
    candidates, names = target.candidates(restrictions)
    return bool(candidates.fetch(*names, as_dict=True, limit=1))


class _Lookout:
    """``should_stop`` of one table's loop: True when a deeper table has a ready key (asked every
    DJHPC_PIPELINE_LOOK_SECONDS, so a table's loop makes keys for at least that long)."""

    def __init__(self, worker: PipelineWorker, deeper: list):
        self.worker = worker
        self.deeper = deeper
        self.every = look_deeper_seconds()
        self.next_look = time.monotonic() + self.every

    def __call__(self) -> bool:
        if not self.deeper or time.monotonic() < self.next_look:
            return False
        self.next_look = time.monotonic() + self.every
        restrictions = self.worker.options.restrictions
        return any(has_candidates(self.worker.targets[cls], restrictions) for cls in self.deeper)


def work_pipeline(pipeline: Pipeline, options: WorkOptions, *, prefer: str = "deepest",
                  serve: Pipeline | None = None) -> int:
    """Run one worker on ``serve`` (the tables this worker makes; default: the whole pipeline), waiting for the
    keys the rest of ``pipeline`` above them feeds in; returns the exit code of ``djhpc work``."""
    serve = serve or pipeline
    everything = targets_for(pipeline)
    worker = PipelineWorker(serve, options, prefer=prefer, targets={c: everything[c] for c in pipeline.tables})
    upstream = pipeline.upstream_of(serve.tables)
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    log.info("%s: working on %s from %s", pipeline.label, ", ".join(c.__name__ for c in serve.tables), when)
    return worker.run(upstream)
