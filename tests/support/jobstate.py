"""A jobs table with a row in every status, made by real populate, ignore() and reserve(); and the CLI in-process."""

from __future__ import annotations

import sys

from djhpc.cli.main import main
from djhpc.reservation import Reservations, Worker

TARGET = "pipeline_counts:Square"
# what build_state leaves behind, counted by hand
EXPECTED = {"total": 20, "done": 8, "remaining": 12, "reserved": 2, "error": 3, "ignore": 1, "pending": 1}


def build_state(p, db, schema_name, monkeypatch):
    """Items 0..19 of Square: 8 made; 3, 5 and 17 failed (17 on host node-e); 10 waits for a retry (pending);
    19 ignored; 15 and 16 reserved by a worker on node-r, array task 777_2.

    Returns that worker's Reservations: it keeps its session lock and heartbeat, so its keys look alive
    (on MariaDB a free session lock means a dead worker); close() it when done."""
    p.Item.insert([(i, i) for i in range(20)])
    monkeypatch.setenv("DJHPC_TEST_FAIL", "3,5")
    p.Square.populate("item < 10", reserve_jobs=True, suppress_errors=True)
    monkeypatch.setenv("DJHPC_TEST_FAIL", "10")
    p.Square.populate({"item": 10}, reserve_jobs=True, suppress_errors=True, max_attempts=3,
                      retry_delay_seconds=3600)
    monkeypatch.setenv("DJHPC_TEST_FAIL", "")
    p.schema.jobs.ignore(p.Square, {"item": 19})
    holder = Reservations(db, schema_name, Worker(host="node-r", pid=4242, sched_job_id="777", sched_task_id="2"))
    assert len(holder.reserve("__square", [{"item": 15}, {"item": 16}])) == 2
    failing = Reservations(db, schema_name, Worker(host="node-e", pid=99, sched_job_id="778", sched_task_id="1"))
    claim = failing.reserve("__square", [{"item": 17}])[0]
    assert failing.fail(claim, "RuntimeError: disk full on /scratch/17",
                        "Traceback (most recent call last):\nRuntimeError: disk full on /scratch/17") == "error"
    failing.close()
    return holder


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``djhpc ARGV`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        rc = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_line_error(err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("djhpc: error: ") and "Traceback" not in err
