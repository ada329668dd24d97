"""`djhpc cancel` for real: a run of workers each holding a key, cancelled with the scheduler's own command on
the single-node SLURM cluster (scancel: SIGTERM), the one-host Grid Engine cell (qdel: SIGUSR2 under -notify),
and on this machine (local and GNU parallel: kill -TERM); every key given back, exit 0, and a second cancel
finds nothing left to cancel. Bad input is in tests/cli/test_cancel.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from support.cluster import cli_env, djhpc, make_project, submit
from support.cluster import wait_until_gone as wait_until_gone_slurm
from support.env import need_binary
from support.pipeline import load_items
from support.sge import SGE_YAML
from support.sge import wait_until_gone as wait_until_gone_sge

from djhpc.schedulers.local import pid_alive


def _jobs(schema: str, status: str) -> int:
    """Rows of the schema's jobs table in this status (the test pipeline, imported here, names the schema)."""
    return len(sys.modules["pipeline_counts"].schema.jobs & {"status": status})


def _wait(what: str, done, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A project of 4 keys whose makes sleep 150 s, on SQLite (one machine: the cluster is this host);
    returns a function that makes its djhpc.yaml for a scheduler: (folder, env, schema)."""
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]

    def project(yaml: str):
        folder = make_project(tmp_path / "project", "sqlite:///pipeline.db", yaml)
        load_items(f"sqlite:///{folder}/pipeline.db", schema, 4, monkeypatch, tmp_path)
        return folder, cli_env(schema, tmp_path, DJHPC_TEST_SLEEP=150), schema

    yield project
    sys.modules.pop("pipeline_counts", None)


def _cancel_gives_keys_back(folder, env, schema, command: str, gone, *, signal: str | None) -> None:
    """Two workers hold a key each: djhpc cancel runs `command`, they stop, every key is back, exit 0."""
    _wait("two workers holding a key each", lambda: _jobs(schema, "reserved") == 2)
    dry = djhpc(["cancel", "--dry-run"], folder, env)
    assert dry.returncode == 0 and dry.stdout == f"{command}\n", dry.stderr
    assert _jobs(schema, "reserved") == 2
    out = djhpc(["cancel", "--json"], folder, env)
    assert out.returncode == 0, out.stderr
    assert [c["command"] for c in json.loads(out.stdout)["cancelled"]] == [command]
    gone()
    _wait("the keys given back", lambda: _jobs(schema, "reserved") == 0, timeout=30)
    assert _jobs(schema, "error") == 0
    if signal:  # (GNU parallel, stopped, no longer relays its workers' last lines)
        logs = "".join(p.read_text() for pattern in ("*.err", ".djhpc/scripts/*.log") for p in folder.glob(pattern))
        assert logs.count(f"stopped by {signal}: reservations released") == 2, logs
    again = djhpc(["cancel"], folder, env)
    assert again.returncode == 0 and again.stdout == "" and "nothing to cancel" in again.stderr, again.stderr


@pytest.mark.slurm
def test_cancel_on_slurm(slurm, run):
    folder, env, schema = run("scheduler: slurm\n")
    [job_id] = submit(folder, env, "--array", 2)
    try:
        _cancel_gives_keys_back(folder, env, schema, f"scancel {job_id}",
                                lambda: wait_until_gone_slurm([job_id], timeout=60), signal="SIGTERM")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)


def test_cancel_on_grid_engine(sge, run):
    folder, env, schema = run(SGE_YAML)
    [job_id] = submit(folder, env, "--array", 2)
    try:
        _cancel_gives_keys_back(folder, env, schema, f"qdel {job_id}",
                                lambda: wait_until_gone_sge([job_id], timeout=60), signal="SIGUSR2")
    finally:
        subprocess.run(["qdel", job_id], capture_output=True)


def test_cancel_a_local_run(run):
    folder, env, schema = run("scheduler: local\n")
    [pid] = submit(folder, env, "--array", 2)
    try:
        _cancel_gives_keys_back(folder, env, schema, f"kill -TERM {pid}",
                                lambda: _wait("the script to end", lambda: not pid_alive(int(pid))), signal="SIGTERM")
    finally:
        subprocess.run(["kill", "-KILL", pid], capture_output=True)


@pytest.mark.parallel
def test_cancel_a_gnu_parallel_run(run):
    """djhpc submit --scheduler parallel (the script execs GNU parallel: its PID is recorded) and djhpc parallel
    --run (the PID of the shell whose pipeline runs GNU parallel is recorded): kill -TERM of GNU parallel."""
    need_binary("parallel")
    folder, env, schema = run("scheduler: parallel\n")
    [pid] = submit(folder, env, "--array", 2)
    try:
        _cancel_gives_keys_back(folder, env, schema, f"kill -TERM {pid}",
                                lambda: _wait("GNU parallel to end", lambda: not pid_alive(int(pid))), signal=None)
    finally:
        subprocess.run(["kill", "-KILL", pid], capture_output=True)

    foreground = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "parallel", "--jobs", "2", "--run"],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait("two workers holding a key each", lambda: _jobs(schema, "reserved") == 2)
        out = djhpc(["cancel", "--json"], folder, env)
        assert out.returncode == 0, out.stderr
        [order] = json.loads(out.stdout)["cancelled"]
        shell = order["job_ids"][0]
        assert order["command"].startswith("kill -TERM ") and order["command"] != f"kill -TERM {shell}"
        _, err = foreground.communicate(timeout=60)
        assert foreground.returncode == 1 and "failed worker(s)" in err, err  # two workers exited 75
        assert _jobs(schema, "reserved") == 0 and _jobs(schema, "error") == 0
    finally:
        if foreground.poll() is None:
            foreground.kill()
            foreground.wait()


def test_cancel_commands() -> None:
    """Each scheduler's own command for the ids djhpc submit recorded (a task key stands for its array)."""
    from djhpc.errors import DjhpcError
    from djhpc.schedulers import get_scheduler

    assert get_scheduler("slurm").cancel_argv(["4242", "4242_3", "4250"]) == ["scancel", "4242", "4250"]
    assert get_scheduler("pbs").cancel_argv(["123[].pbs01"]) == ["qdel", "123[].pbs01"]
    assert get_scheduler("torque").cancel_argv(["124[].torque01", "125.torque01"]) == [
        "qdel", "124[].torque01", "125.torque01"]
    assert get_scheduler("sge").cancel_argv(["27", "27_2"]) == ["qdel", "27"]
    for name, bad in (("slurm", "12;rm"), ("pbs", "x[1]"), ("sge", "-u"), ("local", "x"), ("parallel", "x")):
        with pytest.raises(DjhpcError) as info:
            get_scheduler(name).cancel_argv([bad])
        assert info.value.exit_code == 2 and repr(bad) in str(info.value)
