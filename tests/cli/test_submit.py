"""`djhpc render`, `djhpc submit` and `djhpc parallel` from the command line: output, profiles,
the array capped at the keys left, credentials, and every bad input refused with one line.

A fake sbatch (and scontrol, sacctmgr) first on PATH records its calls, so "nothing was submitted"
is checked, not assumed; the real cluster is in tests/schedulers/test_slurm.py.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from support.cluster import cli_env, djhpc, make_project, root_query, submission_rows
from support.env import MYSQL_URL
from support.pipeline import load_items, make_calls
from support.scripts import bash_syntax_ok, directive_args

import djhpc as dj
from djhpc import submit as library
from djhpc.config import Settings, parse_url
from djhpc.errors import UsageError
from djhpc.schedulers import SiteLimits, default_scheduler_name
from djhpc.submissions import Submissions

FAKE_SBATCH = r"""#!/bin/bash
# records each call; prints a job id, or fails like sbatch when FAKE_SBATCH_FAIL is set
log="${FAKE_LOG:?}"
printf '%s\n' "$*" >> "$log"
cp "${@: -1}" "$log.script.$(wc -l < "$log")"
if [ -n "${FAKE_SBATCH_FAIL:-}" ] || [ "$(wc -l < "$log")" = "${FAKE_SBATCH_FAIL_AT:-0}" ]; then
    echo "sbatch: error: ${FAKE_SBATCH_FAIL:-QOSMaxSubmitJobPerUserLimit}" >&2
    exit 1
fi
echo $((4240 + $(wc -l < "$log")))
"""
FAKE_SCONTROL = r"""#!/bin/bash
[ "$1 $2" = "show config" ] && echo "MaxArraySize            = ${FAKE_MAXARRAYSIZE:-1001}"
exit 0
"""
FAKE_SACCTMGR = r"""#!/bin/bash
[ -n "${FAKE_MAXSUBMIT:-}" ] && echo "$FAKE_MAXSUBMIT"
exit 0
"""

PROFILES = """scheduler: slurm
profile: default
profiles:
  default: {time: 2h, mem: 4G, partition: cpu}
  gpu: {partition: gpu, gpus: "a100:1", time: 30m, array: 3}
  pbs: {scheduler: pbs, queue: workq, walltime: "1:30:00", cpus: 2}
"""


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fakebin")
    for name, text in (("sbatch", FAKE_SBATCH), ("scontrol", FAKE_SCONTROL), ("sacctmgr", FAKE_SACCTMGR)):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


class Project:
    """A SQLite project with the counting pipeline, a fake sbatch first on PATH."""

    def __init__(self, folder: Path, schema: str, tmp_path: Path, fake_bin: Path):
        self.folder, self.schema, self.tmp_path = folder, schema, tmp_path
        self.url = f"sqlite:///{folder}/pipeline.db"
        self.log = tmp_path / "sbatch.log"
        self.env = cli_env(schema, tmp_path, FAKE_LOG=self.log, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    def run(self, *args, env=None, **extra) -> subprocess.CompletedProcess:
        return djhpc(args, self.folder, {**(env or self.env), **{k: str(v) for k, v in extra.items()}})

    def sbatch_calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def submitted_scripts(self) -> list[str]:
        return [(Path(f"{self.log}.script.{i}")).read_text() for i in range(1, len(self.sbatch_calls()) + 1)]

    def kept_scripts(self) -> list[Path]:
        folder = self.folder / ".djhpc" / "scripts"
        return sorted(folder.iterdir()) if folder.exists() else []

    def submissions(self):
        return Submissions(dj.conn(), self.schema).recent()


@pytest.fixture
def project(tmp_path, fake_bin, monkeypatch):
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    folder = make_project(tmp_path / "project", "sqlite:///pipeline.db", PROFILES)
    p = Project(folder, schema, tmp_path, fake_bin)
    p.pipeline = load_items(p.url, schema, 20, monkeypatch, tmp_path)
    return p


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_local_run(out: subprocess.CompletedProcess, seconds: float) -> None:
    """A `submit --scheduler local` that printed its run's PID: until that process has ended."""
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    deadline = time.monotonic() + seconds
    while alive(pid):
        assert time.monotonic() < deadline, "local workers did not finish"
        time.sleep(0.1)


def one_error_line(out: subprocess.CompletedProcess, code: int = 2) -> str:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert out.stderr.startswith("djhpc: error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# --------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("args", [["--help"], ["render", "--help"], ["submit", "--help"], ["parallel", "--help"]])
def test_help_has_examples(args, capsys):
    from djhpc.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    if args == ["--help"]:
        assert all(f"  {name} " in text or f" {name}\n" in text for name in ("render", "submit", "parallel"))
    else:
        assert "-- WORKER_ARGS" in text


def test_version(capsys):
    from djhpc.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("djhpc ")


# ------------------------------------------------------------------------------ render, dry run


def test_render_prints_the_script_and_submits_nothing(project):
    out = project.run("render", "--array", 4, "--", "--max-calls", 5)
    assert out.returncode == 0, out.stderr
    script = out.stdout
    bash_syntax_ok(script, project.tmp_path)
    args = directive_args(script, "#SBATCH")
    assert "--array=1-4" in args and "--time=02:00:00" in args and "--mem=4096M" in args
    assert "--partition=cpu" in args and "--signal=B:USR1@60" in args
    db = project.folder / "pipeline.db"
    assert f"export DJHPC_DATABASE_URL=sqlite:///{db}\n" in script
    assert script.rstrip().endswith(f"work {project.folder}/pipeline.py:Square --max-calls 5")
    assert "20 of 20 keys of Square left" in out.stderr
    assert project.sbatch_calls() == [] and project.kept_scripts() == [] and project.submissions() == []


def test_dry_run_prints_the_same_script_and_keeps_it(project):
    rendered = project.run("render", "--array", 4)
    out = project.run("submit", "--array", 4, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout == rendered.stdout
    [kept] = project.kept_scripts()
    assert kept.read_text() == out.stdout and "dry run: nothing submitted" in out.stderr
    assert project.sbatch_calls() == [] and project.submissions() == []


def test_render_needs_no_sbatch(project):
    out = project.run("render", "--array", 2, PATH="/usr/bin:/bin")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --array=1-2" in out.stdout


def test_arrays_are_named_after_their_table_unless_named(project):
    """squeue shows which table an array fills (djhpc-Square), on every scheduler; --job-name or the profile's
    job_name still wins, a name the profile gives "djhpc" too."""
    for scheduler, line in (("slurm", "#SBATCH --job-name=djhpc-Square\n"), ("pbs", "#PBS -N djhpc-Square\n"),
                            ("sge", "#$ -N djhpc-Square\n"), ("lsf", "#BSUB -J djhpc-Square[1-2]\n")):
        out = project.run("render", "--array", 2, "--scheduler", scheduler)
        assert out.returncode == 0 and line in out.stdout, (scheduler, out.stderr)
    out = project.run("submit", "--array", 2, "--job-name", "nightly")
    assert out.returncode == 0, out.stderr
    [script] = project.submitted_scripts()
    assert "#SBATCH --job-name=nightly\n" in script
    (project.folder / "djhpc.yaml").write_text((project.folder / "djhpc.yaml").read_text().replace(
        "default: {time: 2h,", "default: {job_name: djhpc, time: 2h,"))
    out = project.run("render", "--array", 2)
    assert out.returncode == 0 and "#SBATCH --job-name=djhpc\n" in out.stdout, out.stderr


def test_default_job_names_are_safe_everywhere():
    assert library.default_job_name("Analysis") == "djhpc-Analysis"
    assert library.default_job_name("Ünïcode $(x)") == "djhpc-_n_code___x_"
    assert len(library.default_job_name("A" * 200)) == 64


# ----------------------------------------------------------------------------------- profiles


def test_profiles_from_djhpc_yaml_under_flags(project):
    out = project.run("render", "--profile", "gpu", "--time", "45m", "--throttle", 2, "--after", 99)
    assert out.returncode == 0, out.stderr
    args = directive_args(out.stdout, "#SBATCH")
    # array 3 and the partition from the gpu profile, the time and throttle from the flags
    assert {"--array=1-3%2", "--partition=gpu", "--gres=gpu:a100:1", "--time=00:45:00",
            "--dependency=afterok:99"} <= set(args)
    assert not any(a.startswith("--mem") for a in args)
    out = project.run("render", "--array", 2, DJHPC_PROFILE="pbs")
    assert out.returncode == 0, out.stderr
    args = directive_args(out.stdout, "#PBS")
    assert {"workq", "walltime=01:30:00", "select=1:ncpus=2"} <= set(args)
    out = project.run("render", "--array", 2, "--profile", "pbs", "--scheduler", "torque")
    assert "#PBS -t 1-2" in out.stdout and "#PBS -l nodes=1:ppn=2" in out.stdout


def test_resolve_profile_precedence(monkeypatch):
    settings = Settings({"scheduler": "slurm", "profile": "default", "profiles": {
        "default": {"time": "2h", "mem": "4G"}, "gpu": {"partition": "gpu", "array": 3, "scheduler": "pbs"},
        "empty": None}}, None, None)
    r = library.resolve_profile(settings)
    assert (r.name, r.scheduler, r.profile.time, r.profile.mem, r.array) == ("default", "slurm", 7200, 4096, None)
    r = library.resolve_profile(settings, profile_name="gpu")
    assert (r.scheduler, r.profile.partition, r.array) == ("pbs", "gpu", 3)
    r = library.resolve_profile(settings, profile_name="gpu", scheduler="torque", flags={"partition": "short"})
    assert (r.scheduler, r.profile.partition, r.profile.scheduler) == ("torque", "short", "torque")
    monkeypatch.setenv("DJHPC_PROFILE", "empty")
    assert library.resolve_profile(settings).profile.time is None
    monkeypatch.delenv("DJHPC_PROFILE")
    # a one-minute limit gets a warning that fits (half of it), unless one is given
    assert library.resolve_profile(settings, flags={"time": "1"}).profile.signal_seconds == 30
    assert library.resolve_profile(settings, flags={"time": "1", "signal_seconds": "10"}).profile.signal_seconds == 10
    with pytest.raises(UsageError, match="signal_seconds 90 is not shorter than the time limit"):
        library.resolve_profile(Settings({"profiles": {"default": {"signal_seconds": 90}}}, None, None),
                                flags={"time": "1"})
    bare = library.resolve_profile(Settings({}, None, None))
    assert bare.name is None and bare.scheduler == default_scheduler_name()
    with pytest.raises(UsageError, match="unknown profile 'nope': djhpc.yaml defines default, empty, gpu"):
        library.resolve_profile(settings, profile_name="nope")


# ------------------------------------------------------------------------------------- submit


def test_submit_prints_job_id_and_records_it(project):
    out = project.run("submit", "--array", 5, "--", "--max-calls", 3)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "4241\n"
    [call] = project.sbatch_calls()
    assert call.startswith("--parsable ") and call.split()[-1].endswith(".sh")
    [script] = project.submitted_scripts()
    assert "#SBATCH --array=1-5" in script
    [row] = project.submissions()
    assert (row.job_id, row.scheduler, row.array_size, row.index_offset, row.total_tasks) == ("4241", "slurm", 5, 0, 5)
    assert row.target == f"{project.folder}/pipeline.py:Square" and row.table_name == "__square"
    assert Path(row.script).read_text() == script
    assert row.settings["profile"]["partition"] == "cpu" and row.settings["worker_args"] == ["--max-calls", "3"]
    assert "submitted 5 slurm task(s) for Square as job 4241; 20 of 20 keys of Square left" in out.stderr
    # the tables every task writes exist before the tasks start: hundreds of them do not race to create them
    connection = dj.conn()
    assert all(connection.has_table(connection.dialect.table(project.schema, name)) for name in ("~jobs", "~history"))


def test_array_is_capped_at_the_keys_left(project):
    out = project.run("submit", "--array", 50, "--throttle", 30)
    assert out.returncode == 0, out.stderr
    [script] = project.submitted_scripts()
    assert "#SBATCH --array=1-20%20" in script
    assert "only 20 keys left: 20 tasks instead of 50" in out.stderr
    assert project.submissions()[0].array_size == 20


def test_nothing_left_submits_nothing(project):
    worked = project.run("work")
    assert worked.returncode == 0, worked.stderr
    for command in ("submit", "render"):
        out = project.run(command, "--array", 11)
        assert out.returncode == 0 and out.stdout == "", out.stderr
        assert "nothing to submit: 0 of 20 keys of Square left" in out.stderr
    assert project.sbatch_calls() == [] and project.kept_scripts() == [] and project.submissions() == []


def test_errored_keys_are_not_counted_as_left(project, monkeypatch):
    worked = project.run("work", DJHPC_TEST_FAIL="3,4", DJHPC_TEST_CALLS=project.tmp_path / "w.log")
    assert worked.returncode == 1
    out = project.run("submit", "--array", 11)
    assert out.returncode == 0 and out.stdout == ""
    assert "nothing to submit: 0 of 20 keys of Square left, 2 in error (djhpc jobs errors)" in out.stderr


def test_site_limits_split_the_run_and_cap_it(project):
    out = project.run("submit", "--array", 11, FAKE_MAXARRAYSIZE=5, FAKE_MAXSUBMIT=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4241", "4242", "4243"]
    scripts = project.submitted_scripts()
    assert ["--array=1-4" in scripts[0], "--array=1-4" in scripts[1], "--array=1-2" in scripts[2]] == [True] * 3
    assert [s.count("DJHPC_TASK_OFFSET=") for s in scripts] == [1, 1, 1]
    assert "DJHPC_TASK_OFFSET=8\n" in scripts[2] and "DJHPC_TASK_COUNT=10\n" in scripts[2]
    rows = sorted(project.submissions(), key=lambda r: r.id)
    assert [(r.job_id, r.array_size, r.index_offset, r.total_tasks) for r in rows] == [
        ("4241", 4, 0, 10), ("4242", 4, 4, 10), ("4243", 2, 8, 10)]
    assert "MaxSubmitJobs 10" in out.stderr and "split into 3 arrays" in out.stderr


def test_a_later_array_rejected_names_what_runs_already(project):
    out = project.run("submit", "--array", 11, FAKE_MAXARRAYSIZE=5, FAKE_SBATCH_FAIL_AT=2)
    message = one_error_line(out)
    assert "QOSMaxSubmitJobPerUserLimit" in message and "(already submitted: job 4241, which will run)" in message
    assert out.stdout == "" and len(project.sbatch_calls()) == 2
    assert [(r.job_id, r.array_size) for r in project.submissions()] == [("4241", 4)]
    assert len(project.kept_scripts()) == 1  # the submitted one; the rejected one is gone


def test_local_scheduler_starts_the_workers(project):
    out = project.run("submit", "--array", 3, "--scheduler", "local")
    wait_for_local_run(out, 60)
    made, pids = make_calls(project.tmp_path)
    assert len(made) == 20 and set(made.values()) == {1}
    assert len(project.pipeline.Square()) == 20 and project.sbatch_calls() == []
    assert project.submissions()[0].scheduler == "local"


def test_a_restriction_sizes_the_run_and_reaches_every_task(project):
    """--restrict (repeatable, all must hold): the array is sized to the keys left under it, the message says
    which, each task's `djhpc work` gets it quoted, and the workers make those keys and no other."""
    restrict = ("--restrict", "item < 7", "--restrict", "item >= 2 AND item <> 4")
    out = project.run("render", "--array", 50, *restrict)
    assert out.returncode == 0, out.stderr
    assert "only 4 keys left: 4 tasks instead of 50" in out.stderr
    assert "4 of 4 keys of Square left where (item < 7) AND (item >= 2 AND item <> 4)" in out.stderr
    assert "--restrict 'item < 7' --restrict 'item >= 2 AND item <> 4'" in out.stdout
    # after `--` too, the same sizing
    out = project.run("render", "--array", 50, "--", "--restrict", "item < 7")
    assert "only 7 keys left: 7 tasks instead of 50" in out.stderr, out.stderr
    out = project.run("submit", "--array", 3, "--scheduler", "local", *restrict)
    wait_for_local_run(out, 60)
    made, _ = make_calls(project.tmp_path)
    assert sorted(made) == [f"Square [('item', {i})]" for i in (2, 3, 5, 6)] and set(made.values()) == {1}
    assert project.submissions()[0].settings["worker_args"] == list(restrict)
    out = project.run("submit", "--array", 3, *restrict)
    assert "nothing to submit: 0 of 4 keys of Square left where" in out.stderr and project.sbatch_calls() == []


# ---------------------------------------------------------------------------------- parallel


def test_parallel_prints_one_command_line(project):
    out = project.run("parallel", "--jobs", 30, "--halt", "soon,fail=1", "--joblog", "my log", "--resume-failed",
                      "--", "--max-calls", 2)
    assert out.returncode == 0, out.stderr
    line = out.stdout
    assert line.count("\n") == 1 and line.startswith("for i in $(seq 1 20); do")
    assert "parallel --will-cite -j 20 --joblog 'my log' --resume-failed --halt soon,fail=1 --line-buffer" in line
    assert f"DJHPC_DATABASE_URL=sqlite:///{project.folder}/pipeline.db " in line
    assert "--max-calls 2" in line and "only 20 keys left" in out.stderr
    assert shlex.split(line)  # one shell line that parses


# ------------------------------------------------------------------------------- credentials


def test_database_env_and_credentials_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.chdir(tmp_path)
    assert library.database_env(parse_url("sqlite:///rel.db")) == {"DJHPC_DATABASE_URL": f"sqlite:///{tmp_path}/rel.db"}
    assert library.database_env(parse_url("mysql://u@h:3306")) == {"DJHPC_DATABASE_URL": "mysql://u@h:3306"}
    url = parse_url("mysql://u:s%40cret!@h:3306")
    env = library.database_env(url)
    path = Path(env["DJHPC_DATABASE_URL_FILE"])
    assert not path.exists()  # rendering names the file; submitting writes it
    os.umask(0o022)
    assert library.write_credentials(url) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert parse_url(path.read_text().strip()).password == "s@cret!"
    assert "s@cret" not in path.name and "cret" not in str(env)


@pytest.mark.mysql
def test_password_reaches_tasks_only_through_a_0600_file(mysql_user, mysql_schema, tmp_path, fake_bin, monkeypatch):
    url, password = mysql_user
    folder = make_project(tmp_path / "project", url, "scheduler: slurm\n")
    load_items(MYSQL_URL, mysql_schema, 5, monkeypatch, tmp_path)
    p = Project(folder, mysql_schema, tmp_path, fake_bin)
    outs = [p.run("render", "--array", 2), p.run("submit", "--array", 2, "--dry-run"), p.run("submit", "--array", 2),
            p.run("parallel", "--jobs", 2)]
    assert [o.returncode for o in outs] == [0, 0, 0, 0], [o.stderr for o in outs]
    [credentials] = (tmp_path / "config" / "djhpc" / "credentials").iterdir()
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    assert credentials.read_text().strip() == url
    for o in outs:
        assert password not in o.stdout + o.stderr
    assert f"export DJHPC_DATABASE_URL_FILE={credentials}\n" in outs[0].stdout
    for script in [*p.submitted_scripts(), *(s.read_text() for s in p.kept_scripts())]:
        assert password not in script and "DJHPC_DATABASE_URL_FILE" in script
    rows = submission_rows(mysql_schema)
    assert len(rows) == 1 and password not in repr(rows) and json.loads(rows[0][8])["database"].endswith(
        "***@127.0.0.1:3306")
    # a worker started the way the script starts it finds the database through the file alone
    env = {k: v for k, v in p.env.items() if k != "DJHPC_DATABASE_URL"}
    worked = djhpc(["work"], folder, {**env, "DJHPC_DATABASE_URL_FILE": str(credentials)})
    assert worked.returncode == 0, worked.stderr
    assert len(make_calls(tmp_path)[0]) == 5


# ----------------------------------------------------------------------------- connection budget


@pytest.mark.mysql
def test_worker_budget_from_the_server(mysql_schema, tmp_path):
    connection = dj.conn(MYSQL_URL, reset=True)
    budget = library.worker_budget(connection)
    max_connections = int(root_query("SELECT @@max_connections")[0][0])
    connected = int(root_query("SHOW GLOBAL STATUS LIKE 'Threads_connected'")[0][1])
    expected = (max_connections - connected - max(5, max_connections // 10)) // library.CONNECTIONS_PER_WORKER
    assert abs(budget - expected) <= 3  # other tests connect and disconnect meanwhile
    assert library.worker_budget(dj.conn(f"sqlite:///{tmp_path}/x.db", reset=True)) is None


def _plan(project, monkeypatch, budget, limits=SiteLimits(), **kwargs):
    monkeypatch.chdir(project.folder)
    monkeypatch.setattr(library, "worker_budget", lambda connection, per_worker=1: budget // per_worker)
    monkeypatch.setattr(library, "_site_limits", lambda scheduler: limits)
    sys.modules.pop("djhpc_target_pipeline", None)
    dj.conn(project.url, reset=True)
    try:
        return library.plan(**kwargs)
    finally:
        sys.modules.pop("djhpc_target_pipeline", None)


def test_default_throttle_keeps_within_the_connection_budget(project, monkeypatch):
    run = _plan(project, monkeypatch, 6, array=11)
    assert run.profile.throttle == 6 and "#SBATCH --array=1-11%6" in run.scripts[0] and not run.warnings
    assert "the database has room for about 6 more workers" in run.notes[-1]
    run = _plan(project, monkeypatch, 6, SiteLimits(max_array_size=5), array=11)
    assert [c.size for c in run.chunks] == [4, 4, 3] and run.profile.throttle == 2  # 3 arrays share the 6
    run = _plan(project, monkeypatch, 6, array=11, flags={"throttle": 9})
    assert run.profile.throttle == 9 and "up to 9 workers may run at once" in run.warnings[0]
    run = _plan(project, monkeypatch, 50, array=11)
    assert run.profile.throttle is None and not run.warnings
    # workers that give their connection back during makes hold none through them: no throttle from the budget
    run = _plan(project, monkeypatch, 6, array=11, worker_args=["--release-after", "1m"])
    assert run.profile.throttle is None and "#SBATCH --array=1-11\n" in run.scripts[0] and not run.warnings
    assert "give theirs back during makes" in run.notes[-1] and "--release-after 1m" in run.scripts[0]
    # a task of 3 processes holds 3 connections: 6 free connections make room for 2 tasks
    run = _plan(project, monkeypatch, 6, array=11, worker_args=["--processes", "3"])
    assert run.profile.throttle == 2 and "about 2 more workers (3 connections each)" in run.notes[-1]


def test_submit_warns_when_the_request_exceeds_the_budget(project, monkeypatch):
    from djhpc.cli.main import main

    monkeypatch.chdir(project.folder)
    monkeypatch.setattr(library, "worker_budget", lambda connection, per_worker=1: 4)
    monkeypatch.setenv("PATH", project.env["PATH"])
    monkeypatch.setenv("FAKE_LOG", str(project.log))
    sys.modules.pop("djhpc_target_pipeline", None)
    dj.conn(project.url, reset=True)
    messages = []
    monkeypatch.setattr("djhpc.cli.submit.log.warning", lambda fmt, *a: messages.append(fmt % a))
    try:
        assert main(["submit", "--array", "11", "--throttle", "8"]) == 0
    finally:
        sys.modules.pop("djhpc_target_pipeline", None)
    assert any("up to 8 workers may run at once" in m for m in messages), messages
    assert len(project.sbatch_calls()) == 1


# --------------------------------------------------------------------------------- bad input


BAD_INPUT = {
    "unknown scheduler": (["submit", "--array", "2", "--scheduler", "nosuch"], "unknown scheduler 'nosuch'"),
    "unknown profile": (["submit", "--array", "2", "--profile", "nosuch"], "unknown profile 'nosuch'"),
    "array 0": (["submit", "--array", "0"], "--array must be >= 1 (got 0)"),
    "negative array": (["submit", "--array", "-3"], "--array must be >= 1 (got -3)"),
    "array not a number": (["submit", "--array", "many"], "invalid int value: 'many'"),
    "no array": (["submit"], "give --array N"),
    "throttle above array": (["submit", "--array", "3", "--throttle", "5"], "--throttle 5 is larger than the array"),
    "time limit": (["submit", "--array", "2", "--time", "soon"], "argument --time: 'soon' is not a duration: use e.g."),
    "time limit 0": (["submit", "--array", "2", "--time", "0"], "argument --time: '0' is zero"),
    "signal not a duration": (["submit", "--array", "2", "--signal-seconds", "soon"],
                              "argument --signal-seconds: 'soon' is not a duration"),
    "memory": (["submit", "--array", "2", "--mem", "lots"], "memory 'lots' does not parse"),
    "signal": (["submit", "--array", "2", "--time", "1", "--signal-seconds", "90"], "signal_seconds 90 is not shorter"),
    "target does not import": (["submit", "nosuchmodule:Square", "--array", "2"], "does not import"),
    "target file missing": (["submit", "nosuch.py:Square", "--array", "2"], "does not exist"),
    "target class missing": (["submit", "pipeline.py:Nope", "--array", "2"], "has no Nope"),
    "target not computed": (["submit", "pipeline.py:Item", "--array", "2"], "is not a Computed or Imported table"),
    "template dir": (["submit", "--array", "2", "--template-dir", "/nonexistent"], "template directory"),
    "unknown option": (["submit", "--array", "2", "--bogus"], "unrecognized arguments: --bogus"),
    "render unknown scheduler": (["render", "--array", "2", "--scheduler", "flux"], "unknown scheduler 'flux'"),
    "parallel halt": (["parallel", "--jobs", "2", "--halt", "sometimes"], "not a GNU parallel halt rule"),
    "parallel jobs 0": (["parallel", "--jobs", "0"], "--array must be >= 1 (got 0)"),
    "rejected by sbatch": (["submit", "--array", "2", "--partition", "nosuchpartition"],
                           "sbatch: error: invalid partition specified: nosuchpartition"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_submits_nothing(project, case):
    args, message = BAD_INPUT[case]
    extra = {"FAKE_SBATCH_FAIL": "invalid partition specified: nosuchpartition"} if "sbatch" in case else {}
    out = project.run(*args, **extra)
    assert message in one_error_line(out)
    assert out.stdout == ""
    assert project.kept_scripts() == [] and project.submissions() == []
    assert len(project.sbatch_calls()) == (1 if "sbatch" in case else 0)  # the rejected call, nothing else


@pytest.mark.parametrize("scheduler, command", [("slurm", "sbatch"), ("pbs", "qsub"), ("torque", "qsub"),
                                                ("parallel", "parallel")])
def test_missing_scheduler_command_is_one_line(project, scheduler, command, tmp_path):
    bare = tmp_path / "bare-bin"
    bare.mkdir(exist_ok=True)
    out = project.run("submit", "--array", 2, "--scheduler", scheduler, PATH=str(bare))
    assert f"{command} not found on PATH" in one_error_line(out)
    assert project.kept_scripts() == [] and project.submissions() == [] and project.sbatch_calls() == []
    if scheduler == "parallel":
        out = project.run("parallel", "--jobs", 2, "--run", PATH=str(bare))
        assert "parallel not found on PATH" in one_error_line(out)


# ------------------------------------------------------------------ DataJoint's connection for the tasks


def test_datajoint_credentials_file_is_0600_shell_that_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    url = parse_url("mysql://lab%20user:p%27w%20%24x%22@db.example.org:3307")
    assert library.datajoint_variables(url) == {"DJ_HOST": "db.example.org:3307", "DJ_USER": "lab user",
                                                "DJ_PASS": "p'w $x\""}
    assert library.datajoint_variables(parse_url("mysql://u@h:3306"))["DJ_HOST"] == "h"
    os.umask(0o022)
    path = library.write_datajoint_credentials(url)
    assert path == library.datajoint_credentials_path(url) and path.name.endswith(".dj.env")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    shown = subprocess.run(["bash", "-c", '. "$1"; printf "%s|%s|%s" "$DJ_HOST" "$DJ_USER" "$DJ_PASS"', "_",
                            str(path)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert shown.stdout == "db.example.org:3307|lab user|p'w $x\""
    assert "p'w" not in path.name


def test_the_submit_command_runs_without_passwords_in_its_environment(monkeypatch):
    monkeypatch.setenv("DJ_PASS", "s3cret")
    monkeypatch.setenv("MYSQL_PWD", "s3cret")
    monkeypatch.setenv("DJHPC_DATABASE_URL", "mysql://u:s3cret@h:3306")
    with library.without_secrets():
        assert not {"DJ_PASS", "MYSQL_PWD", "DJHPC_DATABASE_URL"} & set(os.environ)
    assert os.environ["DJ_PASS"] == "s3cret" and os.environ["DJHPC_DATABASE_URL"] == "mysql://u:s3cret@h:3306"
    monkeypatch.setenv("DJHPC_DATABASE_URL", "mysql://u@h:3306")  # no password: the tasks may read it
    monkeypatch.setenv("DJ_PASS", "")
    with library.without_secrets():
        assert os.environ["DJHPC_DATABASE_URL"] == "mysql://u@h:3306" and os.environ["DJ_PASS"] == ""


def test_sbatch_is_not_given_dj_pass(project, tmp_path, fake_bin):
    folder = tmp_path / "envbin"
    folder.mkdir()
    (folder / "sbatch").write_text(f'#!/bin/bash\nenv > "$FAKE_LOG.env"\nexec {fake_bin}/sbatch "$@"\n')
    (folder / "sbatch").chmod(0o755)
    env = {**project.env, "PATH": f"{folder}{os.pathsep}{project.env['PATH']}", "DJ_PASS": "s3cret-dj"}
    out = project.run("submit", "--array", 2, env=env)
    assert out.returncode == 0, out.stderr
    seen = Path(f"{project.log}.env").read_text()
    assert "DJHPC_TEST_CALLS=" in seen and "s3cret-dj" not in seen


def _datajoint2_python() -> str:
    from support.env import unavailable

    pythons = dict(part.partition("=")[::2] for part in os.environ.get("DJHPC_DATAJOINT_PYTHONS", "").split(",")
                   if part)
    if not pythons.get("2") or not Path(pythons["2"]).exists():
        unavailable("no interpreter with DataJoint 2 (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    return pythons["2"]


@pytest.mark.mysql
def test_a_datajoint_table_renders_runs_locally_and_in_parallel(mysql_user, mysql_schema, tmp_path, fake_bin):
    """render, parallel and submit --scheduler local with a table written with DataJoint 2, as a user with a
    password: the local workers connect through the sourced 0600 file alone (DJ_PASS is not in their parent's
    environment)."""
    from support.env import ROOT

    python = _datajoint2_python()
    url, password = mysql_user
    user = url.split("//", 1)[1].split(":", 1)[0]
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipeline.py").write_text((ROOT / "tests" / "pipelines" / "dj_pipeline.py").read_text())
    (folder / "djhpc.yaml").write_text("target: pipeline.py:Square\nscheduler: slurm\n")
    env = cli_env(mysql_schema, tmp_path, FAKE_LOG=tmp_path / "sbatch.log", DJ_HOST="127.0.0.1", DJ_USER=user,
                  DJ_PASS=password, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    def run(*argv):
        return subprocess.run([python, *map(str, argv)], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=120)

    filled = run("-c", "import pipeline as p; p.Item.insert([(i, i) for i in range(12)])")
    assert filled.returncode == 0, filled.stderr
    rendered = run("-m", "djhpc.cli.main", "render", "--array", 3)
    assert rendered.returncode == 0, rendered.stderr
    script = rendered.stdout
    assert script.startswith("#!/bin/bash\n") and "connected" not in script  # DataJoint's log went to stderr
    assert f"export DJHPC_DATAJOINT_ENV_FILE={tmp_path}/config/djhpc/credentials/" in script
    assert '. "$DJHPC_DATAJOINT_ENV_FILE"' in script and password not in script + rendered.stderr
    assert script.rstrip().endswith(f"exec {python} -m djhpc.cli.main work {folder}/pipeline.py:Square")
    assert "12 of 12 keys of Square left" in rendered.stderr
    bash_syntax_ok(script, tmp_path)
    # --release-after: a tripartite make's worker gives both connections back while it computes (no throttle
    # from the database's); a classic make's keeps DataJoint's, counted
    released = [run("-m", "djhpc.cli.main", "render", f"pipeline.py:{t}", "--array", 3, "--", "--release-after", 30)
                for t in ("Doubled", "Square")]
    assert [r.returncode for r in released] == [0, 0], released[0].stderr + released[1].stderr
    assert ["no throttle from the database's connections" in r.stderr for r in released] == [True, False]

    line = run("-m", "djhpc.cli.main", "parallel", "--jobs", 2)
    assert line.returncode == 0, line.stderr
    assert line.stdout.count("\n") == 1 and f"{python} -m djhpc.cli.main work" in line.stdout
    assert "DJHPC_DATAJOINT_ENV_FILE" not in line.stdout and password not in line.stdout

    out = run("-m", "djhpc.cli.main", "submit", "--array", 2, "--scheduler", "local")
    wait_for_local_run(out, 90)
    made = root_query(f"SELECT COUNT(*) FROM `{mysql_schema}`.`__square`")[0][0]
    errors = root_query(f"SELECT error_message FROM `{mysql_schema}`.`~djhpc_jobs`")
    assert made == 12 and errors == ()
    [row] = submission_rows(mysql_schema)
    assert row[1:5] == ("local", f"{folder}/pipeline.py:Square", "__square", 2) and password not in repr(row)


@pytest.mark.mysql
def test_a_datajoint_worker_counts_two_connections(mysql_schema):
    """A djhpc worker holds one connection (its heartbeat opens one for a moment per beat); a DataJoint table's
    worker two: djhpc's and DataJoint's, which make runs on."""
    assert (library.CONNECTIONS_PER_WORKER, library.DATAJOINT_CONNECTIONS_PER_WORKER) == (1, 2)
    connection = dj.conn(MYSQL_URL, reset=True)
    one, two = library.worker_budget(connection), library.worker_budget(connection, per_worker=2)
    assert one is not None and two is not None and abs(two - one // 2) <= 3  # others connect meanwhile
