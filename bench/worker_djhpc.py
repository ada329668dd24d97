"""One djhpc benchmark worker: ``python bench/worker_djhpc.py SETTINGS_JSON`` (see workerlib.py).

The database URL comes from DJHPC_DATABASE_URL in the environment, never from the command line. The tables
are the test pipeline tests/pipelines/pipeline_bench.py (the runner puts that folder on PYTHONPATH).
Modes: ``populate`` (index 0 also declares the tables and fills the key source first), ``progress``; for the
connection-budget case ``setup`` (declare and fill, nothing made) and ``task`` (an array task: no barrier,
connects when it starts, populates until no key is left).
"""

from __future__ import annotations

import os
import random
import statistics
import time

import counting
import workerlib  # noqa: I001  (first: it takes the process start time)

COUNTS = counting.install()

import pipeline_bench  # noqa: E402  (imports djhpc: after the PyMySQL wrappers too)
import prototypes  # noqa: E402

import djhpc as dj  # noqa: E402  (after the PyMySQL wrappers)


def declare(worker):
    s = worker.settings
    connection = dj.conn()
    schema = dj.Schema(s["schema"], connection=connection)
    Item, Result = pipeline_bench.declare(schema, on_make=worker.made)
    return connection, schema, Item, Result


def fill(worker, connection, Item, Result):
    """Fill the key source (and, for progress, the done rows) with plain SQL: the same for both libraries."""
    s = worker.settings
    dialect = connection.dialect.name
    n, done = int(s.get("n", 0)), int(s.get("done", 0))
    if n:
        table = Item().full_table_name
        connection.query(workerlib.fill_sql(dialect, s["schema"], table, "item, value", 0, n, "seq, seq"))
    if done:
        table = Result().full_table_name
        connection.query(workerlib.fill_sql(dialect, s["schema"], table, "item, doubled", 0, done, "seq, 2 * seq"))


def position(s) -> dict:
    """The --djhpc-position experiment: by default nothing, i.e. plain populate(reserve_jobs=True)."""
    if s.get("djhpc_position") == "random":
        return {"position": random.random()}
    if s.get("djhpc_position") == "spread":
        return {"position": s["index"] / s["workers"]}
    return {}


def populate(worker):
    s = worker.settings
    connection, schema, Item, Result = declare(worker)
    if s.get("setup"):
        fill(worker, connection, Item, Result)
    connection.query("SELECT 1")  # connected before the start, as a long-lived worker would be
    worker.ready_and_wait(COUNTS)
    stats_before = connection.stats.snapshot()
    result = Result().populate(reserve_jobs=True, max_calls=s.get("max_calls"), **position(s))
    stats_after = connection.stats.snapshot()
    worker.finish(success=result.success_count, lost=result.lost_count,
                  seen_held=result.seen_taken_count, make_calls=result.make_calls,
                  errors=len(result.error_list),
                  connection_stats={"statements": stats_after[0] - stats_before[0],
                                    "commits": stats_after[1] - stats_before[1]})


def setup(worker):
    connection, schema, Item, Result = declare(worker)
    fill(worker, connection, Item, Result)


def task(worker):
    """One task of a large array: it connects now (waiting for a free connection if the server has none, as
    ``djhpc work`` does) and makes keys until none is left (giving its connection back during makes with
    ``release_after``, as ``djhpc work --release-after``)."""
    connection, schema, Item, Result = declare(worker)
    result = Result().populate(reserve_jobs=True, release_after=worker.settings.get("release_after"))
    worker.finish(success=result.success_count, lost=result.lost_count, errors=len(result.error_list))


def progress(worker):
    s = worker.settings
    connection, schema, Item, Result = declare(worker)
    fill(worker, connection, Item, Result)
    # a few keys that are reserved, failed and ignored, so the detailed counts have something to count
    jobs = dj.Reservations(connection, s["schema"])
    first_undone = int(s.get("done", 0))
    for i in range(10):
        jobs.ignore(Result().table_name, {"item": first_undone + i})
    timings = {}
    for label, kwargs in (("plain", {}), ("detail", {"detail": True})):
        Result().progress(**kwargs)  # warm: the jobs table exists, headings are loaded
        seconds, statements = [], []
        for _ in range(int(s.get("repeats", 5))):
            before = COUNTS.snapshot()["round_trips"]
            t0 = time.perf_counter()
            answer = Result().progress(**kwargs)
            seconds.append(time.perf_counter() - t0)
            statements.append(COUNTS.snapshot()["round_trips"] - before)
        timings[label] = {"seconds": statistics.median(seconds), "all_seconds": seconds,
                          "statements": statements[-1], "answer": answer}
    worker.finish(progress=timings)


def main():
    worker = workerlib.Worker()
    prototypes.apply(worker.settings.get("djhpc_patches"))
    mode = worker.settings["mode"]
    if mode == "populate":
        populate(worker)
    elif mode in ("setup", "task"):
        {"setup": setup, "task": task}[mode](worker)
    elif mode == "progress":
        progress(worker)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    dj.conn().close()
    os._exit(0)  # no lingering threads: the runner waits for this process


if __name__ == "__main__":
    main()
