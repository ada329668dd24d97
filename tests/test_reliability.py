"""Workers that die, stall, get stopped or lose the database: nothing lost, nothing stuck, nothing done twice.

Real worker processes (``djhpc work``) against real databases; see reliability.md's T1-T15.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.env import unavailable, wait_for, worker_env
from support.mariadb import PrivateMariaDB
from support.pipeline import calls, load_pipeline

import djhpc as dj
from djhpc.liveness import Reaper
from djhpc.reservation import Reservations

EXIT_INTERRUPTED = 75


def start_worker(env, table, log_path, *args):
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", f"pipeline_counts:{table}",
                                 *args], env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_chaos_sigkill_every_half_second(pipeline, backend, schema_name, tmp_path):
    """T1: 8 workers, 1,000 keys of 5-50 ms, a random worker SIGKILLed every 0.5 s and replaced."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(1000)])
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.005,
                     DJHPC_TEST_SLEEP_MAX=0.05, DJHPC_REAP_SECONDS=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    serial = iter(range(10_000))
    workers = [start_worker(env, "Square", logs / f"w{next(serial)}.log") for _ in range(8)]
    kills = 0
    rng = random.Random(7)
    while kills < 12 and len(p.Square()) < 900:
        time.sleep(0.5)
        alive = [w for w in workers if w.poll() is None]
        if not alive:
            break
        # a worker holding keys: one killed while it still starts (slow on a loaded machine) leaves nothing
        # to reclaim, and a storm of those would test nothing
        holding = set((p.schema.jobs & {"status": "reserved"}).fetch("pid"))
        candidates = [w for w in alive if w.pid in holding]
        if not candidates:
            continue
        victim = rng.choice(candidates)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        workers.append(start_worker(env, "Square", logs / f"w{next(serial)}.log"))
    for w in workers:
        assert w.wait(timeout=300) in (0, -signal.SIGKILL)
    # a last worker, as a resubmission would start, finds nothing stuck
    last = start_worker(env, "Square", logs / "last.log")
    assert last.wait(timeout=300) == 0
    leftover = p.schema.jobs.fetch(as_dict=True)
    assert len(p.Square()) == 1000 and len(p.Square.Note()) == 1000, leftover
    assert not leftover
    made = calls(tmp_path)
    assert len(made) == 1000
    repeated = [k for k, n in made.items() if n > 1]
    assert len(repeated) <= kills, f"{len(repeated)} keys made again after {kills} kills"
    text = "".join(f.read_text() for f in logs.iterdir())
    assert kills >= 3 and text.count("reclaimed") >= 1, text[-2000:]


def test_late_worker_cannot_commit_a_duplicate(pipeline, backend, schema_name, tmp_path, db):
    """T4, T6: a stopped worker loses its key to another; when it resumes it writes nothing."""
    p = pipeline
    p.Item.insert1((1, 1))
    marker = tmp_path / "marker"
    env = worker_env(backend, schema_name, DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=2, DJHPC_LEASE_SECONDS=2,
                     DJHPC_HEARTBEAT_SECONDS=0.3)
    late = start_worker(env, "Held", tmp_path / "late.log")
    wait_for(marker.exists, what="the first worker to reach the middle of its make")
    os.kill(late.pid, signal.SIGSTOP)
    try:
        time.sleep(2.5)
        reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=2).reap()
        assert [(c.key, c.reason) for c in reclaimed] == [({"item": 1}, "lease-expired")]
        env2 = dict(env, DJHPC_TEST_HOLD="0", DJHPC_TEST_MARKER=str(tmp_path / "marker2"))
        t0 = time.monotonic()
        second = start_worker(env2, "Held", tmp_path / "second.log")
        assert second.wait(timeout=40) == 0, (tmp_path / "second.log").read_text()
        assert time.monotonic() - t0 < 15, "the new owner waited for the stalled owner's locks"
    finally:
        os.kill(late.pid, signal.SIGCONT)
    assert late.wait(timeout=60) == 0, (tmp_path / "late.log").read_text()
    assert list(p.Held.fetch("worker_pid")) == [second.pid]
    assert len(p.schema.jobs) == 0
    assert "reclaimed" in (tmp_path / "late.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])  # USR2: Grid Engine
def test_stop_signal_gives_the_key_back(pipeline, backend, schema_name, tmp_path, sig):
    """T7: the make rolls back, the key is available again (not an error), exit code 75."""
    p = pipeline
    p.Item.insert1((1, 1))
    marker = tmp_path / "marker"
    env = worker_env(backend, schema_name, DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=60)
    w = start_worker(env, "Held", tmp_path / "w.log")
    wait_for(marker.exists, what="the make to start")
    t0 = time.monotonic()
    w.send_signal(sig)
    assert w.wait(timeout=20) == EXIT_INTERRUPTED, (tmp_path / "w.log").read_text()
    assert time.monotonic() - t0 < 5
    assert len(p.Held()) == 0 and len(p.schema.jobs) == 0
    again = start_worker(dict(env, DJHPC_TEST_HOLD="0"), "Held", tmp_path / "again.log")
    assert again.wait(timeout=60) == 0
    assert len(p.Held()) == 1 and len(p.schema.jobs) == 0


def test_second_stop_signal_leaves_at_once(pipeline, backend, schema_name, tmp_path):
    p = pipeline
    p.Item.insert1((1, 1))
    marker = tmp_path / "marker"
    env = worker_env(backend, schema_name, DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=60)
    w = start_worker(env, "Held", tmp_path / "w.log")
    wait_for(marker.exists, what="the make to start")
    w.send_signal(signal.SIGTERM)
    w.send_signal(signal.SIGTERM)
    assert w.wait(timeout=10) == EXIT_INTERRUPTED
    # whatever the first signal had no time to clean up, the reaper does (the PID is gone)
    Reaper(Reservations(dj.conn(), schema_name)).reap()
    assert len(p.schema.jobs & {"status": "reserved"}) == 0


def test_failed_makes_are_retried_then_kept_as_errors_with_every_attempt(pipeline, backend, schema_name,
                                                                         tmp_path):
    """--retries: a failing key runs again up to N more times; then it stays an error, attempts listed."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(5)])
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_FAIL="3")
    w = start_worker(env, "Square", tmp_path / "w.log", "--retries", "2", "--retry-delay", "0")
    assert w.wait(timeout=60) == 1
    assert len(p.Square()) == 4
    row = p.schema.jobs.fetch1()
    assert row["status"] == "error" and row["failures"] == 3
    import json

    attempts = json.loads(row["history"])
    assert [a["outcome"] for a in attempts] == ["error"] * 3
    assert all(a["host"] == socket.gethostname() and "bad item 3" in a["message"] for a in attempts)
    assert calls(tmp_path)["Square [('item', 3)]"] == 3


# ---------------------------------------------------------------------------- database restart (T8)
def _failures_and_tail(log: Path) -> str:
    """A worker's failed keys and the end of its log: what an assertion on its exit code should show."""
    text = log.read_text()
    failed = [line for line in text.splitlines() if "\terror\t" in line or "Traceback" in line]
    return "\n".join(failed[:20]) + "\n...\n" + text[-2000:]


@pytest.fixture
def private_mariadb(tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.install()
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.mysql
@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "kill -9"])
def test_database_restart_in_the_middle(private_mariadb, tmp_path, monkeypatch, crash):
    """T8 and issue 15, item 1: the server shut down, or killed with -9 (reservations committed whose replies
    never came), and restarted: every key made, none left reserved by a worker that has ended."""
    url = f"mysql://root@127.0.0.1:{private_mariadb.port}"
    connection = dj.conn(url, reset=True)  # before the pipeline declares its schema on "the" connection
    p = load_pipeline(url, "restart_test", monkeypatch, tmp_path)
    n, n_workers = (600, 8) if crash else (400, 4)
    p.Item.insert([(i, i) for i in range(n)])
    env = worker_env(url, "restart_test", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.02,
                     DJHPC_RECONNECT_SECONDS=120)
    workers = [start_worker(env, "Square", tmp_path / f"w{i}.log") for i in range(n_workers)]
    wait_for(lambda: len(calls(tmp_path)) > 60, timeout=120, what="work to be under way")
    private_mariadb.stop(kill=crash)
    time.sleep(5 if crash else 1)
    private_mariadb.start()
    for i, w in enumerate(workers):
        assert w.wait(timeout=300) == 0, _failures_and_tail(tmp_path / f"w{i}.log")
    connection.reconnect()
    assert len(p.Square()) == n and len(p.Square.Note()) == n
    assert len(p.schema.jobs) == 0, p.schema.jobs.fetch(as_dict=True)
    made = calls(tmp_path)
    assert len(made) == n
    # a worker has at most two keys in flight: one whose commit's reply it has not read yet, one being made
    assert sum(c - 1 for c in made.values()) <= 2 * len(workers), "more makes repeated than were in flight"
    connection.close()
    sys.modules.pop("pipeline_counts", None)




def test_worker_does_not_start_a_key_that_would_not_fit_in_its_allocation(pipeline, backend, schema_name,
                                                                           tmp_path):
    """Walltime fit: with 5 s left and keys that usually take 10 s, the worker stops cleanly instead."""
    from djhpc.history import History
    from djhpc.reservation import Worker

    p = pipeline
    p.Item.insert([(i, i) for i in range(5)])
    history = History(dj.conn(), schema_name)
    history.ensure_table()
    for i in range(5):
        history.record("__square", f"h{i}", Worker.current(), time.time() - 100, 10.0, 9.5, 100.0)
    env = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_END_TIME=time.time() + 5)
    w = start_worker(env, "Square", tmp_path / "w.log")
    assert w.wait(timeout=60) == 0
    assert len(p.Square()) == 0 and not calls(tmp_path)
    assert "would not fit" in (tmp_path / "w.log").read_text()
    env["DJHPC_END_TIME"] = str(time.time() + 3600)
    assert start_worker(env, "Square", tmp_path / "w2.log").wait(timeout=60) == 0
    assert len(p.Square()) == 5


def test_a_killed_workers_key_is_reclaimable_within_a_second(pipeline, backend, schema_name, tmp_path, db):
    """T2: after SIGKILL the evidence (PID gone; on MariaDB also the session lock) frees the key at once."""
    p = pipeline
    p.Item.insert1((1, 1))
    marker = tmp_path / "marker"
    env = worker_env(backend, schema_name, DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=60)
    w = start_worker(env, "Held", tmp_path / "w.log")
    wait_for(marker.exists, what="the make to start")
    w.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    reaper = Reaper(Reservations(db, schema_name))
    reclaimed = []
    while not reclaimed and time.monotonic() - killed < 5:
        reclaimed = reaper.reap()
        time.sleep(0.02)
    latency = time.monotonic() - killed
    w.wait()
    # the PID is gone, or (MariaDB) the session lock went with it first: both are certain evidence. The lease
    # (30 s and more) is what a reclaim without evidence would wait; 2 s leaves a loaded machine room
    assert [c.reason for c in reclaimed] in (["pid-gone"], ["session-gone"]) and latency < 2.0, (reclaimed, latency)
    assert start_worker(dict(env, DJHPC_TEST_HOLD="0"), "Held", tmp_path / "again.log").wait(timeout=60) == 0
    assert len(p.Held()) == 1 and len(p.schema.jobs) == 0


@pytest.mark.mysql
def test_worker_gives_up_when_the_database_stays_away(private_mariadb, tmp_path, monkeypatch):
    """A server that does not come back within DJHPC_RECONNECT_SECONDS: one clear line, exit code 69."""
    url = f"mysql://root@127.0.0.1:{private_mariadb.port}"
    connection = dj.conn(url, reset=True)
    p = load_pipeline(url, "gone_test", monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(300)])
    env = worker_env(url, "gone_test", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.02,
                     DJHPC_RECONNECT_SECONDS=3)
    w = start_worker(env, "Square", tmp_path / "w.log")
    wait_for(lambda: len(calls(tmp_path)) > 20, timeout=120, what="work to be under way")
    private_mariadb.stop()
    t0 = time.monotonic()
    assert w.wait(timeout=120) == 69
    assert time.monotonic() - t0 < 60
    log = (tmp_path / "w.log").read_text()
    assert f"cannot reach the database at 127.0.0.1:{private_mariadb.port}" in log and "Traceback" not in log
    connection.close()
    sys.modules.pop("pipeline_counts", None)


def _libfaketime() -> str:
    import glob

    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        unavailable("libfaketime is not installed (tests/cluster/ensure-tools.sh installs Debian's faketime)")
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("skew", ["+600s", "-600s"])
def test_a_skewed_clock_on_sqlite_never_takes_a_live_workers_keys(tmp_path, monkeypatch, skew):
    """Issue 15, item 2: 2 of 8 workers' clocks 600 s off (libfaketime), leases of 180 s stamped and judged by
    each process's own clock on SQLite: every key made exactly once, and the skew is said in the logs."""
    url = f"sqlite:///{tmp_path / 'skew.db'}"
    connection = dj.conn(url, reset=True)  # before the pipeline declares its schema on "the" connection
    p = load_pipeline(url, "skew_test", monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(300)])
    env = worker_env(url, "skew_test", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.01,
                     DJHPC_TEST_SLEEP_MAX=0.03, DJHPC_REAP_SECONDS=0.2)
    skewed = dict(env, LD_PRELOAD=_libfaketime(), FAKETIME=skew)
    logs = [tmp_path / f"w{i}.log" for i in range(8)]
    workers = [start_worker(skewed if i < 2 else env, "Square", logs[i]) for i in range(8)]
    for i, w in enumerate(workers):
        assert w.wait(timeout=300) == 0, logs[i].read_text()[-3000:]
    made = calls(tmp_path)
    assert len(made) == 300 and max(made.values()) == 1, [k for k, n in made.items() if n > 1][:10]
    assert len(p.Square()) == 300 and len(p.schema.jobs) == 0
    text = "".join(f.read_text() for f in logs)
    assert "reclaimed" not in text, text[-3000:]
    assert "ahead of this process's" in text or "one of the two clocks is off" in text, text[-3000:]
    connection.close()
    sys.modules.pop("pipeline_counts", None)


@pytest.mark.mysql
def test_a_worker_started_while_the_database_is_down_waits_for_it(private_mariadb, tmp_path, monkeypatch):
    """Issue 15, item 4: the pipeline connects as it is imported; a task started during a database restart
    retries that first connection like any other, works once the server is back, and exits 69 (not 2) when
    it stays away past DJHPC_RECONNECT_SECONDS."""
    url = f"mysql://root@127.0.0.1:{private_mariadb.port}"
    connection = dj.conn(url, reset=True)
    p = load_pipeline(url, "down_at_start", monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(20)])
    connection.close()
    private_mariadb.stop()
    env = worker_env(url, "down_at_start", DJHPC_TEST_CALLS=tmp_path / "calls.log")
    gone = start_worker(dict(env, DJHPC_RECONNECT_SECONDS="2"), "Square", tmp_path / "gone.log")
    waiting = start_worker(dict(env, DJHPC_RECONNECT_SECONDS="300"), "Square", tmp_path / "waiting.log")
    assert gone.wait(timeout=120) == 69
    log = (tmp_path / "gone.log").read_text()
    assert f"cannot reach the database at 127.0.0.1:{private_mariadb.port}" in log and "Traceback" not in log, log
    assert "usage" not in log.lower()
    wait_for(lambda: "trying again" in (tmp_path / "waiting.log").read_text(), timeout=120,
             what="the waiting worker to say it waits")
    private_mariadb.start()
    assert waiting.wait(timeout=300) == 0, (tmp_path / "waiting.log").read_text()[-3000:]
    connection.reconnect()
    assert len(p.Square()) == 20 and len(calls(tmp_path)) == 20
    connection.close()
    sys.modules.pop("pipeline_counts", None)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs of its own, unmounted afterwards: an SQLite file whose disk can be filled."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        unavailable("mounting a tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_under_sqlite_is_waited_for(small_disk, tmp_path, monkeypatch):
    """Issue 15, item 5: the SQLite file's disk full for a while: every worker waits (says so), goes on once
    space is back, and ends 0 with every key made once and no reservation left."""
    url = f"sqlite:///{small_disk / 'full.db'}"
    connection = dj.conn(url, reset=True)
    p = load_pipeline(url, "full_test", monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(300)])
    env = worker_env(url, "full_test", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.01,
                     DJHPC_RECONNECT_SECONDS=120)
    logs = [tmp_path / f"w{i}.log" for i in range(4)]
    workers = [start_worker(env, "Square", logs[i]) for i in range(4)]
    wait_for(lambda: len(calls(tmp_path)) > 20, timeout=120, what="work to be under way")
    filler = _fill(small_disk)
    try:
        wait_for(lambda: any("is full" in f.read_text() for f in logs), timeout=120,
                 what="a worker to find the disk full")
        time.sleep(1)  # the disk stays full a while: every worker runs into it
    finally:
        filler.unlink()
    for i, w in enumerate(workers):
        assert w.wait(timeout=300) == 0, logs[i].read_text()[-3000:]
    made = calls(tmp_path)
    assert len(p.Square()) == 300 and len(p.schema.jobs) == 0, p.schema.jobs.fetch(as_dict=True)
    assert len(made) == 300 and len(p.Square.Note()) == 300
    # only the key a worker had in hand when the disk filled ran again (as often as its commit failed)
    assert len([k for k, n in made.items() if n > 1]) <= len(workers), made.most_common(8)
    connection.close()
    sys.modules.pop("pipeline_counts", None)


def test_deleting_the_sqlite_file_mid_run_stops_every_worker_with_a_clear_error(tmp_path, monkeypatch):
    """Issue 15, item 9: a worker checks the file's identity at each batch; writing on into a deleted file (and
    exiting 0) would lose every key made since."""
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    connection = dj.conn(url, reset=True)
    p = load_pipeline(url, "gone_file", monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(400)])
    connection.close()
    env = worker_env(url, "gone_file", DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP=0.02)
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    workers = [start_worker(env, "Square", logs[i]) for i in range(2)]
    wait_for(lambda: len(calls(tmp_path)) > 20, timeout=120, what="work to be under way")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'gone.db'}{suffix}").unlink(missing_ok=True)
    for i, w in enumerate(workers):
        assert w.wait(timeout=120) == 69, logs[i].read_text()[-2000:]
        text = logs[i].read_text()
        assert "gone.db was deleted or replaced while this process used it" in text and "Traceback" not in text
    assert len(calls(tmp_path)) < 400
    sys.modules.pop("pipeline_counts", None)


HUNG_PIPELINE = '''
import os, signal, time
import djhpc as dj

schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"])


@schema
class Job(dj.Manual):
    definition = """
    n : int
    """


@schema
class Stuck(dj.Computed):
    definition = """
    -> Job
    """

    def make(self, key):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as C code that never lets signals in
        time.sleep(600)
'''


def test_a_make_stuck_where_signals_do_not_reach_ends_its_worker(backend, schema_name, tmp_path, db):
    """Issue 15, item 8: past its limit and the grace after it, a make that the alarm cannot stop ends the worker
    (exit 70, one line); its key goes back as a dead worker's, not held for ever."""
    (tmp_path / "hung.py").write_text(HUNG_PIPELINE)
    env = worker_env(backend, schema_name, DJHPC_MAKE_TIMEOUT_GRACE=1)
    run = subprocess.run([sys.executable, "-c", "import hung; hung.Job.insert1((1,))"], env=dict(
        env, PYTHONPATH=f"{env['PYTHONPATH']}{os.pathsep}{tmp_path}"), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "work", "hung.py:Stuck", "--make-timeout", "1"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 70, done.stderr[-2000:]
    assert time.monotonic() - t0 < 120
    assert "did not stop 1 s after its 1 s limit" in done.stderr and "Traceback" not in done.stderr
    reclaimed = Reaper(Reservations(db, schema_name)).reap()
    assert [c.reason for c in reclaimed] == ["pid-gone"]


@pytest.mark.slow
@pytest.mark.mysql
def test_a_network_stall_past_the_lease_loses_the_keys_to_others_and_commits_nothing_late(tmp_path, monkeypatch):
    """Issue 15 (fault tests): a worker on another host (its own UTS namespace) whose traffic a proxy freezes for
    longer than the lease: another worker reclaims its keys and ends its session; when the network comes back
    the stalled worker commits nothing of what it lost, and both end 0 with every key made once."""
    from support.env import MYSQL_URL, mysql_available
    from support.proxy import StallingProxy

    if not mysql_available():
        unavailable("MariaDB does not answer on 127.0.0.1:3306")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        unavailable("another host name for one worker needs root and unshare")
    schema = f"stall_{os.getpid()}_{random.randrange(10**6)}"
    connection = dj.conn(MYSQL_URL, reset=True)
    p = load_pipeline(MYSQL_URL, schema, monkeypatch, tmp_path)
    proxy = StallingProxy(connection.url.port or 3306)
    try:
        p.Item.insert([(i, i) for i in range(40)])
        lease = dict(DJHPC_LEASE_SECONDS="2", DJHPC_HEARTBEAT_SECONDS="0.3", DJHPC_REAP_SECONDS="0.2",
                     DJHPC_TEST_CALLS=tmp_path / "calls.log", DJHPC_TEST_SLEEP="0.1")
        url = f"mysql://root@127.0.0.1:{proxy.port}"
        with open(tmp_path / "stalled.log", "ab") as log:
            stalled = subprocess.Popen(
                ["unshare", "-u", "sh", "-c", 'hostname node-stalled && exec "$@"', "sh", sys.executable, "-m",
                 "djhpc.cli.main", "work", "pipeline_counts:Square"],
                env=worker_env(url, schema, **lease), stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: len(calls(tmp_path)) >= 3, timeout=120, what="the first worker to be under way")
        proxy.stall()
        other = start_worker(worker_env(MYSQL_URL, schema, **lease), "Square", tmp_path / "other.log")
        assert other.wait(timeout=300) == 0, (tmp_path / "other.log").read_text()[-3000:]
        assert "lease-expired" in (tmp_path / "other.log").read_text() or \
            "reclaimed" in (tmp_path / "other.log").read_text()
        proxy.resume()
        assert stalled.wait(timeout=300) == 0, (tmp_path / "stalled.log").read_text()[-3000:]
        connection.reconnect()
        assert len(p.Square()) == 40 and len(p.Square.Note()) == 40 and len(p.schema.jobs) == 0
        made = calls(tmp_path)
        assert len(made) == 40 and sum(c - 1 for c in made.values()) <= 2, made.most_common(4)
    finally:
        proxy.close()
        connection.query(f"DROP DATABASE IF EXISTS `{schema}`")
        connection.close()
        sys.modules.pop("pipeline_counts", None)
