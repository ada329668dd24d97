"""Fixtures for the scheduler tests: a fake `djhpc` (and `parallel`) on PATH.

The test_sched_* modules check scripts and scheduler output with fakes; test_slurm, test_pbs and test_parallel
run the real thing (the single-node SLURM cluster, a PBS task script, GNU parallel) against a real database,
with the fixtures of tests/conftest.py (mysql_schema, mysql_user, slurm); test_sge and test_cancel use the
one-host Grid Engine cell too (the sge fixture below).

The helpers (fake scripts, run_script, directive_args, ...) live in support/scripts.py; import them from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scripts import FAKE_DJHPC, FAKE_PARALLEL, write_executable


@pytest.fixture(scope="session")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with fake djhpc and parallel, to put first on PATH."""
    folder = tmp_path_factory.mktemp("fakebin")
    write_executable(folder / "djhpc", FAKE_DJHPC)
    write_executable(folder / "parallel", FAKE_PARALLEL)
    return folder


@pytest.fixture(scope="session")
def sge():
    """The one-host Grid Engine cell, started (idempotently) by tests/cluster/start-sge.sh as in CI."""
    import os

    from support.env import unavailable
    from support.sge import cell_answers, start_sge

    if os.geteuid() != 0:
        if not cell_answers():
            unavailable("Grid Engine is not running and starting it needs root (tests/cluster/start-sge.sh)")
        return
    try:
        start_sge()
    except RuntimeError as e:
        unavailable(str(e))
