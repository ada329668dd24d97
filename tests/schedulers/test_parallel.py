"""GNU parallel for real: the command line `djhpc parallel` prints, `djhpc parallel --run` with
--resume-failed, and the script `djhpc submit --scheduler parallel` starts; workers on MariaDB.

Each worker's task id is parallel's PARALLEL_SEQ, its job id the PID of the shell that ran the line.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import psutil
import pytest
from support.cluster import cli_env, djhpc, history_tasks, jobs_rows, make_project, root_query, submission_rows
from support.env import MYSQL_URL, need_binary
from support.pipeline import load_items, make_calls, pid_of_call

pytestmark = [pytest.mark.parallel, pytest.mark.mysql]


@pytest.fixture
def project(mysql_schema, tmp_path):
    need_binary("parallel")
    return make_project(tmp_path / "project", MYSQL_URL)


def read_joblog(path) -> list[dict]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]


def square_count(schema: str) -> int:
    return root_query(f"SELECT COUNT(*) FROM `{schema}`.`__square`")[0][0]


def test_printed_command_line_runs_four_workers(project, mysql_schema, tmp_path, monkeypatch):
    load_items(MYSQL_URL, mysql_schema, 220, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_FAIL=17, DJHPC_TEST_SLEEP=0.02, DJHPC_TEST_SLEEP_MAX=0.05)
    printed = djhpc(["parallel", "--jobs", 4, "--joblog", "run.joblog"], project, env)
    assert printed.returncode == 0, printed.stderr
    line = printed.stdout.strip()
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", line], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=300)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, output[-3000:]  # parallel: one worker failed (it met item 17)

    made, pids = make_calls(tmp_path)
    assert len(made) == 220 and set(made.values()) == {1}
    assert square_count(mysql_schema) == 219
    [(status, key, message, job, task, host, pid)] = jobs_rows(mysql_schema)
    assert (status, key) == ("error", {"item": 17}) and "bad item 17" in message
    assert job == str(proc.pid) and task in {"1", "2", "3", "4"} and pid_of_call(tmp_path, 17) == {pid}
    tasks = history_tasks(mysql_schema)
    assert {j for j, _ in tasks} == {str(proc.pid)} and len({t for _, t in tasks}) > 1 and len(pids) > 1
    log = read_joblog(project / "run.joblog")
    assert sorted(int(r["Seq"]) for r in log) == [1, 2, 3, 4]
    assert [r["Seq"] for r in log if r["Exitval"] != "0"] == [task]
    print(f"GNU parallel, 4 workers over 220 keys: {elapsed:.1f} s")


def test_run_then_resume_failed(project, mysql_schema, tmp_path, monkeypatch):
    """A worker that met the failing key exits 1; --resume-failed runs only that worker again."""
    load_items(MYSQL_URL, mysql_schema, 200, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_FAIL=5, DJHPC_TEST_SLEEP=0.005)
    first = djhpc(["parallel", "--jobs", 3, "--run", "--joblog", "j.log", "--", "--max-calls", 40], project, env)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "failed worker(s)" in first.stderr and "--resume-failed" in first.stderr
    log = read_joblog(project / "j.log")
    failed = [r["Seq"] for r in log if r["Exitval"] != "0"]
    assert len(log) == 3 and len(failed) == 1
    assert len(make_calls(tmp_path)[0]) == 120

    again = djhpc(["parallel", "--jobs", 3, "--run", "--joblog", "j.log", "--resume-failed", "--", "--max-calls", 40],
                  project, env)
    assert again.returncode == 0, again.stderr[-3000:]
    log = read_joblog(project / "j.log")
    assert [r["Seq"] for r in log[3:]] == failed and log[3]["Exitval"] == "0"
    made, _ = make_calls(tmp_path)
    assert len(made) == 160 and set(made.values()) == {1}

    last = djhpc(["parallel", "--jobs", 3, "--run"], project, env)
    assert last.returncode == 0, last.stderr[-3000:]
    made, _ = make_calls(tmp_path)
    assert len(made) == 200 and set(made.values()) == {1}
    assert [r[:2] for r in jobs_rows(mysql_schema)] == [("error", {"item": 5})]
    rows = submission_rows(mysql_schema)
    assert [r[1] for r in rows] == ["parallel"] * 3 and [r[4] for r in rows] == [3, 3, 3]


def test_submit_with_the_parallel_scheduler_runs_the_script(project, mysql_schema, tmp_path, monkeypatch):
    load_items(MYSQL_URL, mysql_schema, 200, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=0.01, DJHPC_TEST_SLEEP_MAX=0.03)
    out = djhpc(["submit", "--scheduler", "parallel", "--array", 4], project, env)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    deadline = time.monotonic() + 300
    while psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        assert time.monotonic() < deadline, "the parallel script did not finish"
        time.sleep(0.2)
    made, pids = make_calls(tmp_path)
    assert len(made) == 200 and set(made.values()) == {1} and square_count(mysql_schema) == 200
    tasks = history_tasks(mysql_schema)
    assert {j for j, _ in tasks} == {str(pid)}  # the script execs parallel: $$ is parallel's PID
    assert {t for _, t in tasks} <= {"1", "2", "3", "4"} and len({t for _, t in tasks}) > 1
    assert Counter(r[1] for r in submission_rows(mysql_schema)) == {"parallel": 1}
    assert jobs_rows(mysql_schema) == []
