"""Scheduler commands: task-state parsing of captured output, and submit/query against fake binaries."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from support.scripts import write_executable

from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import SCHEDULER_NAMES, Profile
from djhpc.schedulers import (
    TERMINAL_STATES,
    LocalScheduler,
    ParallelScheduler,
    PbsScheduler,
    SiteLimits,
    SlurmScheduler,
    TaskState,
    TorqueScheduler,
    default_scheduler_name,
    get_scheduler,
)
from djhpc.schedulers.local import pid_alive
from djhpc.schedulers.pbs import (
    parse_qmgr_max_array,
    parse_qstat_full,
    parse_qstat_json,
    pbs_state,
    qstat_ids,
    split_job_id,
)
from djhpc.schedulers.slurm import (
    expand_job_ids,
    merge_states,
    parse_max_submit,
    parse_scontrol_config,
    parse_states,
    slurm_state,
)

S = TaskState

# ------------------------------------------------------------------------------ captured output

SQUEUE = """\
12_5|PENDING
12_6|PENDING
12_3|RUNNING
12_4|COMPLETING
12_1|COMPLETED
12_2|FAILED
"""

# sacct lags: 12_[4-6] is a stale row from before the tasks started
SACCT = """\
12_1|COMPLETED
12_2|FAILED
12_3|RUNNING
12_[4-6]|PENDING
13_1|CANCELLED by 1000
13_2|TIMEOUT
13_3|NODE_FAIL
13_4|OUT_OF_MEMORY
13_5|PREEMPTED
13_6|BOOT_FAIL
13_[7-9,11%2]|PENDING
14|COMPLETED
"""

QSTAT_JSON = """{
    "timestamp":1700000000,
    "pbs_version":"2022.1.1",
    "pbs_server":"pbs01",
    "Jobs":{
        "101[].pbs01":{"Job_Name":"djhpc", "job_state":"B", "array":"True"},
        "101[1].pbs01":{"job_state":"X", "Exit_status":0},
        "101[2].pbs01":{"job_state":"X", "Exit_status":1},
        "101[3].pbs01":{"job_state":"R"},
        "101[4].pbs01":{"job_state":"Q"},
        "101[5].pbs01":{"job_state":"X", "Exit_status":-29},
        "101[6].pbs01":{"job_state":"X", "Exit_status":271},
        "101[7].pbs01":{"job_state":"X", "Exit_status":-27},
        "101[8].pbs01":{"job_state":"S"},
        "102.pbs01":{"job_state":"F", "Exit_status":0},
        "103.pbs01":{"job_state":"F"}
    }
}
"""

QSTAT_TORQUE = """\
Job Id: 200[1].torque01
    Job_Name = djhpc-1
    Job_Owner = me@login01
    job_state = C
    queue = batch
    Variable_List = PBS_O_QUEUE=batch,PBS_O_HOME=/home/me,
\tPBS_O_WORKDIR=/home/me/proj
    exit_status = 0

Job Id: 200[2].torque01
    job_state = C
    exit_status = -11

Job Id: 200[3].torque01
    job_state = R
Job Id: 200[4].torque01
    job_state = C
    exit_status = 271
Job Id: 200[5].torque01
    job_state = H
"""

SCONTROL = """\
Configuration data as of 2024-05-01T10:00:00
AccountingStorageType   = accounting_storage/slurmdbd
MaxArraySize            = 1001
MaxJobCount             = 10000
SchedulerParameters     = batch_sched_delay=0,sched_min_interval=0
"""


def test_parse_squeue() -> None:
    assert parse_states(SQUEUE, "squeue") == {
        "12_5": S.PENDING, "12_6": S.PENDING, "12_3": S.RUNNING, "12_4": S.RUNNING,
        "12_1": S.COMPLETED, "12_2": S.FAILED,
    }  # fmt: skip


def test_parse_sacct_expands_array_ranges() -> None:
    states = parse_states(SACCT, "sacct")
    assert states["13_1"] is S.CANCELLED
    assert [states[f"13_{i}"] for i in (2, 3, 4, 5, 6)] == [
        S.TIMEOUT,
        S.NODE_FAIL,
        S.OUT_OF_MEMORY,
        S.PREEMPTED,
        S.NODE_FAIL,
    ]
    assert {k for k, v in states.items() if k.startswith("13_") and v is S.PENDING} == {"13_7", "13_8", "13_9", "13_11"}
    assert states["14"] is S.COMPLETED


def test_squeue_wins_over_lagging_sacct() -> None:
    merged = merge_states(parse_states(SQUEUE, "squeue"), parse_states(SACCT, "sacct"))
    assert merged["12_4"] is S.RUNNING and merged["12_5"] is S.PENDING and merged["13_2"] is S.TIMEOUT


@pytest.mark.parametrize(
    "word,state",
    [
        ("CANCELLED by 0", S.CANCELLED),
        ("CANCELLED+", S.CANCELLED),
        ("OUT_OF_ME+", S.OUT_OF_MEMORY),
        ("REQUEUED", S.PENDING),
        ("DEADLINE", S.TIMEOUT),
        ("SUSPENDED", S.SUSPENDED),
        ("WEIRD", S.UNKNOWN),
    ],
)
def test_slurm_state_words(word: str, state: TaskState) -> None:
    assert slurm_state(word) is state


def test_expand_job_ids() -> None:
    assert expand_job_ids("12_[1-3,7]") == ["12_1", "12_2", "12_3", "12_7"]
    assert expand_job_ids("12_3.batch") == []
    with pytest.raises(SchedulerError, match="cannot read SLURM job id"):
        expand_job_ids("garbage")


def test_unparseable_output_is_quoted() -> None:
    with pytest.raises(SchedulerError, match="cannot read squeue output line 'slurm_load_jobs error'"):
        parse_states("slurm_load_jobs error\n", "squeue")


def test_parse_qstat_json() -> None:
    assert parse_qstat_json(QSTAT_JSON) == {
        "101_1": S.COMPLETED, "101_2": S.FAILED, "101_3": S.RUNNING, "101_4": S.PENDING, "101_5": S.TIMEOUT,
        "101_6": S.CANCELLED, "101_7": S.OUT_OF_MEMORY, "101_8": S.SUSPENDED, "102_1": S.COMPLETED,
        "103_1": S.CANCELLED,
    }  # fmt: skip
    with pytest.raises(SchedulerError, match="cannot read qstat JSON"):
        parse_qstat_json("{not json")


def test_parse_qstat_full_torque() -> None:
    assert parse_qstat_full(QSTAT_TORQUE, "torque") == {
        "200_1": S.COMPLETED, "200_2": S.TIMEOUT, "200_3": S.RUNNING, "200_4": S.CANCELLED, "200_5": S.PENDING,
    }  # fmt: skip


def test_pbs_exit_codes_depend_on_the_flavour() -> None:
    assert pbs_state("F", -11, "torque") is S.TIMEOUT  # JOB_EXEC_OVERLIMIT_WT
    assert pbs_state("F", -11, "pbs") is S.FAILED  # JOB_EXEC_RERUN on PBS Pro, not a walltime kill
    assert pbs_state("X", -20, "pbs") is S.NODE_FAIL


def test_split_job_id() -> None:
    assert split_job_id("123[4].server.example.org") == ("123", "4")
    assert split_job_id("123[].server") == ("123", "")
    assert split_job_id("123.server") == ("123", None)
    with pytest.raises(SchedulerError):
        split_job_id("abc")


def test_qstat_ids() -> None:
    assert qstat_ids(["101", "101[].pbs01", "102[3].pbs01", "101"]) == ["101[]", "101", "101[].pbs01", "102[].pbs01"]


def test_site_limit_parsers() -> None:
    assert parse_scontrol_config(SCONTROL)["MaxArraySize"] == "1001"
    assert parse_max_submit("\n500\n\n200\n") == 200
    assert parse_max_submit("\n\n") is None
    assert parse_qmgr_max_array("Server pbs01\n    max_array_size = 10000\n") == 10000
    assert parse_qmgr_max_array("    max_job_array_size = 500\n") == 500
    assert parse_qmgr_max_array("nothing") is None


def test_terminal_states() -> None:
    assert S.RUNNING not in TERMINAL_STATES and S.PENDING not in TERMINAL_STATES
    assert {S.TIMEOUT, S.NODE_FAIL, S.CANCELLED, S.COMPLETED} <= TERMINAL_STATES
    assert str(S.RUNNING) == "RUNNING" and S.RUNNING == "RUNNING"


# ------------------------------------------------------------------------------ fake commands


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory first on PATH, and a cwd of its own; fakes go into it."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def fake(bin_dir: Path, name: str, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
    """A fake command that records its argv in NAME.args and prints canned output."""
    (bin_dir / f"{name}.out").write_text(stdout)
    (bin_dir / f"{name}.err").write_text(stderr)
    return write_executable(
        bin_dir / name,
        f'#!/bin/bash\nprintf "%s\\n" "$@" > "{bin_dir}/{name}.args"\n'
        f'cat "{bin_dir}/{name}.out"\ncat "{bin_dir}/{name}.err" >&2\nexit {code}\n',
    )


def args_of(bin_dir: Path, name: str) -> list[str]:
    return (bin_dir / f"{name}.args").read_text().splitlines()


def test_slurm_task_states_asks_squeue_and_sacct(bin_dir: Path) -> None:
    fake(bin_dir, "squeue", SQUEUE)
    fake(bin_dir, "sacct", SACCT)
    states = SlurmScheduler().task_states(["12", "13_4", "12"])
    assert states["12_4"] is S.RUNNING and states["13_2"] is S.TIMEOUT
    assert args_of(bin_dir, "squeue") == ["-h", "-r", "-t", "all", "-j", "12,13", "-o", "%i|%T"]
    assert args_of(bin_dir, "sacct") == ["-X", "-n", "-P", "-j", "12,13", "-o", "JobID,State"]


def test_slurm_task_states_without_accounting(bin_dir: Path) -> None:
    fake(bin_dir, "squeue", SQUEUE)
    fake(bin_dir, "sacct", "", "Slurm accounting storage is disabled\n", 1)
    assert SlurmScheduler().task_states(["12"]) == parse_states(SQUEUE, "squeue")


def test_slurm_task_states_for_forgotten_jobs(bin_dir: Path) -> None:
    fake(bin_dir, "squeue", "", "slurm_load_jobs error: Invalid job id specified\n", 1)
    fake(bin_dir, "sacct", "14|COMPLETED\n")
    assert SlurmScheduler().task_states(["14"]) == {"14": S.COMPLETED}
    assert SlurmScheduler().task_states([]) == {}


def test_slurm_task_states_when_slurmctld_is_down(bin_dir: Path) -> None:
    fake(bin_dir, "squeue", "", "slurm_load_jobs error: Unable to contact slurm controller\n", 1)
    with pytest.raises(SchedulerError, match="squeue .* failed \\(exit 1\\): slurm_load_jobs error: Unable to"):
        SlurmScheduler().task_states(["14"])


def test_sbatch_submit(bin_dir: Path) -> None:
    fake(bin_dir, "sbatch", "4242;cluster\n")
    old = os.umask(0o077)
    try:
        ids = SlurmScheduler().submit("#!/bin/bash\necho hi\n")
    finally:
        os.umask(old)
    assert ids == ["4242"]
    argv = args_of(bin_dir, "sbatch")
    assert argv[0] == "--parsable"
    script = Path(argv[1])
    assert script.parent == Path.cwd() / ".djhpc" / "scripts"
    assert stat.S_IMODE(script.stat().st_mode) == 0o644
    assert script.read_text() == "#!/bin/bash\necho hi\n"


def test_sbatch_dry_run_only_writes(bin_dir: Path) -> None:
    scheduler = SlurmScheduler()
    assert scheduler.submit("#!/bin/bash\n", dry_run=True) == []
    assert scheduler.last_script is not None and scheduler.last_script.exists()
    assert not (bin_dir / "sbatch.args").exists()


def test_sbatch_failure_is_one_line(bin_dir: Path) -> None:
    fake(bin_dir, "sbatch", "", "sbatch: error: Batch job submission failed:\n  Invalid account specified\n", 1)
    with pytest.raises(SchedulerError) as info:
        SlurmScheduler().submit("#!/bin/bash\n")
    message = str(info.value)
    assert "\n" not in message
    assert "failed (exit 1): sbatch: error: Batch job submission failed: Invalid account specified" in message


def test_sbatch_garbage(bin_dir: Path) -> None:
    fake(bin_dir, "sbatch", "Submitted batch job 12\n")
    with pytest.raises(SchedulerError, match="not a job id"):
        SlurmScheduler().submit("#!/bin/bash\n")


@pytest.mark.parametrize(
    "scheduler,command,message",
    [
        (SlurmScheduler, "sbatch", "sbatch not found on PATH: run this on a SLURM login node or use --scheduler local"),
        (PbsScheduler, "qsub", "qsub not found on PATH: run this on a PBS login node or use --scheduler local"),
        (ParallelScheduler, "parallel", "parallel not found on PATH: install GNU parallel or use --scheduler local"),
    ],
)
def test_missing_binaries(
    scheduler: type, command: str, message: str, bin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SchedulerError) as info:
        scheduler().submit("#!/bin/bash\n")
    assert str(info.value) == message


def test_qsub_submit_and_states(bin_dir: Path) -> None:
    fake(bin_dir, "qsub", "101[].pbs01\n")
    assert PbsScheduler().submit("#!/bin/bash\n") == ["101[].pbs01"]
    fake(bin_dir, "qstat", QSTAT_JSON, "qstat: Unknown Job Id 99.pbs01\n", 153)
    states = PbsScheduler().task_states(["101[].pbs01", "99.pbs01"])
    assert states["101_5"] is S.TIMEOUT
    assert args_of(bin_dir, "qstat") == ["-x", "-f", "-F", "json", "-t", "101[].pbs01", "99.pbs01"]
    # the reaper asks with DJHPC_JOB_ID, the number alone
    PbsScheduler().task_states(["101"])
    assert args_of(bin_dir, "qstat")[-2:] == ["101[]", "101"]


def test_old_pbs_without_json(bin_dir: Path) -> None:
    write_executable(
        bin_dir / "qstat",
        '#!/bin/bash\nfor a in "$@"; do [ "$a" = -F ] && { echo "qstat: invalid option -- F" >&2; '
        'echo "usage: qstat ..." >&2; exit 2; }; done\n'
        "printf 'Job Id: 5[1].pbs01\\n    job_state = X\\n    Exit_status = 0\\n'\n",
    )
    assert PbsScheduler().task_states(["5[].pbs01"]) == {"5_1": S.COMPLETED}


def test_torque_states(bin_dir: Path) -> None:
    fake(bin_dir, "qstat", QSTAT_TORQUE)
    assert TorqueScheduler().task_states(["200[].torque01"])["200_2"] is S.TIMEOUT
    assert args_of(bin_dir, "qstat") == ["-f", "-t", "200[].torque01"]


def test_site_limits(bin_dir: Path) -> None:
    fake(bin_dir, "scontrol", SCONTROL)
    fake(bin_dir, "sacctmgr", "\n300\n")
    assert SlurmScheduler().site_limits() == SiteLimits(max_array_size=1001, max_submit_jobs=300)
    fake(bin_dir, "sacctmgr", "", "sacctmgr: error: accounting storage is disabled\n", 1)
    assert SlurmScheduler().site_limits() == SiteLimits(max_array_size=1001, max_submit_jobs=None)
    fake(bin_dir, "qmgr", "Server pbs01\n    max_array_size = 10000\n")
    assert PbsScheduler().site_limits() == SiteLimits(max_array_size=10000)


def test_local_submit_runs_detached(
    bin_dir: Path, fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DJHPC_OUT", str(out))
    monkeypatch.setenv("FAKE_DJHPC_SLEEP", "0.3")
    scheduler = LocalScheduler()
    script = scheduler.render(Profile(), target="t.T", array_size=2)
    [job_id] = scheduler.submit(script)
    assert scheduler.task_states([job_id, f"{job_id}_2"]) == {job_id: S.RUNNING, f"{job_id}_2": S.RUNNING}
    deadline = time.monotonic() + 20
    while pid_alive(int(job_id)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert scheduler.task_states([job_id]) == {}
    assert (out / "task-2.argv").exists()
    assert scheduler.last_script is not None and scheduler.last_script.with_suffix(".log").exists()


def test_parallel_refuses_moreutils(bin_dir: Path) -> None:
    fake(bin_dir, "parallel", "parallel: invalid option -- '-'\n")
    with pytest.raises(SchedulerError, match="not GNU parallel"):
        ParallelScheduler().submit("#!/bin/bash\n")


def test_get_scheduler(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("slurm", "pbs", "torque", "parallel", "local", "SLURM", "pbspro"):
        assert get_scheduler(name).name == name.lower().replace("pbspro", "pbs")
    with pytest.raises(UsageError) as info:
        get_scheduler("x")
    assert str(info.value) == f"unknown scheduler 'x' (choose {', '.join(SCHEDULER_NAMES)})"
    assert "lsf" in SCHEDULER_NAMES and "htcondor" in SCHEDULER_NAMES and get_scheduler("condor").name == "htcondor"
    monkeypatch.setenv("PATH", str(bin_dir))
    assert default_scheduler_name() == "local" and get_scheduler().name == "local"
    fake(bin_dir, "sbatch")
    assert default_scheduler_name() == "slurm"


def test_task_env_names() -> None:
    assert SlurmScheduler.task_env_names == {
        "job_id": "SLURM_ARRAY_JOB_ID", "task_id": "SLURM_ARRAY_TASK_ID", "task_count": "SLURM_ARRAY_TASK_COUNT",
        "task_min": "SLURM_ARRAY_TASK_MIN", "allocation_id": "SLURM_JOB_ID",
    }  # fmt: skip
    assert PbsScheduler.task_env_names["task_id"] == "PBS_ARRAY_INDEX"
    assert TorqueScheduler.task_env_names["task_id"] == "PBS_ARRAYID"
    assert ParallelScheduler.task_env_names["task_id"] == "PARALLEL_SEQ"
    assert LocalScheduler.task_env_names["task_id"] == "DJHPC_TASK_ID"
