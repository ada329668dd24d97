"""Whole-pipeline workers (pipework.py): `djhpc work chain.py` over five computed tables, on SQLite and MariaDB.

Every key of every table is made once (history rows, written in make's own transaction, count the commits),
downstream keys start before the upstream table is finished (no barrier), a failed upstream key blocks exactly
its dependants, a worker of one resource class makes only its tables, and SIGTERM and SIGKILL lose nothing.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid

import pytest
from support.chain import TABLES, ChainProject
from support.env import MYSQL_URL, mysql_available, unavailable, wait_for

FAILED = 3


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def chain(request, tmp_path):
    schema = "djhpc_chain_" + uuid.uuid4().hex[:8]
    if request.param == "mysql":
        if not mysql_available():
            unavailable("no MariaDB at 127.0.0.1:3306")
        url = MYSQL_URL
    else:
        url = f"sqlite:///{tmp_path}/chain.db"
    project = ChainProject.create(tmp_path / "project", url, schema, DJHPC_TEST_FAIL=FAILED,
                                  DJHPC_PIPELINE_LOOK_SECONDS="0.3", DJHPC_REAP_SECONDS="1")
    yield project
    if request.param == "mysql":
        import pymysql

        c = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        c.cursor().execute(f"DROP DATABASE IF EXISTS `{schema}`")
        c.close()


def finish(procs, timeout=240) -> list[int]:
    """Wait for each worker; its output is kept as ``p.out``/``p.err`` (the pipes are closed)."""
    codes = []
    for p in procs:
        try:
            p.out, p.err = p.communicate(timeout=timeout)
        except BaseException:
            p.kill()
            p.communicate()
            raise
        codes.append(p.returncode)
    return codes


def check_made_once(chain: ChainProject, sessions) -> None:
    """Every table holds exactly the sessions not blocked by the failed one, each made by one commit."""
    expected = set(sessions) - {FAILED}
    for table in TABLES:
        assert chain.rows(table) == expected, table
    history = chain.history_counts()
    assert history and max(history.values()) == 1, [k for k, n in history.items() if n > 1]
    assert len(history) == len(TABLES) * len(expected)


def test_workers_make_every_key_once_and_blocked_keys_stay_unmade(chain):
    sessions = range(16)
    chain.add_sessions(sessions)
    procs = [chain.start_worker(DJHPC_TEST_SLEEP="0.05") for _ in range(3)]
    codes = finish(procs)
    assert sorted(codes) in ([0, 0, 1], [0, 1, 1], [1, 1, 1]), [p.err for p in procs]
    check_made_once(chain, sessions)
    counts = chain.counts()
    assert all(n == 1 for n in counts.values()), counts
    assert not [c for c in chain.calls() if c.session == FAILED]  # Motion failed, nothing below it ran
    errors = chain.djhpc("jobs", "errors", "chain.py:Motion")
    assert errors.returncode == 0 and "corrupt" in errors.stdout, errors.stderr


def test_one_worker_pipelines_keys_through_the_tables(chain):
    """No barrier: with one worker, Summary keys are made before Motion's last key (deepest tables first): Motion
    alone takes 0.6 s, twice the worker's look at the deeper tables."""
    sessions = range(12)
    chain.add_sessions(sessions)
    (code,) = finish([chain.start_worker(DJHPC_TEST_SLEEP="0.05")])
    assert code == 1  # the failed session
    calls = chain.calls()
    last_motion = max(c.end for c in calls if c.table == "Motion")
    first_summary = min(c.end for c in calls if c.table == "Summary")
    assert first_summary < last_motion, "no Summary key was made before the last Motion key"
    check_made_once(chain, sessions)


def test_prefer_upstream_makes_upstream_tables_first(chain):
    chain.add_sessions(range(6))
    (code,) = finish([chain.start_worker("--prefer", "upstream", DJHPC_TEST_FAIL="")])
    assert code == 0
    order = [c.table for c in chain.calls()]
    assert order[:6] == ["Motion"] * 6, order


def test_a_class_worker_makes_only_its_tables_and_waits_for_keys_from_above(chain):
    chain.add_sessions(range(8))
    gpu = chain.start_worker("--tables", "Segment", DJHPC_TEST_SLEEP="0.05")
    time.sleep(0.5)  # the Segment worker starts with nothing ready: it must wait, not leave
    assert gpu.poll() is None, finish([gpu]) and gpu.err
    cpu = chain.start_worker("--tables", "Motion,Trace,Quality,Summary", DJHPC_TEST_SLEEP="0.05")
    codes = finish([cpu, gpu])
    assert codes[0] == 1 and codes[1] == 0, (cpu.err, gpu.err)
    by_pid: dict[int, set] = {}
    for c in chain.calls():
        by_pid.setdefault(c.pid, set()).add(c.table)
    assert sorted(map(sorted, by_pid.values())) == [["Motion", "Quality", "Summary", "Trace"], ["Segment"]]
    check_made_once(chain, range(8))


def test_a_class_worker_with_nobody_upstream_leaves_after_the_idle_limit(chain):
    chain.add_sessions(range(3))
    started = time.monotonic()
    out = chain.djhpc("work", "--tables", "Segment", DJHPC_PIPELINE_IDLE_SECONDS="1")
    assert out.returncode == 0, out.stderr
    assert "no worker holds a key of the tables above" in out.stderr
    assert time.monotonic() - started < 60
    assert not chain.calls()


def test_sigterm_gives_keys_back_and_the_next_worker_finishes(chain):
    chain.add_sessions(range(6))
    worker = chain.start_worker(DJHPC_TEST_SLEEP="2", DJHPC_TEST_FAIL="")
    wait_for(lambda: reserved(chain) > 0, timeout=60, what="a reservation")
    worker.send_signal(signal.SIGTERM)
    assert finish([worker])[0] == 75, worker.err
    assert reserved(chain) == 0
    (code,) = finish([chain.start_worker(DJHPC_TEST_SLEEP="0", DJHPC_TEST_FAIL="")])
    assert code == 0
    for table in TABLES:
        assert chain.rows(table) == set(range(6))
    assert max(chain.history_counts().values()) == 1


@pytest.mark.parametrize("seed", range(2))
def test_sigkill_chaos_over_the_whole_pipeline(chain, seed):
    """Workers killed with SIGKILL at random moments, replaced by new ones: in the end every key of every table
    is made by exactly one commit (the dead workers' keys are reclaimed, their makes never commit)."""
    rng = random.Random(seed)
    sessions = range(12)
    chain.add_sessions(sessions)
    env = {"DJHPC_TEST_SLEEP": "0.1"}
    procs = [chain.start_worker(**env) for _ in range(3)]
    kills = 0
    while kills < 4:
        victim = rng.choice([p for p in procs if p.poll() is None] or [None])
        if victim is None:
            break
        time.sleep(rng.uniform(0.2, 0.8))
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            finish([victim])
            kills += 1
            procs.append(chain.start_worker(**env))
    finish(procs)
    # a last worker picks up what the dead left (reaped once seen dead), then everything is made
    (code,) = finish([chain.start_worker()])
    assert code in (0, 1)
    check_made_once(chain, sessions)


def reserved(chain: ChainProject) -> int:
    out = chain.python("import chain, djhpc as dj; c = dj.conn(); t = c.dialect.table(chain.schema.database, '~jobs');"
                       "print(c.query(\"SELECT COUNT(*) FROM \" + t + \" WHERE status = 'reserved'\").fetchone()[0] "
                       "if c.has_table(t) else 0)")
    return int(out.stdout.strip().splitlines()[-1])


def test_a_waiting_worker_gives_back_upstream_keys_of_dead_workers(chain):
    """A Segment worker waits on Motion keys; the Motion worker holding one dies: the waiting worker reclaims
    it (nobody else of its class may be left to), then leaves at the idle limit as nobody works above."""
    chain.add_sessions(range(2))
    motion = chain.start_worker("--tables", "Motion", DJHPC_TEST_SLEEP="60")
    wait_for(lambda: reserved(chain) > 0, timeout=60, what="a Motion reservation")
    os.kill(motion.pid, signal.SIGKILL)
    finish([motion])
    assert reserved(chain) > 0
    out = chain.djhpc("work", "--tables", "Segment", DJHPC_PIPELINE_IDLE_SECONDS="2")
    assert out.returncode == 0, out.stderr
    assert "key(s) of dead workers" in out.stderr and reserved(chain) == 0, out.stderr
    assert not chain.calls()


def test_walltime_fit_holds_for_every_table(chain):
    """With the allocation ending before a usual make (the history's) would end, the worker starts no key of any
    table and says why."""
    chain.add_sessions(range(3))
    (code,) = finish([chain.start_worker(DJHPC_TEST_SLEEP="0.2", DJHPC_TEST_FAIL="")])
    assert code == 0
    made = len(chain.calls())
    chain.add_sessions(range(3, 6))
    worker = chain.start_worker(DJHPC_TEST_SLEEP="0.2", DJHPC_TEST_FAIL="", DJHPC_END_TIME=f"{time.time() + 0.1:.3f}")
    assert finish([worker]) == [0], worker.err
    assert "would not fit in the time left of this allocation" in worker.err
    assert len(chain.calls()) == made


def test_a_class_worker_waits_while_a_run_for_the_tables_above_is_queued(chain):
    """Nobody holds an upstream key, but a run recorded for Motion is still alive (here a local run: a process):
    the Segment worker keeps waiting past the idle limit, and leaves once that run has ended."""
    import subprocess

    chain.add_sessions(range(2))
    queued = subprocess.Popen(["sleep", "60"])
    try:
        chain.python("import chain, djhpc as dj; from djhpc.submissions import Submissions; "
                     f"Submissions(dj.conn(), chain.schema.database).record(job_id='{queued.pid}', "
                     "scheduler='local', target='chain.py', table_name='__motion', array_size=1)")
        worker = chain.start_worker("--tables", "Segment", DJHPC_PIPELINE_IDLE_SECONDS="1",
                                    DJHPC_PIPELINE_QUEUE_LOOK_SECONDS="0.2")
        time.sleep(2.5)  # two and a half idle limits: it must still wait
        assert worker.poll() is None, finish([worker]) and worker.err
    finally:
        queued.kill()
        queued.wait()
    assert finish([worker], timeout=60) == [0], worker.err
    assert "no worker holds a key of the tables above" in worker.err
