"""DataJoint Elements' pipelines, run by tests/datajoint_elements/run.py under DataJoint 0.14.10 and djhpc: the
same pipelines, DataJoint declares what it declared, and djhpc declares (and answers as DataJoint does) at least
the floor in floor.json (a ratchet: raise it when djhpc does more, never lower it to make a change pass)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.env import NO_MYSQL, ROOT, mysql_available, unavailable

from . import run

FLOOR = json.loads((Path(__file__).resolve().parent / "floor.json").read_text())


@pytest.mark.slow
def test_datajoint_elements(tmp_path):
    try:
        run.wheels()
    except run.ElementsError as exc:
        unavailable(str(exc))
    if not mysql_available():
        unavailable(NO_MYSQL)
    out = subprocess.run(
        [sys.executable, "-m", "tests.datajoint_elements", "--json", str(tmp_path / "elements.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=len(run.PIPELINES) * run.PIPELINE_SECONDS,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result, table = json.loads((tmp_path / "elements.json").read_text()), out.stdout
    assert result["pipelines"] == FLOOR["pipelines"], f"the pipelines changed: update floor.json\n{table}"
    assert result["declared"]["datajoint/mariadb"] == FLOOR["datajoint_declared"], table
    for backend in ("mariadb", "sqlite"):
        assert result["declared"][f"djhpc/{backend}"] >= FLOOR["djhpc_declared_at_least"][backend], table
        assert result["same_answers"][f"djhpc/{backend}"] >= FLOOR["djhpc_same_answers_at_least"][backend], table
        assert result["reopened"][f"djhpc/{backend}"] >= FLOOR["djhpc_reopened_at_least"][backend], table
    assert result["reopened"]["handover/mariadb"] >= FLOOR["handover_reopened_at_least"], table
