"""DataJoint 0.14's own test suite, run by tests/datajoint_suite/run.py against DataJoint 0.14.10 and djhpc: the
selection is the one measured, DataJoint passes what it passed, and djhpc passes at least the floor in floor.json
(a ratchet: raise it when djhpc passes more, never lower it to make a change pass)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.env import ROOT, unavailable

from . import run

FLOOR = json.loads((Path(__file__).resolve().parent / "floor.json").read_text())


def _prerequisites() -> str | None:
    if not Path(run.PYTHON).exists():
        return f"{run.PYTHON} is missing: run {run.ENSURE}"
    for name, _ in (run.TESTS_FROM, run.SUPPORT_FROM):
        if not (run.CACHE / name).is_file():
            return f"{run.CACHE / name} is missing: run {run.ENSURE}"
    return None


@pytest.mark.slow
def test_datajoint_suite(tmp_path):
    missing = _prerequisites()
    if missing:
        unavailable(missing)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.datajoint_suite", "--json", str(tmp_path / "suite.json")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # a run whose private server died is run again, hence twice the limit
        stdout, stderr = proc.communicate(timeout=2 * run.RUN_SECONDS + 120)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the runner stops its servers and runs on SIGTERM
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"the DataJoint suite did not finish in time:\n{stdout[-3000:]}{stderr[-2000:]}")
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "suite.json").read_text())
    table = out.stdout
    assert result["selected"] > 0, table
    assert result["selected"] == FLOOR["selected"], f"the selection changed: update floor.json\n{table}"
    assert abs(result["passed"]["datajoint"] - FLOOR["datajoint_passed"]) <= FLOOR["datajoint_tolerance"], table
    assert result["passed"]["djhpc"] >= FLOOR["djhpc_passed_at_least"], table
