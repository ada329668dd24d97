"""One DataJoint benchmark worker: ``python bench/worker_datajoint.py SETTINGS_JSON`` (see workerlib.py).

Runs in whatever interpreter has DataJoint (0.14 or 2.x), usually its own venv: it imports neither djhpc nor
anything outside the standard library, DataJoint, PyMySQL and the two modules beside it. The server comes
from DJ_HOST, DJ_USER and DJ_PASS in the environment.

Losing attempts are counted by wrapping the jobs table's ``reserve`` (calls that return False) and
``_populate1`` (calls that return False: reservation lost, or the key was already made by another worker).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings

import counting
import workerlib  # noqa: I001  (first: it takes the process start time)

COUNTS = counting.install()
warnings.simplefilter("ignore")

import datajoint as dj  # noqa: E402  (after the PyMySQL wrappers)

V2 = int(dj.__version__.split(".")[0]) >= 2
TALLY = {"reserve_calls": 0, "reserve_false": 0, "populate1_false": 0}


def configure():
    dj.config["safemode"] = False
    dj.config["database.use_tls"] = False  # djhpc connects without TLS too; 0.14 would insist on it
    try:
        dj.config["loglevel"] = "WARNING"
    except Exception:  # noqa: BLE001  (the key moved between versions; the default is only noisier)
        pass
    logging.getLogger("datajoint").setLevel(logging.WARNING)


def count_losses():
    """Wrap reserve() and _populate1() to count losing attempts."""
    from datajoint import autopopulate, jobs

    job_class = jobs.Job if V2 else jobs.JobTable
    original_reserve = job_class.reserve

    def reserve(self, *args, **kwargs):
        won = original_reserve(self, *args, **kwargs)
        TALLY["reserve_calls"] += 1
        if not won:
            TALLY["reserve_false"] += 1
        return won

    job_class.reserve = reserve
    original_populate1 = autopopulate.AutoPopulate._populate1

    def populate1(self, *args, **kwargs):
        status = original_populate1(self, *args, **kwargs)
        if status is False:
            TALLY["populate1_false"] += 1
        return status

    autopopulate.AutoPopulate._populate1 = populate1


def declare(worker):
    s = worker.settings
    schema = dj.Schema(s["schema"])
    integer = "int32" if V2 else "int"

    @schema
    class Item(dj.Manual):
        definition = f"""
        item : {integer}
        ---
        value : {integer}
        """

    @schema
    class Result(dj.Computed):
        definition = f"""
        -> Item
        ---
        doubled : {integer}
        """

        def make(self, key):
            worker.made(key)
            self.insert1(dict(key, doubled=2 * key["item"]))

    return schema, Item, Result


def fill(worker, Item, Result):
    s = worker.settings
    n, done = int(s.get("n", 0)), int(s.get("done", 0))
    connection = dj.conn()
    if n:
        table = Item().full_table_name
        connection.query(workerlib.fill_sql("mysql", s["schema"], table, "item, value", 0, n, "seq, seq"))
    if done:
        table = Result().full_table_name
        connection.query(workerlib.fill_sql("mysql", s["schema"], table, "item, doubled", 0, done, "seq, 2 * seq"))


def populate(worker):
    s = worker.settings
    schema, Item, Result = declare(worker)
    refresh_once = s.get("datajoint_refresh") == "once"
    if s.get("setup"):
        fill(worker, Item, Result)
        if refresh_once and V2:
            Result().jobs.refresh()
    dj.conn().query("SELECT 1")
    count_losses()
    kwargs = {"reserve_jobs": True, "max_calls": s.get("max_calls")}
    if V2 and refresh_once:
        kwargs["refresh"] = False
    if not V2:
        kwargs["order"] = "original"
    worker.ready_and_wait(COUNTS)
    result = Result().populate(**kwargs)
    worker.finish(success=result["success_count"], lost=TALLY["populate1_false"], errors=len(result["error_list"]),
                  make_calls=None, tally=dict(TALLY))


def progress(worker):
    s = worker.settings
    schema, Item, Result = declare(worker)
    fill(worker, Item, Result)
    Result().progress(display=False)
    seconds, statements = [], []
    for _ in range(int(s.get("repeats", 5))):
        before = COUNTS.snapshot()["round_trips"]
        t0 = time.perf_counter()
        answer = Result().progress(display=False)
        seconds.append(time.perf_counter() - t0)
        statements.append(COUNTS.snapshot()["round_trips"] - before)
    timings = {"plain": {"seconds": statistics.median(seconds), "all_seconds": seconds,
                         "statements": statements[-1], "answer": list(answer)}}
    worker.finish(progress=timings)


def main():
    configure()
    worker = workerlib.Worker()
    mode = worker.settings["mode"]
    if mode == "populate":
        populate(worker)
    elif mode == "progress":
        progress(worker)
    elif mode == "version":
        print(dj.__version__)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    os._exit(0)


if __name__ == "__main__":
    main()
