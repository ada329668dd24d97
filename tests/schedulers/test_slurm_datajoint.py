"""`djhpc submit` of a pipeline written with DataJoint (0.14.10 and 2.3.5) on the real single-node SLURM cluster.

The project is a temp folder holding tests/pipelines/dj_pipeline.py, unchanged; DataJoint connects as a lab's does,
with DJ_HOST/DJ_USER/DJ_PASS (a MariaDB user with a password, allowed on the test schema only). `djhpc submit` runs
in DataJoint's own interpreter (DJHPC_DATAJOINT_PYTHONS, see tests/cluster/ensure-datajoint.sh) with the repository
on PYTHONPATH, so each array task runs that interpreter too. The password reaches the tasks through the 0600 file
of DJ_* lines the script sources: never the script, the submissions table, nor the environment SLURM keeps.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from support.cluster import cli_env, final_states, root_query, submission_rows, wait_until_gone
from support.env import ROOT, unavailable

import djhpc as dj

PIPELINE = ROOT / "tests" / "pipelines" / "dj_pipeline.py"
KEYS = 220
TASKS = 11


def datajoint_python(label: str) -> str:
    """The interpreter with DataJoint ``label`` ("0.14" or "2") from DJHPC_DATAJOINT_PYTHONS, or skip."""
    pythons = dict(part.partition("=")[::2] for part in os.environ.get("DJHPC_DATAJOINT_PYTHONS", "").split(",")
                   if part)
    path = pythons.get(label)
    if not path or not Path(path).exists():
        unavailable(f"no interpreter with DataJoint {label} (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    return path


@pytest.fixture(params=["2", "0.14"])
def dj_python(request) -> str:
    return datajoint_python(request.param)


class Project:
    """The DataJoint pipeline in a project folder, its commands run in DataJoint's interpreter as the user."""

    def __init__(self, python: str, folder: Path, schema: str, user: str, password: str, tmp_path: Path):
        self.python, self.folder, self.schema, self.password = python, folder, schema, password
        self.calls = tmp_path / "calls.log"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(PIPELINE, folder / "pipeline.py")
        (folder / "djhpc.yaml").write_text("target: pipeline.py:Square\nscheduler: slurm\n", encoding="utf-8")
        self.env = cli_env(schema, tmp_path, DJ_HOST="127.0.0.1", DJ_USER=user, DJ_PASS=password,
                           DJHPC_TEST_SLEEP=0.02)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder)])

    def run(self, *argv, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, *map(str, argv)], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def djhpc(self, *args) -> subprocess.CompletedProcess:
        return self.run("-m", "djhpc.cli.main", *args)

    def fill(self, n: int) -> None:
        done = self.run("-c", f"import pipeline as p; p.Item.insert([(i, i) for i in range({n})])")
        assert done.returncode == 0, done.stderr

    def calls_and_pids(self) -> tuple[Counter, dict]:
        lines = [line.split() for line in self.calls.read_text().splitlines()] if self.calls.exists() else []
        return Counter(int(item) for _, item, _ in lines), {int(item): int(pid) for _, item, pid in lines}

    def tables(self) -> set[str]:
        return {r[0] for r in root_query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                                         (self.schema,))}


def slurm_stored_environment(job_id: str) -> bytes | None:
    """The environment slurmctld keeps with a pending job (root only), or None where it cannot be read."""
    location = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    folder = next((line.split("=", 1)[1].strip() for line in location.splitlines()
                   if line.startswith("StateSaveLocation")), "")
    found = glob.glob(os.path.join(folder, "hash.*", f"job.{job_id}", "environment")) if folder else []
    try:
        return Path(found[0]).read_bytes() if found else None
    except OSError:
        return None


def jobs_rows(schema: str):
    rows = root_query(f"SELECT status, `key`, error_message, sched_job_id, sched_task_id, host, pid "
                      f"FROM `{schema}`.`~djhpc_jobs`")
    return [(r[0], dj.blob.unpack(r[1]) if r[1] else None, *r[2:]) for r in rows]


@pytest.mark.slurm
@pytest.mark.mysql
def test_an_array_of_11_tasks_fills_a_datajoint_table(slurm, dj_python, mysql_user, mysql_schema, tmp_path):
    url, password = mysql_user
    user = url.split("//", 1)[1].split(":", 1)[0]
    project = Project(dj_python, tmp_path / "project", mysql_schema, user, password, tmp_path)
    project.fill(KEYS)
    t0 = time.monotonic()

    # held, so that the environment SLURM stores with the job can be read before a task starts
    out = project.djhpc("submit", "--array", TASKS, "--directive=--hold")
    assert out.returncode == 0, out.stderr
    [job_id] = out.stdout.split()
    assert f"{KEYS} of {KEYS} keys of Square left" in out.stderr and password not in out.stdout + out.stderr
    try:
        stored = slurm_stored_environment(job_id)  # the job's environment as slurmctld keeps it (root reads it)
        assert stored is not None or os.geteuid() != 0
        if stored is not None:
            assert b"DJHPC_TEST_CALLS=" in stored and password.encode() not in stored
    finally:
        subprocess.run(["scontrol", "release", job_id], capture_output=True)
    wait_until_gone([job_id], timeout=120)
    states = final_states([job_id], TASKS)
    elapsed = time.monotonic() - t0

    # the task that met item 13 exits 1 (a make failed); every other finds nothing left: 0
    assert Counter(str(s) for s in states.values()) == {"COMPLETED": TASKS - 1, "FAILED": 1}, states
    calls, pid_of = project.calls_and_pids()
    assert set(calls) == set(range(KEYS)) and set(calls.values()) == {1}, calls.most_common(3)
    assert root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0] == KEYS - 1
    [(status, key, message, sched_job, sched_task, host, pid)] = jobs_rows(mysql_schema)
    assert (status, key, message) == ("error", {"item": 13}, "ValueError: thirteen is unlucky")
    assert sched_job == job_id and 1 <= int(sched_task) <= TASKS and str(states[f"{job_id}_{sched_task}"]) == "FAILED"
    assert host == socket.gethostname() and pid == pid_of[13]
    history = f"SELECT sched_job_id, sched_task_id FROM `{mysql_schema}`.`~djhpc_history`"
    tasks = {tuple(r) for r in root_query(history)}
    assert {job for job, _ in tasks} == {job_id}
    assert len({task for _, task in tasks}) > 1 and len(set(pid_of.values())) > 1, "one task did all the work"
    assert not {"~jobs", "~~square"} & project.tables()  # DataJoint's own jobs tables: not created, not used

    # the run is recorded in the pipeline's schema; the script runs DataJoint's interpreter and holds no password
    [row] = submission_rows(mysql_schema)
    assert row[:7] == (job_id, "slurm", f"{project.folder}/pipeline.py:Square", "__square", TASKS, 0, TASKS)
    assert password not in repr(row)
    script = Path(row[7]).read_text()
    assert password not in script and "DJ_PASS=" not in script
    assert f"exec {dj_python} -m djhpc.cli.main work {project.folder}/pipeline.py:Square" in script
    [credentials] = (tmp_path / "config" / "djhpc" / "credentials").iterdir()
    assert credentials.name.endswith(".dj.env") and f"export DJHPC_DATAJOINT_ENV_FILE={credentials}\n" in script
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    for log in project.folder.glob("djhpc-*.err"):
        assert password not in log.read_text()
    print(f"DataJoint {dj_python}: {TASKS}-task array over {KEYS} keys, {elapsed:.1f} s from submit to all done")

    # nothing left but the error: a second submit submits nothing
    again = project.djhpc("submit", "--array", TASKS)
    assert again.returncode == 0 and again.stdout == "" and "nothing to submit" in again.stderr, again.stderr
    assert "1 in error" in again.stderr and len(submission_rows(mysql_schema)) == 1
