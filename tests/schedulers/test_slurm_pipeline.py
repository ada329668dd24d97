"""`djhpc submit PIPELINE` on the real single-node SLURM cluster (partitions debug and gpu): tests/pipelines/chain.py
on MariaDB, through a user with a password, one array per resource class.

Segment asks for the gpu partition: its class's array runs on gpu and makes Segment only; the default class's array
makes the four other tables. Every key is made once; Motion fails for session 3 on purpose, and nothing that depends
on it is made.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest
from support.chain import TABLES, ChainProject
from support.cluster import final_states, jobs_rows, no_secret_anywhere, root_query, submission_rows, wait_until_gone

SESSIONS = range(1, 11)
FAILING = 3
DEFAULT_CLASS = ("Motion", "Trace", "Quality", "Summary")  # chain.py's tables without resources


def sacct_jobs(job_ids, since: float, timeout: float = 60) -> dict:
    """{job id: (job name, partition)} of whole arrays, from sacct: jobs since ``since`` (a restarted cluster may
    give a job id again, and its accounting keeps the old job's row). slurmdbd records a job after slurmctld ends
    it: until then sacct shows it as ("allocation", ""), so this asks again until every row is complete."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", start, "-j", ",".join(job_ids), "-o",
                              "JobID,JobName,Partition"], capture_output=True, text=True, check=True).stdout
        found = {}
        for line in out.splitlines():
            job, name, partition = line.split("|")
            found.setdefault(job.split("_")[0], set()).add((name, partition))
        complete = set(found) == set(job_ids) and all(p for rows in found.values() for _, p in rows)
        if complete or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.mark.slurm
@pytest.mark.mysql
def test_one_array_per_resource_class_makes_every_key_once(slurm, mysql_user, mysql_schema, tmp_path):
    url, password = mysql_user
    project = ChainProject.create(tmp_path / "project", url, mysql_schema, yaml="scheduler: slurm\n",
                                  DJHPC_TEST_FAIL=FAILING, DJHPC_TEST_SLEEP=0.05)
    project.add_sessions(SESSIONS)
    submitted_at = time.time()
    out = project.djhpc("submit", "chain.py", "--array", 3, "--time", "10m")
    assert out.returncode == 0, out.stderr
    default_job, gpu_job = out.stdout.split()
    wait_until_gone([default_job, gpu_job], timeout=240)

    # the arrays: named after pipeline and class, the gpu class's on the gpu partition
    states = final_states([default_job, gpu_job], 6)
    jobs = sacct_jobs([default_job, gpu_job], submitted_at)
    assert jobs[default_job] == {("djhpc-chain-default", "debug")}, jobs
    assert jobs[gpu_job] == {("djhpc-chain-gpu", "gpu")}, jobs
    assert {s for k, s in states.items() if k.startswith(gpu_job + "_")} == {"COMPLETED"}, states
    # the task that met session 3 exits 1 (a make failed); the others find nothing left
    assert Counter(str(s) for k, s in states.items() if k.startswith(default_job + "_")) == \
        {"COMPLETED": 2, "FAILED": 1}, states

    # every key made once, by the array of its table's class; nothing below the failed key
    made = [s for s in SESSIONS if s != FAILING]
    calls = project.counts()
    assert calls == {(t, s): 1 for t in TABLES for s in made}, calls  # (chain.py logs a make that succeeds)
    history = root_query(f"SELECT table_name, sched_job_id, COUNT(*) FROM `{mysql_schema}`.`~history` "
                         "GROUP BY table_name, sched_job_id")
    expected = {("__" + t.lower(), default_job, len(made)) for t in DEFAULT_CLASS}
    assert set(history) == expected | {("__segment", gpu_job, len(made))}, history
    for table in TABLES:
        [(n,)] = root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__{table.lower()}`")
        assert n == len(made), table
    [(status, key, message, sched_job, *_)] = jobs_rows(mysql_schema)
    assert (status, key, sched_job) == ("error", {"session": FAILING}, default_job)
    assert f"session {FAILING}: the recording is corrupt" in message

    # both submissions recorded (status and cancel read them); no password in them or in the scripts
    rows = submission_rows(mysql_schema)
    assert [(r[0], r[3], r[4]) for r in rows] == [(default_job, "__motion,__trace,__quality,__summary", 3),
                                                  (gpu_job, "__segment", 3)]
    assert [json.loads(r[8])["resource_class"] for r in rows] == ["default", "gpu"]
    no_secret_anywhere(password, project.folder, mysql_schema)
    out = project.djhpc("status", "--schema", mysql_schema, "--quiet")
    assert out.returncode == 0, out.stderr
    assert {tuple(line.split("\t")[:3]) for line in out.stdout.splitlines()} == {
        (default_job, "slurm", "Motion, Trace, Quality, Summary"), (gpu_job, "slurm", "Segment")}

    # all that is left failed or is blocked by the failure: nothing to submit
    out = project.djhpc("submit", "chain.py", "--array", 3)
    assert out.returncode == 0 and out.stdout == "", out.stderr
    assert "1 blocked by a failure upstream" in out.stderr and "nothing to submit: no keys left of chain" in out.stderr


@pytest.mark.slurm
@pytest.mark.mysql
def test_an_unknown_partition_is_refused_by_asking_sinfo(slurm, mysql_schema, tmp_path):
    project = ChainProject.create(tmp_path / "project", "mysql://root@127.0.0.1:3306", mysql_schema,
                                  yaml="scheduler: slurm\ntables:\n  Quality: {partition: bigmem}\n")
    project.add_sessions([1])
    out = project.djhpc("submit", "chain.py", "--array", 2)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "the bigmem class (Quality) asks for partition 'bigmem', which slurm does not have (it has debug, gpu)" \
        in out.stderr
    assert out.stdout == "" and not (project.folder / ".djhpc").exists() and submission_rows(mysql_schema) == ()


@pytest.mark.slurm
@pytest.mark.mysql
def test_cancel_finds_every_class_array(slurm, mysql_schema, tmp_path):
    project = ChainProject.create(tmp_path / "project", "mysql://root@127.0.0.1:3306", mysql_schema,
                                  yaml="scheduler: slurm\n", DJHPC_TEST_SLEEP=30)
    project.add_sessions([1, 2])
    out = project.djhpc("submit", "chain.py", "--array", 1)
    assert out.returncode == 0, out.stderr
    job_ids = out.stdout.split()
    assert len(job_ids) == 2
    try:
        out = project.djhpc("cancel", "--schema", mysql_schema, "--json")
        assert out.returncode == 0, out.stderr
        [order] = json.loads(out.stdout)["cancelled"]
        assert sorted(order["job_ids"]) == sorted(job_ids)
        wait_until_gone(job_ids, timeout=60)
    finally:
        subprocess.run(["scancel", *job_ids], capture_output=True)
