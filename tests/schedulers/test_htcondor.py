"""HTCondor, which cannot run here: the submit description at the top of the task script (golden file, read back
command by command), one job of the cluster run here as HTCondor's starter would run it (the description's
executable, arguments, initialdir and environment, its macros expanded as condor_submit expands them) against a
real database, eviction's SIGTERM giving the keys back, and submit/status/cancel/limits through fake
condor_submit, condor_q, condor_history, condor_rm and condor_config_val on PATH that print the recorded output
of tests/schedulers/recorded/htcondor/ (where it comes from: recorded/README.md) and record their argv.
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
from support.scripts import (
    FULL_ARGS,
    FULL_ENV,
    FULL_SETTINGS,
    FULL_TARGET,
    bash_syntax_ok,
    read_argv,
    read_env,
    write_executable,
)

import djhpc as dj
from djhpc.errors import SchedulerError, UsageError
from djhpc.profile import Profile
from djhpc.schedulers import SiteLimits, TaskState, get_scheduler
from djhpc.schedulers.htcondor import (
    ATTRIBUTES,
    cluster_id,
    htcondor_state,
    parse_job_ads,
    parse_terse,
    submit_description,
)
from djhpc.submissions import Submissions

RECORDED = Path(__file__).parent / "recorded" / "htcondor"
GOLDEN = Path(__file__).parent / "golden"
S = TaskState

FLAGS = ["--array", 4, "--throttle", 2, "--time", "1:30:00", "--mem", "2G", "--cpus", 2, "--gpus", 1,
         "--account", "lab-7", "--job-name", "my run", "--mail-user", "me@example.org",
         "--mail-type", "END,FAIL"]  # fmt: skip


# ------------------------------------------------------------------------------------------ helpers


def fake_command(folder: Path, name: str, output: str = "", code: int = 0, stderr: str = "") -> None:
    """NAME on PATH: records each call's argv (NUL-separated), environment, and the file it was given last."""
    (folder / f"{name}.stdout").write_text(output)
    (folder / f"{name}.stderr").write_text(stderr)
    out = shlex.quote(str(folder / name))
    write_executable(
        folder / name,
        f"""#!/bin/bash
n=$(( $(cat {out}.count 2>/dev/null || echo 0) + 1 ))
echo "$n" > {out}.count
if [ $# -gt 0 ]; then printf '%s\\0' "$@"; fi > {out}.argv.$n
env -0 > {out}.env.$n
last="${{@: -1}}"
if [ -f "$last" ]; then cat "$last" > {out}.file.$n; fi
cat {out}.stdout
cat {out}.stderr >&2
exit {code}
""",
    )


def calls(folder: Path, name: str) -> list[dict]:
    count = int((folder / f"{name}.count").read_text()) if (folder / f"{name}.count").exists() else 0
    out = []
    for n in range(1, count + 1):
        argv = [a.decode() for a in (folder / f"{name}.argv.{n}").read_bytes().split(b"\0")[:-1]]
        given = folder / f"{name}.file.{n}"
        out.append({"argv": argv, "env": (folder / f"{name}.env.{n}").read_bytes().decode(),
                    "file": given.read_text() if given.exists() else None})  # fmt: skip
    return out


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.startswith("djhpc: error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def on_path(env: dict, folder: Path) -> dict:
    return {**env, "PATH": f"{folder}{os.pathsep}{env['PATH']}"}


def kept(project: Path) -> list[str]:
    folder = project / ".djhpc" / "scripts"
    return sorted(p.suffix for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    folder = tmp_path / "fakebin"
    folder.mkdir()
    return folder


@pytest.fixture
def sqlite_project(tmp_path, monkeypatch):
    schema = "djhpc_test_" + uuid.uuid4().hex[:10]
    project = make_project(tmp_path / "project", "sqlite:///pipeline.db", "scheduler: htcondor\n")
    load_items(f"sqlite:///{project}/pipeline.db", schema, 30, monkeypatch, tmp_path)
    return project, schema


# ------------------------------------------------- the submit description, as condor_submit reads it


def read_description(text: str) -> tuple[dict[str, str], int]:
    """(commands, queue count) of a submit description: NAME = VALUE lines, # comments, a last `queue N`."""
    commands: dict[str, str] = {}
    count = 0
    for line in text.split("\n"):  # condor_submit ends a line at \n only (\r is refused in every value)
        line = line.strip(" \t")
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"queue(?:\s+(\d+))?", line, re.IGNORECASE)
        if m:
            count = int(m.group(1) or 1)
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not a submit command: {line!r}"
        assert name.strip().lower() not in commands, f"{name.strip()} given twice"
        commands[name.strip().lower()] = value.strip()
    return commands, count


def expand(value: str, macros: dict[str, str], environ: dict[str, str]) -> str:
    """condor_submit's macro expansion for what djhpc writes: $(NAME), $INT(NAME,%d) of a sum, $ENV(NAME),
    and $(DOLLAR), a literal $."""

    def one(m: re.Match) -> str:
        kind, name = m.group(1), m.group(2)
        if kind == "ENV":
            return environ.get(name, "")
        if kind == "INT":
            name, _, fmt = name.partition(",")
            total = sum(int(expand(term, macros, environ)) for term in macros[name.strip()].split("+"))
            return (fmt.strip() or "%d") % total
        return "\0" if name == "DOLLAR" else expand(macros[name], macros, environ)

    out = re.sub(r"\$(ENV|INT)?\(([^()]*)\)", one, value)
    return out.replace("\0", "$")


def split_quoted(value: str) -> list[str]:
    """The 'new syntax' of arguments and environment: "..." around the whole, blanks separate, '...' groups,
    '' inside is one '."""
    assert value.startswith('"') and value.endswith('"'), value
    words, word, quoted, started = [], "", False, False
    text = value[1:-1].replace('""', '"')
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'" and quoted and text[i + 1 : i + 2] == "'":
            word += "'"
            i += 2
            continue
        if ch == "'":
            quoted, started = not quoted, True
        elif ch.isspace() and not quoted:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + ch, True
        i += 1
    if started:
        words.append(word)
    return words


def job_of(description: str, cluster: int, process: int, environ: dict[str, str]) -> dict:
    """What the starter runs for job CLUSTER.PROCESS: argv, initial directory, environment."""
    commands, count = read_description(description)
    assert 0 <= process < count
    macros = {**commands, "Cluster": str(cluster), "ClusterId": str(cluster), "Process": str(process),
              "ProcId": str(process)}  # fmt: skip
    argv = [expand(commands["executable"], macros, environ)]
    argv += split_quoted(expand(commands["arguments"], macros, environ))
    env = dict(item.split("=", 1) for item in split_quoted(expand(commands["environment"], macros, environ)))
    initialdir = expand(commands["initialdir"], macros, environ) if "initialdir" in commands else None
    return {"argv": argv, "env": env, "initialdir": initialdir, "commands": commands, "count": count}


# ---------------------------------------------------------------------------------------- rendering


def test_golden_submit_description(tmp_path):
    """What submit writes beside the golden script (golden/htcondor.sh), as a golden file of its own."""
    script = (GOLDEN / "htcondor.sh").read_text()
    text = submit_description(script, Path("/scratch/me/my project/.djhpc/scripts/htcondor-golden.sh"))
    golden = GOLDEN / "htcondor.sub"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "htcondor.sub changed: UPDATE_GOLDEN=1 and review"
    commands, count = read_description(text)
    assert count == 11 and commands["djhpc_script"] == "/scratch/me/my project/.djhpc/scripts/htcondor-golden.sh"


def test_description_read_back(sqlite_project, tmp_path):
    project, schema = sqlite_project
    out = djhpc(["render", *FLAGS], project, cli_env(schema, tmp_path))
    assert out.returncode == 0, out.stderr
    bash_syntax_ok(out.stdout, tmp_path)
    commands, count = read_description(submit_description(out.stdout, tmp_path / "task.sh"))
    assert count == 4
    assert {k: commands[k] for k in ("universe", "executable", "arguments", "batch_name", "request_cpus",
                                     "request_memory", "request_gpus", "accounting_group", "max_materialize",
                                     "notify_user", "notification", "kill_sig", "should_transfer_files")} == {
        "universe": "vanilla", "executable": "/bin/bash", "arguments": "\"'$(djhpc_script)'\"", "batch_name": "my run",
        "request_cpus": "2", "request_memory": "2048", "request_gpus": "1", "accounting_group": "lab-7",
        "max_materialize": "2", "notify_user": "me@example.org", "notification": "Complete", "kill_sig": "SIGTERM",
        "should_transfer_files": "NO",
    }  # fmt: skip
    assert commands["periodic_remove"] == "(JobStatus == 2) && ((time() - EnteredCurrentStatus) > 5400)"
    assert commands["output"] == "djhpc-$(Cluster)_$INT(djhpc_task,%d).out"
    assert commands["log"] == "djhpc-$(Cluster)_$INT(djhpc_task,%d).log"
    assert "getenv" not in commands  # the job gets only what the environment line names
    job = job_of(submit_description(out.stdout, tmp_path / "task.sh"), 4243, 0, {"PATH": "/p", "HOME": "/h"})
    assert job["env"] == {"DJHPC_CONDOR_CLUSTER": "4243", "DJHPC_CONDOR_TASK": "1", "PATH": "/p", "HOME": "/h"}
    assert job["argv"] == ["/bin/bash", str((tmp_path / "task.sh").resolve())]
    assert [job_of(submit_description(out.stdout, tmp_path / "t.sh"), 1, p, {})["env"]["DJHPC_CONDOR_TASK"]
            for p in range(4)] == ["1", "2", "3", "4"]  # fmt: skip
    assert "export DJHPC_TASK_COUNT=4" in out.stdout


def test_values_stay_values_in_the_description(tmp_path):
    """A $ in a value is $(DOLLAR): no macro of the user's expands; SLURM's %A/%a become the cluster and task."""
    profile = Profile(job_name="a $(Process) b", output="logs/$(x)-%A_%a.out", workdir="/w/$HOME dir")
    script = get_scheduler("htcondor").render(profile, target="p.T", array_size=2)
    path = tmp_path / "odd 'name\" $(x).sh"
    description = submit_description(script, path)
    commands, _ = read_description(description)
    assert commands["batch_name"] == "a $(DOLLAR)(Process) b"
    assert commands["output"] == "logs/$(DOLLAR)(x)-$(Cluster)_$INT(djhpc_task,%d).out"
    job = job_of(description, 7, 1, {})
    assert expand(commands["batch_name"], {}, {}) == "a $(Process) b" and job["initialdir"] == "/w/$HOME dir"
    assert job["argv"][1] == str(path.resolve())  # ' " and $ in the script's path survive arguments' quoting


@pytest.mark.parametrize("flags, message", [
    (["--after", "12x"], "--after '12x' is not an HTCondor cluster id: give the number condor_submit printed"),
    (["--nodes", 2], "--nodes 2 cannot be expressed on HTCondor: a vanilla-universe job runs on one machine"),
    (["--directive", "getenv = true"], "sets getenv, which djhpc writes itself"),
    (["--directive", "environment = \"A=1\""], "sets environment, which djhpc writes itself"),
    (["--directive", "queue 3"], "sets queue, which djhpc writes itself"),
    (["--directive", "include : ./more.sub"], "sets include, which djhpc writes itself"),
    (["--directive", "hold = false"], "sets hold, which djhpc writes itself"),
])  # fmt: skip
def test_what_htcondor_cannot_take_is_one_line(sqlite_project, tmp_path, fakes, flags, message):
    project, schema = sqlite_project
    fake_command(fakes, "condor_submit", (RECORDED / "condor_submit-terse.txt").read_text())
    out = djhpc(["submit", "--array", 2, *flags], project, on_path(cli_env(schema, tmp_path), fakes))
    assert message in one_error_line(out)
    assert calls(fakes, "condor_submit") == [] and kept(project) == []


def test_other_directives_and_settings_are_notes(tmp_path):
    profile = Profile.from_dict({**FULL_SETTINGS, "scheduler": "condor", "after": [],
                                 "extra_directives": ["+ProjectName = \"lab\"", "--constraint=haswell"]})  # fmt: skip
    script = get_scheduler("condor").render(profile, target=FULL_TARGET, worker_args=FULL_ARGS, env=FULL_ENV,
                                            array_size=3)  # fmt: skip
    commands, _ = read_description(submit_description(script, tmp_path / "x.sh"))
    assert commands["+projectname"] == '"lab"'
    assert "# note: extra directive '--constraint=haswell' is not an HTCondor submit command" in script
    assert "# note: partition 'debug': HTCondor has no queues, ignored" in script


# ------------------------------------------------------------- --after: held, and released by a local job


def release_script(held: str = "4243", after: tuple[str, ...] = ("1234", "1235"), kind: str = "afterok") -> str:
    from djhpc.schedulers.base import template_environment

    return template_environment(None).get_template("htcondor-after.sh.j2").render(
        held=held, after=list(after), after_type=kind, script_dir="/scratch/me/my project/.djhpc/scripts",
        constraint=" || ".join(f"ClusterId == {c}" for c in after),
    )  # fmt: skip


def test_golden_after(tmp_path):
    """--after 1234 (afterany): the run's cluster starts on hold; the release job's script and description."""
    profile = Profile.from_dict({**FULL_SETTINGS, "scheduler": "htcondor"})
    script = get_scheduler("htcondor").render(profile, target=FULL_TARGET, worker_args=FULL_ARGS, env=FULL_ENV,
                                              array_size=11)  # fmt: skip
    held = submit_description(script, Path("/scratch/me/my project/.djhpc/scripts/htcondor-golden.sh"))
    release = release_script(after=("1234",), kind="afterany")
    for name, text in (("htcondor-after.sub", held), ("htcondor-release.bash", release)):
        if os.environ.get("UPDATE_GOLDEN") == "1":
            (GOLDEN / name).write_text(text, encoding="utf-8")
        assert text == (GOLDEN / name).read_text(encoding="utf-8"), f"{name} changed: UPDATE_GOLDEN=1 and review"
    bash_syntax_ok(release, tmp_path)
    assert "# note: --after: the cluster starts on hold; djhpc submit queues a job that releases it" in script
    commands, count = read_description(held)
    assert (commands["hold"], commands["+djhpcafter"], commands["+djhpcaftertype"], count) == (
        "true",
        '"1234"',
        '"afterany"',
        11,
    )
    commands, count = read_description(submit_description(release, tmp_path / "r.sh"))
    assert (commands["universe"], commands["executable"], count) == ("local", "/bin/bash", 1)
    assert "getenv" not in commands


def fake_condor(
    folder: Path,
    *,
    held_gone: bool = False,
    queue: tuple[str, ...] = ("1\n2", ""),
    history: str = "4 0\n4 0",
    q_fails: int = 0,
) -> None:
    """condor_q answering for the held cluster (4243) and, call by call, the awaited ones (queue[i], then
    empty); condor_history, condor_release and condor_rm recording their argv."""
    for i, text in enumerate(queue):
        (folder / f"queue.{i + 1}").write_text(text + "\n" if text else "")
    (folder / "history").write_text(history + "\n")
    f = shlex.quote(str(folder))
    write_executable(folder / "condor_q", f"""#!/bin/bash
n=$(( $(cat {f}/q.count 2>/dev/null || echo 0) + 1 )); echo $n > {f}/q.count
[ $n -le {q_fails} ] && {{ echo "Failed to fetch ads from schedd" >&2; exit 1; }}
if [ "$3" = 4243 ]; then {"true" if held_gone else "echo 4243"}; exit 0; fi
a=$(( $(cat {f}/a.count 2>/dev/null || echo 0) + 1 )); echo $a > {f}/a.count
cat {f}/queue.$a 2>/dev/null || true
""")  # fmt: skip
    for name, out in (("condor_history", f"cat {f}/history"), ("condor_release", "echo released"),
                      ("condor_rm", "echo removed")):  # fmt: skip
        write_executable(folder / name, f"#!/bin/bash\nprintf '%s\\n' \"$*\" >> {f}/{name}.log\n{out}\n")


def run_release(folder: Path, tmp_path: Path, **kwargs) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    path = tmp_path / "release.sh"
    path.write_text(release_script(**kwargs))
    env = {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "DJHPC_AFTER_POLL_SECONDS": "0"}
    proc = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60)
    logs = {name: (folder / f"{name}.log").read_text().splitlines() if (folder / f"{name}.log").exists() else []
            for name in ("condor_history", "condor_release", "condor_rm")}  # fmt: skip
    return proc, logs


@pytest.mark.parametrize("kind, history, released", [
    ("afterok", "4 0\n4 0", True), ("afterok", "4 0\n4 1", False), ("afterok", "4 0\n3 undefined", False),
    ("afterok", "", False), ("afternotok", "4 1\n4 0", True), ("afternotok", "4 0\n4 0", False),
    ("afterany", "4 1", True),
])  # fmt: skip
def test_release_once_they_have_ended(fakes, tmp_path, kind, history, released):
    fake_condor(fakes, history=history, queue=("1\n2", "2", ""))
    proc, logs = run_release(fakes, tmp_path, kind=kind)
    assert (fakes / "a.count").read_text().strip() == "3"  # asked until the awaited clusters had left the queue
    if released:
        assert proc.returncode == 0 and logs["condor_release"] == ["4243"] and logs["condor_rm"] == [], proc.stderr
    else:
        assert proc.returncode == 1 and logs["condor_rm"] == ["4243"] and logs["condor_release"] == []
        assert f"{kind} cannot be met: removing cluster 4243" in proc.stderr
    want = [] if kind == "afterany" else ["-af JobStatus ExitCode -constraint ClusterId == 1234 || ClusterId == 1235"]
    assert logs["condor_history"] == want


def test_release_after_one_has_started(fakes, tmp_path):
    fake_condor(fakes, queue=("1\n1", "1\n2", "2"))
    proc, logs = run_release(fakes, tmp_path, kind="after")
    assert proc.returncode == 0 and logs["condor_release"] == ["4243"], proc.stderr
    assert (fakes / "a.count").read_text().strip() == "2"


def test_release_waits_out_an_unanswering_schedd(fakes, tmp_path):
    """condor_q failing decides nothing: no release until it answers that the awaited clusters have gone."""
    fake_condor(fakes, queue=("",), q_fails=3)
    proc, logs = run_release(fakes, tmp_path)
    assert proc.returncode == 0 and logs["condor_release"] == ["4243"], proc.stderr
    assert (fakes / "q.count").read_text().strip() == "5"


def test_release_of_a_removed_cluster_does_nothing(fakes, tmp_path):
    fake_condor(fakes, held_gone=True)
    proc, logs = run_release(fakes, tmp_path)
    assert proc.returncode == 0 and "has left the queue (removed?)" in proc.stdout
    assert logs == {"condor_history": [], "condor_release": [], "condor_rm": []}


def test_submit_after_holds_and_queues_the_release(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    fake_command(fakes, "condor_submit", (RECORDED / "condor_submit-terse.txt").read_text())
    out = djhpc(["submit", "--array", 2, "--after", "1234", "--after", "1235.0"], project,
                on_path(cli_env(schema, tmp_path), fakes))  # fmt: skip
    assert out.returncode == 0 and out.stdout.split() == ["4243"], out.stderr
    held, release = calls(fakes, "condor_submit")
    commands, count = read_description(held["file"])
    assert (commands["hold"], commands["+djhpcafter"], commands["+djhpcaftertype"], count) == (
        "true",
        '"1234 1235"',
        '"afterok"',
        2,
    )
    [script] = (project / ".djhpc" / "scripts").glob("htcondor-*[0-9a-f].sh")
    waiter = script.with_name(f"{script.stem}-after.sh")
    assert release["argv"] == ["-terse", str(waiter.with_suffix(".sub"))]
    commands, count = read_description(release["file"])
    assert (commands["universe"], commands["djhpc_script"], count) == ("local", str(waiter.resolve()), 1)
    assert "held=4243\n" in waiter.read_text() and "after=(1234 1235)\n" in waiter.read_text()
    [row] = Submissions(dj.conn(), schema).recent()
    assert row.job_id == "4243"


def test_a_release_job_not_queued_removes_the_held_cluster(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    f = shlex.quote(str(fakes))
    write_executable(fakes / "condor_submit", f"""#!/bin/bash
n=$(( $(cat {f}/s.count 2>/dev/null || echo 0) + 1 )); echo $n > {f}/s.count
[ $n = 1 ] && {{ echo "4243.0 - 4243.1"; exit 0; }}
echo "ERROR: Local universe jobs are not allowed" >&2; exit 1
""")  # fmt: skip
    fake_command(fakes, "condor_rm", "All jobs in cluster 4243 have been marked for removal\n")
    out = djhpc(["submit", "--array", 2, "--after", "1234"], project, on_path(cli_env(schema, tmp_path), fakes))
    message = one_error_line(out)
    assert "cluster 4243 was submitted on hold, but the job that would release it after 1234 was not" in message
    assert "Local universe jobs are not allowed" in message and "cluster 4243 removed; submit again" in message
    assert [c["argv"] for c in calls(fakes, "condor_rm")] == [["4243"]]
    assert kept(project) == [] and Submissions(dj.conn(), schema).recent() == []


# ------------------------------------------------------------------------------------ a job, here


def history(schema: str) -> set:
    connection = dj.conn()
    table = connection.dialect.table(schema, "~history")
    return {tuple(r) for r in connection.query(f"SELECT sched_job_id, sched_task_id FROM {table}").fetchall()}


def condor_project(backend: str, tmp_path: Path, monkeypatch, request, n_items: int, **extra):
    if backend == "mysql":
        if not mysql_available():
            unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
        schema = request.getfixturevalue("mysql_schema")
        url = MYSQL_URL
        project = make_project(tmp_path / "project", url, "scheduler: htcondor\n")
    else:
        schema = "djhpc_test_" + uuid.uuid4().hex[:10]
        project = make_project(tmp_path / "project", "sqlite:///pipeline.db", "scheduler: htcondor\n")
        url = f"sqlite:///{project}/pipeline.db"
    load_items(url, schema, n_items, monkeypatch, tmp_path)
    return project, schema, cli_env(schema, tmp_path, **extra)


# the test pipeline's own knobs: on a pool they would be in the pipeline's config, not in the job's environment
KNOBS = ("DJHPC_TEST_SCHEMA", "DJHPC_TEST_CALLS", "DJHPC_TEST_FAIL", "DJHPC_TEST_SLEEP", "PYTHONPATH",
         "XDG_CONFIG_HOME", "DJHPC_SAFEMODE")  # fmt: skip


def start_job(project: Path, env: dict, tmp_path: Path, process: int, **popen) -> subprocess.Popen:
    """Render, write the script and its description as submit does, and start job 4243.PROCESS the way the
    starter does: the description's argv, in its initialdir (else the submit directory), with only the
    environment it names."""
    out = djhpc(["render", "--array", 4], project, env)
    assert out.returncode == 0, out.stderr
    script = tmp_path / "task.sh"
    script.write_text(out.stdout)
    home = tmp_path / "home"
    home.mkdir()
    job = job_of(submit_description(out.stdout, script), 4243, process, {"PATH": env["PATH"], "HOME": str(home)})
    job_env = {**job["env"], **{k: env[k] for k in KNOBS if k in env}}
    assert not set(job_env) - set(job["env"]) - set(KNOBS)
    return subprocess.Popen(job["argv"], cwd=job["initialdir"] or project, env=job_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_job_populates(backend, tmp_path, monkeypatch, request):
    """Job 4243.2 is djhpc task 3: keys made, the failing one's error row names job, task, host and PID."""
    project, schema, env = condor_project(backend, tmp_path, monkeypatch, request, 30, DJHPC_TEST_FAIL=4)
    proc = start_job(project, env, tmp_path, 2)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # one make failed on purpose
    made, _ = make_calls(tmp_path)
    assert len(made) == 30 and set(made.values()) == {1}
    pipeline = __import__("pipeline_counts")
    assert len(pipeline.Square()) == 29
    [error] = pipeline.schema.jobs.fetch(as_dict=True)
    assert (error["status"], error["sched_job_id"], error["sched_task_id"]) == ("error", "4243", "3")
    assert (error["host"], error["pid"]) == (socket.gethostname(), proc.pid)  # bash execs the worker
    assert history(schema) == {("4243", "3")}


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_eviction_gives_keys_back(backend, tmp_path, monkeypatch, request):
    """condor_rm, periodic_remove and eviction send kill_sig (SIGTERM), SIGKILL after the vacate time: the worker
    stops in the middle of a 60 s make, gives its keys back and exits 75 long before any SIGKILL."""
    project, schema, env = condor_project(backend, tmp_path, monkeypatch, request, 4, DJHPC_TEST_SLEEP=60)
    proc = start_job(project, env, tmp_path, 0, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "calls.log").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no make started"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    assert proc.returncode == 75 and "reservations released" in stderr, stderr
    pipeline = __import__("pipeline_counts")
    assert pipeline.schema.jobs.fetch(as_dict=True) == [] and len(pipeline.Square()) == 0
    print(f"eviction: keys given back, exit 75, {stopped_after:.2f} s after SIGTERM")


# ----------------------------------------------------------------------- submit, with fake condor_submit


def test_submit_writes_the_description_and_submits_it(mysql_user, mysql_schema, tmp_path, monkeypatch, fakes):
    url, password = mysql_user
    project = make_project(tmp_path / "project", url, "scheduler: condor\n")
    load_items(url, mysql_schema, 10, monkeypatch, tmp_path)
    fake_command(fakes, "condor_submit", (RECORDED / "condor_submit-terse.txt").read_text())
    env = on_path(cli_env(mysql_schema, tmp_path, DJ_PASS=password, MYSQL_PWD=password), fakes)
    out = djhpc(["submit", "--array", 3], project, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4243"]
    folder = project / ".djhpc" / "scripts"
    [script] = folder.glob("htcondor-*.sh")
    description = script.with_suffix(".sub")
    [call] = calls(fakes, "condor_submit")
    assert call["argv"] == ["-terse", str(description)] and call["file"] == description.read_text()
    assert description.read_text().startswith(f"djhpc_script = {script.resolve()}\n")
    job = job_of(description.read_text(), 4243, 2, {"PATH": "/bin", "HOME": "/h"})
    assert job["argv"] == ["/bin/bash", str(script.resolve())] and job["count"] == 3
    for seen in (call["env"], " ".join(call["argv"]), script.read_text(), description.read_text()):
        assert password not in seen
    assert "getenv" not in description.read_text().replace("never getenv = true", "")
    [row] = Submissions(dj.conn(url, reset=True), mysql_schema).recent()
    assert (row.job_id, row.scheduler, row.array_size, row.script) == ("4243", "htcondor", 3, str(script))
    assert password not in json.dumps(row.settings)


def test_rejected_submission_is_quoted_and_leaves_nothing(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    said = "ERROR: Parse error in expression: \n  (true) && (false)\n"
    fake_command(fakes, "condor_submit", "", code=1, stderr=said)
    out = djhpc(["submit", "--array", 2], project, on_path(cli_env(schema, tmp_path), fakes))
    assert "condor_submit -terse" in one_error_line(out) and "ERROR: Parse error in expression:" in out.stderr
    assert kept(project) == [] and Submissions(dj.conn(), schema).recent() == []


def test_missing_condor_submit_is_one_line_and_submits_nothing(sqlite_project, tmp_path):
    project, schema = sqlite_project
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    out = djhpc(["submit", "--array", 2], project, {**cli_env(schema, tmp_path), "PATH": str(bare)})
    assert "condor_submit not found on PATH" in one_error_line(out) and out.stdout == ""
    assert kept(project) == [] and Submissions(dj.conn(), schema).recent() == []


def test_submit_file_wants_the_description(tmp_path):
    with pytest.raises(UsageError, match="is not a submit description"):
        get_scheduler("htcondor").submit_file(tmp_path / "x.sh")


def test_a_script_without_queue_is_refused(tmp_path):
    with pytest.raises(UsageError, match="has no '#condor queue N' line"):
        submit_description("#!/bin/bash\n#condor universe = vanilla\necho hi\n#condor queue 3\n", tmp_path / "x.sh")


# -------------------------------------------------------------------------------------- limits


def test_site_limits_from_condor_config_val(fakes, monkeypatch):
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    (fakes / "value").write_text((RECORDED / "condor_config_val.txt").read_text())
    write_executable(fakes / "condor_config_val", f"""#!/bin/bash
printf '%s\\n' "$*" >> {shlex.quote(str(fakes))}/config.log
case "$1" in
  MAX_JOBS_PER_SUBMISSION) cat {shlex.quote(str(fakes))}/value;;
  *) echo "Not defined: $1" >&2; exit 1;;
esac
""")  # fmt: skip
    assert get_scheduler("htcondor").site_limits() == SiteLimits(max_array_size=20001, max_submit_jobs=None)
    assert (fakes / "config.log").read_text().split() == ["MAX_JOBS_PER_SUBMISSION", "MAX_JOBS_PER_OWNER"]


def test_a_cluster_cap_splits_the_run(sqlite_project, tmp_path, fakes):
    """MAX_JOBS_PER_SUBMISSION 2: five tasks are three clusters of 2, 2 and 1, each knowing its offset."""
    project, schema = sqlite_project
    write_executable(fakes / "condor_config_val", """#!/bin/bash
case "$1" in MAX_JOBS_PER_SUBMISSION) echo 2;; *) echo "Not defined: $1" >&2; exit 1;; esac
""")  # fmt: skip
    out = djhpc(["render", "--array", 5], project, on_path(cli_env(schema, tmp_path), fakes))
    assert out.returncode == 0, out.stderr
    parts = out.stdout.split("# ==> array ")[1:]
    assert [re.findall(r"^#condor queue (\d+)$", p, re.MULTILINE) for p in parts] == [["2"], ["2"], ["1"]]
    assert [re.findall(r"^export DJHPC_TASK_OFFSET=(\d+)$", p, re.MULTILINE) for p in parts] == [["0"], ["2"], ["4"]]
    assert all("export DJHPC_TASK_COUNT=5\n" in p for p in parts)


def test_a_cluster_cap_leaving_no_job_is_one_line(sqlite_project, tmp_path, fakes):
    project, schema = sqlite_project
    write_executable(fakes / "condor_config_val", """#!/bin/bash
case "$1" in MAX_JOBS_PER_SUBMISSION) echo 0;; *) echo "Not defined: $1" >&2; exit 1;; esac
""")  # fmt: skip
    fake_command(fakes, "condor_submit", (RECORDED / "condor_submit-terse.txt").read_text())
    out = djhpc(["submit", "--array", 2], project, on_path(cli_env(schema, tmp_path), fakes))
    assert "leaves no array index from 1 up" in one_error_line(out)
    assert calls(fakes, "condor_submit") == [] and kept(project) == []


# ------------------------------------------------------------------------------------ status, cancel


def test_parsers_on_recorded_output():
    assert parse_terse((RECORDED / "condor_submit-terse.txt").read_text()) == "4243"
    live = parse_job_ads((RECORDED / "condor_q.json").read_text(), "condor_q")
    assert live == {"4243_3": S.RUNNING, "4243_4": S.PENDING, "4243_5": S.OUT_OF_MEMORY, "4243_6": S.PENDING,
                    "4243_7": S.SUSPENDED, "4243_8": S.RUNNING, "4244_1": S.PENDING}  # fmt: skip
    past = parse_job_ads((RECORDED / "condor_history.json").read_text(), "condor_history")
    assert past == {"4243_1": S.COMPLETED, "4243_2": S.FAILED, "4243_9": S.FAILED, "4243_10": S.CANCELLED,
                    "4243_11": S.TIMEOUT, "4243_3": S.COMPLETED}  # fmt: skip
    assert parse_job_ads("", "condor_q") == {} and parse_job_ads("[]", "condor_q") == {}
    assert [cluster_id(j) for j in ("12", "12_3", "12.2")] == ["12", "12", "12"]


def test_bad_output_is_quoted():
    with pytest.raises(SchedulerError, match="condor_submit -terse printed 'Submitting job"):
        parse_terse("Submitting job(s).\n1 job(s) submitted to cluster 12.\n")
    with pytest.raises(SchedulerError, match=r"cannot read condor_q JSON .*'\[\{oops'"):
        parse_job_ads("[{oops", "condor_q")
    with pytest.raises(SchedulerError, match="no ClusterId/ProcId"):
        parse_job_ads('[{"JobStatus": 1}]', "condor_q")
    with pytest.raises(SchedulerError, match="cannot read HTCondor cluster id 'abc'"):
        cluster_id("abc")


@pytest.mark.parametrize("ad, state", [
    ({"JobStatus": 1}, S.PENDING), ({"JobStatus": 2}, S.RUNNING), ({"JobStatus": 3}, S.CANCELLED),
    ({"JobStatus": 3, "RemoveReason": "The job attribute PeriodicRemove expression 'x' evaluated to TRUE"}, S.TIMEOUT),
    ({"JobStatus": 4, "ExitCode": 0}, S.COMPLETED), ({"JobStatus": 4, "ExitCode": 75}, S.FAILED),
    ({"JobStatus": 4, "ExitBySignal": True}, S.FAILED), ({"JobStatus": 5, "HoldReasonCode": 34}, S.OUT_OF_MEMORY),
    ({"JobStatus": 5, "HoldReasonCode": 1}, S.PENDING), ({"JobStatus": 6}, S.RUNNING), ({"JobStatus": 7}, S.SUSPENDED),
    ({"JobStatus": 9}, S.UNKNOWN), ({}, S.UNKNOWN),
])  # fmt: skip
def test_htcondor_states(ad, state):
    assert htcondor_state(ad) is state


def test_task_states_joins_condor_q_and_history(fakes, monkeypatch):
    """condor_q is current for the jobs it holds (4243.2 runs again after an eviction), condor_history fills in."""
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "condor_q", (RECORDED / "condor_q.json").read_text())
    fake_command(fakes, "condor_history", (RECORDED / "condor_history.json").read_text())
    states = get_scheduler("htcondor").task_states(["4244", "4243_3", "4243"])
    assert states["4243_3"] is S.RUNNING and states["4243_1"] is S.COMPLETED and states["4243_11"] is S.TIMEOUT
    assert len(states) == 12
    assert [c["argv"] for c in calls(fakes, "condor_q")] == [["-json", "-attributes", ATTRIBUTES, "4243", "4244"]]
    assert [c["argv"] for c in calls(fakes, "condor_history")] == [
        ["-json", "-attributes", ATTRIBUTES, "-constraint", "ClusterId == 4243 || ClusterId == 4244"]
    ]


def test_condor_q_failing_is_quoted(fakes, monkeypatch):
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "condor_q", "", code=1, stderr="-- Failed to fetch ads from: <10.0.0.1:9618> : ap1\n")
    with pytest.raises(SchedulerError, match="Failed to fetch ads from: .*: check that the schedd answers"):
        get_scheduler("htcondor").task_states(["4243"])


def test_cancel_is_condor_rm_of_the_clusters(fakes, monkeypatch):
    condor = get_scheduler("condor")
    assert condor.cancel_argv(["4244", "4243_2", "4243"]) == ["condor_rm", "4243", "4244"]
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    fake_command(fakes, "condor_rm", (RECORDED / "condor_rm.txt").read_text(), code=1)  # 4240 had left the queue
    condor.cancel(["4243", "4240"])
    assert [c["argv"] for c in calls(fakes, "condor_rm")] == [["4240", "4243"]]
    fake_command(fakes, "condor_rm", "", code=1, stderr="ERROR: Can't find address of local schedd\n")
    with pytest.raises(SchedulerError, match="condor_rm 4243 failed .*Can't find address of local schedd"):
        condor.cancel(["4243"])


# ------------------------------------------------------------------------------------- hostile values

PAYLOADS = ["$(touch {m})", "$(Process)", "$$(Memory)", "$ENV(HOME)", "$INT(djhpc_task,%d)", "$(DOLLAR)", "`touch {m}`",
            "; touch {m}", "' ; touch {m}; '", '" ; touch {m}; "', "#", "\\", "'", '"', "a b", "%A_%a", "ünï 日本",
            "queue 99", "= x"]  # fmt: skip


def hostile(marker: Path) -> st.SearchStrategy[str]:
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00")
    piece = st.one_of(st.sampled_from([p.format(m=marker) for p in PAYLOADS]), st.text(chars, min_size=1, max_size=8))
    return st.lists(piece, min_size=1, max_size=3).map("".join)


def plain(value: str) -> bool:
    """condor_submit trims a value's blanks: only values without them at either end come back whole."""
    return bool(value.strip()) and value == value.strip()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_values_stay_values(fake_bin: Path, data: st.DataObject) -> None:
    """Whatever a user puts in a name, path, target, argument or env value: the job runs the worker with exactly
    those words, condor_submit reads each value back as it was (no macro of the user's expands), no injection runs."""
    with tempfile.TemporaryDirectory(prefix="djhpc-inject-") as tmp:
        root = Path(tmp)
        marker = root / "pwned"
        text = hostile(marker)
        target = data.draw(text.filter(lambda s: s.strip() and not s.startswith("-")), label="target")
        worker_args = data.draw(st.lists(text, max_size=3), label="worker_args")
        env_value = data.draw(text, label="env value")
        job_name = data.draw(text.filter(plain), label="job_name")
        log_path = data.draw(text.filter(plain), label="output")
        dir_name = data.draw(text.filter(lambda s: plain(s) and "/" not in s and s not in (".", "..")
                                         and len(s.encode()) < 200), label="workdir")  # fmt: skip
        workdir = root / "runs" / dir_name
        workdir.mkdir(parents=True)
        profile = Profile(job_name=job_name, output=log_path, error=log_path, workdir=str(workdir))
        script = get_scheduler("htcondor").render(profile, target=target, array_size=2, worker_args=worker_args,
                                                  env={"HOSTILE": env_value})  # fmt: skip
        path = root / "task.sh"
        path.write_text(script)
        description = submit_description(script, path)
        commands, count = read_description(description)
        assert count == 2
        out = root / "out"
        out.mkdir()
        job = job_of(description, 9, 1, {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(root)})
        macros = {**commands, "Cluster": "9", "Process": "1"}
        assert expand(commands["batch_name"], macros, {}) == profile.job_name
        assert expand(commands["output"], macros, {}) == profile.output.replace("%A", "9").replace("%a", "2")
        assert job["initialdir"] == str(workdir)
        proc = subprocess.run(job["argv"], cwd=job["initialdir"], env={**job["env"], "FAKE_DJHPC_OUT": str(out)},
                              capture_output=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        assert read_argv(out, 2) == ["work", target, *worker_args]
        env = read_env(out, 2)
        assert (env["HOSTILE"], env["DJHPC_JOB_ID"], env["DJHPC_TASK_ID"]) == (env_value, "9", "2")
        assert os.path.realpath(env["PWD"]) == os.path.realpath(workdir)
        assert not marker.exists() and not list(root.rglob("pwned")), "an injection ran"


def test_status_joins_the_recorded_run_with_condor_q(sqlite_project, tmp_path, fakes):
    """djhpc status of a cluster submitted through (fake) condor_submit: each job's state from condor_q and
    condor_history, $(Process) 0..2 reported as tasks 1..3."""
    project, schema = sqlite_project
    fake_command(fakes, "condor_submit", (RECORDED / "condor_submit-terse.txt").read_text())
    fake_command(fakes, "condor_q", (RECORDED / "condor_q.json").read_text())
    fake_command(fakes, "condor_history", (RECORDED / "condor_history.json").read_text())
    env = on_path(cli_env(schema, tmp_path), fakes)
    out = djhpc(["submit", "--array", 3], project, env)
    assert out.returncode == 0 and out.stdout.split() == ["4243"], out.stderr
    out = djhpc(["status", "--json"], project, env)
    assert out.returncode == 0, out.stderr
    [run] = json.loads(out.stdout)["submissions"]
    assert (run["job_id"], run["tasks"]) == ("4243", 3)
    assert {k: v for k, v in run["counts"].items() if v} == {"done": 1, "failed": 1, "running": 1}
