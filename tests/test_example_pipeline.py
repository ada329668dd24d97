"""examples/pipeline's walkthrough followed as written: the copy step from the README (tracked files only, HOME in
tmp_path), setup, the plan, one submit (one array per resource class), the deliberate failure, the fix, a second
submit. Once with local workers (the README's 'Without SLURM'), once on the real SLURM, whose `gpu` partition
stands in for a GPU one. What the issue asks of the run, read from the history rows each make writes in its own
transaction: every key of every table made once, a downstream key finished before the last upstream key (no
barrier between tables), the failed key's dependants (and only they) left unmade, the gpu array making only
Segmentation. Nothing lands in the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from support.cluster import djhpc, wait_until_gone
from support.env import ROOT
from support.examples import follow_setup, source_status

from djhpc.schedulers.local import pid_alive

TABLES = ("MotionCorrection", "Behavior", "Segmentation", "Traces", "Events", "Summary")
BELOW_MOTION = ("Segmentation", "Traces", "Events", "Summary")


def walkthrough_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "EXAMPLE_"))}
    # makes at a tenth of their length: MotionCorrection's 60 keys then last ~2 s over four workers, longer than
    # a waiting gpu worker's first looks (0.5 s, then 1 s later), so that pipelining shows whatever the load
    # (with 0.03 the motion corrections could all end before a gpu worker looked again)
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"), EXAMPLE_MAKE_SECONDS="0.1",
               DJHPC_PIPELINE_LOOK_SECONDS="0.5")
    return env


def history(project: Path, env: dict) -> list[dict]:
    """Every history row: table, key hash, the run's job id, when the make started and how long it took."""
    code = ("import json, pipeline, djhpc as dj; c = dj.conn(); t = c.dialect.table(pipeline.schema.database, "
            "'~history'); print(json.dumps([[str(v) for v in r] for r in c.query('SELECT table_name, key_hash, "
            "sched_job_id, started_at, duration FROM ' + t).fetchall()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    from datetime import datetime

    return [dict(table=r[0], key_hash=r[1], job=r[2],
                 end=datetime.fromisoformat(r[3]).timestamp() + float(r[4])) for r in rows]


def class_tables(rows: list[dict], job: str) -> set[str]:
    return {r["table"] for r in rows if r["job"].split("_")[0] == job}


def check_first_run(project: Path, env: dict, jobs: dict) -> None:
    rows = history(project, env)
    made = Counter((r["table"], r["key_hash"]) for r in rows)
    assert max(made.values()) == 1, "a key was made twice"
    per_table = Counter(r["table"] for r in rows)
    assert per_table == {"__motion_correction": 59, "__behavior": 60, "__segmentation": 59, "__traces": 59,
                         "__events": 59, "__summary": 59}, per_table
    last_motion = max(r["end"] for r in rows if r["table"] == "__motion_correction")
    assert any(r["end"] < last_motion for r in rows if r["table"] in ("__segmentation", "__traces", "__summary")), \
        "no downstream key was made before the last motion correction: a barrier between tables"
    assert class_tables(rows, jobs["gpu"]) == {"__segmentation"}
    assert "__segmentation" not in class_tables(rows, jobs["default"])

    progress = djhpc(["progress", "--json"], project, env)
    assert progress.returncode == 0, progress.stderr
    by_table = {r["table"]: r for r in json.loads(progress.stdout)}
    assert list(by_table) == ["MotionCorrection", "Behavior", "Segmentation", "Traces", "Events", "Summary"] or \
        set(by_table) == set(TABLES), list(by_table)
    assert (by_table["MotionCorrection"]["done"], by_table["MotionCorrection"]["error"]) == (59, 1)
    assert by_table["Behavior"]["done"] == 60 and not by_table["Behavior"]["blocked"]
    for table in BELOW_MOTION:
        assert (by_table[table]["done"], by_table[table]["blocked"]) == (59, 1), by_table[table]

    errors = djhpc(["jobs", "errors"], project, env)
    assert errors.returncode == 0 and "frames are blank" in errors.stdout, errors.stdout + errors.stderr


def submitted(out: subprocess.CompletedProcess) -> dict:
    """{class: job id} from a pipeline submit's stderr lines naming each array."""
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 2, out.stdout + out.stderr
    jobs = {}
    for line in out.stderr.splitlines():
        for job in ids:
            if line.endswith(f"as job {job}") or f"as job {job};" in line:
                jobs["gpu" if "gpu class" in line else "default"] = job
    assert set(jobs) == {"gpu", "default"}, out.stderr
    return jobs


def wait_local(job_ids, timeout=240) -> None:
    deadline = time.monotonic() + timeout
    for job in job_ids:
        while pid_alive(int(job)):
            assert time.monotonic() < deadline, f"local run {job} still running after {timeout} s"
            time.sleep(0.2)


def follow(tmp_path, scheduler: str, wait) -> None:
    before = source_status("examples")
    env = walkthrough_env(tmp_path)
    project, setup = follow_setup("pipeline", tmp_path, env)
    assert setup.returncode == 0 and "60 of 60 sessions to process" in setup.stdout, setup.stdout + setup.stderr
    assert project == tmp_path / "home" / "djhpc-pipeline-example"

    plan = djhpc(["submit", "--plan"], project, env)
    assert plan.returncode == 0 and "gpu" in plan.stdout and "Segmentation" in plan.stdout, plan.stdout + plan.stderr
    assert not djhpc(["status", "--schema", "djhpc_pipeline_example"], project, env).stdout.count("djhpc-pipeline")

    jobs = submitted(djhpc(["submit", "--array", 4, "--scheduler", scheduler], project, env))
    wait(list(jobs.values()))
    check_first_run(project, env, jobs)

    env["EXAMPLE_FIXED"] = "1"
    retried = djhpc(["jobs", "retry", "--yes"], project, env)
    assert retried.returncode == 0, retried.stderr
    again = djhpc(["submit", "--array", 4, "--scheduler", scheduler], project, env)
    assert again.returncode == 0, again.stderr
    wait(again.stdout.split())
    progress = djhpc(["progress", "--json"], project, env)
    assert all(r["done"] == 60 and not r["error"] for r in json.loads(progress.stdout)), progress.stdout
    made = Counter((r["table"], r["key_hash"]) for r in history(project, env))
    assert len(made) == 6 * 60 and max(made.values()) == 1
    assert source_status("examples") == before, "the walkthrough wrote into the source tree"


def test_pipeline_example_walkthrough_with_local_workers(tmp_path):
    follow(tmp_path, "local", wait_local)


def test_pipeline_example_walkthrough_on_slurm(slurm, tmp_path):
    follow(tmp_path, "slurm", lambda ids: wait_until_gone(ids, timeout=240))
