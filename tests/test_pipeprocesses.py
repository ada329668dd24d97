"""``djhpc work chain.py --processes N`` (pipeprocesses.py): N pipeline workers in one task, on SQLite and MariaDB.
Every key of every table made once by the children; a stop signal to the task alone, or to every process of it
at once (a scheduler's), stops each child once: the keys go back, exit 75."""

from __future__ import annotations

import os
import signal

import psutil
from support.env import wait_for
from test_pipework import (
    FAILED,
    chain,  # noqa: F401  (the fixture)
    check_made_once,
    finish,
    reserved,
)

from djhpc.pipeprocesses import combined_exit_code


def test_processes_make_every_key_of_every_table_once(chain):  # noqa: F811
    sessions = range(12)
    chain.add_sessions(sessions)
    worker = chain.start_worker("--processes", 3, DJHPC_TEST_SLEEP="0.05")
    assert finish([worker]) == [1], worker.err  # the failed session
    check_made_once(chain, sessions)
    pids = {c.pid for c in chain.calls()}
    assert len(pids) >= 2 and worker.pid not in pids, pids
    assert "3 processes, each a worker of its own" in worker.err and "Traceback" not in worker.err
    assert not [c for c in chain.calls() if c.session == FAILED]


def _held_by_every_child(chain, worker, n: int):  # noqa: F811
    wait_for(lambda: len(psutil.Process(worker.pid).children()) == n and reserved(chain) >= n, timeout=120,
             what=f"{n} children each holding a key")
    return psutil.Process(worker.pid).children()


def test_a_signal_to_the_task_alone_stops_every_process(chain):  # noqa: F811
    """SLURM's --signal=B:USR1@60 reaches the batch script's process only: the children are told, once."""
    chain.add_sessions(range(6))
    worker = chain.start_worker("--processes", 2, DJHPC_TEST_SLEEP="30", DJHPC_TEST_FAIL="")
    _held_by_every_child(chain, worker, 2)
    worker.send_signal(signal.SIGUSR1)
    assert finish([worker], timeout=120) == [75], worker.err
    assert reserved(chain) == 0 and "Traceback" not in worker.err
    assert worker.err.count("reservations released; submit again to continue") == 2, worker.err


def test_a_signal_to_every_process_stops_each_child_once(chain):  # noqa: F811
    """scancel and a time limit signal every process of the job at once: a child stopping on its own signal is
    not signalled again by the task (a second signal would cut its giving the keys back short)."""
    chain.add_sessions(range(6))
    worker = chain.start_worker("--processes", 2, DJHPC_TEST_SLEEP="30", DJHPC_TEST_FAIL="")
    children = _held_by_every_child(chain, worker, 2)
    for p in [worker.pid, *(c.pid for c in children)]:
        os.kill(p, signal.SIGTERM)
    assert finish([worker], timeout=120) == [75], worker.err
    assert reserved(chain) == 0 and "Traceback" not in worker.err
    assert worker.err.count("stopped by SIGTERM: reservations released") == 2, worker.err


def test_budgets_of_one_worker_take_no_processes(chain):  # noqa: F811
    out = chain.djhpc("work", "--processes", 2, "--max-calls", 5)
    last = out.stderr.splitlines()[-1]
    assert out.returncode == 2 and last.startswith("djhpc: error: --max-calls and --limit"), out.stderr


def test_the_task_says_the_most_telling_of_its_childrens_exit_codes():
    assert combined_exit_code([0, 1, 0]) == 1
    assert combined_exit_code([1, 75, 0]) == 75
    assert combined_exit_code([75, 69, 2]) == 2
    assert combined_exit_code([0, -9]) == 1  # killed (out of memory?): failures, its keys go back as a dead one's
    assert combined_exit_code([0, 0]) == 0 and combined_exit_code([]) == 0
