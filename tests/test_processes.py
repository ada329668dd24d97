"""populate(processes=N) (djhpc/processes.py), on both backends: N forked children share the keys through the jobs
table, each key is made once, a failing key gets its error row, the result is DataJoint's, and Ctrl-C to the parent
gives every reserved key back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support.env import worker_env
from support.pipeline import calls

from djhpc import processes
from djhpc.errors import UsageError


@pytest.fixture
def cores(monkeypatch):
    """As many usable cores as the tests ask for, whatever this machine has (the children are forked after it)."""
    monkeypatch.setattr(processes, "usable_cores", lambda: 8)


def jobs_by_status(p) -> dict:
    out: dict = {}
    for row in p.schema.jobs.fetch(as_dict=True):
        out.setdefault(row["status"], []).append(row)
    return out


def call_pids(tmp_path) -> set[int]:
    path = tmp_path / "calls.log"
    return {int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()} if path.exists() else set()


def test_three_processes_make_every_key_once_and_record_the_failure(pipeline, cores, tmp_path, monkeypatch):
    p = pipeline
    monkeypatch.setenv("DJHPC_TEST_FAIL", "7")
    p.Item.insert([(i, i) for i in range(40)])
    result = p.Square().populate(processes=3, suppress_errors=True)
    made = calls(tmp_path)
    assert len(made) == 40 and set(made.values()) == {1}, made.most_common(3)
    pids = call_pids(tmp_path)
    assert os.getpid() not in pids and 1 <= len(pids) <= 3
    assert result["success_count"] == 39 and result["error_count"] == 1
    assert result["error_list"] == [({"item": 7}, "ValueError: bad item 7")]
    assert len(p.Square()) == 39 and len(p.Square.Note()) == 39
    jobs = jobs_by_status(p)
    assert list(jobs) == ["error"] and jobs["error"][0]["key"] == {"item": 7}
    assert jobs["error"][0]["error_message"] == "ValueError: bad item 7" and jobs["error"][0]["pid"] in pids
    # one key left (the failed one, skipped under reservation): one process, as DataJoint
    assert p.Square().populate(processes=3, reserve_jobs=True)["success_count"] == 0


def test_exception_objects_and_a_shared_budget(pipeline, cores, monkeypatch):
    p = pipeline
    monkeypatch.setenv("DJHPC_TEST_FAIL", "3")
    p.Item.insert([(i, i) for i in range(12)])
    result = p.Square().populate(processes=2, suppress_errors=True, return_exception_objects=True,
                                 order="reverse", max_calls=5)
    assert result["success_count"] + result["error_count"] == 5  # max_calls counts for the call, not per process
    result = p.Square().populate(processes=2, suppress_errors=True, return_exception_objects=True)
    errors = [e for _, e in result["error_list"]]
    assert all(isinstance(e, ValueError) and str(e) == "bad item 3" for e in errors)
    assert len(p.Square()) == 11


def test_an_error_stops_every_process_and_is_raised(pipeline, cores, monkeypatch):
    p = pipeline
    monkeypatch.setenv("DJHPC_TEST_FAIL", "0")
    p.Item.insert([(i, i) for i in range(6)])
    with pytest.raises(ValueError, match="bad item 0"):
        p.Square().populate(processes=2, order="original")
    jobs = jobs_by_status(p)
    assert "reserved" not in jobs and [r["key"] for r in jobs["error"]] == [{"item": 0}]


def test_sys_exit_in_a_childs_make_is_its_keys_error_and_is_raised_with_its_code(pipeline, cores, monkeypatch):
    """make raising SystemExit (or KeyboardInterrupt) in a child is that key's error, DataJoint's message, as in one
    process; the parent raises it with its exit code once the other child has given its keys back."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(6)])
    real_make = p.Square.make

    def quits(self, key):
        if key["item"] == 0:
            sys.exit(3)
        real_make(self, key)

    monkeypatch.setattr(p.Square, "make", quits)
    with pytest.raises(SystemExit) as e:
        p.Square().populate(processes=2, order="original", suppress_errors=True)
    assert e.value.code == 3
    jobs = jobs_by_status(p)
    assert list(jobs) == ["error"] and [(r["key"], r["error_message"]) for r in jobs["error"]] == \
        [({"item": 0}, "SystemExit: 3")]


def test_display_progress_and_keys(pipeline, cores):
    p = pipeline
    p.Item.insert([(i, i) for i in range(10)])
    result = p.Square().populate(processes=2, display_progress=True, keys=[{"item": 1}, {"item": 2}])
    assert result["success_count"] == 2 and sorted(p.Square.fetch("item")) == [1, 2]
    assert p.Square().populate(keys=[])["success_count"] == 0


def test_how_many_processes(monkeypatch):
    monkeypatch.setattr(processes, "usable_cores", lambda: 4)
    # DataJoint's rule: None (or 0) is every core; never more than the cores or the keys left; one with no key
    assert processes.worker_count(None, 100) == 4
    assert processes.worker_count(0, 100) == 4
    assert processes.worker_count(3, 100) == 3
    assert processes.worker_count(16, 100) == 4
    assert processes.worker_count(3, 2) == 2
    assert processes.worker_count(3, 0) == 1
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(UsageError, match="processes must be a whole number"):
            processes.worker_count(bad, 10)


CTRL_C = """
import djhpc.processes
djhpc.processes.usable_cores = lambda: 8
import pipeline_counts as p
p.Square().populate(processes=3, suppress_errors=True)
"""


def test_ctrl_c_to_the_parent_gives_every_key_back(pipeline, backend, schema_name, tmp_path):
    p = pipeline
    p.Item.insert([(i, i) for i in range(30)])
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log",
                     DJHPC_TEST_GATE=tmp_path / "never")  # every make waits inside, holding its key
    parent = subprocess.Popen([sys.executable, "-c", CTRL_C], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(call_pids(tmp_path)) < 3:  # each child is inside a make
            assert parent.poll() is None, parent.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the three children did not start their makes"
            time.sleep(0.05)
        assert "reserved" in jobs_by_status(p)
        parent.send_signal(signal.SIGINT)
        _, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode != 0 and "KeyboardInterrupt" in err, err[-3000:]
    assert jobs_by_status(p) == {}  # nothing reserved, nothing failed
    assert len(p.Square()) == 0 and sum(calls(tmp_path).values()) == 3
    for pid in call_pids(tmp_path):  # the children ended with their parent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_children_are_workers_of_their_own_while_the_parent_holds_a_reservation(pipeline, cores):
    """The parent's jobs table holds a key (DataJoint's jobs.reserve, as DataJoint's suite does before populating):
    its session lock is the parent's; each child takes its own (they all failed with 'is the owner id shared?')."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(8)])
    assert p.schema.jobs.reserve(p.Square.table_name, {"item": 7})
    result = p.Square().populate(processes=2, reserve_jobs=True)
    assert result["success_count"] == 7 and result["error_list"] == []
    p.schema.jobs.complete(p.Square.table_name, {"item": 7})
    assert p.Square().populate(processes=2)["success_count"] == 1 and len(p.Square()) == 8
