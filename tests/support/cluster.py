"""Projects run through the ``djhpc`` command as on a cluster: a project folder, the command's environment,
the MariaDB schema as root sees it, and the single-node SLURM cluster (sbatch, squeue, sacct)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pymysql

import djhpc as dj
from support.env import ROOT
from support.pipeline import PIPELINE

START_SLURM = ROOT / "tests" / "cluster" / "start-slurm.sh"
KILLWAIT = "5"


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


def submit(project: Path, env: dict, *args) -> list[str]:
    """`djhpc submit ARGS` in the project: the job ids it prints."""
    out = djhpc(["submit", *args], project, env)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert ids and all(i.isdigit() for i in ids), out.stdout
    return ids


# ------------------------------------------------------------------ the MariaDB schema, as root sees it
def root_query(sql: str, params=None):
    c = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with c.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        c.close()


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


def no_secret_anywhere(password: str, project: Path, schema: str) -> None:
    for script in (project / ".djhpc" / "scripts").glob("*.sh"):
        assert password not in script.read_text(), script
    for row in submission_rows(schema):
        assert password not in repr(row)


# ------------------------------------------------------------------ SLURM
def start_slurm(**env) -> None:
    """start-slurm.sh with KillWait=5; tried again if a concurrent restart (another test run sharing the
    cluster) kills its probe job."""
    for attempt in range(3):
        proc = subprocess.run(["bash", str(START_SLURM)], env={**os.environ, "SLURM_KILLWAIT": KILLWAIT, **env},
                              capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            return
        time.sleep(1 + attempt)
    raise RuntimeError(f"start-slurm.sh failed: {proc.stderr[-2000:]}")


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
