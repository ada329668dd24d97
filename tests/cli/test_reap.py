"""djhpc reap: a SIGKILLed worker's key comes back (pid-gone), dead reservations by lease or session, one
table or a schema, --dry-run changes nothing, live workers are left alone, bad input."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest
from support.env import worker_env
from support.jobstate import cli, one_line_error

from djhpc.reservation import Reservations, Worker


def _jobs(p):
    return sorted((t, s, k) for t, s, k in zip(*p.schema.jobs.fetch("table_name", "status", "key"), strict=True))


def test_reap_the_key_of_a_killed_worker(pipeline, backend, schema_name, tmp_path, capsys):
    pipeline.Item.insert1((1, 1))
    marker = tmp_path / "marker"
    env = worker_env(backend, schema_name, DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=60)
    worker = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", "pipeline_counts:Held"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never reached its make"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert _jobs(pipeline) == [("__held", "reserved", {"item": 1})]
    rc, out, err = cli(capsys, "reap", "pipeline_counts:Held", "--dry-run", "--scheduler", "none")
    assert rc == 0, err
    assert f"would reclaim Held item=1 from {socket.gethostname()} pid {worker.pid}: pid-gone" in out
    assert _jobs(pipeline) == [("__held", "reserved", {"item": 1})]
    rc, out, err = cli(capsys, "reap", "pipeline_counts:Held", "--scheduler", "none")
    assert rc == 0 and f"reclaimed Held item=1 from {socket.gethostname()} pid {worker.pid}: pid-gone -> pending" \
        in out, out + err
    assert "1 of 1 reservations reclaimed" in out and "djhpc: reclaimed" not in err  # said once
    assert _jobs(pipeline) == [("__held", "pending", {"item": 1})]
    # the next worker makes it
    pipeline.Held.populate(reserve_jobs=True)
    assert pipeline.Held.fetch("item") == [1] and _jobs(pipeline) == []


def test_reap_by_lease_or_session_one_table_then_the_schema(pipeline, db, schema_name, capsys):
    gone_a = Reservations(db, schema_name, Worker(host="node-x", pid=7))
    gone_a.reserve("__held", [{"item": 5}])
    gone_a.close()  # no heartbeat any more, session lock released
    gone_b = Reservations(db, schema_name, Worker(host="node-y", pid=8))
    gone_b.reserve("__pair_sum", [{"a": 1, "b": 2}])
    gone_b.close()
    alive = Reservations(db, schema_name, Worker(host="node-z", pid=9), lease_seconds=0.6)  # beats every 0.2 s
    alive.reserve("__held", [{"item": 6}])  # heartbeat and session lock go on
    try:
        time.sleep(1.3)
        why = "lease-expired" if db.is_sqlite else "session-gone"
        rc, out, err = cli(capsys, "reap", "pipeline_counts:Held", "--lease", "1", "--json", "--scheduler", "none")
        assert rc == 0, err
        assert [(r["table_name"], r["key"], r["host"], r["reason"]) for r in json.loads(out)] == [
            ("__held", {"item": 5}, "node-x", why)]
        assert ("__pair_sum", "reserved", {"a": 1, "b": 2}) in _jobs(pipeline)
        rc, out, err = cli(capsys, "reap", "--schema", schema_name, "--lease", "1", "--scheduler", "none")
        assert rc == 0 and f"reclaimed PairSum a=1, b=2 from node-y pid 8: {why} -> pending" in out, out + err
        assert _jobs(pipeline) == [("__held", "pending", {"item": 5}), ("__held", "reserved", {"item": 6}),
                                   ("__pair_sum", "pending", {"a": 1, "b": 2})]
        rc, out, _ = cli(capsys, "reap", "--schema", schema_name, "--scheduler", "none")
        assert rc == 0 and "no dead reservations" in out and "1 reserved, all alive" in out
    finally:
        alive.close()


@pytest.mark.parametrize("argv", [
    ["reap", "pipeline_counts:Held", "--lease", "0"],
    ["reap", "pipeline_counts:Held", "--scheduler", "bogus"],
    ["reap", "--schema", "no_such_schema_xyz"],
    ["reap", "pipeline_counts:Nope"],
])
def test_bad_input_is_one_line_and_exit_2(pipeline, capsys, argv):
    rc, _, err = cli(capsys, *argv)
    assert rc == 2 and one_line_error(err), err
