"""``djhpc init`` from the real command: the scheduler found on PATH (fake submit commands in an otherwise empty
PATH), the target found in the folder's files, a file that djhpc's own loader reads and that render then uses,
and an existing djhpc.yaml kept unless --force."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.env import ROOT

from djhpc.config import load_settings
from djhpc.submit import resolve_profile

DJHPC = Path(sys.executable).with_name("djhpc")
PIPELINE = ROOT / "tests" / "pipelines" / "pipeline_counts.py"


def run(args, cwd, path: str | None = None, **extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SGE_"))}
    env.update(XDG_CONFIG_HOME=str(cwd / ".config"), PYTHONPATH=str(ROOT), DJHPC_TEST_SCHEMA="init", **extra)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(DJHPC), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def one_line_error(out) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("djhpc: error: ") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def fake_bin(tmp_path: Path, **commands: str) -> str:
    """A folder holding only these commands (name -> what it prints), to be the whole PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, says in commands.items():
        script = folder / name
        script.write_text(f"#!/bin/sh\necho '{says}'\n")
        script.chmod(0o755)
    return str(folder)


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(PIPELINE, folder / "pipeline.py")
    return folder


@pytest.mark.parametrize("commands, scheduler", [
    ({"sbatch": "", "qsub": ""}, "slurm"),  # sbatch first when a login node has two
    ({"qsub": "usage: qsub [options]", "qconf": ""}, "sge"),
    ({"qsub": "SGE 8.1.9"}, "sge"),
    ({"qsub": "pbs_version = 2022.1.1"}, "pbs"),
    ({"qsub": "Version: 6.1.3"}, "torque"),
    ({"bsub": ""}, "lsf"),
    ({"condor_submit": ""}, "htcondor"),
    ({}, "local"),
])
def test_the_scheduler_on_path_and_the_target_here(project, tmp_path, commands, scheduler):
    out = run(["init"], project, path=fake_bin(tmp_path, **commands))
    assert out.returncode == 0, out.stderr
    assert f"wrote {project / 'djhpc.yaml'}: scheduler {scheduler}" in out.stderr
    text = (project / "djhpc.yaml").read_text()
    assert text.startswith(f"# djhpc.yaml, written by `djhpc init` for {scheduler}")
    settings = load_settings(project)  # djhpc's own loader, which refuses unknown keys
    assert settings.get("scheduler") == scheduler and settings.get("target") == "pipeline.py:Square"
    assert "#   also found: pipeline.py:PairSum" in text
    resolved = resolve_profile(settings)
    assert resolved.scheduler == scheduler and resolved.array == 10
    if scheduler not in ("local", "parallel"):
        assert resolved.profile.time == 7200 and resolved.profile.mem == 4096


def test_render_uses_what_init_wrote(project, tmp_path):
    assert run(["init", "--scheduler", "slurm"], project).returncode == 0
    url = f"sqlite:///{tmp_path / 'init.db'}"
    subprocess.run([sys.executable, "-c", "import pipeline; pipeline.Item.insert([(i, i) for i in range(20)])"],
                   cwd=project, env={**os.environ, "DJHPC_DATABASE_URL": url, "DJHPC_TEST_SCHEMA": "init"},
                   capture_output=True, check=True)
    out = run(["render"], project, DJHPC_DATABASE_URL=url)
    assert out.returncode == 0, out.stderr
    for line in ("#SBATCH --job-name=djhpc-Square", "#SBATCH --array=1-10", "#SBATCH --time=02:00:00",
                 "#SBATCH --mem=4096M", " work "):
        assert line in out.stdout, line


def test_an_existing_file_is_kept_unless_force(project):
    (project / "djhpc.yaml").write_text("target: mine.py:Mine\n")
    out = run(["init"], project)
    assert out.returncode == 2
    assert one_line_error(out) == (f"djhpc: error: {project / 'djhpc.yaml'} exists already: edit it, or pass "
                                   "--force to replace it")
    assert (project / "djhpc.yaml").read_text() == "target: mine.py:Mine\n"
    out = run(["init", "--force", "--scheduler", "pbs"], project)
    assert out.returncode == 0, out.stderr
    assert load_settings(project).get("scheduler") == "pbs"
    assert [p.name for p in project.iterdir() if p.name.startswith(".djhpc.yaml")] == []  # no temporary left


def test_stdout_writes_nothing(project):
    out = run(["init", "--stdout", "--scheduler", "lsf"], project)
    assert out.returncode == 0 and "scheduler: lsf\n" in out.stdout and "# queue: normal" in out.stdout
    assert not (project / "djhpc.yaml").exists()


def test_a_target_given_and_a_database_without_password(project):
    out = run(["init", "pipeline.py:PairSum", "--database", "mysql://alice@db.example.org:3306"], project)
    assert out.returncode == 0, out.stderr
    settings = load_settings(project)
    assert settings.get("target") == "pipeline.py:PairSum"
    assert settings.get("database") == "mysql://alice@db.example.org:3306"


def test_no_target_found_leaves_it_commented(tmp_path):
    out = run(["init", "--scheduler", "local"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "# target: pipeline.py:Analysis      (no Computed or Imported table found here: set it)" in \
        (tmp_path / "djhpc.yaml").read_text()
    assert load_settings(tmp_path).get("target") is None
    out = run(["render", "--array", "2"], tmp_path, DJHPC_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assert out.returncode == 2 and "no target given and djhpc.yaml sets none" in one_line_error(out)


@pytest.mark.parametrize("args, message", [
    (["init", "nosuch.py:Thing"], "target file nosuch.py does not exist"),
    (["init", "pipeline.Square"], "must look like module:Class"),
    (["init", "--scheduler", "slrum"], "unknown scheduler 'slrum'"),
    (["init", "--database", "mysql://alice:s3cret@db:3306"], "--database holds a password"),
])
def test_bad_input_writes_nothing(project, args, message):
    out = run(args, project)
    assert out.returncode == 2 and message in one_line_error(out)
    assert "s3cret" not in out.stderr
    assert not (project / "djhpc.yaml").exists()
