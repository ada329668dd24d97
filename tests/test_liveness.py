"""The reaper's evidence, one signal at a time, on real rows in a real jobs table (both backends)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import psutil
import pytest

import djhpc as dj
from djhpc.db.connection import Connection
from djhpc.liveness import Reaper, judge, lock_name, pid_state
from djhpc.reservation import Reservations, Worker, lease_only_owner


def reservations_as(db, schema_name, **identity) -> Reservations:
    """A Reservations object that writes the given identity (another host, PID, boot...)."""
    w = Worker.current(db)
    for k, v in identity.items():
        setattr(w, k, v)
    r = Reservations(db, schema_name, w)
    r.ensure_table()
    r._heartbeat = object()  # these tests build rows by hand: no session lock, no heartbeat thread
    return r


def age_heartbeat(db, schema_name, seconds: float):
    """Move every reservation's last heartbeat ``seconds`` into the past, on the database clock."""
    jobs = db.dialect.table(schema_name, "~jobs")
    if db.is_sqlite:
        db.query(f"UPDATE {jobs} SET heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now', ?)",
                 (f"-{seconds} seconds",))
    else:
        db.query(f"UPDATE {jobs} SET heartbeat_at = UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND",
                 (int(seconds * 1e6),))


@pytest.fixture
def sleeper():
    procs = []

    def start():
        p = subprocess.Popen(["sleep", "60"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def held_lock(db, owner):
    """A second session holding ``owner``'s session lock, as a live worker would (MySQL)."""
    if db.is_sqlite:
        return None
    c = Connection(db.url)
    assert c.query("SELECT GET_LOCK(%s, 0)", (lock_name(owner),)).fetchone()[0] == 1
    return c


def test_pid_state_tells_reused_pids_and_stopped_processes_apart(sleeper):
    p = sleeper()
    start = psutil.Process(p.pid).create_time()
    assert pid_state(p.pid, start) == "alive"
    assert pid_state(p.pid, start - 1000) == "gone"  # same PID, another process
    os.kill(p.pid, signal.SIGSTOP)
    time.sleep(0.1)
    assert pid_state(p.pid, start) == "stopped"
    os.kill(p.pid, signal.SIGCONT)
    p.kill()
    p.wait()
    assert pid_state(p.pid, start) == "gone"


def test_same_host_signals(schema, db, schema_name, sleeper):
    """T9: a live unrelated process on the PID and another boot id are dead; a stopped process is not."""
    host = socket.gethostname()
    other = sleeper()
    stopped = sleeper()
    os.kill(stopped.pid, signal.SIGSTOP)
    time.sleep(0.1)
    cases = {
        "reused": dict(pid=other.pid, pid_start=psutil.Process(other.pid).create_time() - 500),
        "rebooted": dict(pid=os.getpid(), pid_start=psutil.Process().create_time(), boot_id="another-boot"),
        "stopped": dict(pid=stopped.pid, pid_start=psutil.Process(stopped.pid).create_time()),
    }
    locks = []
    for i, ident in enumerate(cases.values()):
        r = reservations_as(db, schema_name, host=host, **ident)
        assert len(r.reserve("__t", [{"item": i}])) == 1
        locks.append(held_lock(db, r.worker.owner))
    reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=3600).reap()
    reasons = {c.key["item"]: c.reason for c in reclaimed}
    assert reasons == {0: "pid-gone", 1: "rebooted"}
    assert all(c.status == "pending" for c in reclaimed)
    os.kill(stopped.pid, signal.SIGCONT)
    for c in locks:
        if c:
            c.close()


def test_lease_boundaries(schema, db, schema_name):
    """T3: only the reservation whose heartbeat is older than the lease is reclaimed."""
    lease = 30
    owners = []
    for i, age in enumerate((lease - 1, lease + 1)):
        r = reservations_as(db, schema_name, host="node-elsewhere")
        r.reserve("__t", [{"item": i}])
        owners.append(held_lock(db, r.worker.owner))
        jobs = db.dialect.table(schema_name, "~jobs")
        ph = db.dialect.placeholder
        if db.is_sqlite:
            db.query(f"UPDATE {jobs} SET heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now', {ph}) "
                     f"WHERE owner = {ph}", (f"-{age} seconds", r.worker.owner))
        else:
            db.query(f"UPDATE {jobs} SET heartbeat_at = UTC_TIMESTAMP(6) - INTERVAL {ph} SECOND WHERE owner = {ph}",
                     (age, r.worker.owner))
    reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=lease).reap()
    assert [(c.key["item"], c.reason) for c in reclaimed] == [(1, "lease-expired")]
    for c in owners:
        if c:
            c.close()


def test_session_lock_signal_and_restart_grace(schema, backend, db, schema_name):
    """A free session lock means the session died; right after a server restart it proves nothing."""
    r = reservations_as(db, schema_name, host="node-elsewhere")
    r.reserve("__t", [{"item": 1}])
    if db.is_sqlite:
        # no session locks on SQLite: a row of another host is judged by its lease only
        assert Reaper(Reservations(db, schema_name), lease_seconds=5).reap() == []
        return
    # the server has been up longer than a 5 s lease: a free lock is a dead session
    assert [c.reason for c in Reaper(Reservations(db, schema_name), lease_seconds=5).reap(dry_run=True)] == \
        ["session-gone"]
    # with a lease longer than the uptime (as just after a restart) the lock is not trusted
    assert Reaper(Reservations(db, schema_name), lease_seconds=10**9).reap() == []
    holder = held_lock(db, r.worker.owner)
    assert Reaper(Reservations(db, schema_name), lease_seconds=5).reap() == []
    holder.close()
    time.sleep(0.2)
    assert [c.reason for c in Reaper(Reservations(db, schema_name), lease_seconds=5).reap()] == ["session-gone"]


def test_scheduler_signal(schema, db, schema_name):
    """T10 (logic): a terminal scheduler state is death; running, pending and unknown are not."""

    class FakeScheduler:
        def task_states(self, ids):
            return {"77_1": "TIMEOUT", "77_2": "RUNNING", "77_3": "PENDING"}

    holders = []
    for task in (1, 2, 3, 4):
        r = reservations_as(db, schema_name, host="node-elsewhere", sched_job_id="77", sched_task_id=str(task))
        r.reserve("__t", [{"item": task}])
        holders.append(held_lock(db, r.worker.owner))
    reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=3600, scheduler=FakeScheduler()).reap()
    assert [(c.key["item"], c.reason) for c in reclaimed] == [(1, "scheduler:TIMEOUT")]
    for c in holders:
        if c:
            c.close()


def test_poison_pill_becomes_an_error_with_every_attempt(schema, db, schema_name):
    """T11: after three deaths on one key it is an error listing the three attempts; no endless loop."""
    for attempt in range(3):
        r = reservations_as(db, schema_name, host=socket.gethostname(), pid=999_999_999 - attempt)
        claims = r.reserve("__t", [{"item": 5}]) or r.claim_pending("__t")
        assert len(claims) == 1, f"attempt {attempt}"
        reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=3600, max_deaths=3).reap()
        assert len(reclaimed) == 1
    assert reclaimed[0].status == "error"
    jobs = dj.JobsTable(db, schema_name)
    row = jobs.fetch1()
    assert row["status"] == "error" and row["deaths"] == 3
    assert "died 3 times" in row["error_message"]
    history = json.loads(row["history"])
    assert [h["reason"] for h in history] == ["pid-gone"] * 3
    assert Reservations(db, schema_name).claim_pending("__t") == []


def test_reclaim_is_a_compare_and_set(schema, db, schema_name):
    """T5: a reaper and the owner's completion race; exactly one wins, and a stale owner cannot write."""
    owner = reservations_as(db, schema_name, host="node-elsewhere")
    (claim,) = owner.reserve("__t", [{"item": 1}])
    age_heartbeat(db, schema_name, 100)
    assert len(Reaper(Reservations(db, schema_name), lease_seconds=10).reap()) == 1
    assert Reaper(Reservations(db, schema_name), lease_seconds=10).reap() == []  # nothing left to reclaim
    with pytest.raises(dj.ReservationLostError):
        owner.complete(claim)
    assert owner.fail(claim, "late", "stack") == "lost"
    assert owner.release(claim) is False
    assert dj.JobsTable(db, schema_name).fetch1("status") == "pending"


def test_judge_prefers_certain_evidence():
    from djhpc.liveness import ReservedRow

    row = ReservedRow("__t", "h", "tok", "own", "elsewhere", 1, 0.0, "b", "", "", 0, 5.0, 0, [], {})
    assert judge(row, lock_free=None, scheduler_state=None, lease_seconds=10, host="here", this_boot="b") is None
    assert judge(row, lock_free=True, scheduler_state=None, lease_seconds=10, host="here") == "session-gone"
    assert judge(row, lock_free=False, scheduler_state="NODE_FAIL", lease_seconds=10, host="here") == \
        "scheduler:NODE_FAIL"
    assert judge(row, lock_free=False, scheduler_state="RUNNING", lease_seconds=4, host="here") == "lease-expired"


def test_without_session_locks_the_lease_decides(schema, db, schema_name, monkeypatch, caplog):
    """T12: where GET_LOCK fails (Galera's 1235, a proxy), reserving still works and the lease alone judges."""
    from djhpc.errors import DatabaseError

    real_run = db.run

    def no_locks(name, params=(), **fmt):
        if name == "take_session_lock":
            raise DatabaseError("database error 1235: MariaDB doesn't yet support 'GET_LOCK in cluster'")
        return real_run(name, params, **fmt)

    monkeypatch.setattr(db, "run", no_locks)
    elsewhere = Worker.current(db)
    elsewhere.host = "node-elsewhere"  # no PID to look at: the lease decides
    worker = Reservations(db, schema_name, elsewhere)
    assert len(worker.reserve("__t", [{"item": 1}])) == 1
    worker._heartbeat.stop()  # the worker stalls: no more heartbeats
    reaper = Reaper(Reservations(db, schema_name), lease_seconds=1)
    if not db.is_sqlite:
        monkeypatch.setattr(reaper.connection, "query", _failing_lock_query(reaper.connection.query))
    assert reaper.reap() == []  # alive by its fresh lease, whatever the lock says
    age_heartbeat(db, schema_name, 5)
    assert [c.reason for c in reaper.reap()] == ["lease-expired"]
    worker._heartbeat = None


def _failing_lock_query(query):
    from djhpc.errors import DatabaseError

    def wrapped(sql, params=(), **kw):
        if "IS_FREE_LOCK" in sql:
            raise DatabaseError("database error 1235: GET_LOCK in cluster is not supported")
        return query(sql, params, **kw)

    return wrapped


def test_only_the_key_being_made_counts_a_death(schema, db, schema_name):
    """A dead worker held a batch: the first key left was in progress; the ones queued behind it go back
    without a death, so one crash never turns its neighbours into poison pills."""
    dead = reservations_as(db, schema_name, host=socket.gethostname(), pid=999_999_990)
    claims = dead.reserve("__t", [{"item": i} for i in range(4)])
    assert len(claims) == 4
    with db.transaction:  # the dead worker had finished item 0 before it died
        dead.complete(claims[0])
    reclaimed = Reaper(Reservations(db, schema_name), lease_seconds=3600).reap()
    assert sorted((c.key["item"], c.status) for c in reclaimed) == [(1, "pending"), (2, "pending"), (3, "pending")]
    deaths = {r["key"]["item"]: r["deaths"] for r in dj.JobsTable(db, schema_name).fetch()}
    assert deaths == {1: 1, 2: 0, 3: 0}


def test_a_clock_far_from_the_servers_or_another_writers_is_said_once(schema, db, schema_name, caplog):
    """Issue 15, item 2: the reaper compares clocks where it looks anyway (the server's uptime; the rows' ages)."""
    import logging

    from djhpc.liveness import ClockWatch

    uptime, skew = Reservations(db, schema_name).server_clock()
    if db.is_sqlite:
        assert (uptime, skew) == (None, None)
    else:
        assert uptime > 0 and abs(skew) < 5, skew  # this host and the server share one clock here
    watch = ClockWatch(tolerance=30)
    with caplog.at_level(logging.WARNING, logger="djhpc.liveness"):
        watch.check_server(-600.0)
        watch.check_server(-601.0)
        watch.check_server(10.0)
    said = [r.getMessage() for r in caplog.records if r.name == "djhpc.liveness"]
    assert len(said) == 1 and "600 s ahead of the database server's" in said[0], said
    caplog.clear()
    r = reservations_as(db, schema_name, host="node-elsewhere")
    r.reserve("__t", [{"item": 1}])
    jobs = db.dialect.table(schema_name, "~jobs")
    if db.is_sqlite:  # stamped two minutes in this clock's future, as a process whose clock is ahead does
        db.query(f"UPDATE {jobs} SET heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+120 seconds')")
    else:
        db.query(f"UPDATE {jobs} SET heartbeat_at = UTC_TIMESTAMP(6) + INTERVAL 120 SECOND")
    with caplog.at_level(logging.WARNING, logger="djhpc.liveness"):
        watch.check_writers(Reservations(db, schema_name).reserved_rows(), 60)
    said = [r.getMessage() for r in caplog.records if r.name == "djhpc.liveness"]
    assert len(said) == 1 and "node-elsewhere" in said[0] and "ahead of this process's" in said[0], said


def test_a_lease_only_worker_is_judged_without_a_session_lock(schema, db, schema_name):
    """A worker that gives its connection back during makes (populate's release_after) holds no session lock:
    a free lock says nothing of it, its lease (and PID, and the scheduler) does."""
    r = reservations_as(db, schema_name, host="node-elsewhere", owner=lease_only_owner())
    r.reserve("__t", [{"item": 1}])
    assert Reaper(Reservations(db, schema_name), lease_seconds=5).reap() == []
    age_heartbeat(db, schema_name, 6)
    assert [c.reason for c in Reaper(Reservations(db, schema_name), lease_seconds=5).reap()] == ["lease-expired"]
    gone = reservations_as(db, schema_name, pid=2**22 + 7, owner=lease_only_owner())  # this host: no such PID
    gone.reserve("__t", [{"item": 2}])
    assert [c.reason for c in Reaper(Reservations(db, schema_name), lease_seconds=5).reap()] == ["pid-gone"]
