"""Rendered scripts: directives read back as sbatch/qsub read them, and task scripts run for real."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.scripts import (
    FULL_ARGS,
    FULL_ENV,
    FULL_SETTINGS,
    FULL_TARGET,
    bash_syntax_ok,
    clean_env,
    directive_args,
    read_argv,
    read_env,
    run_script,
)

from djhpc.errors import UsageError
from djhpc.profile import Profile
from djhpc.schedulers import command_line, get_scheduler
from djhpc.schedulers.base import directive_quote, packaged_template_dir, shell_quote, template_environment


def full(scheduler: str, **overrides: object) -> Profile:
    return Profile.from_dict({**FULL_SETTINGS, "scheduler": scheduler, **overrides})


def render(scheduler: str, profile: Profile, **kwargs: object) -> str:
    kwargs.setdefault("target", FULL_TARGET)
    kwargs.setdefault("array_size", 11)
    kwargs.setdefault("worker_args", FULL_ARGS)
    kwargs.setdefault("env", FULL_ENV)
    return get_scheduler(scheduler).render(profile, **kwargs)  # type: ignore[arg-type]


def long_options(args: list[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for arg in args:
        name, _, value = arg.partition("=")
        options.setdefault(name, []).append(value)
    return options


def short_options(args: list[str]) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    it = iter(args)
    for arg in it:
        assert arg.startswith("-"), args
        pairs.append((arg, None if arg == "--constraint=haswell" else next(it)))
    return pairs


# ------------------------------------------------------------------------------ directives


def test_slurm_directives_read_back() -> None:
    opts = long_options(directive_args(render("slurm", full("slurm")), "#SBATCH"))
    assert opts == {
        "--job-name": ["dj analysis"],
        "--array": ["1-11%4"],
        "--partition": ["debug"],
        "--account": ["lab-42"],
        "--qos": ["normal"],
        "--time": ["1-02:00:00"],
        "--nodes": ["1"],
        "--cpus-per-task": ["4"],
        "--mem": ["8192M"],
        "--gres": ["gpu:a100:1"],
        "--output": ["logs/djhpc-%A_%a.out"],
        "--error": ["logs/djhpc-%A_%a.err"],
        "--mail-user": ["me@example.org"],
        "--mail-type": ["END,FAIL"],
        "--dependency": ["afterany:1234"],
        "--signal": ["B:USR1@90"],
        "--no-requeue": [""],
        "--constraint": ["haswell"],
    }


def test_slurm_minimal_profile_uses_defaults() -> None:
    text = render("slurm", Profile(), array_size=3, worker_args=[], env=None)
    opts = long_options(directive_args(text, "#SBATCH"))
    assert opts == {
        "--job-name": ["djhpc"],
        "--array": ["1-3"],
        "--output": ["djhpc-%A_%a.out"],
        "--error": ["djhpc-%A_%a.err"],
        "--signal": ["B:USR1@60"],
        "--no-requeue": [""],
    }
    assert "\ncd " not in text


def test_slurm_requeue_and_no_signal() -> None:
    text = render("slurm", Profile(requeue=True, signal_seconds=0), array_size=2)
    opts = long_options(directive_args(text, "#SBATCH"))
    assert "--requeue" in opts and "--no-requeue" not in opts and "--signal" not in opts


def test_throttle_is_clamped_to_a_smaller_array() -> None:
    text = render("slurm", Profile(throttle=50), array_size=3)
    assert long_options(directive_args(text, "#SBATCH"))["--array"] == ["1-3%3"]


def test_pbs_directives_read_back() -> None:
    pairs = short_options(directive_args(render("pbs", full("pbs")), "#PBS"))
    assert pairs == [
        ("-N", "dj analysis"),
        ("-S", "/bin/bash"),
        ("-J", "1-11"),
        ("-W", "max_run_subjobs=4"),
        ("-q", "debug"),
        ("-A", "lab-42"),
        ("-l", "walltime=26:00:00"),
        ("-l", "select=1:ncpus=4:mem=8192mb:ngpus=1"),
        ("-o", "logs/djhpc-%A_%a.out"),
        ("-e", "logs/djhpc-%A_%a.err"),
        ("-M", "me@example.org"),
        ("-m", "ea"),
        ("-W", "depend=afterany:1234"),
        ("-r", "n"),
        ("--constraint=haswell", None),
    ]


def test_pbs_one_task_has_no_array() -> None:
    # qsub -J needs start < end
    args = directive_args(render("pbs", full("pbs"), array_size=1), "#PBS")
    assert "-J" not in args and "max_run_subjobs=4" not in args


def test_torque_directives_read_back() -> None:
    pairs = short_options(directive_args(render("torque", full("torque")), "#PBS"))
    assert pairs == [
        ("-N", "dj analysis"),
        ("-S", "/bin/bash"),
        ("-t", "1-11%4"),
        ("-q", "debug"),
        ("-A", "lab-42"),
        ("-l", "walltime=26:00:00"),
        ("-l", "nodes=1:ppn=4:gpus=1"),
        ("-l", "mem=8192mb"),
        ("-o", "logs/djhpc-%A_%a.out"),
        ("-e", "logs/djhpc-%A_%a.err"),
        ("-M", "me@example.org"),
        ("-m", "ea"),
        ("-W", "depend=afterany:1234"),
        ("-r", "n"),
        ("--constraint=haswell", None),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "plain",
        "two words",
        'say "hi"',
        "it's",
        "back\\slash",
        "hash#tag",
        "tab\there",
        "ünï cødé 日本",
        "$(touch x) `y` ; && *",
        "trailing\\",
        "'",
        '"',
        "#",
        "  padded  ",
    ],
)
@pytest.mark.parametrize("scheduler,prefix,flag", [("slurm", "#SBATCH", "--job-name"), ("pbs", "#PBS", "-N")])
def test_directive_values_survive_quoting(name: str, scheduler: str, prefix: str, flag: str) -> None:
    text = render(scheduler, Profile(job_name=name, output=name), array_size=2)
    args = directive_args(text, prefix)
    if flag.startswith("--"):
        assert long_options(args)["--job-name"] == [name]
        assert long_options(args)["--output"] == [name]
    else:
        assert args[args.index("-N") + 1] == name
        assert args[args.index("-o") + 1] == name


def test_directive_quote_leaves_plain_values_alone() -> None:
    assert directive_quote("logs/%A_%a.out") == "logs/%A_%a.out"
    assert directive_quote("a b") == '"a b"'
    assert directive_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert directive_quote("é") == '"é"'  # bytes >= 0x80 may be blanks in some C locales


def test_extra_directives_verbatim_after_a_comment() -> None:
    text = render("slurm", Profile(extra_directives=["--exclusive", "#SBATCH --comment=x y"]), array_size=1)
    lines = text.splitlines()
    at = lines.index("# extra_directives from the profile, inserted verbatim:")
    assert lines[at + 1 : at + 3] == ["#SBATCH --exclusive", "#SBATCH --comment=x y"]
    assert all(line.startswith("#") for line in lines[1:at])


def test_every_script_passes_bash_n(tmp_path: Path) -> None:
    for scheduler in ("slurm", "pbs", "torque", "local", "parallel"):
        for size in (1, 2, 11):
            bash_syntax_ok(render(scheduler, full(scheduler), array_size=size), tmp_path)
            bash_syntax_ok(render(scheduler, Profile(), array_size=size, worker_args=[], env=None), tmp_path)


# ------------------------------------------------------------------------------ running tasks


def simple(tmp_path: Path, **settings: object) -> Profile:
    workdir = tmp_path / "work dir"
    workdir.mkdir(exist_ok=True)
    base: dict[str, object] = {"workdir": str(workdir), "setup": ['export FROM_SETUP="${NOT_SET_ANYWHERE}ok"']}
    base.update(settings)
    return Profile.from_dict(base)


def test_slurm_task_execs_the_worker(tmp_path: Path, fake_bin: Path) -> None:
    text = render("slurm", simple(tmp_path), array_size=11, index_offset=1000, total_tasks=2500)
    out = tmp_path / "out"
    proc = run_script(text, fake_bin, out, SLURM_ARRAY_JOB_ID="55", SLURM_ARRAY_TASK_ID="7")
    assert proc.returncode == 0, proc.stderr
    assert read_argv(out, 7) == ["work", FULL_TARGET, *FULL_ARGS]
    env = read_env(out, 7)
    assert env["DJHPC_SCHEDULER"] == "slurm"
    assert (env["DJHPC_JOB_ID"], env["DJHPC_TASK_ID"]) == ("55", "7")
    assert (env["DJHPC_TASK_OFFSET"], env["DJHPC_TASK_COUNT"]) == ("1000", "2500")
    assert env["DJHPC_DATABASE_URL_FILE"] == FULL_ENV["DJHPC_DATABASE_URL_FILE"]
    assert env["FROM_SETUP"] == "ok"
    assert os.path.realpath(env["PWD"]) == os.path.realpath(tmp_path / "work dir")


def test_slurm_task_replaces_the_shell(tmp_path: Path, fake_bin: Path) -> None:
    # --signal=B:USR1 reaches only the batch shell's pid: the worker must be that process
    text = render("slurm", Profile(), array_size=1, worker_args=[], env=None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "script.sh").write_text(text)
    env = clean_env(
        PATH=f"{fake_bin}:{os.environ['PATH']}",
        FAKE_DJHPC_OUT=str(out),
        SLURM_ARRAY_JOB_ID="5",
        SLURM_ARRAY_TASK_ID="1",
    )
    proc = subprocess.Popen(["bash", str(out / "script.sh")], cwd=out, env=env)
    assert proc.wait(timeout=30) == 0
    assert (out / "task-1.pid").read_text().strip() == str(proc.pid)


@pytest.mark.parametrize(
    "scheduler,task_var,raw_job_id",
    [("pbs", "PBS_ARRAY_INDEX", "77[3].pbs01.example.org"), ("torque", "PBS_ARRAYID", "77[3].torque01")],
)
def test_pbs_task_runs_with_array_index(
    scheduler: str, task_var: str, raw_job_id: str, tmp_path: Path, fake_bin: Path
) -> None:
    text = render(scheduler, simple(tmp_path), array_size=11, index_offset=22, total_tasks=33)
    out = tmp_path / "out"
    proc = run_script(text, fake_bin, out, PBS_JOBID=raw_job_id, **{task_var: "3"})
    assert proc.returncode == 0, proc.stderr
    assert read_argv(out, 3) == ["work", FULL_TARGET, *FULL_ARGS]
    env = read_env(out, 3)
    assert env["DJHPC_SCHEDULER"] == scheduler
    assert (env["DJHPC_JOB_ID"], env["DJHPC_TASK_ID"]) == ("77", "3")
    assert (env["DJHPC_TASK_OFFSET"], env["DJHPC_TASK_COUNT"]) == ("22", "33")
    assert env["DJHPC_DATABASE_URL_FILE"] == FULL_ENV["DJHPC_DATABASE_URL_FILE"]
    assert os.path.realpath(env["PWD"]) == os.path.realpath(tmp_path / "work dir")


def test_pbs_one_task_job_goes_back_to_the_submit_dir(tmp_path: Path, fake_bin: Path) -> None:
    text = render("pbs", Profile(), array_size=1)
    submit_dir = tmp_path / "submitted here"
    submit_dir.mkdir()
    out = tmp_path / "out"
    proc = run_script(text, fake_bin, out, PBS_JOBID="78.pbs01", PBS_O_WORKDIR=str(submit_dir))
    assert proc.returncode == 0, proc.stderr
    env = read_env(out, 1)
    assert (env["DJHPC_JOB_ID"], env["DJHPC_TASK_ID"]) == ("78", "1")
    assert os.path.realpath(env["PWD"]) == os.path.realpath(submit_dir)


def test_local_runs_every_worker_and_exits_with_the_worst(tmp_path: Path, fake_bin: Path) -> None:
    text = render("local", simple(tmp_path), array_size=3)
    out = tmp_path / "out"
    proc = run_script(text, fake_bin, out, FAKE_DJHPC_EXIT_2="3", FAKE_DJHPC_EXIT_3="1")
    assert proc.returncode == 3, proc.stderr
    job_ids = set()
    for task in (1, 2, 3):
        assert read_argv(out, task) == ["work", FULL_TARGET, *FULL_ARGS]
        env = read_env(out, task)
        assert env["DJHPC_TASK_ID"] == str(task)
        assert (env["DJHPC_SCHEDULER"], env["DJHPC_TASK_OFFSET"], env["DJHPC_TASK_COUNT"]) == ("local", "0", "3")
        job_ids.add(env["DJHPC_JOB_ID"])
    assert len(job_ids) == 1 and job_ids.pop().isdigit()
    assert not (out / "task-4.argv").exists()


def test_local_throttle_caps_the_workers(tmp_path: Path, fake_bin: Path) -> None:
    text = render("local", simple(tmp_path, throttle=2), array_size=5)
    out = tmp_path / "out"
    assert run_script(text, fake_bin, out).returncode == 0
    assert sorted(p.name for p in out.glob("task-*.argv")) == ["task-1.argv", "task-2.argv"]
    assert read_env(out, 1)["DJHPC_TASK_COUNT"] == "2"


@pytest.mark.parametrize("sig,expected", [(signal.SIGTERM, "TERM"), (signal.SIGUSR1, "USR1")])
def test_local_forwards_signals_to_every_worker(
    sig: signal.Signals, expected: str, tmp_path: Path, fake_bin: Path
) -> None:
    text = render("local", Profile(), array_size=3, worker_args=[], env=None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "script.sh").write_text(text)
    env = clean_env(PATH=f"{fake_bin}:{os.environ['PATH']}", FAKE_DJHPC_OUT=str(out), FAKE_DJHPC_SLEEP="20")
    proc = subprocess.Popen(["bash", str(out / "script.sh")], cwd=out, env=env)
    try:
        deadline = time.monotonic() + 15
        while len(list(out.glob("task-*.started"))) < 3:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.02)
        proc.send_signal(sig)
        status = proc.wait(timeout=15)
    finally:
        proc.kill()
    assert status == (143 if expected == "TERM" else 3)
    for task in (1, 2, 3):
        assert (out / f"task-{task}.signal").read_text().strip() == expected


def test_parallel_script_runs_every_task(tmp_path: Path, fake_bin: Path) -> None:
    text = render("parallel", simple(tmp_path, throttle=2), array_size=3)
    out = tmp_path / "out"
    proc = run_script(text, fake_bin, out, FAKE_DJHPC_EXIT_3="4")
    assert proc.returncode == 1, proc.stderr  # GNU parallel exits with the number of failed jobs
    args = (out / "parallel.argv").read_bytes().decode().split("\0")
    assert args[:2] == ["--will-cite", "-j"] and args[2] == "2"
    assert args[args.index("--joblog") + 1] == str(out / "script.sh") + ".joblog"
    assert args[args.index("--halt") + 1] == "never"
    assert "--resume-failed" not in args
    for task in (1, 2, 3):
        assert read_argv(out, task) == ["work", FULL_TARGET, *FULL_ARGS]
        env = read_env(out, task)
        assert (env["DJHPC_SCHEDULER"], env["DJHPC_TASK_ID"], env["DJHPC_TASK_COUNT"]) == ("parallel", str(task), "3")
        assert env["FROM_SETUP"] == "ok"


def test_parallel_script_resumes_failed(tmp_path: Path, fake_bin: Path) -> None:
    text = render("parallel", Profile(), array_size=2)
    out = tmp_path / "out"
    assert run_script(text, fake_bin, out, args=("--resume-failed",)).returncode == 0
    assert "--resume-failed" in (out / "parallel.argv").read_bytes().decode().split("\0")
    proc = run_script(text, fake_bin, tmp_path / "out2", args=("--bogus",))
    assert proc.returncode == 2 and b"usage:" in proc.stderr


def test_command_line_is_one_quoted_line(tmp_path: Path, fake_bin: Path) -> None:
    line = command_line(Profile(), FULL_TARGET, 11, FULL_ARGS, "djhpc.joblog")
    assert "\n" not in line
    assert line == (
        "for i in $(seq 1 11); do printf '%s\\n' "
        '\'export DJHPC_TASK_ID="$PARALLEL_SEQ"; exec djhpc work my_pipeline.Analysis --max-calls 10 '
        "--restrict '\"'\"'{\"subject\": 1}'\"'\"''; done | "
        "DJHPC_SCHEDULER=parallel DJHPC_JOB_ID=$$ DJHPC_TASK_OFFSET=0 DJHPC_TASK_COUNT=11 "
        "parallel --will-cite -j 11 --joblog djhpc.joblog --halt never --line-buffer"
    )
    out = tmp_path / "out"
    out.mkdir()
    env = clean_env(PATH=f"{fake_bin}:{os.environ['PATH']}", FAKE_DJHPC_OUT=str(out), PARALLEL_SHELL="/bin/bash")
    proc = subprocess.run(["bash", "-c", line], cwd=out, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for task in range(1, 12):
        assert read_argv(out, task) == ["work", FULL_TARGET, *FULL_ARGS]


def test_command_line_throttle_and_workdir() -> None:
    line = command_line(Profile(throttle=3, workdir="/data/my dir"), "t.T", 8, [], "log file")
    assert line.startswith("cd '/data/my dir' && for i in $(seq 1 8);")
    assert line.endswith("parallel --will-cite -j 3 --joblog 'log file' --halt never --line-buffer")
    with pytest.raises(UsageError, match="--throttle 9 is larger than the array"):
        command_line(Profile(throttle=9), "t.T", 8)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": "a\nb"},
        {"target": "a\rb"},
        {"target": "a\x00b"},
        {"worker_args": ["ok", "bad\narg"]},
        {"env": {"X": "line1\nline2"}},
    ],
)
@pytest.mark.parametrize("scheduler", ["slurm", "pbs", "torque", "local", "parallel"])
def test_line_breaks_are_refused(scheduler: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="line break or NUL"):
        render(scheduler, Profile(), **kwargs)


@pytest.mark.parametrize(
    "setting",
    ["job_name", "partition", "account", "qos", "output", "error", "mail_user", "workdir", "gpu_type"],
)
def test_line_breaks_in_profile_values_are_refused(setting: str) -> None:
    with pytest.raises(UsageError, match=f"profile setting {setting} .* line break or NUL"):
        Profile.from_dict({setting: "ok\n#SBATCH --wrap=evil"})


@pytest.mark.parametrize("setting", ["extra_directives", "setup"])
def test_line_breaks_in_profile_lines_are_refused(setting: str) -> None:
    with pytest.raises(UsageError, match=f"a line of {setting}"):
        Profile.from_dict({setting: ["fine", "two\nlines"]})


@pytest.mark.parametrize(
    "env,message",
    [
        ({"1BAD": "x"}, "not a shell variable name"),
        ({"A-B": "x"}, "not a shell variable name"),
        ({"DJHPC_TASK_ID": "9"}, "set by djhpc itself"),
        ({"DJ_PASS": "hunter2"}, "looks like a secret"),
        ({"MYSQL_PASSWORD": "hunter2"}, "looks like a secret"),
        ({"GITHUB_TOKEN": "hunter2"}, "looks like a secret"),
        ({"X": 3}, "must be text"),
    ],
)
def test_bad_env_is_refused(env: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        render("slurm", Profile(), env=env)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"env": {"DJHPC_DATABASE_URL": "mysql://me:hunter2@db.example.org/x"}},
        {"worker_args": ["--db", "mysql://me:hunter2@db/x"]},
        {"target": "mysql://me:hunter2@db/x"},
    ],
)
def test_urls_with_passwords_never_reach_a_script(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="URL with a password") as info:
        render("slurm", Profile(), **kwargs)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("line", ["export DJ_PASS=hunter2", "MYSQL_PWD=hunter2 mysql", "x=mysql://u:hunter2@h/d"])
def test_setup_lines_setting_passwords_are_refused(line: str) -> None:
    with pytest.raises(UsageError, match="password") as info:
        render("slurm", Profile(setup=[line]))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("line", ["--comment=mysql://me:hunter2@db/x", "--export=ALL,DJ_PASS=hunter2",
                                  "-v MYSQL_PWD=hunter2"])
@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_extra_directives_holding_passwords_are_refused(scheduler: str, line: str) -> None:
    with pytest.raises(UsageError, match="extra directive") as info:
        render(scheduler, Profile(extra_directives=[line]))
    assert "hunter2" not in str(info.value)


def test_url_without_password_is_fine() -> None:
    text = render("slurm", Profile(), env={"DJHPC_DATABASE_URL": "mysql://me@db.example.org:3306/x"})
    assert "export DJHPC_DATABASE_URL=mysql://me@db.example.org:3306/x" in text


@pytest.mark.parametrize("target", ["", "   ", "-rf", None])
def test_bad_targets(target: object) -> None:
    with pytest.raises(UsageError, match="target"):
        render("slurm", Profile(), target=target)


def test_bad_array_size() -> None:
    with pytest.raises(UsageError, match=r"--array must be >= 1 \(got 0\)"):
        render("slurm", Profile(), array_size=0)


def test_worker_args_must_be_a_list() -> None:
    with pytest.raises(UsageError, match="list of words"):
        render("slurm", Profile(), worker_args="--max-calls 3")


# ------------------------------------------------------------------------------ templates


def test_packaged_templates_are_found() -> None:
    names = {p.name for p in packaged_template_dir().glob("*.j2")}
    assert {"base.sh.j2", "slurm.sh.j2", "pbs.sh.j2", "torque.sh.j2", "local.sh.j2", "parallel.sh.j2"} <= names


def test_user_template_dir_comes_first(tmp_path: Path) -> None:
    (tmp_path / "slurm.sh.j2").write_text(
        '{% extends "base.sh.j2" %}\n{% block directives %}#SBATCH --job-name={{ job_name|dq }}\n'
        "#SBATCH --comment=site-template\n{% endblock %}\n"
    )
    text = render("slurm", Profile(job_name="x y"), template_dir=tmp_path)
    assert text.startswith('#!/bin/bash\n#SBATCH --job-name="x y"\n#SBATCH --comment=site-template\n')
    assert "exec djhpc work" in text  # the rest from the packaged base template


def test_user_template_errors_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "slurm.sh.j2").write_text("#!/bin/bash\necho {{ no_such_variable }}\n")
    with pytest.raises(UsageError, match="no_such_variable"):
        render("slurm", Profile(), template_dir=tmp_path)
    (tmp_path / "slurm.sh.j2").write_text("{% if %}\n")
    with pytest.raises(UsageError, match="fix the template"):
        render("slurm", Profile(), template_dir=tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        render("slurm", Profile(), template_dir=tmp_path / "missing")


def test_filters_refuse_unset_values() -> None:
    with pytest.raises(TypeError):
        shell_quote(None)
    with pytest.raises(TypeError):
        directive_quote(None)
    env = template_environment()
    assert env.from_string("{{ x|q }} {{ y|qjoin }}").render(x="a b", y=["c", "d e"]) == "'a b' c 'd e'"
