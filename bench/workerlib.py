"""What both benchmark workers share: settings, the start barrier, the make log, the result file.

Standard library only (plus counting.py beside it): the DataJoint worker imports it from DataJoint's own venv.
A worker is started as ``python bench/worker_<system>.py SETTINGS_JSON`` and talks to the runner through
files in its run folder: ``ready.<i>`` when it is connected and declared, ``go`` (written by the runner: the
start time, the same for every worker), ``result.<i>.json`` at the end, and ``calls.log`` (one line per make
call, appended by every worker) from which keys made twice are counted.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

STARTED_AT = time.time()  # as early as the worker can take it: before the database library is imported

BARRIER_POLL_SECONDS = 0.002


class Worker:
    def __init__(self, argv=None):
        argv = sys.argv if argv is None else argv
        self.settings = json.loads(argv[1])
        s = self.settings
        self.index = int(s.get("index", 0))
        self.folder = Path(s["folder"])
        self.sleep_seconds = float(s.get("sleep_seconds") or 0)
        self.calls_path = str(self.folder / "calls.log")
        self.go_at = None
        self.first_make = None  # (time, counts) when make was first called
        self.counts = None
        self.slept = 0.0  # seconds actually spent in make's sleep (more than asked when the machine is busy)

    # ------------------------------------------------------------ barrier
    def ready_and_wait(self, counts):
        """Say ready, wait for the runner's go file, then sleep until the common start time."""
        self.counts = counts
        self.ready_at = time.time()
        (self.folder / f"ready.{self.index}").write_text(str(os.getpid()))
        go = self.folder / "go"
        deadline = time.monotonic() + float(self.settings.get("barrier_timeout_seconds", 600))
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("benchmark worker: no go signal from the runner")
            time.sleep(BARRIER_POLL_SECONDS)
        self.go_at = float(go.read_text())
        delay = self.go_at - time.time()
        if delay > 0:
            time.sleep(delay)
        self.counts_at_go = counts.snapshot()
        self.cpu_at_go = cpu_seconds()

    # ------------------------------------------------------------ make
    def made(self, key: dict):
        """Call first in make(): remembers the first call and appends one line per call to the make log."""
        if self.first_make is None:
            self.first_make = (time.time(), self.counts.snapshot() if self.counts else None)
        line = f"{key['item']} {os.getpid()}\n".encode()
        fd = os.open(self.calls_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if self.sleep_seconds:
            t0 = time.perf_counter()
            time.sleep(self.sleep_seconds)
            self.slept += time.perf_counter() - t0

    # ------------------------------------------------------------ result
    def finish(self, **fields):
        """Write this worker's result file (times are seconds since the epoch, counts are deltas since go)."""
        ended_at = time.time()
        out = {"index": self.index, "pid": os.getpid(), "started_at": STARTED_AT,
               "ready_at": getattr(self, "ready_at", None), "go_at": self.go_at, "ended_at": ended_at,
               "max_rss_mb": peak_rss_mb(), "slept_s": self.slept,
               "cpu_s": cpu_seconds() - getattr(self, "cpu_at_go", 0.0)}
        if self.counts is not None and self.go_at is not None:
            out["counts"] = _delta(self.counts.snapshot(), self.counts_at_go)
        if self.first_make is not None:
            out["first_make_at"] = self.first_make[0]
            if self.first_make[1] is not None and self.go_at is not None:
                out["counts_before_first_make"] = _delta(self.first_make[1], self.counts_at_go)
        out.update(fields)
        tmp = self.folder / f".result.{self.index}.json"
        tmp.write_text(json.dumps(out))
        tmp.rename(self.folder / f"result.{self.index}.json")


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


def cpu_seconds() -> float:
    """CPU time this process used (user and system, its threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def fill_sql(dialect: str, schema: str, table: str, columns: str, first: int, count: int, expression: str) -> str:
    """SQL that inserts ``count`` rows numbered from ``first``, the same text for both libraries."""
    if dialect == "mysql":
        return f"INSERT INTO {table} ({columns}) SELECT {expression} FROM `{schema}`.seq_{first}_to_{first + count - 1}"
    return (f"WITH RECURSIVE s(seq) AS (SELECT {first} UNION ALL SELECT seq + 1 FROM s WHERE seq < "
            f"{first + count - 1}) INSERT INTO {table} ({columns}) SELECT {expression} FROM s")
