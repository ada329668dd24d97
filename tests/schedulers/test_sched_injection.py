"""Hostile values in every place a user can put one never escape their quoting.

Each example renders a script, runs it with bash and a fake djhpc that records its argv, and checks
that the worker got exactly the intended words, the directives read back exactly, and that no
injection attempt (which would touch a marker file) ran.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scripts import clean_env, directive_args, read_argv, read_env, run_script

from djhpc.errors import UsageError
from djhpc.profile import Profile
from djhpc.schedulers import command_line, get_scheduler


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"$(touch {m})", f"`touch {m}`", f"; touch {m}", f"&& touch {m}", f"| touch {m}", f"' ; touch {m}; '",
        f'" ; touch {m}; "', f"\\'$(touch {m})", f"{{= system('touch {m}') =}}", "{}", "{#}", "{1}", "*", "?",
        "[a-z]*", "~", "~root", "$HOME", "${PATH}", "$((1+1))", "!!", "%A_%a", "#", "\\", "\\\\", "'", '"',
        "a b", "\t", "--", "-", "=", "x=y", "ünï cødé 日本 🚀", "\u00a0", "\u2028", "\x1b[31m",
        "#SBATCH --wrap=evil", "'\"'\"'",
    ]  # fmt: skip


def hostile(marker: Path) -> st.SearchStrategy[str]:
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00")
    piece = st.one_of(st.sampled_from(payloads(marker)), st.text(chars, min_size=1, max_size=12))
    return st.lists(piece, min_size=1, max_size=3).map("".join)


def valid_dir_name(name: str) -> bool:
    return "/" not in name and name not in (".", "..") and len(name.encode()) < 200


HYPOTHESIS = settings(
    max_examples=30, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip


def no_marker(root: Path, marker: Path) -> None:
    assert not marker.exists(), "an injection ran"
    assert not [p for p in root.rglob("pwned")], "an injection ran"


@pytest.mark.parametrize("scheduler", ["slurm", "pbs", "torque", "local", "parallel"])
@HYPOTHESIS
@given(data=st.data())
def test_hostile_values_stay_quoted(scheduler: str, fake_bin: Path, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="djhpc-inject-") as tmp:
        root = Path(tmp)
        marker = root / "pwned"
        text = hostile(marker)
        target = data.draw(text.filter(lambda s: s.strip() and not s.startswith("-")), label="target")
        worker_args = data.draw(st.lists(text, max_size=3), label="worker_args")
        env_value = data.draw(text, label="env value")
        job_name = data.draw(text, label="job_name")
        log_path = data.draw(text, label="output")
        dir_name = data.draw(text.filter(valid_dir_name), label="workdir")
        workdir = root / "runs" / dir_name
        workdir.mkdir(parents=True)
        profile = Profile(job_name=job_name, output=log_path, error=log_path, workdir=str(workdir))

        script = get_scheduler(scheduler).render(
            profile, target=target, array_size=2, worker_args=worker_args, env={"HOSTILE": env_value}
        )
        out = root / "out"
        task_env = {
            "slurm": {"SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "2"},
            "pbs": {"PBS_JOBID": "9[2].server", "PBS_ARRAY_INDEX": "2"},
            "torque": {"PBS_JOBID": "9[2].server", "PBS_ARRAYID": "2"},
        }.get(scheduler, {})
        proc = run_script(script, fake_bin, out, cwd=root, **task_env)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")

        tasks = [2] if task_env else [1, 2]
        for task in tasks:
            assert read_argv(out, task) == ["work", target, *worker_args]
            env = read_env(out, task)
            assert env["HOSTILE"] == env_value
            assert env["DJHPC_TASK_ID"] == str(task)
            assert os.path.realpath(env["PWD"]) == os.path.realpath(workdir)
        if scheduler in ("slurm", "pbs", "torque"):
            args = directive_args(script, "#SBATCH" if scheduler == "slurm" else "#PBS")
            if scheduler == "slurm":
                assert f"--job-name={profile.job_name}" in args
                assert f"--output={profile.output or 'djhpc-%A_%a.out'}" in args
            else:
                assert args[args.index("-N") + 1] == profile.job_name
                if profile.output:  # blank means: PBS's default
                    assert args[args.index("-o") + 1] == profile.output
        no_marker(root, marker)


@HYPOTHESIS
@given(data=st.data())
def test_hostile_values_in_the_parallel_one_liner(fake_bin: Path, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="djhpc-inject-") as tmp:
        root = Path(tmp)
        marker = root / "pwned"
        text = hostile(marker)
        target = data.draw(text.filter(lambda s: s.strip() and not s.startswith("-")), label="target")
        worker_args = data.draw(st.lists(text, max_size=3), label="worker_args")
        joblog = data.draw(text.filter(valid_dir_name), label="joblog")
        line = command_line(Profile(), target, 2, worker_args, joblog)
        out = root / "out"
        out.mkdir()
        env = clean_env(PATH=f"{fake_bin}:{os.environ['PATH']}", FAKE_DJHPC_OUT=str(out), PARALLEL_SHELL="/bin/bash")
        proc = subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        for task in (1, 2):
            assert read_argv(out, task) == ["work", target, *worker_args]
        parallel_args = (out / "parallel.argv").read_bytes().decode().split("\0")
        assert parallel_args[parallel_args.index("--joblog") + 1] == joblog
        no_marker(root, marker)


@pytest.mark.parametrize("scheduler", ["slurm", "pbs", "torque", "local", "parallel"])
@settings(max_examples=30, deadline=None)
@given(
    before=st.text(max_size=5),
    brk=st.sampled_from(["\n", "\r", "\x00", "\r\n"]),
    after=st.text(max_size=5),
    where=st.sampled_from(["target", "arg", "env", "job_name", "output", "workdir", "setup", "extra"]),
)
def test_values_with_line_breaks_are_refused(scheduler: str, before: str, brk: str, after: str, where: str) -> None:
    value = f"x{before}{brk}{after}"
    with pytest.raises(UsageError, match="line break or NUL"):
        settings_ = {"job_name": value} if where == "job_name" else {}
        settings_ |= {"output": value} if where == "output" else {}
        settings_ |= {"workdir": value} if where == "workdir" else {}
        settings_ |= {"setup": [value]} if where == "setup" else {}
        settings_ |= {"extra_directives": [value]} if where == "extra" else {}
        get_scheduler(scheduler).render(
            Profile.from_dict(settings_),
            target=value if where == "target" else "t.T",
            array_size=2,
            worker_args=[value] if where == "arg" else [],
            env={"V": value} if where == "env" else None,
        )
