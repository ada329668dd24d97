"""A whole pipeline written with DataJoint itself (0.14 and 2.x), driven by `djhpc work chain.py`: the same
five tables as tests/test_pipework.py, each key made once, the failed key's dependants left unmade."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter

import pytest
from support.chain import TABLES, ChainProject
from support.cluster import root_query
from support.datajoint import datajoint_pythons
from support.env import mysql_available, unavailable

FAILED = 2


@pytest.fixture(params=sorted(datajoint_pythons()) or ["none"])
def dj_chain(request, tmp_path):
    python = datajoint_pythons().get(request.param)
    if not python:
        unavailable("no DataJoint venv (DJHPC_DATAJOINT_PYTHONS; tests/cluster/ensure-datajoint.sh sets one up)")
    if not mysql_available():
        unavailable("no MariaDB at 127.0.0.1:3306")
    schema = "djhpc_djchain_" + uuid.uuid4().hex[:8]
    project = ChainProject.create(tmp_path / "project", "mysql://root@127.0.0.1:3306", schema,
                                  DJHPC_TEST_WITH="datajoint", DJ_HOST="127.0.0.1", DJ_USER="root", DJ_PASS="",
                                  DJHPC_TEST_FAIL=FAILED, DJHPC_PIPELINE_LOOK_SECONDS="0.3")
    project.python_path = python
    yield project
    root_query(f"DROP DATABASE IF EXISTS `{schema}`")


def run(project, *argv, timeout=300):
    return subprocess.run([project.python_path, *argv], cwd=project.folder, env=project.env, capture_output=True,
                          text=True, timeout=timeout)


def test_datajoint_pipeline_workers_make_every_key_once(dj_chain):
    sessions = list(range(10))
    out = run(dj_chain, "-c", f"import chain; chain.Session.insert([(s,) for s in {sessions!r}])")
    assert out.returncode == 0, out.stderr
    # a worker of one process, and one of two forked processes (each opens DataJoint's connection anew)
    workers = [subprocess.Popen([dj_chain.python_path, "-m", "djhpc.cli.main", "work", "chain.py", *more],
                                cwd=dj_chain.folder, env={**dj_chain.env, "DJHPC_TEST_SLEEP": "0.05"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for more in ([], ["--processes", "2"])]
    results = [w.communicate(timeout=300) for w in workers]
    assert sorted(w.returncode for w in workers) in ([0, 1], [1, 1]), [e for _, e in results]
    assert "Traceback" not in results[1][1] and len({c.pid for c in dj_chain.calls()}) >= 2
    counts = dj_chain.counts()
    expected = {(t, s) for t in TABLES for s in sessions if s != FAILED}
    assert set(counts) == expected and max(counts.values()) == 1, counts
    history = Counter(root_query(f"SELECT table_name, key_hash FROM `{dj_chain.schema}`.`~djhpc_history`"))
    assert len(history) == len(expected) and max(history.values()) == 1
    made = root_query(f"SELECT session FROM `{dj_chain.schema}`.`__summary`")
    assert {r[0] for r in made} == set(sessions) - {FAILED}
    # djhpc's view of the DataJoint pipeline: the failed key's dependants are counted blocked, table by table
    out = run(dj_chain, "-m", "djhpc.cli.main", "progress", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["table"]: r for r in json.loads(out.stdout)}
    assert list(rows) == ["Motion", "Segment", "Trace", "Quality", "Summary"]
    assert rows["Motion"]["error"] == 1 and all(rows[t]["blocked"] == 1 for t in TABLES[1:]), rows
    # DataJoint's own view agrees: its progress() of the last table counts the same keys
    out = run(dj_chain, "-c", "import chain; print(chain.Summary().progress(display=False))")
    assert out.returncode == 0 and out.stdout.strip().endswith(f"(0, {len(sessions) - 1})"), out.stdout + out.stderr
