"""The operator view of a table written with DataJoint (0.14.10 and 2.3.5): progress, jobs, status, reap, report
and history, run in DataJoint's own interpreter on the pipeline tests/pipelines/dj_pipeline.py, unchanged.

One run per DataJoint version fills the pipeline (200 items; Square fails on item 13 by design) and the read-only
views are checked against it; the test that changes the jobs table runs last and leaves the same state behind.
djhpc's rows are in ``~djhpc_jobs`` and ``~djhpc_history``; DataJoint's own ``~jobs``/``~~square`` never appear.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from support.cluster import root_query
from support.datajoint import Pipeline, datajoint_pythons, finish
from support.env import mysql_available, unavailable

from djhpc.reservation import key_hash

FOREIGN = {"~jobs", "~~square", "~~doubled", "~history"}  # DataJoint's own jobs tables; djhpc's of its own pipelines


@pytest.fixture(scope="module", params=["0.14", "2"])
def ran(request, tmp_path_factory) -> Pipeline:
    """The DataJoint pipeline after ``djhpc work``: 199 squares made, item 13 failed."""
    python = datajoint_pythons().get(request.param)
    if not python or not Path(python).exists():
        unavailable(f"no interpreter with DataJoint {request.param} (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    schema = "djhpc_djv_" + uuid.uuid4().hex[:10]
    p = Pipeline(python, schema, tmp_path_factory.mktemp("dj" + request.param.replace(".", "")))
    try:
        p.fill(200)
        code, err = finish(p.work("Square"))
        assert code == 1, err[-3000:]  # one make failed
        assert p.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == 199
        yield p
    finally:
        root_query(f"DROP DATABASE IF EXISTS `{schema}`")


def ok(p: Pipeline, *args: str) -> str:
    """stdout of ``djhpc ARGS`` in DataJoint's interpreter, which must succeed."""
    done = p.djhpc(*args)
    assert done.returncode == 0, f"djhpc {' '.join(args)} -> {done.returncode}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done.stdout


def as_json(p: Pipeline, *args: str):
    return json.loads(ok(p, *args, "--json"))  # nothing but JSON on stdout (DataJoint 2.x logs to stdout)


def untouched(p: Pipeline):
    tables = p.tables()
    assert {"~djhpc_jobs", "~djhpc_history"} <= tables
    assert not FOREIGN & tables, FOREIGN & tables


def test_progress_counts_datajoints_key_source(ran):
    (row,) = as_json(ran, "progress", ":Square")
    assert (row["name"], row["table_name"], row["total"], row["done"], row["remaining"]) == ("Square", "__square",
                                                                                            200, 199, 1)
    assert (row["error"], row["reserved"], row["ignore"], row["pending"], row["left"]) == (1, 0, 0, 0, 0)
    assert row["completions"] == 199 and row["finished"] is True and row["duration"]["p95"] > 0

    text = ok(ran, "progress", ":Square")
    assert "Square" in text and "99.5%" in text and "Time p95" in text
    assert ok(ran, "progress", ":Square", "-q").strip().startswith(
        "Square: 199 of 200 done (99.5%), 0 running, 1 failed, 0 ignored")
    # --watch ends by itself, exit 1 with the reason: nothing left to run but the failed key, which only a retry
    # (djhpc jobs retry) would change
    watched = ran.djhpc("progress", ":Square", "--watch", "--interval", "0.2")
    assert watched.returncode == 1 and "Traceback" not in watched.stderr, watched.stderr[-2000:]
    assert watched.stdout.startswith("Square: 199 of 200 done") and "failed" in watched.stdout + watched.stderr

    # --restrict: DataJoint's key source under it (all must hold), and the jobs rows of its keys only
    (row,) = as_json(ran, "progress", ":Square", "--restrict", "item < 20", "--restrict", "item <> 5")
    assert (row["total"], row["done"], row["error"], row["left"]) == (19, 18, 1, 0)
    (row,) = as_json(ran, "progress", ":Square", "--restrict", "item > 13")
    assert (row["total"], row["done"], row["error"], row["done_all"]) == (186, 186, 0, True)

    rows = {r["name"]: r for r in as_json(ran, "progress", "--schema", ran.schema)}
    assert set(rows) == {"Square", "Doubled"}
    assert (rows["Square"]["total"], rows["Square"]["done"], rows["Square"]["error"]) == (None, 199, 1)
    assert rows["Square"]["completions"] == 199 and rows["Doubled"]["done"] == 0
    untouched(ran)


def test_jobs_list_errors_and_show(ran):
    (row,) = as_json(ran, "jobs", ":Square")
    assert (row["table_name"], row["status"], row["key"]) == ("__square", "error", {"item": 13})
    assert row["error_message"] == "ValueError: thirteen is unlucky" and row["attempts"] == 1

    (group,) = as_json(ran, "jobs", "errors", ":Square")
    assert (group["error_type"], group["message"], group["count"], group["example_key"]) == (
        "ValueError", "thirteen is unlucky", 1, {"item": 13})
    text = ok(ran, "jobs", "errors", ":Square")
    assert "ValueError" in text and "thirteen is unlucky" in text and "item=13" in text

    (shown,) = as_json(ran, "jobs", "show", '{"item": 13}', ":Square")
    assert shown["key_hash"] == key_hash({"item": 13})
    assert "thirteen is unlucky" in shown["error_stack"] and "dj_pipeline.py" in shown["error_stack"]
    assert [a["outcome"] for a in shown["history"]] == ["error"]
    (by_hash,) = as_json(ran, "jobs", "show", key_hash({"item": 13})[:8], ":Square")
    assert by_hash["key"] == {"item": 13}
    bad = ran.djhpc("jobs", "show", '{"nothing": 1}', ":Square")
    assert bad.returncode == 2 and "primary key is item" in bad.stderr

    (same,) = as_json(ran, "jobs", "--schema", ran.schema, "--table", "Square")
    assert same["key"] == {"item": 13} and same["status"] == "error"
    untouched(ran)


def test_report_and_history(ran):
    page = ran.tmp / "square.html"
    assert ok(ran, "report", ":Square", "-o", str(page)).strip() == f"wrote {page}"
    html = page.read_text()
    assert "<h1>Square" in html and ran.schema in html
    assert "thirteen is unlucky" in html and "<svg" in html and "199" in html

    rows = as_json(ran, "history", "show", ":Square", "--limit", "500")
    assert len(rows) == 199 and all(r["host"] and r["duration"] > 0 for r in rows)
    text = ok(ran, "history", "show", ":Square", "--limit", "3")
    assert "Duration" in text and len([ln for ln in text.splitlines() if ln.strip()]) == 5  # header, rule, 3 rows

    out = ok(ran, "history", "prune", "--schema", ran.schema, "--older-than", "30d", "--yes")
    assert out.startswith(f"no history rows of schema {ran.schema}")
    assert ran.rows("SELECT COUNT(*) FROM {s}.`~djhpc_history`")[0][0] == 199
    untouched(ran)


def test_reap_and_status_with_nothing_held(ran):
    assert ok(ran, "reap", ":Square", "--scheduler", "none").strip() == (
        "no dead reservations in Square: 0 reserved, all alive")
    assert as_json(ran, "reap", "--schema", ran.schema, "--scheduler", "none") == []
    status = as_json(ran, "status", ":Square")
    assert status["submissions"] == [] and status["gone"] == [] and status["reserved"] == 0
    assert "no submissions recorded for Square" in ok(ran, "status", ":Square")
    untouched(ran)


def test_retry_ignore_and_clear_change_the_djhpc_jobs_rows(ran):
    def row13():
        return ran.rows("SELECT status FROM {s}.`~djhpc_jobs` WHERE table_name = '__square' AND key_hash = %s",
                        (key_hash({"item": 13}),))

    def progress():
        (row,) = as_json(ran, "progress", ":Square")
        return row

    assert row13() == (("error",),)
    no_terminal = ran.djhpc("jobs", "retry", ":Square")
    assert no_terminal.returncode == 2 and "pass --yes" in no_terminal.stderr and row13() == (("error",),)
    out = ok(ran, "jobs", "retry", ":Square", "--match", "thirteen", "--yes")
    assert out.startswith("deleted 1 error rows")
    assert row13() == ()  # no row: the next populate runs the key again
    p = progress()
    assert (p["error"], p["remaining"], p["left"], p["finished"]) == (0, 1, 1, False)

    assert "ignored Square item=13" in ok(ran, "jobs", "ignore", '{"item": 13}', ":Square")
    assert row13() == (("ignore",),)
    assert progress()["ignore"] == 1
    code, err = finish(ran.work("Square"))
    assert code == 0, err[-3000:]
    assert ran.calls_of("Square")[13] == 1  # skipped

    assert ok(ran, "jobs", "clear", ":Square", "--status", "ignore", "--yes").startswith("deleted 1 rows")
    assert row13() == ()
    code, err = finish(ran.work("Square"))
    assert code == 1 and "thirteen is unlucky" in err
    assert ran.calls_of("Square")[13] == 2 and row13() == (("error",),)
    p = progress()
    assert (p["done"], p["error"], p["left"]) == (199, 1, 0)
    untouched(ran)


def test_reap_gives_back_the_keys_of_a_killed_datajoint_worker(ran):
    """A worker killed while it holds keys: progress shows them running, reap gives them back (pending)."""
    extra = ran.schema + "_kill"
    p = Pipeline(ran.python, extra, ran.tmp / "kill")
    p.tmp.mkdir()
    try:
        p.fill(6)
        worker = p.work("Doubled", DJHPC_TEST_SLEEP="30")
        deadline = time.monotonic() + 120
        while not p.calls_of("Doubled"):  # a make has started: its key is reserved
            assert worker.poll() is None and time.monotonic() < deadline, finish(worker)[1][-3000:]
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        assert finish(worker, timeout=30)[0] == -signal.SIGKILL  # and its pipes are closed
        held = p.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs` WHERE status = 'reserved'")[0][0]
        assert held >= 1
        (row,) = as_json(p, "progress", ":Doubled")
        assert row["reserved"] == held and row["done"] == 0 and row["total"] == 6

        reclaimed = as_json(p, "reap", ":Doubled", "--scheduler", "none")
        assert len(reclaimed) == held and {r["status"] for r in reclaimed} == {"pending"}
        assert {r["table_name"] for r in reclaimed} == {"__doubled"}
        assert p.rows("SELECT COUNT(*) FROM {s}.`~djhpc_jobs` WHERE status = 'reserved'")[0][0] == 0
        assert as_json(p, "progress", ":Doubled")[0]["pending"] == held
        untouched(p)
    finally:
        if "worker" in locals() and worker.poll() is None:
            worker.kill()
            finish(worker, timeout=30)
        root_query(f"DROP DATABASE IF EXISTS `{extra}`")
