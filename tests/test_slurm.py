"""`djhpc submit` on the real single-node SLURM cluster: arrays that share the keys, site limits,
rejections, time limits and scancel (keys given back, a second submission finishes them).

The project is a temp folder with djhpc.yaml pointing at a MariaDB schema through a user with a
password, so the tasks reach the database through the 0600 credentials file as on a real cluster.
The helpers at the top are shared with test_parallel.py, test_pbs.py and cli/test_submit.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pymysql
import pytest
from conftest import MYSQL_URL, ROOT, mysql_available, need_binary, unavailable

import djhpc as dj

PIPELINE = ROOT / "tests" / "pipelines" / "pipeline_counts.py"
START_SLURM = ROOT / "tests" / "cluster" / "start-slurm.sh"
KILLWAIT = "5"


# ------------------------------------------------------------------------------ shared helpers


def make_project(folder: Path, database: str, extra_yaml: str = "", target: str = "pipeline.py:Square") -> Path:
    """A project folder: the counting test pipeline as pipeline.py and a djhpc.yaml (mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PIPELINE, folder / "pipeline.py")
    config = folder / "djhpc.yaml"
    config.write_text(f"target: {target}\ndatabase: {database}\n{extra_yaml}", encoding="utf-8")
    config.chmod(0o600)
    return folder


def cli_env(schema: str, tmp_path: Path, **extra) -> dict:
    """Environment for `djhpc` run by a test: no user settings, the test pipeline's knobs, a private config
    folder (credentials go there). sbatch hands this environment on to the tasks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "PBS_", "PARALLEL"))}
    env.update(PYTHONPATH=str(ROOT), DJHPC_TEST_SCHEMA=schema, DJHPC_TEST_CALLS=str(tmp_path / "calls.log"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), DJHPC_SAFEMODE="0")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def djhpc(args, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "djhpc.cli.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def load_items(url: str, schema: str, n: int, monkeypatch, tmp_path: Path):
    """Import the test pipeline in this process on url/schema and insert items 0..n-1."""
    from test_populate import load_pipeline

    dj.conn(url, reset=True)
    sys.modules.pop("pipeline_counts", None)
    p = load_pipeline(url, schema, monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(n)])
    return p


def make_calls(tmp_path: Path) -> tuple[Counter, set]:
    """(make calls per key, PIDs that made them) from the pipeline's call log."""
    path = tmp_path / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(line.rsplit(" ", 1)[0] for line in lines), {int(line.rsplit(" ", 1)[1]) for line in lines}


def key_text(item: int) -> str:
    return f"Square [('item', {item})]"


def pid_of_call(tmp_path: Path, item: int) -> set:
    lines = (tmp_path / "calls.log").read_text().splitlines()
    return {int(line.rsplit(" ", 1)[1]) for line in lines if line.rsplit(" ", 1)[0] == key_text(item)}


def root_query(sql: str, params=None):
    c = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with c.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        c.close()


@pytest.fixture
def mysql_schema():
    """A fresh MariaDB schema name, dropped afterwards."""
    if not mysql_available():
        unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
    name = "djhpc_test_" + uuid.uuid4().hex[:10]
    yield name
    root_query(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mysql_user(mysql_schema):
    """A MariaDB user with a password, allowed on mysql_schema only: (url with password, password)."""
    user = "djhpc_u_" + uuid.uuid4().hex[:8]
    password = "pw-" + secrets.token_hex(12)
    root_query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    root_query(f"GRANT ALL ON `{mysql_schema}`.* TO '{user}'@'%'")
    yield f"mysql://{user}:{password}@127.0.0.1:3306", password
    root_query(f"DROP USER IF EXISTS '{user}'@'%'")


def jobs_rows(schema: str):
    """(status, key, error_message, sched_job_id, sched_task_id, host, pid) of every jobs-table row."""
    rows = root_query(f"SELECT status, `key`, error_message, sched_job_id, sched_task_id, host, pid "
                      f"FROM `{schema}`.`~jobs`")
    return [(r[0], dj.blob.unpack(r[1]) if r[1] else None, *r[2:]) for r in rows]


def history_tasks(schema: str) -> set:
    return {tuple(r) for r in root_query(f"SELECT sched_job_id, sched_task_id FROM `{schema}`.`~history`")}


def submission_rows(schema: str):
    try:
        return root_query(f"SELECT job_id, scheduler, target, table_name, array_size, index_offset, total_tasks, "
                          f"script, settings FROM `{schema}`.`~submissions` ORDER BY id")
    except pymysql.err.ProgrammingError:
        return ()


# --------------------------------------------------------------------------------------- SLURM


def _start_slurm(**env) -> None:
    """start-slurm.sh with KillWait=5; tried again if a concurrent restart (another test run sharing the
    cluster) kills its probe job."""
    for attempt in range(3):
        proc = subprocess.run(["bash", str(START_SLURM)], env={**os.environ, "SLURM_KILLWAIT": KILLWAIT, **env},
                              capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            return
        time.sleep(1 + attempt)
    raise RuntimeError(f"start-slurm.sh failed: {proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def slurm():
    """The single-node cluster, started (idempotently) with KillWait=5 as in CI."""
    need_binary("sbatch")
    if os.geteuid() != 0:
        if subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode != 0:
            unavailable("SLURM is not running and starting it needs root (tests/cluster/start-slurm.sh)")
        return
    try:
        _start_slurm()
    except RuntimeError as e:
        unavailable(str(e))


def squeue_ids(job_ids) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def wait_until_gone(job_ids, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while squeue_ids(job_ids):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *job_ids])
            raise AssertionError(f"jobs {job_ids} still in squeue after {timeout:.0f} s")
        time.sleep(0.5)


def final_states(job_ids, n_tasks: int, timeout: float = 30) -> dict:
    """The state of every task once all n_tasks are known (squeue -t all, then sacct, which lags)."""
    from djhpc.schedulers import TERMINAL_STATES, get_scheduler

    deadline = time.monotonic() + timeout
    while True:
        # sacct may show a whole array as one stale row (JOBID without _TASK): tasks only
        states = {k: v for k, v in get_scheduler("slurm").task_states(job_ids).items() if "_" in k}
        if len(states) >= n_tasks and all(s in TERMINAL_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"task states not final after {timeout:.0f} s: {states}")
        time.sleep(0.5)


def sacct_exit_codes(job_id: str, n_tasks: int, timeout: float = 30) -> dict:
    """{JOBID_TASK: (State, ExitCode)} from sacct, polled until every task is there (it lags)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State,ExitCode"],
                             capture_output=True, text=True).stdout
        rows = {f[0]: (f[1].split(" ")[0], f[2]) for f in (line.split("|") for line in out.splitlines()) if len(f) == 3}
        if len(rows) >= n_tasks and not any(s in ("RUNNING", "PENDING") for s, _ in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct does not show {n_tasks} finished tasks of {job_id}: {out!r}")
        time.sleep(0.5)


def submit(project: Path, env: dict, *args) -> list[str]:
    out = djhpc(["submit", *args], project, env)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert ids and all(i.isdigit() for i in ids), out.stdout
    return ids


def no_secret_anywhere(password: str, project: Path, schema: str) -> None:
    for script in (project / ".djhpc" / "scripts").glob("*.sh"):
        assert password not in script.read_text(), script
    for row in submission_rows(schema):
        assert password not in repr(row)


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
        _start_slurm(SLURM_MAXARRAYSIZE="5")
        yield 5
    finally:
        _start_slurm()


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
    """examples/slurm/README.md: setup, render, submit --array 11, the deliberate failure, retry.
    SQLite on local disk (the example's default) with 11 workers at once; makes shortened to 20-40 ms."""
    project = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "slurm", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "EXAMPLE_"))}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"), EXAMPLE_MAKE_SECONDS="0.02")
    setup = subprocess.run([sys.executable, "setup.py"], cwd=project, env=env, capture_output=True, text=True)
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
