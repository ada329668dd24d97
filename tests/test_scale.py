"""Many workers on one MariaDB, and more workers than the server has connections (issue 16): every key made
exactly once, nothing left reserved, every worker ends. Speed at scale lives in the benchmark, not here.

Real ``djhpc work`` processes against a private server, held inside their first make (a gate file) until enough
of them run at once, so the reservations really contend.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from support.env import worker_env
from support.mariadb import PrivateMariaDB
from support.pipeline import load_items, make_calls

pytestmark = [pytest.mark.slow, pytest.mark.mysql]


def _start(env, log_path: Path, *args: str):
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", "pipeline_counts:Square", *args],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(predicate, procs, timeout: float, what: str):
    """Poll ``predicate`` until it holds; fail early if every worker has ended without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if all(p.poll() is not None for p in procs):
            raise AssertionError(f"every worker ended before {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _server(tmp_path, *options) -> PrivateMariaDB:
    server = PrivateMariaDB(tmp_path / "mariadb", options=options)
    server.install()
    server.start()
    return server


def _status(port: int, name: str) -> int:
    with pymysql.connect(host="127.0.0.1", port=port, user="root") as c, c.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        return int(cur.fetchone()[1])


def _finish(procs, tmp_path):
    for i, p in enumerate(procs):
        code = p.wait(timeout=600)
        assert code == 0, f"worker {i} exited {code}: {(tmp_path / f'w{i}.log').read_text()[-2000:]}"


@dataclass
class GatedRun:
    """What a gated run left: the pipeline module, make calls per key, the PIDs that made, each worker's log."""

    pipeline: object
    made: dict
    pids: set
    logs: list[str]
    port: int


@contextmanager
def _gated_run(tmp_path, monkeypatch, schema: str, *, max_connections: int, workers: int, keys: int, ready,
               what: str, args=(), sleep=0.01, **env):
    """``workers`` djhpc work processes against a private server with ``max_connections``, held inside their
    first make until ``ready()`` holds, then let go; every worker ends with 0, every key is made exactly once
    and nothing stays reserved. Yields a GatedRun while the server still runs."""
    server = _server(tmp_path, f"--max-connections={max_connections}")
    try:
        p = load_items(server.url, schema, keys, monkeypatch, tmp_path)
        gate = tmp_path / "gate"
        environ = worker_env(server.url, schema, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=gate,
                             DJHPC_TEST_SLEEP=sleep, **env)
        procs = [_start(environ, tmp_path / f"w{i}.log", *args) for i in range(workers)]
        _wait_for(ready, procs, 600, what)
        gate.touch()
        _finish(procs, tmp_path)
        made, pids = make_calls(tmp_path)
        assert set(made.values()) == {1}, [k for k, c in made.items() if c > 1][:10]
        assert len(made) == keys
        assert len(p.Square()) == keys
        assert len(p.schema.jobs) == 0, p.schema.jobs.fetch(as_dict=True)[:5]
        yield GatedRun(p, made, pids, [(tmp_path / f"w{i}.log").read_text() for i in range(workers)], server.port)
    finally:
        server.stop()


def _in_make(tmp_path, n: int):
    """A ``ready`` for _gated_run: at least ``n`` workers are inside a make."""
    return lambda: len(make_calls(tmp_path)[1]) >= n


def test_128_workers_at_once_make_every_key_exactly_once(tmp_path, monkeypatch):
    # half the workers inside a make at the same time: the rest reserve against them as they arrive
    with _gated_run(tmp_path, monkeypatch, "scale128", max_connections=400, workers=128, keys=128 * 4,
                    ready=_in_make(tmp_path, 64), what="64 workers in a make") as run:
        assert len(run.pipeline.Square.Note()) == 128 * 4
        assert len(run.pids) >= 64


def test_an_array_larger_than_the_connection_limit_waits_for_connections_and_finishes(tmp_path, monkeypatch):
    """60 workers against max_connections=20: those without a connection wait for one (saying so), none fails,
    and the server never held more than its limit."""
    def waiting() -> int:
        return sum("has no free connection" in (tmp_path / f"w{i}.log").read_text() for i in range(60))

    with _gated_run(tmp_path, monkeypatch, "budget", max_connections=20, workers=60, keys=300,
                    ready=lambda: waiting() >= 10 and _in_make(tmp_path, 5)(),
                    what="workers in a make while 10 others wait for a connection",
                    DJHPC_CONNECTION_WAIT_SECONDS=600) as run:
        # max_connections plus the one MariaDB keeps for a SUPER user (root, here)
        assert _status(run.port, "Max_used_connections") <= 21
        assert not [text for text in run.logs if "Traceback" in text][:1]


def test_workers_that_give_their_connection_back_during_makes_all_make_at_once(tmp_path, monkeypatch):
    """30 workers against max_connections=10 with --release-after: all 30 are inside a make at the same time
    (each gave its connection back while its make waits; without it at most 10 could be), then every key is made
    once, and no reaper took a live worker's key for want of its session lock."""
    with _gated_run(tmp_path, monkeypatch, "released", max_connections=10, workers=30, keys=120,
                    ready=_in_make(tmp_path, 30), what="all 30 workers in a make", args=("--release-after", "0.2"),
                    sleep=0.05, DJHPC_CONNECTION_WAIT_SECONDS=600, DJHPC_REAP_SECONDS=0.5) as run:
        assert _status(run.port, "Max_used_connections") <= 11
        assert not [text for text in run.logs if "reclaimed" in text or "Traceback" in text][:1]
