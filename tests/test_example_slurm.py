"""examples/slurm's walkthrough followed as written, without SLURM (its 'Without SLURM' section: local
workers): the copy step from the README run literally, from the tracked files only, then setup, render,
submit, the deliberate failure, retry and progress on SQLite. Nothing may land in the source tree
(``git status --porcelain --ignored examples/`` unchanged); everything the run writes is in the copy.
The same walkthrough on the real SLURM is tests/schedulers/test_slurm.py::test_example_walkthrough."""

from __future__ import annotations

import json
import os
import time

from support.cluster import djhpc
from support.env import ROOT
from support.examples import follow_setup, source_status

from djhpc.schedulers.local import pid_alive


def wait_for_run(job_id: str, timeout: float = 180) -> None:
    """Until the local run's script (and so its workers, which it waits for) has ended."""
    deadline = time.monotonic() + timeout
    while pid_alive(int(job_id)):
        assert time.monotonic() < deadline, f"local run {job_id} still running after {timeout} s"
        time.sleep(0.2)


def test_slurm_example_walkthrough_with_local_workers_leaves_the_source_tree_clean(tmp_path):
    before = source_status("examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "EXAMPLE_"))}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"), EXAMPLE_MAKE_SECONDS="0.02")
    project, setup = follow_setup("slurm", tmp_path, env)
    assert setup.returncode == 0 and "4 subjects, 200 sessions; 200 of 200 analyses to run" in setup.stdout, (
        setup.stdout + setup.stderr)
    assert project == tmp_path / "home" / "djhpc-example"
    assert f"created a new, empty SQLite database {project}/example.db" in setup.stderr  # as the README says

    rendered = djhpc(["render", "--array", 11], project, env)
    assert rendered.returncode == 0 and "#SBATCH --array=1-11" in rendered.stdout, rendered.stderr
    assert f"DJHPC_DATABASE_URL=sqlite:///{project}/example.db" in rendered.stdout

    first = djhpc(["submit", "--array", 4, "--scheduler", "local"], project, env)
    assert first.returncode == 0, first.stderr
    wait_for_run(first.stdout.strip())
    errors = djhpc(["jobs", "errors"], project, env)
    assert "corrupt recording in session r1/" in errors.stdout, errors.stdout + errors.stderr
    again = djhpc(["submit", "--array", 4, "--scheduler", "local"], project, env)
    assert again.returncode == 0 and "0 of 200 keys of Analysis left, 1 in error" in again.stderr, again.stderr

    env["EXAMPLE_FIXED"] = "1"
    assert djhpc(["jobs", "retry", "--yes"], project, env).returncode == 0
    retried = djhpc(["submit", "--array", 4, "--scheduler", "local"], project, env)
    assert retried.returncode == 0 and "only 1 key left: 1 task instead of 4" in retried.stderr, retried.stderr
    wait_for_run(retried.stdout.strip())
    progress = djhpc(["progress", "--json"], project, env)
    assert progress.returncode == 0, progress.stderr
    [row] = json.loads(progress.stdout)
    assert (row["total"], row["done"], row["error"]) == (200, 200, 0)

    written = {p.name for p in project.iterdir()}
    assert {"example.db", ".djhpc"} <= written and list((project / ".djhpc" / "scripts").iterdir()), written
    assert not (tmp_path / "checkout" / "examples" / "slurm" / "example.db").exists()
    assert source_status("examples") == before, "the walkthrough wrote into the source tree"
