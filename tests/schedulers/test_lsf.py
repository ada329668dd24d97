"""IBM Spectrum LSF, which cannot run here: the #BSUB directives read back as bsub reads them, one task script run
as LSF runs an array element (LSB_JOBID, LSB_JOBINDEX) against a real database, bkill's signals (SIGINT,
SIGTERM 10 s later, then SIGKILL) giving the keys back, and submit/status/cancel/limits through fake bsub,
bjobs, bhist, bkill and bparams on PATH that print the recorded output of tests/schedulers/recorded/lsf/
(where it comes from: recorded/README.md) and record their argv, stdin and environment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cluster import cli_env, djhpc, make_project
from support.env import MYSQL_URL, mysql_available, unavailable
from support.pipeline import load_items, make_calls
from support.scripts import bash_syntax_ok, directive_args, read_argv, read_env, run_script, write_executable

import djhpc as dj
from djhpc.errors import SchedulerError
from djhpc.profile import Profile
from djhpc.schedulers import SiteLimits, TaskState, get_scheduler, taskenv
from djhpc.schedulers.lsf import (
    BJOBS_FIELDS,
    lsf_state,
    lsf_time,
    parse_bhist_long,
    parse_bjobs_json,
    parse_bjobs_text,
    parse_bparams,
    parse_bsub_output,
    split_job_id,
)
from djhpc.submissions import Submissions

RECORDED = Path(__file__).parent / "recorded" / "lsf"
S = TaskState

FLAGS = ["--array", 4, "--throttle", 2, "--queue", "normal", "--time", "1:30:00", "--mem", "2G", "--cpus", 2,
         "--gpus", "a100:1", "--account", "lab-7", "--after", 123, "--job-name", "my run",
         "--mail-user", "me@example.org", "--mail-type", "END,FAIL"]  # fmt: skip
EXPECTED = ["-J", "my run[1-4]%2", "-q", "normal", "-P", "lab-7", "-W", "1:30", "-n", "2", "-R", "span[hosts=1]",
            "-R", "rusage[mem=2048MB]", "-M", "2048MB", "-gpu", "num=1:gmodel=a100", "-o", "djhpc-%J_%I.out",
            "-e", "djhpc-%J_%I.err", "-u", "me@example.org", "-N", "-w", "done(123)", "-wa", "USR1", "-wt", "1",
            "-rn"]  # fmt: skip


# ------------------------------------------------------------------------------------------ helpers


def fake_command(folder: Path, name: str, output: str = "", code: int = 0, stderr: str = "") -> None:
    """NAME on PATH: records each call's argv (NUL-separated), stdin and environment, prints output."""
    (folder / f"{name}.stdout").write_text(output)
    (folder / f"{name}.stderr").write_text(stderr)
    out = shlex.quote(str(folder / name))
    write_executable(
        folder / name,
        f"""#!/bin/bash
n=$(( $(cat {out}.count 2>/dev/null || echo 0) + 1 ))
echo "$n" > {out}.count
if [ $# -gt 0 ]; then printf '%s\\0' "$@"; fi > {out}.argv.$n
cat > {out}.stdin.$n
env -0 > {out}.env.$n
cat {out}.stdout
cat {out}.stderr >&2
exit {code}
""",
    )


def calls(folder: Path, name: str) -> list[dict]:
    """Each call of a fake command: argv, stdin and environment."""
    count = int((folder / f"{name}.count").read_text()) if (folder / f"{name}.count").exists() else 0
    out = []
    for n in range(1, count + 1):
        argv = (folder / f"{name}.argv.{n}").read_bytes().split(b"\0")[:-1]
        env = (folder / f"{name}.env.{n}").read_bytes().decode()
        out.append(
            {"argv": [a.decode() for a in argv], "stdin": (folder / f"{name}.stdin.{n}").read_text(), "env": env}
        )
    return out


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.startswith("djhpc: error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    folder = tmp_path / "fakebin"
    folder.mkdir()
    return folder


@pytest.fixture
def sqlite_project(tmp_path, monkeypatch):
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    project = make_project(tmp_path / "project", "sqlite:///pipeline.db", "scheduler: lsf\n")
    load_items(f"sqlite:///{project}/pipeline.db", schema, 30, monkeypatch, tmp_path)
    return project, schema


def on_path(env: dict, folder: Path) -> dict:
    return {**env, "PATH": f"{folder}{os.pathsep}{env['PATH']}"}


def kept_scripts(project: Path) -> list[Path]:
    folder = project / ".djhpc" / "scripts"
    return sorted(folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------- rendering


def test_directives_read_back(sqlite_project, tmp_path):
    project, schema = sqlite_project
    out = djhpc(["render", *FLAGS], project, cli_env(schema, tmp_path))
    assert out.returncode == 0, out.stderr
    bash_syntax_ok(out.stdout, tmp_path)
    assert directive_args(out.stdout, "#BSUB") == EXPECTED
    assert 'export DJHPC_JOB_ID="${LSB_JOBID}"' in out.stdout and "export DJHPC_TASK_COUNT=4" in out.stdout


def test_resources_written_for_lsf(tmp_path):
    lsf = get_scheduler("lsf")
    script = lsf.render(
        Profile(
            nodes=2,
            cpus=8,
            time=61,
            signal_seconds=30,
            after=["7", "8"],
            after_type="afterany",
            mail_type="ALL",
            requeue=True,
            output="logs/%A-%a.log",
        ),
        target="p.T",
        array_size=1,
    )
    args = directive_args(script, "#BSUB")
    assert args[:2] == ["-J", "djhpc[1-1]"]
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["-n"] == "16" and pairs["-R"] == "span[ptile=8]" and pairs["-W"] == "0:02" and pairs["-wt"] == "1"
    assert pairs["-w"] == "ended(7) && ended(8)" and pairs["-o"] == "logs/%J-%I.log"
    assert "-B" in args and "-N" in args and args[-1] == "-r"
    assert "SLURM's %A and %a written as LSF's %J and %I" in script
    assert [lsf_time(s) for s in (1, 60, 61, 3600, 93600)] == ["0:01", "0:01", "0:02", "1:00", "26:00"]


@pytest.mark.parametrize("name", ["run[1]", "50%", 'say "hi"'])
def test_job_names_bsub_would_misread_are_refused(sqlite_project, tmp_path, name):
    project, schema = sqlite_project
    out = djhpc(["render", "--array", 2, "--job-name", name], project, cli_env(schema, tmp_path))
    assert "which bsub -J reads as part of the array: rename it" in one_error_line(out)


# ------------------------------------------------------------------------------------ a task, here


def history(schema: str) -> set:
    connection = dj.conn()
    table = connection.dialect.table(schema, "~history")
    return {tuple(r) for r in connection.query(f"SELECT sched_job_id, sched_task_id FROM {table}").fetchall()}


def lsf_project(backend: str, tmp_path: Path, monkeypatch, request, n_items: int, **extra):
    """A project on sqlite or MariaDB with n_items keys; (project, schema, env of djhpc render)."""
    if backend == "mysql":
        if not mysql_available():
            unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
        schema = request.getfixturevalue("mysql_schema")
        url = MYSQL_URL
        project = make_project(tmp_path / "project", url, "scheduler: lsf\n")
    else:
        schema = "djhpc_test_" + uuid.uuid4().hex[:10]
        project = make_project(tmp_path / "project", "sqlite:///pipeline.db", "scheduler: lsf\n")
        url = f"sqlite:///{project}/pipeline.db"
    load_items(url, schema, n_items, monkeypatch, tmp_path)
    return project, schema, cli_env(schema, tmp_path, **extra)


def element_env(env: dict, home: Path) -> dict:
    """What LSF adds for element 3 of job 777's array [1-4] (it passes the submission environment on)."""
    return {
        **env,
        "LSB_JOBID": "777",
        "LSB_JOBINDEX": "3",
        "LSB_JOBINDEX_END": "4",
        "LSB_JOBNAME": "djhpc[3]",
        "HOME": str(home),
    }


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_task_script_populates(backend, tmp_path, monkeypatch, request):
    """The script as LSF runs element 3: keys made, the failing one's error row names job, task, host and PID."""
    project, schema, env = lsf_project(backend, tmp_path, monkeypatch, request, 30, DJHPC_TEST_FAIL=4)
    out = djhpc(["render", "--array", 4], project, env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "task.sh"
    script.write_text(out.stdout)
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=project,
        env=element_env(env, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # one make failed on purpose: exit 1, as `djhpc work` says
    made, _ = make_calls(tmp_path)
    assert len(made) == 30 and set(made.values()) == {1}
    pipeline = __import__("pipeline_counts")
    assert len(pipeline.Square()) == 29
    [error] = pipeline.schema.jobs.fetch(as_dict=True)
    assert (error["status"], error["sched_job_id"], error["sched_task_id"]) == ("error", "777", "3")
    assert (error["host"], error["pid"]) == (socket.gethostname(), proc.pid)  # exec: the worker is the task
    assert history(schema) == {("777", "3")}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def bkill(proc: subprocess.Popen, interval: float = 10.0) -> list[str]:
    """bkill as LSF does it to a running element: SIGINT to its processes, SIGTERM JOB_TERMINATE_INTERVAL later,
    SIGKILL as long again after that; the signals sent before the element ended."""
    sent = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        os.killpg(proc.pid, sig)
        sent.append(sig.name)
        try:
            proc.wait(timeout=interval)
            return sent
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=interval)
    return sent


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_bkill_gives_keys_back(backend, tmp_path, monkeypatch, request):
    """bkill's first signal, SIGINT, stops the worker in the middle of a 60 s make: it rolls back, gives its keys
    back and exits 75 within JOB_TERMINATE_INTERVAL, before the SIGTERM; nothing is left reserved or failed."""
    project, schema, env = lsf_project(backend, tmp_path, monkeypatch, request, 4, DJHPC_TEST_SLEEP=60)
    out = djhpc(["render", "--array", 2], project, env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "task.sh"
    script.write_text(out.stdout)
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=project,
        env=element_env(env, home),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "calls.log").exists() or proc.poll() is not None, 60, "no make started")
        assert proc.poll() is None, proc.communicate()
        started = time.monotonic()
        sent = bkill(proc)
        stopped_after = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    assert sent == ["SIGINT"] and proc.returncode == 75, (sent, proc.returncode, stderr)
    assert "reservations released" in stderr, stderr
    pipeline = __import__("pipeline_counts")
    assert pipeline.schema.jobs.fetch(as_dict=True) == [] and len(pipeline.Square()) == 0
    print(f"bkill: the worker gave its keys back and exited {stopped_after:.2f} s after SIGINT")


# ------------------------------------------------------------------------------ submit, with fake bsub


def test_submit_pipes_the_script_to_bsub_without_passwords(mysql_user, mysql_schema, tmp_path, monkeypatch, fakes):
    url, password = mysql_user
    project = make_project(tmp_path / "project", url, "scheduler: lsf\n")
    load_items(url, mysql_schema, 10, monkeypatch, tmp_path)
    fake_command(fakes, "bsub", (RECORDED / "bsub.txt").read_text())
    env = on_path(cli_env(mysql_schema, tmp_path, DJ_PASS=password, MYSQL_PWD=password), fakes)
    out = djhpc(["submit", "--array", 3], project, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4242"]
    [call] = calls(fakes, "bsub")
    [script] = [p for p in kept_scripts(project) if p.suffix == ".sh"]
    assert call["argv"] == [] and call["stdin"] == script.read_text()  # bsub < script: directives read
    assert "#BSUB -J djhpc-Square[1-3]" in call["stdin"] and "DJHPC_DATABASE_URL_FILE=" in call["stdin"]
    for seen in (call["stdin"], call["env"], " ".join(call["argv"]), script.read_text()):
        assert password not in seen
    [row] = Submissions(dj.conn(url, reset=True), mysql_schema).recent()
    assert (row.job_id, row.scheduler, row.array_size) == ("4242", "lsf", 3)
    assert password not in json.dumps(row.settings)


def test_rejected_submission_quotes_bsub(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    fake_command(fakes, "bsub", "", code=255, stderr="normalx: No such queue. Job not submitted.\n")
    out = djhpc(["submit", "--array", 2, "--queue", "normalx"], project, on_path(cli_env(schema, tmp_path), fakes))
    assert "bsub < " in one_error_line(out) and "No such queue. Job not submitted." in out.stderr
    assert kept_scripts(project) == []


def test_bsub_printing_no_job_id_is_an_error(tmp_path, fakes, monkeypatch):
    fake_command(fakes, "bsub", "Job submission held by esub.\n")
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/bash\n")
    with pytest.raises(SchedulerError, match="bsub printed 'Job submission held by esub.', not a job id"):
        get_scheduler("lsf").submit_file(script)


def test_missing_bsub_is_one_line_and_submits_nothing(sqlite_project, tmp_path):
    project, schema = sqlite_project
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    out = djhpc(["submit", "--array", 2], project, {**cli_env(schema, tmp_path), "PATH": str(bare)})
    assert "bsub not found on PATH" in one_error_line(out) and out.stdout == ""
    assert kept_scripts(project) == [] and Submissions(dj.conn(), schema).recent() == []


# ------------------------------------------------------------------------------------------ limits


def test_max_job_array_size_splits_the_run_with_offsets(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    fake_command(fakes, "bparams", (RECORDED / "lsb.params").read_text())  # MAX_JOB_ARRAY_SIZE = 3
    out = djhpc(["render", "--array", 7], project, on_path(cli_env(schema, tmp_path), fakes))
    assert out.returncode == 0, out.stderr
    parts = out.stdout.split("# ==> array ")[1:]
    assert [p.split(" <==")[0] for p in parts] == [
        "1 of 3: tasks 1-3 of the run",
        "2 of 3: tasks 4-6 of the run",
        "3 of 3: tasks 7-7 of the run",
    ]
    names = [directive_args(p.split("\n", 1)[1], "#BSUB")[1] for p in parts]
    assert names == ["djhpc-Square[1-3]", "djhpc-Square[1-3]", "djhpc-Square[1-1]"]
    assert [p.count(f"export DJHPC_TASK_OFFSET={o}\n") for p, o in zip(parts, (0, 3, 6), strict=True)] == [1, 1, 1]
    assert all("export DJHPC_TASK_COUNT=7\n" in p for p in parts)
    assert calls(fakes, "bparams")[0]["argv"] == ["-a"]


def test_an_array_cap_leaving_no_index_is_one_line(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    fake_command(fakes, "bparams", "Maximum number of jobs in a job array:\n    MAX_JOB_ARRAY_SIZE = 0\n")
    fake_command(fakes, "bsub", (RECORDED / "bsub.txt").read_text())
    out = djhpc(["submit", "--array", 2], project, on_path(cli_env(schema, tmp_path), fakes))
    assert "leaves no array index from 1 up" in one_error_line(out)
    assert calls(fakes, "bsub") == [] and kept_scripts(project) == []


def test_site_limits_from_bparams(fakes, monkeypatch):
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "bparams", (RECORDED / "bparams.txt").read_text())
    assert get_scheduler("lsf").site_limits() == SiteLimits(max_array_size=1001)  # index 1000 allowed
    fake_command(fakes, "bparams", "", code=255, stderr="bparams: LSF is down\n")
    assert get_scheduler("lsf").site_limits() == SiteLimits()


# ------------------------------------------------------------------------------------ status, cancel


def test_parsers_on_recorded_output():
    want = {
        "4242_1": S.COMPLETED,
        "4242_2": S.FAILED,
        "4242_3": S.RUNNING,
        "4242_4": S.PENDING,
        "4250_1": S.CANCELLED,
        "4250_2": S.TIMEOUT,
    }
    assert parse_bjobs_json((RECORDED / "bjobs.json").read_text()) == want
    assert parse_bjobs_text((RECORDED / "bjobs.txt").read_text()) == want
    assert parse_bhist_long((RECORDED / "bhist-l.txt").read_text()) == {
        "4240_1": S.COMPLETED,
        "4240_2": S.FAILED,
        "4242_1": S.COMPLETED,
        "4250_1": S.CANCELLED,
        "4250_2": S.TIMEOUT,
    }
    assert parse_bparams((RECORDED / "bparams.txt").read_text()) == 1000
    assert parse_bparams((RECORDED / "lsb.params").read_text()) == 3
    assert parse_bparams("MBD_SLEEP_TIME = 10\n") is None
    assert parse_bsub_output((RECORDED / "bsub.txt").read_text()) == "4242"
    assert split_job_id("4242[7]") == ("4242", "7") and split_job_id("4242", "0") == ("4242", "0")


@pytest.mark.parametrize("stat, reason, state", [
    ("PEND", "", S.PENDING), ("PSUSP", "", S.PENDING), ("RUN", "", S.RUNNING), ("USUSP", "", S.SUSPENDED),
    ("SSUSP", "", S.SUSPENDED), ("DONE", "", S.COMPLETED), ("EXIT", "", S.FAILED), ("UNKWN", "", S.UNKNOWN),
    ("ZOMBI", "", S.NODE_FAIL), ("EXIT", "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit",
                                  S.OUT_OF_MEMORY),
    ("EXIT", "TERM_PREEMPT: job killed after preemption", S.PREEMPTED), ("EXIT", "job killed by owner", S.CANCELLED),
    ("EXIT", "job killed after reaching LSF run time limit", S.TIMEOUT), ("BOGUS", "", S.UNKNOWN),
])  # fmt: skip
def test_lsf_states(stat, reason, state):
    assert lsf_state(stat, reason) is state


def test_bad_output_is_quoted():
    with pytest.raises(SchedulerError, match=r"cannot read bjobs JSON .*'\{oops'"):
        parse_bjobs_json("{oops")
    with pytest.raises(SchedulerError, match="cannot read bjobs output line 'garbage'"):
        parse_bjobs_text("garbage\n")
    with pytest.raises(SchedulerError, match="cannot read LSF job id 'x12'"):
        split_job_id("x12")


def test_task_states_joins_bjobs_and_bhist(fakes, monkeypatch):
    """bjobs is current for what it lists, bhist fills in what bjobs has forgotten (4240)."""
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "bjobs", (RECORDED / "bjobs.json").read_text(), code=255)  # 4251 not found: exit 255
    fake_command(fakes, "bhist", (RECORDED / "bhist-l.txt").read_text())
    states = get_scheduler("lsf").task_states(["4242", "4250_1", "4240", "4251"])
    assert states == {
        "4240_1": S.COMPLETED,
        "4240_2": S.FAILED,
        "4242_1": S.COMPLETED,
        "4242_2": S.FAILED,
        "4242_3": S.RUNNING,
        "4242_4": S.PENDING,
        "4250_1": S.CANCELLED,
        "4250_2": S.TIMEOUT,
    }
    assert [c["argv"] for c in calls(fakes, "bjobs")] == [
        ["-a", "-json", "-o", BJOBS_FIELDS, "4240", "4242", "4250", "4251"]
    ]
    assert [c["argv"] for c in calls(fakes, "bhist")] == [["-a", "-l", "4240", "4242", "4250", "4251"]]


def test_task_states_before_json(fakes, monkeypatch):
    """An LSF without bjobs -json: the same fields, delimited."""
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    (fakes / "bjobs.txt").write_text((RECORDED / "bjobs.txt").read_text())
    write_executable(
        fakes / "bjobs",
        f"""#!/bin/bash
printf '%s\\n' "$*" >> {shlex.quote(str(fakes))}/bjobs.log
case " $* " in *" -json "*) echo "bjobs: illegal option -- json" >&2; exit 255;; esac
cat {shlex.quote(str(fakes))}/bjobs.txt
""",
    )
    states = get_scheduler("lsf").task_states(["4242"])
    assert states["4242_3"] is S.RUNNING and states["4250_2"] is S.TIMEOUT  # no bhist here: bjobs alone
    assert (fakes / "bjobs.log").read_text().splitlines()[1] == (f"-a -noheader -o {BJOBS_FIELDS} delimiter='|' 4242")


def test_bjobs_failing_is_quoted(fakes, monkeypatch):
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "bjobs", "", code=255, stderr="LSF is down. Please wait ...\n")
    with pytest.raises(SchedulerError, match="LSF is down. Please wait ...: check that LSF answers"):
        get_scheduler("lsf").task_states(["4242"])


def test_cancel_is_bkill_of_the_arrays(fakes, monkeypatch):
    lsf = get_scheduler("lsf")
    assert lsf.cancel_argv(["4242", "4250_2", "4251[3]"]) == ["bkill", "4242", "4250", "4251"]
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "bkill", (RECORDED / "bkill.txt").read_text(), code=255)  # 4240 had finished
    lsf.cancel(["4242", "4240_1"])
    assert [c["argv"] for c in calls(fakes, "bkill")] == [["4242", "4240"]]
    fake_command(fakes, "bkill", "", code=255, stderr="Job <4242>: User permission denied\n")
    with pytest.raises(SchedulerError, match="bkill 4242 failed .*User permission denied"):
        lsf.cancel(["4242"])


def test_task_environment_of_an_lsf_element():
    env = taskenv.current({"LSB_JOBID": "777", "LSB_JOBINDEX": "3", "LSB_JOBINDEX_END": "4"})
    assert (env.scheduler, env.ids(), env.task_count, env.position()) == ("lsf", ("777", "3"), 4, 0.5)
    env = taskenv.current({"LSB_JOBID": "778", "LSB_JOBINDEX": "0"})  # a worker started by hand, outside an array
    assert env.ids() == ("778", "0") and env.position() is None
    assert "_".join(split_job_id("778")) == "_".join(env.ids())  # its task as task_states keys it


# ------------------------------------------------------------------------------------- hostile values

PAYLOADS = ["$(touch {m})", "`touch {m}`", "; touch {m}", "' ; touch {m}; '", '" ; touch {m}; "', "$HOME", "~",
            "*", "#", "\\", "'", '"', "a b", "\t", "%J_%I", "%A_%a", "ünï 日本", "#BSUB -Is bash", "-x"]  # fmt: skip


def hostile(marker: Path) -> st.SearchStrategy[str]:
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00")
    piece = st.one_of(st.sampled_from([p.format(m=marker) for p in PAYLOADS]), st.text(chars, min_size=1, max_size=8))
    return st.lists(piece, min_size=1, max_size=3).map("".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_values_stay_quoted(fake_bin: Path, data: st.DataObject) -> None:
    """Whatever a user puts in a name, path, target, argument or env value: the element runs the worker with
    exactly those words, bsub reads the directives back exactly, and no injection runs."""
    with tempfile.TemporaryDirectory(prefix="djhpc-inject-") as tmp:
        root = Path(tmp)
        marker = root / "pwned"
        text = hostile(marker)
        target = data.draw(text.filter(lambda s: s.strip() and not s.startswith("-")), label="target")
        worker_args = data.draw(st.lists(text, max_size=3), label="worker_args")
        env_value = data.draw(text, label="env value")
        job_name = data.draw(text.filter(lambda s: s.strip() and not re.search(r'[\[\]%"\\]', s)), label="job_name")
        log_path = data.draw(text.filter(lambda s: s.strip()), label="output")
        dir_name = data.draw(text.filter(lambda s: "/" not in s and s not in (".", "..") and len(s.encode()) < 200),
                             label="workdir")  # fmt: skip
        workdir = root / "runs" / dir_name
        workdir.mkdir(parents=True)
        profile = Profile(job_name=job_name, output=log_path, error=log_path, workdir=str(workdir))
        script = get_scheduler("lsf").render(profile, target=target, array_size=2, worker_args=worker_args,
                                             env={"HOSTILE": env_value})  # fmt: skip
        out = root / "out"
        proc = run_script(script, fake_bin, out, cwd=root, LSB_JOBID="9", LSB_JOBINDEX="2")
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert read_argv(out, 2) == ["work", target, *worker_args]
        env = read_env(out, 2)
        assert (env["HOSTILE"], env["DJHPC_JOB_ID"], env["DJHPC_TASK_ID"]) == (env_value, "9", "2")
        assert os.path.realpath(env["PWD"]) == os.path.realpath(workdir)
        args = directive_args(script, "#BSUB")
        assert args[args.index("-J") + 1] == f"{profile.job_name}[1-2]"
        assert args[args.index("-o") + 1] == str(profile.output).replace("%A", "%J").replace("%a", "%I")
        assert not marker.exists() and not list(root.rglob("pwned")), "an injection ran"


def test_status_joins_the_recorded_run_with_bjobs(sqlite_project, tmp_path, fakes):
    """djhpc status of an array submitted through (fake) bsub: each element's state from bjobs and bhist."""
    project, schema = sqlite_project
    fake_command(fakes, "bsub", (RECORDED / "bsub.txt").read_text())
    fake_command(fakes, "bjobs", (RECORDED / "bjobs.json").read_text())
    fake_command(fakes, "bhist", (RECORDED / "bhist-l.txt").read_text())
    env = on_path(cli_env(schema, tmp_path), fakes)
    out = djhpc(["submit", "--array", 4], project, env)
    assert out.returncode == 0 and out.stdout.split() == ["4242"], out.stderr
    out = djhpc(["status", "--json"], project, env)
    assert out.returncode == 0, out.stderr
    [run] = json.loads(out.stdout)["submissions"]
    assert (run["job_id"], run["tasks"]) == ("4242", 4)
    assert {k: v for k, v in run["counts"].items() if v} == {"done": 1, "failed": 1, "running": 1, "pending": 1}
    assert [c["argv"][-1] for c in calls(fakes, "bjobs")] == ["4242"]


def test_unknown_scheduler_names_the_known_ones(sqlite_project, tmp_path):
    project, schema = sqlite_project
    out = djhpc(["render", "--array", 2, "--scheduler", "flux"], project, cli_env(schema, tmp_path))
    assert "unknown scheduler 'flux' (choose slurm, " in one_error_line(out)
    assert ", lsf, htcondor, " in out.stderr
