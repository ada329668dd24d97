"""djhpc cancel without a cluster: which recorded arrays it cancels, with which command, what --dry-run and --json
print, and every bad input refused with one line and exit 2 (the real clusters: tests/schedulers/test_cancel.py).

Fake squeue/sacct/scancel first on PATH record their calls, so "nothing was cancelled" is checked, not assumed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.jobstate import cli, one_line_error
from support.scripts import write_executable

import djhpc as dj
from djhpc.cancel import plan_cancel
from djhpc.errors import UsageError
from djhpc.schedulers import Scheduler
from djhpc.submissions import Submissions

SCHEMA = "cancel_test"


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """Two SLURM arrays recorded for table __t (4242, 4243) and one for __u (4300); fakes first on PATH:
    squeue lists 4242's tasks (FAKE_SQUEUE), sacct knows 4243 ended, scancel logs its calls."""
    url = f"sqlite:///{tmp_path}/cancel.db"
    monkeypatch.setenv("DJHPC_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    dj.conn(url, reset=True)
    dj.Schema(SCHEMA)
    records = Submissions(dj.conn(), SCHEMA)
    for job_id, table in (("4242", "__t"), ("4243", "__t"), ("4300", "__u")):
        records.record(job_id=job_id, scheduler="slurm", target="p.py:T", table_name=table, array_size=2)
    fake = tmp_path / "bin"
    fake.mkdir()
    write_executable(fake / "squeue", '#!/bin/bash\nprintf "%s" "${FAKE_SQUEUE-4242_1|RUNNING\n4242_2|PENDING\n}"\n')
    write_executable(fake / "sacct", "#!/bin/bash\nprintf '4243_1|COMPLETED\\n4243_2|CANCELLED by 0\\n'\n")
    write_executable(fake / "scancel", f'#!/bin/bash\necho "$*" >> "{tmp_path}/scancel.log"\n'
                     '[ -z "${FAKE_SCANCEL_FAIL:-}" ] || { echo "$FAKE_SCANCEL_FAIL" >&2; exit 1; }\n')
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    return tmp_path


def scancel_calls(folder: Path) -> list[str]:
    log = folder / "scancel.log"
    return log.read_text().splitlines() if log.exists() else []


def test_cancels_the_live_arrays(recorded, capsys, caplog):
    caplog.set_level("INFO", logger="djhpc")
    rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA)
    assert rc == 0, err
    # 4243 ended (sacct) and 4300 is not listed: only 4242 is cancelled, with one scancel
    assert out == "scancel 4242\n" and scancel_calls(recorded) == ["4242"]
    assert "cancelled job 4242 of schema cancel_test" in caplog.text and "left alone: job 4300, 4243" in caplog.text


def test_dry_run_prints_the_command_and_cancels_nothing(recorded, capsys, monkeypatch, caplog):
    caplog.set_level("INFO", logger="djhpc")
    monkeypatch.setenv("FAKE_SQUEUE", "4242_1|RUNNING\n4300_1|PENDING\n")
    rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA, "--dry-run")
    assert rc == 0 and out == "scancel 4300 4242\n" and "dry run: would cancel job 4300, 4242" in caplog.text
    assert scancel_calls(recorded) == []
    rc, out, _ = cli(capsys, "cancel", "--schema", SCHEMA, "--dry-run", "--json", "--job", "4300")
    assert rc == 0 and json.loads(out) == {
        "dry_run": True, "cancelled": [{"scheduler": "slurm", "job_ids": ["4300"], "command": "scancel 4300"}],
        "ended": []}
    assert scancel_calls(recorded) == []


def test_nothing_left_running(recorded, capsys, monkeypatch, caplog):
    caplog.set_level("INFO", logger="djhpc")
    monkeypatch.setenv("FAKE_SQUEUE", "")
    rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA)
    assert rc == 0 and out == "", err
    assert "nothing to cancel: the recorded arrays of schema cancel_test have ended" in caplog.text
    assert scancel_calls(recorded) == []
    rc, out, _ = cli(capsys, "cancel", "--schema", SCHEMA, "--json")
    assert rc == 0 and json.loads(out)["cancelled"] == [] and len(json.loads(out)["ended"]) == 3


@pytest.mark.parametrize("args, message", [
    (["--schema", "empty_schema_xyz"], "no submission of schema empty_schema_xyz is recorded"),
    (["--schema", SCHEMA, "--job", "99"], "job 99 is not a recorded submission of schema cancel_test"),
    (["--schema", SCHEMA, "--limit", "0"], "--limit must be >= 1 (got 0)"),
    (["--schema", "no_such_schema_xyz"], "schema 'no_such_schema_xyz' does not exist"),
    (["p.py:T", "--schema", SCHEMA], "give TARGET or --schema, not both"),
    (["--schema", SCHEMA, "--bogus"], "unrecognized arguments: --bogus"),
])  # fmt: skip
def test_bad_input_is_one_line(recorded, capsys, args, message):
    if args[:2] == ["--schema", "empty_schema_xyz"]:  # a schema with a table, but nothing submitted

        @dj.Schema("empty_schema_xyz")
        class Thing(dj.Manual):
            definition = "thing : int"
    rc, out, err = cli(capsys, "cancel", *args)
    assert rc == 2 and out == "" and one_line_error(err) and message in err, err
    assert scancel_calls(recorded) == []


def test_a_table_without_submissions(tmp_path, capsys, monkeypatch):
    """`djhpc cancel TARGET` for a table nothing was submitted for: one line, exit 2."""
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "pipeline_counts.py"
    (tmp_path / "pipeline.py").write_text(pipeline.read_text())
    url = f"sqlite:///{tmp_path}/p.db"
    monkeypatch.setenv("DJHPC_DATABASE_URL", url)
    monkeypatch.setenv("DJHPC_TEST_SCHEMA", "cancel_target")
    monkeypatch.chdir(tmp_path)
    dj.conn(url, reset=True)
    try:
        rc, out, err = cli(capsys, "cancel", "pipeline.py:Square")
    finally:
        sys.modules.pop("djhpc_target_pipeline", None)
    assert rc == 2 and out == "" and one_line_error(err), err
    assert "no submission of Square is recorded (djhpc submit records them): nothing to cancel" in err


def test_a_refusing_scheduler_is_one_line(recorded, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_SCANCEL_FAIL", "scancel: error: Kill job error on job id 4242: Access/permission denied")
    rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA)
    assert rc == 2 and one_line_error(err) and "scancel 4242 failed (exit 1)" in err and "permission denied" in err


def test_missing_scheduler_command_is_one_line(recorded, capsys, monkeypatch):
    (recorded / "bin" / "scancel").unlink()
    monkeypatch.setenv("PATH", str(recorded / "bin"))  # not even SLURM's own
    rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA)
    assert rc == 2 and one_line_error(err) and "scancel not found on PATH" in err, err


def test_a_scheduler_without_cancel_names_itself(recorded):
    class Flux(Scheduler):
        name = "flux"

        def task_states(self, job_ids):
            return {f"{j}_1": "RUNNING" for j in job_ids}

    with pytest.raises(UsageError, match="djhpc cannot cancel flux jobs: stop them with flux's own tools"):
        plan_cancel(dj.conn(), SCHEMA, scheduler_for=lambda name: Flux())


def test_a_pid_that_is_no_djhpc_run_is_not_signalled(recorded, capsys):
    """A local run's recorded PID that the system gave to another program since: refused, left alive."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        Submissions(dj.conn(), SCHEMA).record(job_id=str(other.pid), scheduler="local", target="p.py:T",
                                              table_name="__v", array_size=2)
        rc, out, err = cli(capsys, "cancel", "--schema", SCHEMA, "--job", str(other.pid))
        assert rc == 2 and one_line_error(err), err
        assert f"process {other.pid} is not a djhpc run (any more): not signalled" in err
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
