"""The benchmark (python -m bench) runs on tiny sizes and its counters add up.

DataJoint rows are checked too when an interpreter with DataJoint is named by DJHPC_BENCH_DATAJOINT_PYTHON;
without it only djhpc's rows run (DataJoint is never a dependency of djhpc).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psutil
import pymysql
import pytest
from support.env import MYSQL_URL, ROOT, mysql_available, unavailable
from support.pipeline import declare_bench_pipeline

sys.path.insert(0, str(ROOT))
from bench import counting, run  # noqa: E402

ENV = "DJHPC_BENCH_DATAJOINT_PYTHON"


def datajoint_python() -> str | None:
    """An interpreter with DataJoint installed, for the side-by-side rows (conftest keeps this variable)."""
    return os.environ.get(ENV) or None


def server_env() -> dict:
    u = urlsplit(MYSQL_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env.update(DJ_HOST=u.hostname or "127.0.0.1", DJ_PORT=str(u.port or 3306), DJ_USER=unquote(u.username or "root"),
               DJ_PASS=unquote(u.password or ""))
    return env


@pytest.mark.mysql
@pytest.mark.slow
def test_quick_benchmark_runs_and_its_counters_add_up(tmp_path):
    if not mysql_available():
        unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "bench", "--quick", "--json", str(out)]
    dj_python = datajoint_python()
    command += ["--datajoint-python", dj_python] if dj_python else ["--no-datajoint"]
    if importlib.util.find_spec("matplotlib") is not None:
        command += ["--png", str(tmp_path / "bench.png")]
    done = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    header = done.stdout.splitlines()[0]
    assert header.startswith("| ×jobs/s | ×wall | ×rt/job"), header  # ratios first

    report = json.loads(out.read_text())
    rows, n = report["rows"], 60
    mine = [r for r in rows if r["kind"] == "djhpc" and r["case"] in ("scaling", "sqlite")]
    assert {(r["backend"], r["workers"]) for r in mine} == {("mysql", 1), ("mysql", 2), ("sqlite", 1), ("sqlite", 2)}
    throughput = [r for r in rows if r["case"] in ("scaling", "sleep", "sqlite")]
    for r in throughput:
        expected = r["n"]
        assert r["success"] == r["made_keys"] == r["rows"] == expected, r
        assert r["twice"] == 0 and r["errors"] == 0 and r["jobs_left"] == 0 and not r["checks"], r
        assert r["make_calls"] == expected
        assert 0 <= r["lost"] <= expected * r["workers"]
        assert r["round_trips"] > 0 and r["success"] <= r["commits"] <= r["round_trips"]
        assert r["round_trips_per_job"] == pytest.approx(r["round_trips"] / r["success"])
        assert r["jobs_per_s"] == pytest.approx(r["success"] / r["wall_s"])
        assert 0 < r["startup_s"] < r["wall_s"]
        if r["kind"] == "djhpc" and r["backend"] == "mysql":
            stats = r["djhpc_connection_stats"]  # djhpc's own counters tell the same story
            assert stats["statements"] <= r["round_trips"] <= stats["statements"] + 2 * r["workers"], r
            assert r["commits"] - r["autocommit_writes"] <= stats["commits"]  # it counts COMMITs only
    assert [r["n"] for r in mine if r["case"] == "scaling"] == [n, n]
    for r in (r for r in rows if r["case"] == "sleep"):
        assert r["sleep_overshoot_s_per_job"] >= 0 and r["outside_sleep_s_per_job"] > 0

    startup = {(r["system"], r["n"]): r for r in rows if r["case"] == "startup"}
    for r in startup.values():
        assert r["success"] == 1 and r["twice"] == 0 and r["round_trips_before_first_make"] > 0
        assert 0 < r["startup_s"] <= r["wall_s"] and r["max_rss_mb"] > 0
    progress = [r for r in rows if r["case"] == "progress"]
    assert progress and all(not r["checks"] and r["progress_s"] > 0 for r in progress)
    assert next(r for r in progress if r["kind"] == "djhpc")["progress_answer"]["ignore"] == 10

    theirs = [r for r in rows if r["kind"] == "datajoint"]
    if dj_python:
        assert {r["case"] for r in theirs} == {"scaling", "sleep", "startup", "progress"}
        for r in theirs:
            ours = next(m for m in rows if m["kind"] == "djhpc" and m["backend"] == "mysql"
                        and (m["case"], m["workers"], m["n"]) == (r["case"], r["workers"], r["n"]))
            assert r["ratios"]["wall_s"] == pytest.approx(ours["wall_s"] / r["wall_s"])
            if r["case"] == "scaling":
                assert r["ratios"]["jobs_per_s"] == pytest.approx(ours["jobs_per_s"] / r["jobs_per_s"])
                assert r["ratios"]["round_trips_per_job"] == pytest.approx(
                    ours["round_trips_per_job"] / r["round_trips_per_job"])
                assert ours["ratios"]["jobs_per_s"] is not None
    else:
        assert not theirs
    assert report["targets"] and all(t["met"] in (True, False, None) for t in report["targets"])
    twice = next(t for t in report["targets"] if t["target"].startswith("zero keys made twice"))
    assert twice["met"] is True

    # nothing left behind: no database of this run, no worker still running
    prefix = report["meta"]["run_id"]
    c = pymysql.connect(host="127.0.0.1", port=3306, user="root")
    try:
        with c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                        (f"bench\\_{prefix}\\_%",))
            assert cur.fetchone()[0] == 0
    finally:
        c.close()
    assert not Path(report["meta"]["folder"]).exists()
    folder = report["meta"]["folder"]
    leftover = [p.pid for p in psutil.process_iter(["cmdline"]) if folder in " ".join(p.info["cmdline"] or [])]
    assert leftover == []


def test_the_bench_pipeline_doubles_each_item_once(schema):
    """The tables of tests/pipelines/pipeline_bench.py, which djhpc's bench workers declare, on both backends."""
    made = []
    Item, Result = declare_bench_pipeline(schema, on_make=made.append)
    assert (Item.heading.names, Result.heading.names) == (["item", "value"], ["item", "doubled"])
    Item.insert((i, 10 * i) for i in range(6))
    result = Result.populate(reserve_jobs=True)
    assert result.success_count == 6 and sorted(k["item"] for k in made) == list(range(6))
    assert list(Result.fetch("doubled", order_by="item")) == [0, 2, 4, 6, 8, 10]
    assert Result.populate(reserve_jobs=True).success_count == 0 and len(made) == 6


class FakeConnection:
    """Stands in for a PyMySQL connection: each call answers with the given server status and row count."""

    server_status = 2  # autocommit, no transaction

    def __init__(self):
        self.answers = []

    def query(self, sql, unbuffered=False):
        status, rows = self.answers.pop(0)
        self.server_status = status
        return rows


def test_counting_tells_durable_commits_from_empty_ones(monkeypatch):
    counts = counting.Counts()
    monkeypatch.setattr(counting, "COUNTS", counts)
    c = FakeConnection()
    account = counting._account

    # autocommit writes: one that changed a row is durable, a lost one (0 rows) is not
    account(c, counting._heads("UPDATE t SET a=1"), 2, 1, True)
    account(c, counting._heads(b"INSERT IGNORE INTO t VALUES (1)"), 2, 0, True)
    assert counts.snapshot()["commits"] == 1 and counts.snapshot()["autocommit_writes"] == 1
    # a transaction that wrote: one durable commit; one that only read: none
    for heads, status, rows in ((["START TRANSACTION WITH CONSISTENT SNAPSHOT"], 2, 0),
                                (["INSERT INTO r VALUES (1)"], 3, 1), (["COMMIT"], 3, 0),
                                (["BEGIN"], 2, 0), (["SELECT 1"], 3, 0), (["COMMIT"], 3, 0)):
        account(c, [counting._heads(h)[0] for h in heads], status, rows, True)
    assert counts.snapshot()["commits"] == 2
    # djhpc's one-packet completion: DELETE; INSERT; COMMIT; BEGIN is one round trip and one durable commit
    packet = "DELETE FROM j WHERE token = 'a;b';\nINSERT INTO h VALUES ('x\\n');\nCOMMIT;\nBEGIN"
    assert counting._heads(packet) == [b"DELETE FROM", b"INSERT INTO", b"COMMIT", b"BEGIN"]
    before = counts.snapshot()
    account(c, counting._heads(packet), 3, 1, True)
    after = counts.snapshot()
    assert after["round_trips"] - before["round_trips"] == 1 and after["commits"] - before["commits"] == 1
    assert c._bench_dirty is False  # the BEGIN after COMMIT opened a clean transaction


def test_table_puts_ratios_first_and_targets_read_the_rows():
    args = run.parse_args(["--quick"])
    row = {"case": "scaling", "kind": "djhpc", "backend": "mysql", "system": "djhpc", "workers": 1, "n": 60,
           "wall_s": 0.1, "jobs_per_s": 600.0, "ms_per_job": 1.6, "round_trips_per_job": 2.5, "commits_per_job": 1.1,
           "lost": 0, "lost_pct": 0.0, "twice": 0, "startup_s": 0.01, "checks": []}
    other = dict(row, kind="datajoint", system="DataJoint 2.3.5", jobs_per_s=100.0, round_trips_per_job=8.0,
                 wall_s=0.6)
    rows = [row, other]
    run.add_ratios(rows, "DataJoint 2.3.5")
    assert row["ratios"]["jobs_per_s"] == pytest.approx(6.0) and other["ratios"]["jobs_per_s"] == pytest.approx(6.0)
    table = run.render(rows).splitlines()
    assert table[0].split("|")[1].strip() == "×jobs/s" and "6.00" in table[2]
    targets = {t["target"]: t for t in run.check_targets(rows, args, "DataJoint 2.3.5")}
    assert targets["W=1: >= 2x DataJoint 2.x jobs/s"]["met"] is True


def test_a_datajoint_run_whose_worker_died_is_run_again_and_said_but_a_djhpc_one_ends_the_bench():
    class FlakyRunner:
        def __init__(self, deaths):
            self.deaths = deaths

        def run(self, system, case, workers, repeat, **kwargs):
            if self.deaths:
                self.deaths -= 1
                raise run.WorkerDied("worker 3 exited with 1", "OperationalError: (1213, 'Deadlock found')")
            return {"case": case, "system": system.name}

    dj014 = run.System("DataJoint 0.14.10", "datajoint", "python", "0.14.10")
    out = run.run_with_retries(FlakyRunner(1), dj014, "sleep", 8, 0, {})
    assert out["died"] == ["OperationalError: (1213, 'Deadlock found')"]
    with pytest.raises(run.WorkerDied):
        run.run_with_retries(FlakyRunner(run.DATAJOINT_RETRIES + 1), dj014, "sleep", 8, 0, {})
    with pytest.raises(run.WorkerDied):
        run.run_with_retries(FlakyRunner(1), run.System("djhpc", "djhpc", "python", "0.1.0"), "sleep", 8, 0, {})
    row = {"case": "sleep", "workers": 8, "sleep_seconds": 0.05, "jobs_per_s": 100, "outside_sleep_s_per_job": 0,
           "sleep_overshoot_s_per_job": 0, "died_all_repeats": ["OperationalError: (1213, 'Deadlock found')"]}
    assert "1 run(s) ended by a worker's error and run again: OperationalError: (1213" in run.notes(row)


@pytest.mark.mysql
@pytest.mark.slow
def test_the_scale_case_runs_on_a_private_server_and_reports_cost_per_job(tmp_path):
    """Issue 16's scale case, at its quick size (16 workers, 2 one-second makes each): each run on a private
    MariaDB of its own, djhpc beside DataJoint 2.x, with % of ideal, rows read, server CPU and peak connections."""
    out = tmp_path / "scale.json"
    command = [sys.executable, "-m", "bench", "--quick", "--cases", "scale", "--json", str(out)]
    dj_python = datajoint_python()
    command += ["--datajoint-python", dj_python] if dj_python else ["--no-datajoint"]
    done = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    mine = next(r for r in rows if r["kind"] == "djhpc")
    assert (mine["workers"], mine["n"]) == (16, 32) and mine["success"] == 32 and mine["twice"] == 0, mine
    assert not mine["checks"] and 0 < mine["pct_of_ideal"] <= 100
    assert mine["server_questions_per_job"] > 0 and mine["rows_read_per_job"] > 0
    assert mine["server_cpu_ms_per_job"] > 0 and 16 <= mine["peak_connections"] <= 2 * 16 + 50
    if dj_python:
        theirs = next(r for r in rows if r["kind"] == "datajoint")
        assert theirs["success"] == 32 and theirs["ratios"]["jobs_per_s"] is not None


@pytest.mark.mysql
@pytest.mark.slow
def test_the_connection_budget_case_runs_an_array_larger_than_the_server_takes(tmp_path):
    """Issue 16's connection-budget case at its quick size: 24 tasks, up to 16 running, against a private server
    with max_connections=8; every task ends well, every key is made once, and some tasks waited for a connection."""
    out = tmp_path / "budget.json"
    command = [sys.executable, "-m", "bench", "--quick", "--cases", "budget", "--no-datajoint", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    held, released = json.loads(out.read_text())["rows"]
    assert (held["release_after"], released["release_after"]) == (None, 0.1)
    for row in (held, released):
        assert (row["case"], row["workers"], row["n"], row["max_connections"]) == ("budget", 24, 48, 8)
        assert row["made_keys"] == row["rows"] == 48 and row["twice"] == 0 and row["jobs_left"] == 0, row
        assert row["tasks_failed"] == 0 and row["tracebacks"] == 0 and not row["checks"], row
        assert row["running_at_once"] > 8, row
    assert held["tasks_waited"] > 0, held
    assert "[met] connection budget: 24 tasks against max_connections=8" in done.stdout
    assert "[met] connection budget (connections given back during makes): 24 tasks" in done.stdout
