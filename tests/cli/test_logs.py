"""djhpc logs: the task logs of real local and GNU parallel runs that djhpc submit started, made readable (the
user's class name and the printed key form, no raw TSV), one task, --errors, --follow until the run ends or
Ctrl-C, and bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from support.cluster import cli_env, djhpc, make_project, submit
from support.env import need_binary
from support.jobstate import one_line_error
from support.pipeline import load_items

from djhpc.logs import readable


def _project(tmp_path, backend, schema_name, monkeypatch, scheduler, items=8):
    project = make_project(tmp_path / "project", backend, f"scheduler: {scheduler}\n")
    load_items(backend, schema_name, items, monkeypatch, tmp_path)
    return project


def _wait_for_end(project, env, timeout=120):
    """Until logs --follow returns: it ends with the run."""
    out = djhpc(["logs", "--follow", "--interval", "0.2"], project, env, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out


def test_readable_turns_a_key_line_into_words():
    line = "2024-05-01T12:03:04+02:00\tend\t__spike_sorting\t{\"session_id\": 7, \"subject\": \"r1\"}\t0.052\terror\t" \
           "ValueError: bad"
    assert readable(line) == "12:03:04  SpikeSorting session_id=7, subject='r1'  failed after 0.05 s: ValueError: bad"
    assert readable("djhpc: Square: 3 made, 0 failed, 0 skipped\n") == "djhpc: Square: 3 made, 0 failed, 0 skipped"


def test_logs_of_a_local_run(backend, schema_name, tmp_path, monkeypatch):
    project = _project(tmp_path, backend, schema_name, monkeypatch, "local")
    env = cli_env(schema_name, tmp_path, DJHPC_TEST_FAIL="3")
    [job] = submit(project, env, "--array", 2)
    followed = _wait_for_end(project, env)
    assert "job " + job + " has ended" in followed.stderr
    out = djhpc(["logs"], project, env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith(f"job {job}: local run of Square, 2 task(s)")
    assert "Square item=3  failed after" in text and "ValueError: bad item 3" in text
    assert text.count("  made after ") == 7 and "__square" not in text and '{"item"' not in text
    assert f"1 key of this run failed: djhpc logs --errors --job {job}" in text
    assert "__square" not in text
    # --follow printed the same key lines as they came
    assert followed.stdout.count("  made after ") == 7
    errors = djhpc(["logs", "--errors"], project, env)
    assert errors.returncode == 0 and "Square item=3  (task " in errors.stdout, errors.stdout
    assert "ValueError: bad item 3" in errors.stdout
    assert "djhpc jobs show item=3 for the stack" in errors.stdout
    # the local run's tasks share one file: --task is refused with the reason
    one = djhpc(["logs", "--task", "1"], project, env)
    assert one.returncode == 2 and one_line_error(one.stderr) and "one log together" in one.stderr


def test_logs_of_one_task_of_a_gnu_parallel_run(backend, schema_name, tmp_path, monkeypatch):
    need_binary("parallel")
    project = _project(tmp_path, backend, schema_name, monkeypatch, "parallel", items=12)
    env = cli_env(schema_name, tmp_path, DJHPC_TEST_SLEEP="0.05")
    submit(project, env, "--array", 3)
    _wait_for_end(project, env)
    whole = djhpc(["logs"], project, env)
    assert whole.returncode == 0, whole.stderr
    made = [ln for ln in whole.stdout.splitlines() if "  made after " in ln]
    assert len(made) == 12 and all(ln.startswith("task ") for ln in made)
    counts = {n: djhpc(["logs", "--task", n], project, env).stdout.count("  made after ") for n in (1, 2, 3)}
    assert sum(counts.values()) == 12, counts
    assert "task 1  " not in djhpc(["logs", "--task", "2"], project, env).stdout


def test_follow_stops_on_ctrl_c(backend, schema_name, tmp_path, monkeypatch):
    """A slow run: --follow prints the first key lines as they are written, and Ctrl-C ends it with 130."""
    project = _project(tmp_path, backend, schema_name, monkeypatch, "local", items=40)
    env = cli_env(schema_name, tmp_path, DJHPC_TEST_SLEEP="0.5")
    submit(project, env, "--array", 1)
    follow = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "logs", "--follow", "--interval", "0.2"],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "  made after " not in seen:
            assert time.monotonic() < deadline, "no key line followed"
            seen += follow.stdout.readline()
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
        djhpc(["cancel"], project, env)
    assert follow.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.parametrize("argv", [["logs"], ["logs", "--job", "999999"], ["logs", "--task", "0"],
                                  ["logs", "--errors", "--follow"], ["logs", "--interval", "0"]])
def test_bad_input_is_one_line_and_exit_2(backend, schema_name, tmp_path, monkeypatch, argv):
    project = _project(tmp_path, backend, schema_name, monkeypatch, "local", items=1)
    env = cli_env(schema_name, tmp_path)
    if argv != ["logs"]:
        submit(project, env, "--array", 1)
        _wait_for_end(project, env)
    out = djhpc(argv, project, env)
    assert out.returncode == 2 and one_line_error(out.stderr), out.stderr
