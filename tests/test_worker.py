"""djhpc.worker (``djhpc work``) in this process: the exit code and the log line when make itself raises what a
stop signal would raise. Real stop signals to a worker process are in tests/test_reliability.py."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from support.env import worker_env
from support.pipeline import make_calls

import djhpc as dj
from djhpc import worker


def test_a_keyboard_interrupt_raised_by_make_is_its_keys_error_and_the_worker_exits_75(schema, tmp_path, caplog):
    """Under djhpc work a SIGINT raises djhpc's Interrupted (the key goes back); a KeyboardInterrupt can only come
    from make itself, and is then that key's error, as in populate() (DataJoint's "KeyboardInterrupt")."""

    @schema
    class Source(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Stopper(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            raise KeyboardInterrupt

    Source.insert([(i,) for i in range(3)])
    with caplog.at_level(logging.WARNING, logger="djhpc.worker"):
        code = worker.work(Stopper, worker.WorkOptions(log_path=str(tmp_path / "keys.log")))
    assert code == worker.EXIT_INTERRUPTED
    row = schema.jobs.fetch1()  # the key whose make raised it; the rest went back
    assert row["status"] == "error" and row["error_message"] == "KeyboardInterrupt"
    assert "make raised KeyboardInterrupt: its key is an error" in caplog.text
    assert "\terror\tKeyboardInterrupt" in (tmp_path / "keys.log").read_text()


def _work(env, log_path, *args):
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", "pipeline_counts:Square", *args],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _in_make(tmp_path, n: int, proc):
    """Wait (bounded by events) until ``n`` processes are inside a make."""
    deadline = time.monotonic() + 120
    while len(make_calls(tmp_path)[1]) < n:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "w.log").read_text()[-3000:]
        time.sleep(0.05)


def test_work_processes_runs_that_many_workers_in_one_task(pipeline, backend, schema_name, tmp_path):
    """djhpc work --processes 3: three forked workers, each in a make at the same time (held at a gate), then
    every key made once and the task exits 0."""
    pipeline.Item.insert([(i, i) for i in range(60)])
    gate = tmp_path / "gate"
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=gate)
    task = _work(env, tmp_path / "w.log", "--processes", "3")
    _in_make(tmp_path, 3, task)
    gate.touch()
    assert task.wait(timeout=240) == 0, (tmp_path / "w.log").read_text()[-3000:]
    made, pids = make_calls(tmp_path)
    assert len(made) == 60 and set(made.values()) == {1} and len(pids) == 3 and task.pid not in pids
    assert len(pipeline.Square()) == 60 and len(pipeline.schema.jobs) == 0


def test_a_stop_signal_to_a_task_of_processes_gives_every_key_back(pipeline, backend, schema_name, tmp_path):
    pipeline.Item.insert([(i, i) for i in range(20)])
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_GATE=tmp_path / "no")
    task = _work(env, tmp_path / "w.log", "--processes", "2")
    _in_make(tmp_path, 2, task)
    task.send_signal(signal.SIGTERM)
    assert task.wait(timeout=60) == worker.EXIT_INTERRUPTED, (tmp_path / "w.log").read_text()[-3000:]
    assert len(pipeline.Square()) == 0 and len(pipeline.schema.jobs) == 0


def test_processes_are_at_least_one_and_a_pipelines_take_no_budget(pipeline, backend, schema_name, tmp_path):
    env = worker_env(backend, schema_name)
    for args, message in ((["pipeline_counts:Square", "--processes", "0"], "--processes: must be >= 1 (got 0)"),
                          (["pipeline_counts", "--processes", "2", "--limit", "3"], "take no --processes")):
        done = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "work", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(pipeline.schema.jobs) == 0
