"""Many workers on one MariaDB, and more workers than the server has connections (issue 16): every key made
exactly once, nothing left reserved, every worker ends. Speed at scale lives in the benchmark, not here.

Real ``djhpc work`` processes against a private server, held inside their first make (a gate file) until enough
of them run at once, so the reservations really contend.
"""

from __future__ import annotations

import subprocess
import sys
import time
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


def test_128_workers_at_once_make_every_key_exactly_once(tmp_path, monkeypatch):
    server = _server(tmp_path, "--max-connections=400")
    try:
        n_workers, n_keys = 128, 128 * 4
        p = load_items(server.url, "scale128", n_keys, monkeypatch, tmp_path)
        gate = tmp_path / "gate"
        env = worker_env(server.url, "scale128", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=gate,
                         DJHPC_TEST_SLEEP=0.01)
        procs = [_start(env, tmp_path / f"w{i}.log") for i in range(n_workers)]
        # half the workers inside a make at the same time: the rest reserve against them as they arrive
        _wait_for(lambda: len(make_calls(tmp_path)[1]) >= n_workers // 2, procs, 600, "64 workers in a make")
        gate.touch()
        _finish(procs, tmp_path)
        made, pids = make_calls(tmp_path)
        assert len(p.Square()) == n_keys and len(p.Square.Note()) == n_keys
        assert set(made.values()) == {1}, [k for k, c in made.items() if c > 1][:10]
        assert len(made) == n_keys
        assert len(p.schema.jobs) == 0, p.schema.jobs.fetch(as_dict=True)[:5]
        assert len(pids) >= n_workers // 2
    finally:
        server.stop()


def test_an_array_larger_than_the_connection_limit_waits_for_connections_and_finishes(tmp_path, monkeypatch):
    """60 workers against max_connections=20: those without a connection wait for one (saying so), none fails,
    and the server never held more than its limit."""
    server = _server(tmp_path, "--max-connections=20")
    try:
        n_workers, n_keys = 60, 300
        p = load_items(server.url, "budget", n_keys, monkeypatch, tmp_path)
        gate = tmp_path / "gate"
        env = worker_env(server.url, "budget", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=gate,
                         DJHPC_TEST_SLEEP=0.01, DJHPC_CONNECTION_WAIT_SECONDS=600)
        procs = [_start(env, tmp_path / f"w{i}.log") for i in range(n_workers)]

        def waiting() -> int:
            return sum("has no free connection" in (tmp_path / f"w{i}.log").read_text() for i in range(n_workers))

        _wait_for(lambda: waiting() >= 10 and len(make_calls(tmp_path)[1]) >= 5, procs, 600,
                  "workers in a make while 10 others wait for a connection")
        gate.touch()
        _finish(procs, tmp_path)
        made, _ = make_calls(tmp_path)
        assert len(made) == n_keys and set(made.values()) == {1}
        assert len(p.Square()) == n_keys and len(p.schema.jobs) == 0
        # max_connections plus the one MariaDB keeps for a SUPER user (root, here)
        assert _status(server.port, "Max_used_connections") <= 21
        assert not [i for i in range(n_workers) if "Traceback" in (tmp_path / f"w{i}.log").read_text()]
    finally:
        server.stop()


def test_workers_that_give_their_connection_back_during_makes_all_make_at_once(tmp_path, monkeypatch):
    """30 workers against max_connections=10 with --release-after: all 30 are inside a make at the same time
    (each gave its connection back while its make waits; without it at most 10 could be), then every key is made
    once, and no reaper took a live worker's key for want of its session lock."""
    server = _server(tmp_path, "--max-connections=10")
    try:
        n_workers, n_keys = 30, 120
        p = load_items(server.url, "released", n_keys, monkeypatch, tmp_path)
        gate = tmp_path / "gate"
        env = worker_env(server.url, "released", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=gate,
                         DJHPC_TEST_SLEEP=0.05, DJHPC_CONNECTION_WAIT_SECONDS=600, DJHPC_REAP_SECONDS=0.5)
        procs = [_start(env, tmp_path / f"w{i}.log", "--release-after", "0.2") for i in range(n_workers)]
        _wait_for(lambda: len(make_calls(tmp_path)[1]) >= n_workers, procs, 600, "all 30 workers in a make")
        gate.touch()
        _finish(procs, tmp_path)
        made, _ = make_calls(tmp_path)
        assert len(made) == n_keys and set(made.values()) == {1}
        assert len(p.Square()) == n_keys and len(p.schema.jobs) == 0
        assert _status(server.port, "Max_used_connections") <= 11
        logs = [(tmp_path / f"w{i}.log").read_text() for i in range(n_workers)]
        assert not [text for text in logs if "reclaimed" in text or "Traceback" in text][:1]
    finally:
        server.stop()
