"""examples/datajoint: its pipeline, written with DataJoint 2.x, imports, ingests and is filled by `djhpc work` against
MariaDB, with the settings of its djhpc.yaml; the walkthrough's copy step (run as the README writes it, from the
tracked files only) keeps the source tree clean: ``git status --porcelain --ignored examples/`` does not change."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.cluster import root_query
from support.env import ROOT, mysql_available, unavailable
from support.examples import follow_setup, source_status


def datajoint2_python() -> str:
    pythons = dict(part.partition("=")[::2] for part in os.environ.get("DJHPC_DATAJOINT_PYTHONS", "").split(",")
                   if part)
    path = pythons.get("2")
    if not path or not Path(path).exists():
        unavailable("no interpreter with DataJoint 2 (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    return path


@pytest.fixture
def example(tmp_path):
    python = datajoint2_python()
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    schema = "djhpc_dj_example_" + uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "PBS_", "PARALLEL"))}
    env.update(PYTHONPATH=str(ROOT), DJ_HOST="127.0.0.1", DJ_USER="root", DJ_PASS="", EXAMPLE_SCHEMA=schema,
               EXAMPLE_MAKE_SECONDS="0.01", XDG_CONFIG_HOME=str(tmp_path / "config"), DJHPC_SAFEMODE="0")
    before = source_status("examples")
    folder, copied = follow_setup("datajoint", tmp_path, env)  # the README's copy step, tracked files only
    assert copied.returncode == 0 and folder == tmp_path / "home" / "djhpc-datajoint-example", copied.stderr

    def run(*argv, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([python, *map(str, argv)], cwd=folder, env={**env, **extra}, capture_output=True,
                              text=True, timeout=240)

    yield SimpleNamespace(python=python, folder=folder, schema=schema, env=env, run=run)
    root_query(f"DROP DATABASE IF EXISTS `{schema}`")
    assert source_status("examples") == before, "the example left files in the source tree"


@pytest.mark.mysql
def test_the_datajoint_example_ingests_renders_and_is_filled_by_djhpc_work(example):
    python, folder, schema, run = example.python, example.folder, example.schema, example.run
    setup = run("setup.py")
    assert setup.returncode == 0, setup.stderr
    assert "4 subjects, 200 sessions; 200 of 200 analyses to run" in setup.stdout

    rendered = run("-m", "djhpc.cli.main", "render", "--array", 11)  # target and profile from djhpc.yaml
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.startswith("#!/bin/bash\n") and "#SBATCH --array=1-11" in rendered.stdout
    assert "#SBATCH --time=00:30:00" in rendered.stdout and "export DJHPC_DATAJOINT_ENV_FILE=" in rendered.stdout
    assert rendered.stdout.rstrip().endswith(f"exec {python} -m djhpc.cli.main work {folder}/pipeline.py:Analysis")
    assert "200 of 200 keys of Analysis left" in rendered.stderr

    logs = [folder.parent / f"worker{i}.log" for i in range(2)]  # files: a full pipe would stall a worker
    workers = []
    for log in logs:
        with open(log, "w") as out:
            workers.append(subprocess.Popen([python, "-m", "djhpc.cli.main", "work"], cwd=folder, env=example.env,
                                            stdout=out, stderr=subprocess.STDOUT))
    codes = [w.wait(timeout=240) for w in workers]
    errors = [log.read_text()[-2000:] for log in logs]
    assert sorted(codes) == [0, 1], errors  # one worker met the corrupt session
    assert root_query(f"SELECT COUNT(*) FROM `{schema}`.`__analysis`")[0][0] == 199
    assert root_query(f"SELECT COUNT(*) FROM `{schema}`.`__analysis__unit`")[0][0] > 199 * 3
    [(status, message)] = root_query(f"SELECT status, error_message FROM `{schema}`.`~djhpc_jobs`")
    assert status == "error" and message.startswith("ValueError: corrupt recording in session r1/7")

    fixed = run("-m", "djhpc.cli.main", "work", EXAMPLE_FIXED="1")  # error rows wait for djhpc jobs retry
    assert fixed.returncode == 0, fixed.stderr
    assert root_query(f"SELECT COUNT(*) FROM `{schema}`.`__analysis`")[0][0] == 199

