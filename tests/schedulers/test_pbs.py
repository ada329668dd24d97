"""PBS Pro and Torque scripts from `djhpc render`: their directives read back as qsub reads them, and one
task script run here as PBS would run it (PBS_JOBID, PBS_ARRAY_INDEX / PBS_ARRAYID, PBS_O_WORKDIR) does real
work on a real database. There is no PBS server here, so qsub itself is not run (missing qsub: cli tests).
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from support.cluster import cli_env, djhpc, make_project
from support.env import MYSQL_URL, mysql_available, unavailable
from support.pipeline import load_items, make_calls
from support.scripts import bash_syntax_ok, directive_args

import djhpc as dj

FLAGS = ["--array", 4, "--throttle", 2, "--queue", "workq", "--time", "1:30:00", "--mem", "2G", "--cpus", 2,
         "--account", "lab-7", "--after", 123, "--job-name", "my run", "--mail-user", "me@example.org",
         "--mail-type", "END,FAIL"]

EXPECTED = {
    "pbs": ["-N", "my run", "-S", "/bin/bash", "-J", "1-4", "-W", "max_run_subjobs=2", "-q", "workq", "-A", "lab-7",
            "-l", "walltime=01:30:00", "-l", "select=1:ncpus=2:mem=2048mb", "-M", "me@example.org", "-m", "ea",
            "-W", "depend=afterok:123", "-r", "n"],
    "torque": ["-N", "my run", "-S", "/bin/bash", "-t", "1-4%2", "-q", "workq", "-A", "lab-7",
               "-l", "walltime=01:30:00", "-l", "nodes=1:ppn=2", "-l", "mem=2048mb", "-M", "me@example.org",
               "-m", "ea", "-W", "depend=afterok:123", "-r", "n"],
}


@pytest.fixture
def sqlite_project(tmp_path, monkeypatch):
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    project = make_project(tmp_path / "project", "sqlite:///pipeline.db")
    load_items(f"sqlite:///{project}/pipeline.db", schema, 30, monkeypatch, tmp_path)
    return project, schema


@pytest.mark.parametrize("scheduler", ["pbs", "torque"])
def test_directives_read_back(sqlite_project, scheduler, tmp_path):
    project, schema = sqlite_project
    out = djhpc(["render", "--scheduler", scheduler, *FLAGS], project, cli_env(schema, tmp_path))
    assert out.returncode == 0, out.stderr
    script = out.stdout
    bash_syntax_ok(script, tmp_path)
    assert directive_args(script, "#PBS") == EXPECTED[scheduler]
    assert 'cd "${PBS_O_WORKDIR:-.}"' in script and "export DJHPC_TASK_COUNT=4" in script
    assert f"DJHPC_DATABASE_URL=sqlite:///{project}/pipeline.db" in script


def test_one_task_pbs_pro_run_is_a_plain_job(sqlite_project, tmp_path):
    project, schema = sqlite_project
    out = djhpc(["render", "--scheduler", "pbs", "--array", 1], project, cli_env(schema, tmp_path))
    assert out.returncode == 0, out.stderr
    assert "-J" not in directive_args(out.stdout, "#PBS") and "export DJHPC_TASK_ID=1\n" in out.stdout


def history(schema: str) -> set:
    connection = dj.conn()
    table = connection.dialect.table(schema, "~history")
    return {tuple(r) for r in connection.query(f"SELECT sched_job_id, sched_task_id, host FROM {table}").fetchall()}


@pytest.mark.parametrize("scheduler, backend", [("pbs", "sqlite"), ("torque", "mysql"), ("pbs", "mysql")])
def test_task_script_populates(scheduler, backend, tmp_path, monkeypatch, request):
    """The script as PBS runs one array task: in $HOME, with the array index in the environment."""
    if backend == "mysql":
        if not mysql_available():
            unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
        schema = request.getfixturevalue("mysql_schema")
        url = MYSQL_URL
        project = make_project(tmp_path / "project", url)
    else:
        schema = "djhpc_test_" + uuid.uuid4().hex[:10]
        project = make_project(tmp_path / "project", "sqlite:///pipeline.db")
        url = f"sqlite:///{project}/pipeline.db"
    load_items(url, schema, 30, monkeypatch, tmp_path)
    env = cli_env(schema, tmp_path, DJHPC_TEST_FAIL=4)
    out = djhpc(["render", "--scheduler", scheduler, "--array", 4], project, env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "task.sh"
    script.write_text(out.stdout)
    home = tmp_path / "home"
    home.mkdir()
    index = {"pbs": {"PBS_ARRAY_INDEX": "3"}, "torque": {"PBS_ARRAYID": "3"}}[scheduler]
    task_env = {**env, **index, "PBS_JOBID": "777[3].pbs-server", "PBS_O_WORKDIR": str(project), "HOME": str(home)}
    run = subprocess.run(["bash", str(script)], cwd=home, env=task_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr  # one make failed on purpose: exit 1, as `djhpc work` says
    made, _ = make_calls(tmp_path)
    assert len(made) == 30 and set(made.values()) == {1}
    pipeline = __import__("pipeline_counts")
    assert len(pipeline.Square()) == 29
    [error] = pipeline.schema.jobs.fetch(as_dict=True)
    assert (error["status"], error["sched_job_id"], error["sched_task_id"]) == ("error", "777", "3")
    assert {(job, task) for job, task, _ in history(schema)} == {("777", "3")}
    assert not os.listdir(home)  # it worked in PBS_O_WORKDIR, not where PBS started it
