"""`djhpc submit --scheduler sge` on the real one-host Grid Engine cell (tests/cluster/start-sge.sh): arrays
that share the keys (the SLURM test's assertions), qdel and the time-limit warning giving keys back, the
directives as qsub itself reads them, max_aj_tasks splitting a run, and a split the user may not queue.

The project is a temp folder with djhpc.yaml pointing at a MariaDB schema through a user with a password, so
the tasks reach the database through the 0600 credentials file; the test pipeline's knobs reach the tasks
through the profile's `-v` directive (support.sge.SGE_YAML), since Grid Engine passes nothing else.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pymysql
import pytest
from support.cluster import (
    cli_env,
    djhpc,
    history_tasks,
    jobs_rows,
    make_project,
    no_secret_anywhere,
    root_query,
    submission_rows,
    submit,
)
from support.env import MYSQL_URL, unavailable
from support.pipeline import load_items, make_calls, pid_of_call
from support.sge import SGE_YAML, exit_statuses, final_states, listed, start_sge, wait_until_gone


@pytest.fixture
def sge_project(sge, mysql_user, mysql_schema, tmp_path):
    url, password = mysql_user
    project = make_project(tmp_path / "project", url, SGE_YAML)
    return project, url, password


def _reserved_count(schema: str) -> int:
    try:
        return root_query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs` WHERE status = 'reserved'")[0][0]
    except pymysql.err.ProgrammingError:
        return 0


def _wait_reserved(schema: str, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _reserved_count(schema) < n:
        assert time.monotonic() < deadline, f"the workers did not take {n} keys"
        time.sleep(0.2)


def _logs(project: Path, job_id: str, n: int) -> str:
    return "".join((project / f"djhpc-{job_id}_{i}.err").read_text() for i in range(1, n + 1))


@pytest.mark.mysql
def test_array_of_11_tasks_shares_300_keys(sge_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = sge_project
    load_items(MYSQL_URL, mysql_schema, 300, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_FAIL=17, DJHPC_TEST_SLEEP=0.02, DJHPC_TEST_SLEEP_MAX=0.05)
    t0 = time.monotonic()
    [job_id] = submit(project, env, "--array", 11, "--scheduler", "sge")
    wait_until_gone([job_id], timeout=120)
    states = final_states([job_id], 11)
    elapsed = time.monotonic() - t0
    assert sorted(states) == sorted(f"{job_id}_{i}" for i in range(1, 12))
    # the task that met item 17 exits 1 (some makes failed); every other finds nothing left: 0
    assert Counter(str(s) for s in states.values()) == {"COMPLETED": 10, "FAILED": 1}, states

    made, pids = make_calls(tmp_path)
    assert len(made) == 300 and set(made.values()) == {1}, [k for k, n in made.items() if n > 1]
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 299
    [(status, key, message, sched_job, sched_task, host, pid)] = jobs_rows(mysql_schema)
    assert (status, key) == ("error", {"item": 17}) and "bad item 17" in message
    assert sched_job == job_id and 1 <= int(sched_task) <= 11 and str(states[f"{job_id}_{sched_task}"]) == "FAILED"
    assert host == socket.gethostname() and pid_of_call(tmp_path, 17) == {pid}
    tasks = history_tasks(mysql_schema)
    assert {job for job, _ in tasks} == {job_id}
    assert len({task for _, task in tasks}) > 1 and len(pids) > 1, "one task did all the work"

    [row] = submission_rows(mysql_schema)
    assert row[:7] == (job_id, "sge", f"{project}/pipeline.py:Square", "__square", 11, 0, 11)
    no_secret_anywhere(password, project, mysql_schema)
    credentials = list((tmp_path / "config" / "djhpc" / "credentials").iterdir())
    assert len(credentials) == 1 and stat.S_IMODE(credentials[0].stat().st_mode) == 0o600
    script = Path(row[7]).read_text()
    assert f"DJHPC_DATABASE_URL_FILE={credentials[0]}" in script and "-V" not in script.split()

    # djhpc status joins qstat and qacct
    out = djhpc(["status", "--json"], project, env)
    assert out.returncode == 0, out.stderr
    [sub] = json.loads(out.stdout)["submissions"]
    assert (sub["job_id"], sub["scheduler"], sub["counts"]["done"], sub["counts"]["failed"]) == (job_id, "sge", 10, 1)
    print(f"11-task Grid Engine array over 300 keys: {elapsed:.1f} s from submit to all done")

    # nothing left but the error: a second submit submits nothing
    again = djhpc(["submit", "--array", 11], project, env)
    assert again.returncode == 0 and again.stdout == "" and "nothing to submit" in again.stderr
    assert len(submission_rows(mysql_schema)) == 1


@pytest.mark.mysql
def test_qdel_gives_keys_back(sge_project, mysql_schema, tmp_path, monkeypatch):
    """qdel of a job submitted with -notify: SIGUSR2 first, which the workers take as a stop (keys given back,
    exit 75), before the SIGKILL of the notify window (5 s in the test cell)."""
    project, url, password = sge_project
    load_items(MYSQL_URL, mysql_schema, 4, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=150)
    [job_id] = submit(project, env, "--array", 2)
    _wait_reserved(mysql_schema, 2)
    subprocess.run(["qdel", job_id], check=True, capture_output=True)
    wait_until_gone([job_id], timeout=60)
    assert exit_statuses(job_id) == {"1": ("0", "75"), "2": ("0", "75")}
    states = final_states([job_id], 2)
    assert {str(s) for s in states.values()} == {"CANCELLED"}, states
    assert [r for r in jobs_rows(mysql_schema) if r[0] in ("reserved", "error")] == []
    assert _logs(project, job_id, 2).count("stopped by SIGUSR2: reservations released") == 2

    ids = submit(project, {**env, "DJHPC_TEST_SLEEP": "0"}, "--array", 2)
    wait_until_gone(ids, timeout=60)
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 4
    assert jobs_rows(mysql_schema) == []


@pytest.mark.mysql
@pytest.mark.slow
def test_time_limit_warning_gives_keys_back(sge_project, mysql_schema, tmp_path, monkeypatch):
    """--time 20s: h_rt 20 s and s_rt 10 s earlier (signal_seconds halved for a short limit); s_rt sends SIGUSR1,
    the workers give their keys back and exit 75 before h_rt's SIGKILL."""
    project, url, password = sge_project
    load_items(MYSQL_URL, mysql_schema, 3, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=150)
    t0 = time.monotonic()
    [job_id] = submit(project, env, "--array", 2, "--time", "20s")
    script = Path(submission_rows(mysql_schema)[0][7]).read_text()
    assert "#$ -l h_rt=00:00:20\n#$ -l s_rt=00:00:10\n" in script and "DJHPC_END_TIME=" in script
    wait_until_gone([job_id], timeout=60)
    stopped_after = time.monotonic() - t0
    assert exit_statuses(job_id) == {"1": ("0", "75"), "2": ("0", "75")}
    assert _logs(project, job_id, 2).count("stopped by SIGUSR1: reservations released") == 2
    assert [r for r in jobs_rows(mysql_schema) if r[0] in ("reserved", "error")] == []
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 0
    print(f"time limit: workers stopped by s_rt's USR1 {stopped_after:.0f} s after submit")


FLAGS = ["--array", 4, "--throttle", 2, "--queue", "all.q", "--time", "1:30:00", "--mem", "2G", "--cpus", 2,
         "--account", "lab-7", "--after", 123, "--job-name", "my run", "--mail-user", "me@example.org",
         "--mail-type", "END,FAIL", "--output", "logs dir/%x-%A_%a.out"]


def test_directives_as_qsub_reads_them(sge, tmp_path, monkeypatch):
    """The rendered script submitted on hold: what Grid Engine made of each directive (qstat -j), then qdel."""
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    project = make_project(tmp_path / "project", "sqlite:///pipeline.db", SGE_YAML)
    load_items(f"sqlite:///{project}/pipeline.db", schema, 4, monkeypatch, tmp_path)
    out = djhpc(["render", *FLAGS], project, cli_env(schema, tmp_path))
    assert out.returncode == 0, out.stderr
    (project / "task.sh").write_text(out.stdout)
    held = subprocess.run(["qsub", "-terse", "-h", "task.sh"], cwd=project, capture_output=True, text=True)
    assert held.returncode == 0, held.stderr
    job_id = held.stdout.split(".")[0]
    try:
        shown = subprocess.run(["qstat", "-j", job_id], capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["qdel", job_id], capture_output=True)
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in shown.splitlines() if re.match(r"\w[^:]*:\s", line))
    assert fields["job_name"] == "my_run" and fields["account"] == "lab-7" and fields["hard_queue_list"] == "all.q"
    # 1:30:00 with the 60 s warning before it; 2 GB over 2 slots
    assert fields["hard resource_list"] == "h_rt=5400,s_rt=5340,h_vmem=1024M"
    assert fields["parallel environment"] == "smp range: 2"
    assert fields["job-array tasks"] == "1-4:1" and fields["maximum concurrency"] == "2"
    assert fields["stdout_path_list"] == "NONE:NONE:logs dir/$JOB_NAME-$JOB_ID_$TASK_ID.out"
    assert fields["mail_options"] == "ae" and fields["mail_list"] == "me@example.org"
    assert fields["jid_predecessor_list (req)"] == "123" and fields["notify"] == "TRUE" and fields["restart"] == "n"
    assert fields["shell_list"] == "NONE:/bin/bash" and fields["cwd"] == str(project)
    env_names = {item.split("=")[0] for item in fields["env_list"].split(",")}
    assert "PYTHONPATH" in env_names and "DJHPC_TEST_SCHEMA" in env_names and "HOME" not in env_names


@pytest.fixture
def restore_limits(sge):
    """max_aj_tasks and max_u_jobs set by the test (start-sge.sh's knobs), the defaults back afterwards."""
    if os.geteuid() != 0:
        unavailable("changing the cell's max_aj_tasks needs root (tests/cluster/start-sge.sh)")
    try:
        yield
    finally:
        start_sge()


@pytest.mark.mysql
@pytest.mark.slow
def test_max_aj_tasks_splits_the_run(restore_limits, sge_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = sge_project
    load_items(MYSQL_URL, mysql_schema, 60, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=0.02)

    # 3 arrays of at most 5 tasks, but a user may have 2 jobs: refused before anything is written or submitted
    start_sge(SGE_MAX_AJ_TASKS="5", SGE_MAX_U_JOBS="2")
    before = listed()
    out = djhpc(["submit", "--array", 11], project, env)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("djhpc: error: --array 11 needs 3 Grid Engine arrays of at most 5 tasks")
    assert "max_u_jobs" in out.stderr and "lower --array to 10 or less" in out.stderr
    assert not list((project / ".djhpc" / "scripts").glob("*")) and submission_rows(mysql_schema) == ()
    assert listed() == before

    start_sge(SGE_MAX_AJ_TASKS="5")
    rendered = djhpc(["render", "--array", 11], project, env)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.count("#$ -t ") == 3 and "split into 3 arrays" in rendered.stderr
    ids = submit(project, env, "--array", 11)
    assert len(ids) == 3
    rows = submission_rows(mysql_schema)
    assert [(r[0], r[4], r[5], r[6]) for r in rows] == [(ids[0], 5, 0, 11), (ids[1], 5, 5, 11), (ids[2], 1, 10, 11)]
    scripts = [Path(r[7]).read_text() for r in rows]
    assert ["#$ -t 1-5\n" in scripts[0], "#$ -t 1-5\n" in scripts[1], "#$ -t 1-1\n" in scripts[2]] == [True] * 3
    assert "DJHPC_TASK_OFFSET=10" in scripts[2]
    wait_until_gone(ids, timeout=120)
    states = final_states(ids, 11)
    assert len(states) == 11 and {str(s) for s in states.values()} == {"COMPLETED"}, states
    made, _ = make_calls(tmp_path)
    assert len(made) == 60 and set(made.values()) == {1}
    assert jobs_rows(mysql_schema) == []
    assert {task for _, task in history_tasks(mysql_schema)} <= {str(i) for i in range(1, 6)}
