"""Pipelines written with DataJoint itself (tests/pipelines/dj_pipeline.py), driven through subprocesses of one
DataJoint's interpreter (``DJHPC_DATAJOINT_PYTHONS``, set up by tests/cluster/ensure-datajoint.sh): djhpc is not
installed there, it runs from this repository (PYTHONPATH)."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

from support.cluster import root_query
from support.env import MYSQL_URL, ROOT

PIPELINE = ROOT / "tests" / "pipelines" / "dj_pipeline.py"


def datajoint_pythons() -> dict[str, str]:
    """Version label -> interpreter with that DataJoint and djhpc installed ("0.14=/path:2=/path")."""
    text = os.environ.get("DJHPC_DATAJOINT_PYTHONS", "")
    found = {}
    for part in filter(None, text.split(",")):
        label, _, path = part.partition("=")
        found[label] = path
    return found


class Pipeline:
    """The DataJoint pipeline in one schema, driven through subprocesses of one DataJoint's interpreter."""

    def __init__(self, python: str, schema: str, tmp_path: Path):
        self.python, self.schema, self.tmp = python, schema, tmp_path
        self.calls = tmp_path / "calls.txt"

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLURM_", "PBS_", "PARALLEL_", "DJHPC_", "DJ_"))}
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(PIPELINE.parent)]), DJ_HOST="127.0.0.1",
                   DJ_USER="root", DJ_PASS="", DJHPC_TEST_SCHEMA=self.schema, DJHPC_TEST_CALLS=str(self.calls),
                   DJHPC_REAP_SECONDS="1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def python_code(self, code: str, **extra) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, "-c", code], env=self.env(**extra), capture_output=True, text=True,
                              timeout=300, cwd=self.tmp)

    def fill(self, n: int):
        done = self.python_code(f"import dj_pipeline as p; p.Item.insert([(i, i) for i in range({n})])")
        assert done.returncode == 0, done.stderr

    def work(self, table: str, *args: str, **extra) -> subprocess.Popen:
        argv = [self.python, "-m", "djhpc.cli.main", "work", f"{PIPELINE}:{table}", *args]
        return subprocess.Popen(argv, env=self.env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=self.tmp)

    def djhpc(self, *args: str, **extra) -> subprocess.CompletedProcess:
        """``djhpc ARGS`` in this DataJoint's interpreter (a TARGET is written ``:Square``: the pipeline's path is
        put in front); --schema finds the database through DJHPC_DATABASE_URL, set here."""
        argv = [f"{PIPELINE}{a}" if a.startswith(":") else a for a in args]
        extra.setdefault("DJHPC_DATABASE_URL", MYSQL_URL)
        return subprocess.run([self.python, "-m", "djhpc.cli.main", *argv], env=self.env(**extra),
                              capture_output=True, text=True, timeout=300, cwd=self.tmp, stdin=subprocess.DEVNULL)

    def calls_of(self, table: str) -> Counter:
        if not self.calls.exists():
            return Counter()
        return Counter(int(line.split()[1]) for line in self.calls.read_text().splitlines()
                       if line.split()[0] == table)

    def rows(self, sql: str, params=None):
        return root_query(sql.format(s=f"`{self.schema}`"), params)

    def tables(self) -> set[str]:
        return {r[0] for r in root_query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                                         (self.schema,))}


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err
