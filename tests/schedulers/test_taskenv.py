"""taskenv: which array task this process is, under every scheduler, and when its allocation ends."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
from pathlib import Path

import pytest

from djhpc.schedulers import SCHEDULERS, SlurmScheduler, TorqueScheduler, taskenv
from djhpc.schedulers.slurm import squeue_end_time
from djhpc.schedulers.taskenv import TaskEnv, allocation_end, current

# ------------------------------------------------------------------------------- the old readers
# Copies of reservation.scheduler_ids and populate.task_position as they were before taskenv: the
# oracle current().ids() and current().position() must agree with on every environment.


def old_scheduler_ids(env) -> tuple[str, str]:
    if env.get("DJHPC_JOB_ID"):
        return env["DJHPC_JOB_ID"], env.get("DJHPC_TASK_ID", "")
    if env.get("SLURM_ARRAY_JOB_ID"):
        return env["SLURM_ARRAY_JOB_ID"], env.get("SLURM_ARRAY_TASK_ID", "")
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"], ""
    if env.get("PBS_JOBID"):
        job = env["PBS_JOBID"].split(".")[0].split("[")[0]
        return job, env.get("PBS_ARRAY_INDEX") or env.get("PBS_ARRAYID") or ""
    if env.get("PARALLEL_SEQ"):
        return "parallel", env["PARALLEL_SEQ"]
    return "", ""


def old_task_position(env) -> float | None:
    try:
        if env.get("DJHPC_TASK_ID") and env.get("DJHPC_TASK_COUNT"):
            task = int(env["DJHPC_TASK_ID"]) + int(env.get("DJHPC_TASK_OFFSET") or 0)
            count = int(env["DJHPC_TASK_COUNT"])
        elif env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
            task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN") or 1) + 1
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            return None
    except ValueError:
        return None
    return ((task - 1) % count) / count if count > 0 else None


# ------------------------------------------------------------------------------ each scheduler


@pytest.mark.parametrize(
    ("env", "scheduler", "ids"),
    [
        pytest.param({}, "", ("", ""), id="nothing"),
        pytest.param(
            {"DJHPC_SCHEDULER": "slurm", "DJHPC_JOB_ID": "4242", "DJHPC_TASK_ID": "7", "DJHPC_TASK_OFFSET": "0",
             "DJHPC_TASK_COUNT": "10", "SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242",
             "SLURM_ARRAY_TASK_ID": "7"},
            "slurm", ("4242", "7"), id="djhpc-script-under-slurm",
        ),
        pytest.param(
            {"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7",
             "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "1"},
            "slurm", ("4242", "7"), id="slurm-array",
        ),
        pytest.param({"SLURM_JOB_ID": "99"}, "slurm", ("99", ""), id="slurm-job"),
        pytest.param({"PBS_JOBID": "123[4].pbs01", "PBS_ARRAY_INDEX": "4"}, "pbs", ("123", "4"), id="pbspro-array"),
        pytest.param({"PBS_JOBID": "123.pbs01"}, "", ("123", ""), id="pbs-job-pro-or-torque"),
        pytest.param(
            {"PBS_JOBID": "77[2].torque", "PBS_ARRAYID": "2", "PBS_WALLTIME": "3600"}, "torque", ("77", "2"),
            id="torque-array",
        ),
        pytest.param({"PBS_JOBID": "77.torque", "PBS_WALLTIME": "60"}, "torque", ("77", ""), id="torque-job"),
        pytest.param({"PARALLEL_SEQ": "3"}, "parallel", ("parallel", "3"), id="parallel-by-hand"),
        pytest.param(
            {"DJHPC_SCHEDULER": "parallel", "DJHPC_JOB_ID": "555", "DJHPC_TASK_ID": "3", "DJHPC_TASK_OFFSET": "0",
             "DJHPC_TASK_COUNT": "4", "PARALLEL_SEQ": "3"},
            "parallel", ("555", "3"), id="parallel-script",
        ),
        pytest.param(
            {"DJHPC_SCHEDULER": "local", "DJHPC_JOB_ID": "31337", "DJHPC_TASK_ID": "2", "DJHPC_TASK_OFFSET": "0",
             "DJHPC_TASK_COUNT": "2"},
            "local", ("31337", "2"), id="local-script",
        ),
        pytest.param({"SLURM_JOB_ID": "8", "PARALLEL_SEQ": "2"}, "slurm", ("8", ""), id="parallel-inside-slurm"),
    ],
)  # fmt: skip
def test_each_scheduler(env: dict, scheduler: str, ids: tuple[str, str]) -> None:
    task = current(env)
    assert task.scheduler == scheduler
    assert task.ids() == ids == old_scheduler_ids(env)
    assert task.position() == old_task_position(env)


def test_fields_of_a_slurm_task() -> None:
    env = {"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "9",
           "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "2"}  # fmt: skip
    assert current(env) == TaskEnv(
        scheduler="slurm", job_id="4242", task_id="9", task_count=8, task_offset=0, task_min=2, task_number=8
    )
    assert current(env).position() == 7 / 8


def test_fields_of_a_djhpc_script() -> None:
    env = {"DJHPC_SCHEDULER": "pbs", "DJHPC_JOB_ID": "123", "DJHPC_TASK_ID": "2", "DJHPC_TASK_OFFSET": "1000",
           "DJHPC_TASK_COUNT": "1500", "PBS_JOBID": "123[2].srv", "PBS_ARRAY_INDEX": "2"}  # fmt: skip
    task = current(env)
    assert task == TaskEnv(
        scheduler="pbs", job_id="123", task_id="2", task_count=1500, task_offset=1000, task_min=None, task_number=1002
    )
    assert task.position() == 1001 / 1500


def test_reads_the_tables_not_names_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A renamed variable in a scheduler's table is what taskenv reads."""
    own = {n for cls in SCHEDULERS.values() for n in cls.task_env_names.values() if n and not n.startswith("DJHPC_")}
    assert {"SLURM_JOB_ID", "SLURM_ARRAY_TASK_MIN", "PBS_JOBID", "PBS_ARRAYID", "PBS_WALLTIME", "PARALLEL_SEQ"} <= own
    source = Path(taskenv.__file__).read_text()
    # whole names: Grid Engine's JOB_ID is inside djhpc's own DJHPC_JOB_ID
    named = [name for name in own if re.search(rf"(?<!\w){name}(?!\w)", source)]
    assert not named, "taskenv names a scheduler's variable: read its table"
    names = dict(SlurmScheduler.task_env_names, job_id="XSLURM_ARRAY_JOB_ID", task_count="XSLURM_COUNT")
    monkeypatch.setattr(SlurmScheduler, "task_env_names", names)
    env = {"XSLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "2", "XSLURM_COUNT": "4"}
    assert current(env).ids() == ("5", "2")
    assert current(env).position() == 0.25
    assert current({"SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "2"}).ids() == ("", "")


# ------------------------------------------------------------------------------------ position


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"DJHPC_TASK_ID": "1", "DJHPC_TASK_COUNT": "4"}, 0.0),
        ({"DJHPC_TASK_ID": "3", "DJHPC_TASK_COUNT": "4"}, 0.5),
        ({"DJHPC_TASK_ID": "4", "DJHPC_TASK_COUNT": "4"}, 0.75),
        ({"DJHPC_TASK_ID": "2", "DJHPC_TASK_OFFSET": "4", "DJHPC_TASK_COUNT": "8"}, 0.625),  # run-wide task 6 of 8
        ({"DJHPC_TASK_ID": "2", "DJHPC_TASK_OFFSET": "", "DJHPC_TASK_COUNT": "8"}, 0.125),
        ({"DJHPC_TASK_ID": "9", "DJHPC_TASK_COUNT": "8"}, 0.0),  # wraps round
        ({"DJHPC_TASK_ID": "0", "DJHPC_TASK_COUNT": "4"}, 0.75),  # (0 - 1) % 4, as before
        ({"DJHPC_TASK_ID": "1", "DJHPC_TASK_COUNT": "0"}, None),
        ({"DJHPC_TASK_ID": "1", "DJHPC_TASK_COUNT": "-3"}, None),
        ({"DJHPC_TASK_ID": "x", "DJHPC_TASK_COUNT": "4"}, None),
        ({"DJHPC_TASK_ID": "1", "DJHPC_TASK_COUNT": "four"}, None),
        ({"DJHPC_TASK_ID": "1", "DJHPC_TASK_OFFSET": "x", "DJHPC_TASK_COUNT": "4"}, None),
        ({"DJHPC_TASK_ID": "2"}, None),  # no count: no position
        ({"DJHPC_TASK_COUNT": "2"}, None),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, 0.5),
        ({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}, 0.5),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": ""}, 0.5),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "x"}, None),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "DJHPC_TASK_OFFSET": "8"}, 0.5),  # not SLURM's
        ({"SLURM_ARRAY_TASK_ID": "3"}, None),
        # djhpc's variables win over SLURM's; a bad one of djhpc's does not fall back to SLURM's
        ({"DJHPC_TASK_ID": "2", "DJHPC_TASK_COUNT": "4",
          "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, 0.25),
        ({"DJHPC_TASK_ID": "z", "DJHPC_TASK_COUNT": "4",
          "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, None),
        ({"DJHPC_TASK_ID": "2", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, 0.5),
        # PBS and GNU parallel number their tasks but do not count them
        ({"PBS_ARRAY_INDEX": "3"}, None),
        ({"PBS_ARRAYID": "3"}, None),
        ({"PARALLEL_SEQ": "3", "DJHPC_TASK_COUNT": "4"}, None),
    ],
)  # fmt: skip
def test_position(env: dict, expected: float | None) -> None:
    assert current(env).position() == expected == old_task_position(env)


def test_position_of_n_tasks_is_n_even_starts() -> None:
    starts = [current({"DJHPC_TASK_ID": str(t), "DJHPC_TASK_COUNT": "5"}).position() for t in range(1, 6)]
    assert starts == [0.0, 0.2, 0.4, 0.6, 0.8]


def test_position_from_fields() -> None:
    assert TaskEnv(task_number=3, task_count=4).position() == 0.5
    assert TaskEnv(task_number=3).position() is None
    assert TaskEnv(task_count=4).position() is None


VALUES = ["", "1", "2", "3", "7", "0", "-1", "x", "123[4].srv", "9.srv"]
NAMES = [
    "DJHPC_JOB_ID", "DJHPC_TASK_ID", "DJHPC_TASK_OFFSET", "DJHPC_TASK_COUNT", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "PBS_JOBID", "PBS_ARRAY_INDEX",
    "PBS_ARRAYID", "PARALLEL_SEQ",
]  # fmt: skip


def test_same_as_the_old_readers_on_mixed_environments() -> None:
    """Any mix of the variables, set, empty or not numbers: the answers of the two readers it replaces."""
    rng = random.Random(12)
    for _ in range(5000):
        env = {name: rng.choice(VALUES) for name in NAMES if rng.random() < 0.4}
        task = current(env)
        assert task.ids() == old_scheduler_ids(env), env
        assert task.position() == old_task_position(env), env


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DJHPC_", "SLURM_", "PBS_", "PARALLEL_")):
            monkeypatch.delenv(name)
    assert current() == TaskEnv()
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    assert current().ids() == ("31", "") and current().scheduler == "slurm"


# ------------------------------------------------------------------------------ allocation end


def fake_squeue(folder: Path, output: str, status: int = 0) -> Path:
    """A squeue that writes its arguments to squeue.args and prints output."""
    folder.mkdir(exist_ok=True)
    path = folder / "squeue"
    path.write_text(f'#!/bin/sh\necho "$@" > "{folder}/squeue.args"\nprintf "%s" "{output}"\nexit {status}\n')
    path.chmod(0o755)
    return folder


@pytest.fixture
def no_squeue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """PATH with nothing but an empty directory: no squeue (put a fake one in the directory returned)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_allocation_end_from_djhpc_end_time() -> None:
    assert allocation_end({"DJHPC_END_TIME": "1700000000.5", "SLURM_JOB_ID": "1", "PBS_WALLTIME": "60"}) == 1700000000.5


def test_allocation_end_djhpc_end_time_not_a_number(caplog: pytest.LogCaptureFixture) -> None:
    assert allocation_end({"DJHPC_END_TIME": "tomorrow", "PBS_WALLTIME": "60"}) is None
    assert "DJHPC_END_TIME='tomorrow' is not a number" in caplog.text


def test_allocation_end_from_squeue(no_squeue: Path) -> None:
    fake_squeue(no_squeue, "2030-01-02T03:04:05\n")
    end = allocation_end({"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"})
    assert end == dt.datetime(2030, 1, 2, 3, 4, 5).timestamp()
    assert (no_squeue / "squeue.args").read_text().split() == ["-h", "-j", "4250", "-o", "%e"]


@pytest.mark.parametrize(("output", "status"), [("Unknown", 0), ("", 0), ("", 1), ("N/A\n", 0)])
def test_allocation_end_squeue_cannot_tell(no_squeue: Path, output: str, status: int) -> None:
    fake_squeue(no_squeue, output, status)
    assert allocation_end({"SLURM_JOB_ID": "4250"}) is None
    assert squeue_end_time("4250") is None


def test_allocation_end_without_squeue(no_squeue: Path) -> None:
    assert allocation_end({"SLURM_JOB_ID": "4250"}) is None
    before = time.time()
    end = allocation_end({"SLURM_JOB_ID": "4250", "PBS_WALLTIME": "60"})  # no squeue: as before, PBS_WALLTIME
    assert end is not None and before + 60 <= end <= time.time() + 60


def test_allocation_end_from_pbs_walltime(no_squeue: Path) -> None:
    before = time.time()
    end = allocation_end({"PBS_JOBID": "77.torque", "PBS_WALLTIME": "3600"})
    assert end is not None and before + 3600 <= end <= time.time() + 3600
    assert TorqueScheduler.allocation_end({"PBS_WALLTIME": "3600"}) is not None
    assert allocation_end({"PBS_WALLTIME": "1:00:00"}) is None
    assert allocation_end({"PBS_JOBID": "77.torque"}) is None
    assert allocation_end({}) is None


def test_walltime_detect_uses_taskenv(monkeypatch: pytest.MonkeyPatch) -> None:
    from djhpc.walltime import Walltime

    monkeypatch.setattr(taskenv, "allocation_end", lambda env=None: 1234.0)
    assert Walltime.detect().end == 1234.0
    monkeypatch.setattr(taskenv, "allocation_end", lambda env=None: None)
    assert Walltime.detect() is None
