"""`djhpc submit` on the real single-node SLURM cluster: arrays that share the keys, site limits,
rejections, time limits and scancel (keys given back, a second submission finishes them).

The project is a temp folder with djhpc.yaml pointing at a MariaDB schema through a user with a
password, so the tasks reach the database through the 0600 credentials file as on a real cluster.
The helpers are in support/cluster.py, shared with test_parallel.py, test_pbs.py and ../cli/test_submit.py.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pymysql
import pytest
from support.cluster import (
    cli_env,
    djhpc,
    final_states,
    history_tasks,
    jobs_rows,
    make_project,
    no_secret_anywhere,
    root_query,
    sacct_exit_codes,
    start_slurm,
    submission_rows,
    submit,
    wait_until_gone,
)
from support.env import MYSQL_URL, ROOT, unavailable
from support.examples import follow_setup, source_status
from support.pipeline import load_items, make_calls, pid_of_call


@pytest.fixture
def slurm_project(slurm, mysql_user, mysql_schema, tmp_path, monkeypatch):
    url, password = mysql_user
    project = make_project(tmp_path / "project", url, "scheduler: slurm\n")
    return project, url, password


@pytest.mark.slurm
@pytest.mark.mysql
def test_array_of_11_tasks_shares_300_keys(slurm_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = slurm_project
    load_items(MYSQL_URL, mysql_schema, 300, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_FAIL=17, DJHPC_TEST_SLEEP=0.02, DJHPC_TEST_SLEEP_MAX=0.05)
    t0 = time.monotonic()
    [job_id] = submit(project, env, "--array", 11)
    wait_until_gone([job_id], timeout=180)
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
    assert row[:7] == (job_id, "slurm", f"{project}/pipeline.py:Square", "__square", 11, 0, 11)
    no_secret_anywhere(password, project, mysql_schema)
    credentials = list((tmp_path / "config" / "djhpc" / "credentials").iterdir())
    assert len(credentials) == 1 and stat.S_IMODE(credentials[0].stat().st_mode) == 0o600
    assert f"DJHPC_DATABASE_URL_FILE={credentials[0]}" in Path(row[7]).read_text()
    print(f"11-task array over 300 keys: {elapsed:.1f} s from submit to all done")

    # nothing left but the error: a second submit submits nothing
    again = djhpc(["submit", "--array", 11], project, env)
    assert again.returncode == 0 and again.stdout == "" and "nothing to submit" in again.stderr
    assert len(submission_rows(mysql_schema)) == 1


@pytest.mark.slurm
@pytest.mark.mysql
def test_rejected_submission_shows_sbatch_message(slurm_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = slurm_project
    load_items(MYSQL_URL, mysql_schema, 3, monkeypatch, tmp_path)
    out = djhpc(["submit", "--array", 2, "--partition", "nosuchpartition"], project, cli_env(mysql_schema, tmp_path))
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1
    assert out.stderr.startswith("djhpc: error: sbatch") and "invalid partition" in out.stderr.lower()
    assert not list((project / ".djhpc" / "scripts").glob("*")) and submission_rows(mysql_schema) == ()


@pytest.fixture
def small_max_array_size(slurm):
    """The cluster restarted with MaxArraySize=5 (highest index 4), restored afterwards."""
    if os.geteuid() != 0:
        unavailable("restarting SLURM with another MaxArraySize needs root")
    try:
        start_slurm(SLURM_MAXARRAYSIZE="5")
        yield 5
    finally:
        start_slurm()


@pytest.mark.slurm
@pytest.mark.mysql
@pytest.mark.slow
def test_max_array_size_splits_the_run(small_max_array_size, slurm_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = slurm_project
    load_items(MYSQL_URL, mysql_schema, 60, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=0.02)
    rendered = djhpc(["render", "--array", 11], project, env)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.count("#SBATCH --array=") == 3 and "split into 3 arrays" in rendered.stderr
    ids = submit(project, env, "--array", 11)
    assert len(ids) == 3
    rows = submission_rows(mysql_schema)
    assert [(r[0], r[4], r[5], r[6]) for r in rows] == [(ids[0], 4, 0, 11), (ids[1], 4, 4, 11), (ids[2], 3, 8, 11)]
    scripts = [Path(r[7]).read_text() for r in rows]
    assert ["--array=1-4" in scripts[0], "--array=1-4" in scripts[1], "--array=1-3" in scripts[2]] == [True] * 3
    assert "DJHPC_TASK_OFFSET=8" in scripts[2]
    wait_until_gone(ids, timeout=180)
    states = final_states(ids, 11)
    assert len(states) == 11 and {str(s) for s in states.values()} == {"COMPLETED"}, states
    made, _ = make_calls(tmp_path)
    assert len(made) == 60 and set(made.values()) == {1}
    assert jobs_rows(mysql_schema) == []


def _reserved_count(schema: str) -> int:
    try:
        return root_query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs` WHERE status = 'reserved'")[0][0]
    except pymysql.err.ProgrammingError:
        return 0


@pytest.mark.slurm
@pytest.mark.mysql
@pytest.mark.slow
def test_time_limit_warning_gives_keys_back(slurm_project, mysql_schema, tmp_path, monkeypatch):
    """--time 1 with makes of 150 s: SLURM's USR1 (--signal=B:USR1@45) stops the workers, which give
    their keys back and exit 75; a second submission finishes the keys."""
    project, url, password = slurm_project
    load_items(MYSQL_URL, mysql_schema, 3, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=150)
    t0 = time.monotonic()
    [job_id] = submit(project, env, "--array", 2, "--time", 1, "--signal-seconds", 45)
    script = Path(submission_rows(mysql_schema)[0][7]).read_text()
    assert "#SBATCH --time=00:01:00" in script and "#SBATCH --signal=B:USR1@45" in script
    wait_until_gone([job_id], timeout=150)
    stopped_after = time.monotonic() - t0
    codes = sacct_exit_codes(job_id, 2)
    for state, exit_code in codes.values():
        assert exit_code == "75:0" or state == "TIMEOUT", codes
    log = "".join((project / f"djhpc-{job_id}_{i}.err").read_text() for i in (1, 2))
    assert log.count("reservations released") == 2, log
    assert [r for r in jobs_rows(mysql_schema) if r[0] in ("reserved", "error")] == []
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 0

    ids = submit(project, {**env, "DJHPC_TEST_SLEEP": "0"}, "--array", 2)
    wait_until_gone(ids, timeout=120)
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 3
    assert jobs_rows(mysql_schema) == []
    print(f"time limit: workers stopped by USR1 {stopped_after:.0f} s after submit; states {codes}")


@pytest.mark.slurm
@pytest.mark.mysql
def test_scancel_gives_keys_back(slurm_project, mysql_schema, tmp_path, monkeypatch):
    project, url, password = slurm_project
    load_items(MYSQL_URL, mysql_schema, 4, monkeypatch, tmp_path)
    env = cli_env(mysql_schema, tmp_path, DJHPC_TEST_SLEEP=150)
    [job_id] = submit(project, env, "--array", 2)
    deadline = time.monotonic() + 60
    while _reserved_count(mysql_schema) < 2:
        assert time.monotonic() < deadline, "the two workers did not take a key each"
        time.sleep(0.2)
    subprocess.run(["scancel", job_id], check=True)
    wait_until_gone([job_id], timeout=60)
    states = final_states([job_id], 2)
    assert {str(s) for s in states.values()} == {"CANCELLED"}, states
    assert [r for r in jobs_rows(mysql_schema) if r[0] in ("reserved", "error")] == []
    log = "".join((project / f"djhpc-{job_id}_{i}.err").read_text() for i in (1, 2))
    assert log.count("reservations released") == 2, log

    ids = submit(project, {**env, "DJHPC_TEST_SLEEP": "0"}, "--array", 2)
    wait_until_gone(ids, timeout=120)
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == 4
    assert jobs_rows(mysql_schema) == []


@pytest.mark.slurm
def test_example_walkthrough(slurm, tmp_path):
    """examples/slurm/README.md: its copy step as written (from the tracked files only, HOME in tmp_path), setup,
    render, submit --array 11, the deliberate failure, retry; nothing lands in the source tree. SQLite on local
    disk (the example's default) with 11 workers at once; makes shortened to 20-40 ms."""
    before = source_status("examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "EXAMPLE_"))}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"), EXAMPLE_MAKE_SECONDS="0.02")
    project, setup = follow_setup("slurm", tmp_path, env)
    assert setup.returncode == 0 and "200 of 200 analyses to run" in setup.stdout, setup.stderr
    rendered = djhpc(["render", "--array", 11], project, env)
    assert rendered.returncode == 0 and "#SBATCH --array=1-11" in rendered.stdout, rendered.stderr
    assert f"DJHPC_DATABASE_URL=sqlite:///{project}/example.db" in rendered.stdout
    assert "--gres=gpu:1" in djhpc(["render", "--profile", "gpu"], project, env).stdout

    [job_id] = submit(project, env, "--array", 11)
    wait_until_gone([job_id], timeout=120)
    errors = djhpc(["jobs", "errors"], project, env)
    assert "corrupt recording in session r1/" in errors.stdout, errors.stdout + errors.stderr
    again = djhpc(["submit", "--array", 11], project, env)
    assert again.returncode == 0 and "0 of 200 keys of Analysis left, 1 in error" in again.stderr

    env["EXAMPLE_FIXED"] = "1"
    assert djhpc(["jobs", "retry", "--yes"], project, env).returncode == 0
    retried = djhpc(["submit", "--array", 11], project, env)
    assert retried.returncode == 0 and "only 1 key left: 1 task instead of 11" in retried.stderr, retried.stderr
    wait_until_gone(retried.stdout.split(), timeout=60)
    progress = djhpc(["progress", "--json"], project, env)
    assert progress.returncode == 0, progress.stderr
    [row] = json.loads(progress.stdout)
    assert (row["total"], row["done"], row["error"]) == (200, 200, 0)
    assert list(project.glob(f"djhpc-{job_id}_*.err")), "the tasks' logs are in the copy"
    assert source_status("examples") == before, "the walkthrough wrote into the source tree"
