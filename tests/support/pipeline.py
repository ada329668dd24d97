"""The test pipelines of tests/pipelines/: pipeline_counts.py imported in this process, and its call log;
pipeline_bench.py, the benchmark's tables, declared on a schema.

Every make() of pipeline_counts appends ``<Table> <sorted key items> <pid>`` to the file named by
DJHPC_TEST_CALLS (``tmp_path / "calls.log"`` here), so tests count makes, not only rows.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path

import djhpc as dj
from support.env import ROOT

PIPELINES = ROOT / "tests" / "pipelines"
PIPELINE = PIPELINES / "pipeline_counts.py"


def load_pipeline(backend, schema_name, monkeypatch, tmp_path, **env):
    """Import the test pipeline in this process, bound to the backend and a fresh schema."""
    monkeypatch.setenv("DJHPC_DATABASE_URL", backend)
    monkeypatch.setenv("DJHPC_TEST_SCHEMA", schema_name)
    monkeypatch.setenv("DJHPC_TEST_CALLS", str(tmp_path / "calls.log"))
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    sys.path.insert(0, str(PIPELINES))
    try:
        sys.modules.pop("pipeline_counts", None)
        return importlib.import_module("pipeline_counts")
    finally:
        sys.path.pop(0)


def declare_bench_pipeline(schema, on_make=None):
    """(Item, Result) of tests/pipelines/pipeline_bench.py, the tables the benchmark's djhpc workers declare."""
    sys.path.insert(0, str(PIPELINES))
    try:
        pipeline_bench = importlib.import_module("pipeline_bench")
    finally:
        sys.path.pop(0)
    return pipeline_bench.declare(schema, on_make)


def load_items(url: str, schema: str, n: int, monkeypatch, tmp_path: Path):
    """Import the test pipeline in this process on url/schema and insert items 0..n-1."""
    dj.conn(url, reset=True)
    sys.modules.pop("pipeline_counts", None)
    p = load_pipeline(url, schema, monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(n)])
    return p


def calls(tmp_path) -> Counter:
    """Make calls per key (``<Table> <sorted key items>``) from the call log."""
    path = tmp_path / "calls.log"
    if not path.exists():
        return Counter()
    return Counter(" ".join(line.split(" ")[:-1]) for line in path.read_text().splitlines())


def make_calls(tmp_path: Path) -> tuple[Counter, set]:
    """(make calls per key, PIDs that made them) from the pipeline's call log."""
    path = tmp_path / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(line.rsplit(" ", 1)[0] for line in lines), {int(line.rsplit(" ", 1)[1]) for line in lines}


def key_text(item: int) -> str:
    return f"Square [('item', {item})]"


def pid_of_call(tmp_path: Path, item: int) -> set:
    lines = (tmp_path / "calls.log").read_text().splitlines()
    return {int(line.rsplit(" ", 1)[1]) for line in lines if line.rsplit(" ", 1)[0] == key_text(item)}
