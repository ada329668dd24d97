"""Tables written with DataJoint itself (0.14.10 and 2.3.5), filled by ``djhpc work``.

The workers run in each DataJoint's own interpreter (``DJHPC_DATAJOINT_PYTHONS``, set up by
tests/cluster/ensure-datajoint.sh), with the pipeline tests/pipelines/dj_pipeline.py unchanged.
"""

from __future__ import annotations

import signal
import sys
import time
import types
import uuid
from pathlib import Path

import pytest
from support.cluster import root_query
from support.datajoint import Pipeline, datajoint_pythons, finish
from support.env import mysql_available, unavailable

from djhpc.errors import UsageError


@pytest.fixture(params=["0.14", "2"])
def dj_python(request) -> str:
    path = datajoint_pythons().get(request.param)
    if not path or not Path(path).exists():
        unavailable(f"no interpreter with DataJoint {request.param} (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    return path


@pytest.fixture
def dj_schema(dj_python):
    name = "djhpc_dj_" + uuid.uuid4().hex[:10]
    yield name
    root_query(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def pipeline(dj_python, dj_schema, tmp_path):
    p = Pipeline(dj_python, dj_schema, tmp_path)
    p.fill(0)  # declares the tables
    return p


def test_four_workers_make_every_key_exactly_once_and_record_the_failure(pipeline):
    pipeline.fill(200)
    workers = [pipeline.work("Square") for _ in range(4)]
    outcomes = [finish(w) for w in workers]
    assert sorted(code for code, _ in outcomes) in ([0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1])
    assert [code for code, _ in outcomes].count(1) == 1, [err[-2000:] for _, err in outcomes]  # one failure
    calls = pipeline.calls_of("Square")
    assert set(calls) == set(range(200)) and max(calls.values()) == 1, calls.most_common(3)
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == 199
    (error,) = pipeline.rows("SELECT status, error_message, host, pid FROM {s}.`~djhpc_jobs`")
    assert error[0] == "error" and error[1] == "ValueError: thirteen is unlucky" and error[2] and error[3] > 0
    assert not {"~jobs", "~~square"} & pipeline.tables()  # DataJoint's own jobs tables: not created, not used
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_history`")[0][0] == 199


def test_the_tripartite_make_runs_as_datajoint_runs_it(pipeline):
    pipeline.fill(30)
    workers = [pipeline.work("Doubled") for _ in range(2)]
    assert [finish(w)[0] for w in workers] == [0, 0]
    calls = pipeline.calls_of("Doubled")
    assert set(calls) == set(range(30)) and max(calls.values()) == 1
    assert pipeline.rows("SELECT SUM(doubled) FROM {s}.`__doubled`")[0][0] == 2 * sum(range(30))
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs`")[0][0] == 0


def test_a_reservation_taken_during_make_rolls_the_make_back(pipeline):
    pipeline.fill(5)
    code, err = finish(pipeline.work("Square", DJHPC_TEST_STEAL=2))
    assert code == 0, err[-2000:]
    assert sorted(r[0] for r in pipeline.rows("SELECT item FROM {s}.`__square`")) == [0, 1, 3, 4]
    assert "reclaimed by another worker" in err
    # the stolen key's row is the only one left: the new owner's (or, once the worker's reaper found no such
    # owner alive, waiting for a retry); the worker never completed it
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs` WHERE owner <> %s", ("",))[0][0] in (0, 1)
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs`")[0][0] == 1


def test_sigterm_gives_the_keys_back_and_exits_75(pipeline):
    pipeline.fill(40)
    worker = pipeline.work("Square", DJHPC_TEST_SLEEP="0.2")
    deadline = time.monotonic() + 120
    while sum(pipeline.calls_of("Square").values()) < 3:  # bounded by events: three makes have started
        assert worker.poll() is None and time.monotonic() < deadline, finish(worker)[1][-2000:]
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    code, err = finish(worker)
    assert code == 75, err[-2000:]
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs` WHERE status = 'reserved'")[0][0] == 0
    made = pipeline.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0]
    assert 0 < made < 40
    # the rest; item 13 fails in whichever run reaches it (the walk starts at a random key)
    assert finish(pipeline.work("Square"))[0] in (0, 1)
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == 39
    assert pipeline.rows("SELECT status FROM {s}.`~djhpc_jobs`") == (("error",),)


def test_a_manual_datajoint_table_is_a_usage_error_and_reserves_nothing(pipeline):
    pipeline.fill(3)
    code, err = finish(pipeline.work("Item"))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("djhpc: error: target") and "dj.Computed or dj.Imported" in lines[-1]
    assert "Traceback" not in err
    assert "~djhpc_jobs" not in pipeline.tables()


def test_an_unsupported_datajoint_version_is_named(monkeypatch):
    from djhpc.djtarget import datajoint_version

    monkeypatch.setitem(sys.modules, "datajoint", types.SimpleNamespace(__version__="0.13.8"))
    with pytest.raises(UsageError, match="DataJoint 0.13.8 is not supported"):
        datajoint_version()
    monkeypatch.setitem(sys.modules, "datajoint", types.SimpleNamespace(__version__="2.3.5"))
    assert datajoint_version() == (2, 3)


RESERVE_AS_DATAJOINT = {
    "0.14": "import dj_pipeline as p; assert p.schema.jobs.reserve(p.Square.table_name, {'item': 1})",
    "2": "import dj_pipeline as p; t = p.Square(); t.jobs.refresh(); assert t.jobs.reserve({'item': 1})",
}


def test_djhpc_refuses_to_run_beside_datajoints_own_reserving_workers(pipeline, request):
    pipeline.fill(10)
    version = request.node.callspec.params["dj_python"]
    done = pipeline.python_code(RESERVE_AS_DATAJOINT[version])
    assert done.returncode == 0, done.stderr[-2000:]
    code, err = finish(pipeline.work("Square"))
    assert code == 2, err[-2000:]
    assert "DataJoint's own populate(reserve_jobs=True) holds 1 key(s) of Square" in err
    assert "Traceback" not in err
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == 0
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs`")[0][0] == 0  # nothing reserved, nothing left


def test_restrictions_of_djhpc_work_reach_datajoints_key_source(pipeline):
    pipeline.fill(20)
    code, err = finish(pipeline.work("Square", "--restrict", "item < 8", "--restrict", "item >= 2"))
    assert code == 0, err[-2000:]
    assert sorted(r[0] for r in pipeline.rows("SELECT item FROM {s}.`__square`")) == list(range(2, 8))


def test_a_datajoint_connection_that_cannot_be_made_is_one_line_and_reserves_nothing(pipeline):
    """A server that does not answer is waited for (issue 15, item 4), then exit 69; a refused password is a
    usage error at once."""
    pipeline.fill(3)
    code, err = finish(pipeline.work("Square", DJ_HOST="127.0.0.1:1", DJHPC_RECONNECT_SECONDS="2"))  # nothing
    assert code == 69, err[-2000:]  # listens on port 1
    lines = [ln for ln in err.splitlines() if ln.startswith("djhpc:")]  # DataJoint says its own things too
    assert "trying again for up to 2 s" in lines[0] and len(lines) == 2, lines
    assert lines[-1].startswith("djhpc: error: target module") and "could not reach its database" in lines[-1]
    assert "Traceback" not in err
    code, err = finish(pipeline.work("Square", DJ_USER="nobody_here", DJ_PASS="wrong"))
    assert code == 2, err[-2000:]
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("djhpc: error: target module") and "failed while importing" in last, last
    assert "check DataJoint's settings" in last and "wrong" not in last
    assert "~djhpc_jobs" not in pipeline.tables()


def test_workers_give_djhpcs_connection_back_during_long_makes(pipeline):
    """--release-after on a DataJoint table: djhpc's own connection goes back while DataJoint's make runs (DataJoint's
    stays, its transaction spans the make); the workers hold lease-only owner ids; every key is made once."""
    pipeline.fill(12)
    workers = [pipeline.work("Square", "--release-after", "0.2", "-v", DJHPC_TEST_SLEEP="0.8") for _ in range(2)]
    owners, deadline = set(), time.monotonic() + 120
    while not owners:  # bounded by events: a reservation is held
        if "~djhpc_jobs" in pipeline.tables():
            owners = {r[0] for r in pipeline.rows("SELECT owner FROM {s}.`~djhpc_jobs` WHERE status = 'reserved'")}
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.05)
    assert all(o.startswith("lease-") for o in owners), owners
    outcomes = [finish(w) for w in workers]
    assert [code for code, _ in outcomes] == [0, 0], [err[-2000:] for _, err in outcomes]
    assert all("gave the database connection back while make runs" in err for _, err in outcomes)
    calls = pipeline.calls_of("Square")
    assert set(calls) == set(range(12)) and max(calls.values()) == 1
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs`")[0][0] == 0


@pytest.fixture
def dj_user(dj_schema):
    """A MariaDB user of its own, allowed on the pipeline's schema: the worker's connections are those of it."""
    user, password = "djhpc_u_" + uuid.uuid4().hex[:8], "pw-" + uuid.uuid4().hex[:16]
    root_query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    root_query(f"GRANT ALL ON `{dj_schema}`.* TO '{user}'@'%'")
    yield user, password
    root_query(f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_tripartite_make_gives_both_connections_back_while_it_computes(pipeline, dj_user, tmp_path):
    """--release-after on a tripartite DataJoint table: while make_compute runs (outside DataJoint's transaction)
    the worker holds no connection at all, neither djhpc's nor DataJoint's; DataJoint's is opened again at the
    next statement make_compute sends (item 0) or when it returns (the others), and every key is made once."""
    user, password = dj_user
    pipeline.fill(3)
    gate = tmp_path / "gate"
    worker = pipeline.work("Doubled", "--release-after", "0.2", "-v", DJ_USER=user, DJ_PASS=password,
                           DJHPC_TEST_GATE=gate, DJHPC_TEST_QUERY_AFTER=0, DJHPC_TEST_SLEEP="0.5")

    def connections() -> int:
        return root_query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))[0][0]

    deadline = time.monotonic() + 120

    def wait_for(holds, what: str):
        while not holds():
            if time.monotonic() > deadline or worker.poll() is not None:
                worker.kill()
                pytest.fail(f"{what} did not happen: {connections()} connections; {worker.communicate()[1][-2000:]}")
            time.sleep(0.05)

    wait_for(lambda: pipeline.calls_of("Doubled"), "the first make_compute")  # bounded by events
    # it waits at the gate: both connections go once unused for 0.2 s
    wait_for(lambda: connections() == 0, "no connection held during make_compute")
    gate.touch()
    code, err = finish(worker)
    assert code == 0, err[-3000:]
    assert "gave DataJoint's connection back while make_compute runs" in err
    calls = pipeline.calls_of("Doubled")
    assert set(calls) == {0, 1, 2} and max(calls.values()) == 1
    assert pipeline.rows("SELECT SUM(doubled) FROM {s}.`__doubled`")[0][0] == 2 * (0 + 1 + 2)
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs`")[0][0] == 0


def test_work_processes_on_a_datajoint_table(pipeline):
    """djhpc work --processes 2 on a DataJoint table: each forked worker opens DataJoint's connection anew (the
    parent's socket is not shared), every key is made once, by both."""
    pipeline.fill(40)
    code, err = finish(pipeline.work("Square", "--processes", "2", DJHPC_TEST_SLEEP="0.05",
                                     DJHPC_TEST_CONNECTION_IDS="1"))
    assert code == 1, err[-3000:]  # item 13 fails, as in every run of this pipeline
    calls = pipeline.calls_of("Square")
    assert set(calls) == set(range(40)) and max(calls.values()) == 1
    sessions = {tuple(line.split()[2:]) for line in pipeline.calls.read_text().splitlines()}
    assert len(sessions) == 2 and len({pid for pid, _ in sessions}) == 2, sessions  # a session per process
    assert pipeline.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == 39
    assert pipeline.rows("SELECT status FROM {s}.`~djhpc_jobs`") == (("error",),)
