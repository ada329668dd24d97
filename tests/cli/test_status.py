"""djhpc status on the real single-node SLURM cluster: an array sent by djhpc submit, the keys its running
tasks hold, a reservation whose task ended (and reap taking it back on the scheduler's word), a cancelled
array; a scheduler command missing or failing is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from support.chain import TABLES
from support.chainviews import filled_chain
from support.cluster import cli_env, djhpc, make_project, submit, wait_until_gone
from support.env import wait_for
from support.jobstate import cli, one_line_error
from support.narrow import djhpc_at, fits, uncut
from support.pipeline import load_items

import djhpc as dj
from djhpc.reservation import Reservations, Worker
from djhpc.submissions import Submissions


def _status(project, env) -> dict:
    out = djhpc(["status", "--json"], project, env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _poll(project, env, done, what, timeout=90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = _status(project, env)
        if done(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {data}")
        time.sleep(0.3)


def _by_job(data, job) -> dict:
    return next(s for s in data["submissions"] if s["job_id"] == job)


@pytest.mark.slurm
def test_status_of_a_submitted_array(slurm, backend, schema_name, tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", backend, "scheduler: slurm\n")
    load_items(backend, schema_name, 6, monkeypatch, tmp_path)
    gate = tmp_path / "gate"  # the tasks hold their first key until the views of a running array are checked
    env = cli_env(schema_name, tmp_path, DJHPC_TEST_GATE=gate)
    [job] = submit(project, env, "--array", 3)
    jobs = [job]
    holder = None
    try:
        # while it runs: every task known, the running ones with the keys they hold
        data = _poll(project, env, lambda d: any(h["keys"] for h in _by_job(d, job)["holding"]),
                     "a running task holding a key")
        sub = _by_job(data, job)
        assert sub["tasks"] == 3 and sum(sub["counts"].values()) == 3 and sub["table_name"] == "__square"
        held = [h for h in sub["holding"] if h["keys"]]
        for h in held:
            assert h["task"].startswith(f"{job}_") and h["state"] == "RUNNING"
            assert all(k["table_name"] == "__square" and 0 <= k["key"]["item"] < 6 for k in h["keys"])
        text = djhpc(["status"], project, env)
        assert text.returncode == 0 and job in text.stdout and "Keys held by running tasks" in text.stdout
        assert "\x1b[" not in text.stdout
        gate.touch()

        # when it is over: three tasks done, nothing held
        wait_until_gone([job], timeout=120)
        data = _poll(project, env, lambda d: _by_job(d, job)["counts"]["done"] == 3, "three COMPLETED tasks")
        assert _by_job(data, job)["holding"] == [] and data["gone"] == []

        # a reservation of a task that ended: status lists it, reap takes it back on the scheduler's word
        holder = Reservations(dj.conn(), schema_name, Worker(host="node-gone", pid=1, sched_job_id=job,
                                                             sched_task_id="2"))
        assert len(holder.reserve("__square", [{"item": 100}])) == 1
        data = _status(project, env)
        assert [(g["key"], g["task"], g["state"]) for g in data["gone"]] == [({"item": 100}, f"{job}_2", "COMPLETED")]
        reap = djhpc(["reap", "--json"], project, env)
        assert reap.returncode == 0, reap.stderr
        assert [(r["key"], r["reason"], r["status"]) for r in json.loads(reap.stdout)] == [
            ({"item": 100}, "scheduler:COMPLETED", "pending")]

        # an array cancelled while it waits or runs
        out = subprocess.run(["sbatch", "--parsable", "--array=1-2", "--output=/dev/null", "--wrap", "sleep 60"],
                             capture_output=True, text=True, check=True)
        cancelled = out.stdout.strip().split(";")[0]
        jobs.append(cancelled)
        Submissions(dj.conn(), schema_name).record(job_id=cancelled, scheduler="slurm", target="pipeline.py:Square",
                                                   table_name="__square", array_size=2)
        subprocess.run(["scancel", cancelled], check=True)
        data = _poll(project, env, lambda d: _by_job(d, cancelled)["counts"]["cancelled"] == 2, "two CANCELLED")
        assert [s["job_id"] for s in data["submissions"]] == [cancelled, job]  # newest first
    finally:
        if holder is not None:
            holder.close()
        subprocess.run(["scancel", *jobs], capture_output=True)
        sys.modules.pop("pipeline_counts", None)


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/status.db"
    monkeypatch.setenv("DJHPC_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    dj.conn(url, reset=True)
    dj.Schema("status_test")
    Submissions(dj.conn(), "status_test").record(job_id="4242", scheduler="slurm", target="p.py:T",
                                                 table_name="__t", array_size=2)
    return tmp_path


def test_missing_scheduler_command_is_one_line(recorded, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(recorded))  # no squeue here
    rc, _, err = cli(capsys, "status", "--schema", "status_test")
    assert rc == 2 and one_line_error(err) and "squeue not found on PATH" in err, err


def test_failing_scheduler_command_is_one_line(recorded, capsys, monkeypatch):
    fake = recorded / "bin"
    fake.mkdir()
    (fake / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n"
                                 "exit 1\n")
    (fake / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    rc, _, err = cli(capsys, "status", "--schema", "status_test")
    assert rc == 2 and one_line_error(err) and "Unable to contact slurm controller" in err, err


def test_bad_input(recorded, capsys):
    rc, _, err = cli(capsys, "status", "--schema", "no_such_schema_xyz")
    assert rc == 2 and one_line_error(err)
    rc, _, err = cli(capsys, "status", "--schema", "status_test", "--limit", "0")
    assert rc == 2 and one_line_error(err)


@pytest.mark.parametrize("columns", [80, 200])
def test_status_of_a_local_run_at_80_and_200_columns(backend, schema_name, tmp_path, monkeypatch, columns):
    """Issue 18 item 3 through the real CLI: Job, Scheduler, Table and Submitted stay at 80 columns (a block per
    run when the columns do not fit), the held keys whole; no line wider than the terminal."""
    project = make_project(tmp_path / "project", backend, "scheduler: local\n")
    load_items(backend, schema_name, 8, monkeypatch, tmp_path)
    env = cli_env(schema_name, tmp_path, DJHPC_TEST_GATE=tmp_path / "gate")  # the tasks hold a key till cancelled
    [job] = submit(project, env, "--array", 2)
    try:
        data = _poll(project, env, lambda d: any(h["keys"] for h in _by_job(d, job)["holding"]),
                     "a task holding a key")
        assert _by_job(data, job)["counts"]["running"] == 2  # a local run's one process runs both tasks
        out = djhpc_at(columns, ["status"], env, project)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert fits(text, columns) and uncut(text), text
        for word in ("Job", "Scheduler", "Table", "Submitted", "Tasks", "Running", job, "local", "Square",
                     "Keys held by running tasks", "Holding now", "Square item="):
            assert word in text, (word, text)
    finally:
        djhpc(["cancel"], project, env)


# ---------------------------------------------------------------------------- a whole pipeline (issue 19)
CHAIN_TABLES = "__motion,__segment,__trace,__quality,__summary"


def _pipeline_status(project, *argv) -> dict:
    out = project.djhpc("status", "chain.py", *argv, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_status_of_a_pipeline_table_by_table(backend, db, schema_name, tmp_path):
    """Runs recorded for the pipeline (a live local one: this process; one whose process is gone), keys held by
    each: a row per table in dependency order, reservations of the gone run listed; another table's run left out."""
    project = filled_chain(tmp_path / "project", backend, schema_name)
    ended = subprocess.Popen(["true"])
    ended.wait()
    live, dead = str(os.getpid()), str(ended.pid)
    runs = Submissions(db, schema_name)
    runs.record(job_id=live, scheduler="local", target="chain.py", table_name=CHAIN_TABLES, array_size=1)
    runs.record(job_id=dead, scheduler="local", target="chain.py --tables Quality", table_name="__quality",
                array_size=1)
    runs.record(job_id="31337", scheduler="local", target="other.py:Thing", table_name="__thing", array_size=1)
    working = Reservations(db, schema_name, Worker(host="node-a", pid=os.getpid(), sched_job_id=live,
                                                   sched_task_id="1"))
    gone = Reservations(db, schema_name, Worker(host="node-g", pid=ended.pid, sched_job_id=dead, sched_task_id="1"))
    try:
        assert len(working.reserve("__motion", [{"session": 6}, {"session": 7}])) == 2
        assert len(gone.reserve("__quality", [{"session": 6}])) == 1
        data = _pipeline_status(project)
        assert [s["job_id"] for s in data["submissions"]] == [dead, live]  # newest first; not the other table's
        assert [(t["table"], t["reserved"], t["tasks"], t["gone"], t["runs"]) for t in data["tables"]] == [
            ("Motion", 2, 1, 0, [live]), ("Segment", 0, 0, 0, [live]), ("Trace", 0, 0, 0, [live]),
            ("Quality", 1, 0, 1, [dead, live]), ("Summary", 0, 0, 0, [live])]
        assert [(g["table_name"], g["key"], g["state"]) for g in data["gone"]] == [
            ("__quality", {"session": 6}, "not known")]
        held = {h["task"]: h for s in data["submissions"] for h in s["holding"]}
        assert [k["key"] for k in held[f"{live}_1"]["keys"]] == [{"session": 6}, {"session": 7}]
        assert held[f"{live}_1"]["state"] == "RUNNING" and data["reserved"] == 3

        limited = _pipeline_status(project, "--tables", "Motion")
        assert [t["table"] for t in limited["tables"]] == ["Motion"] and limited["gone"] == []
        assert [s["job_id"] for s in limited["submissions"]] == [live]

        text = djhpc_at(200, ["status", "chain.py"], project.env, project.folder).stdout
        assert "Submissions of pipeline chain" in text and "Tables of pipeline chain" in text, text
        rows = [ln.split() for ln in text.split("Tables of pipeline chain")[1].splitlines()
                if ln.split() and ln.split()[0] in TABLES]
        assert [r[:4] for r in rows[:5]] == [["Motion", "2", "1", "0"], ["Segment", "0", "0", "0"],
                                             ["Trace", "0", "0", "0"], ["Quality", "1", "0", "1"],
                                             ["Summary", "0", "0", "0"]], text
        assert "Reservations whose task is gone" in text and "31337" not in text
        narrow = djhpc_at(80, ["status", "chain.py"], project.env, project.folder).stdout
        assert fits(narrow, 80) and uncut(narrow), narrow
        quiet = project.djhpc("status", "chain.py", "-q").stdout.splitlines()
        assert [ln for ln in quiet if ln.startswith("table\t")] == [
            "table\tMotion\treserved=2\ttasks=1\tgone=0", "table\tSegment\treserved=0\ttasks=0\tgone=0",
            "table\tTrace\treserved=0\ttasks=0\tgone=0", "table\tQuality\treserved=1\ttasks=0\tgone=1",
            "table\tSummary\treserved=0\ttasks=0\tgone=0"]
    finally:
        working.close()
        gone.close()


@pytest.mark.slurm
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_status_of_a_pipeline_array_on_slurm(slurm, backend, db, schema_name, tmp_path):
    """Two SLURM array tasks run `djhpc work chain.py` over four new sessions: while they run, each table's row
    names the array and the tasks holding its keys; when they are done, nothing is held. On MariaDB only (the
    rows are the same on SQLite, which the local-run tests above cover): the suite's time is spent once."""
    project = filled_chain(tmp_path / "project", backend, schema_name, more=(6, 7, 8, 9))
    out = subprocess.run(["sbatch", "--parsable", "--array=1-2", "--output=/dev/null", f"--chdir={project.folder}",
                          "--wrap", f"{sys.executable} -m djhpc.cli.main work chain.py"],
                         env={**project.env, "DJHPC_TEST_SLEEP": "0.8"}, capture_output=True, text=True, check=True)
    job = out.stdout.strip().split(";")[0]
    Submissions(db, schema_name).record(job_id=job, scheduler="slurm", target="chain.py", table_name=CHAIN_TABLES,
                                        array_size=2)
    try:
        seen: dict[str, set] = {}

        def holding() -> bool:
            data = _pipeline_status(project)
            for t in data["tables"]:
                if t["tasks"]:
                    seen.setdefault(t["table"], set()).add(t["tasks"])
                    assert t["runs"] == [job] and t["reserved"] >= t["tasks"], t
            return len(seen) >= 2  # keys of two tables held at some point

        wait_for(holding, timeout=120, what="tasks holding keys of two tables")
        tasks = {h["task"] for s in _pipeline_status(project)["submissions"] for h in s["holding"]}
        assert tasks <= {f"{job}_1", f"{job}_2"}, tasks
        wait_until_gone([job], timeout=180)
        data = _poll(project.folder, project.env, lambda d: _by_job(d, job)["counts"]["done"] == 2,
                     "two COMPLETED tasks")
        final = _pipeline_status(project)
        assert [(t["table"], t["reserved"], t["tasks"], t["gone"]) for t in final["tables"]] == [
            (t, 0, 0, 0) for t in TABLES] and data["gone"] == []
        assert set(project.rows("Summary")) == {0, 1, 3, 4, 5, 6, 7, 8, 9}  # session 2 blocked
    finally:
        subprocess.run(["scancel", job], capture_output=True)
