"""The five-table test pipeline tests/pipelines/chain.py as a project folder: sessions in, workers started as
``djhpc work chain.py`` subprocesses, every make read back from the call log (``table session pid start end``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from support.env import ROOT

CHAIN = ROOT / "tests" / "pipelines" / "chain.py"
TABLES = ("Motion", "Segment", "Trace", "Quality", "Summary")


@dataclass
class Call:
    table: str
    session: int
    pid: int
    start: float
    end: float


@dataclass
class ChainProject:
    folder: Path
    url: str
    schema: str
    env: dict = field(default_factory=dict)

    @classmethod
    def create(cls, folder: Path, url: str, schema: str, *, yaml: str = "", **env) -> ChainProject:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHAIN, folder / "chain.py")
        (folder / "djhpc.yaml").write_text(f"target: chain.py\ndatabase: {url}\n{yaml}", encoding="utf-8")
        import os

        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "PBS_", "PARALLEL", "SGE_", "JOB_ID"))}
        base.update(PYTHONPATH=str(ROOT), DJHPC_TEST_SCHEMA=schema, DJHPC_TEST_CALLS=str(folder / "calls.log"),
                    XDG_CONFIG_HOME=str(folder / "config"), DJHPC_SAFEMODE="0")
        base.update({k: str(v) for k, v in env.items()})
        return cls(folder, url, schema, base)

    def python(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-c", code], cwd=self.folder, env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr
        return out

    def add_sessions(self, sessions) -> None:
        self.python(f"import chain; chain.Session.insert([(s,) for s in {list(sessions)!r}], skip_duplicates=True)")

    def djhpc(self, *args, timeout: float = 300, **env) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "djhpc.cli.main", *map(str, args)], cwd=self.folder,
                              env={**self.env, **{k: str(v) for k, v in env.items()}}, capture_output=True,
                              text=True, timeout=timeout)

    def start_worker(self, *args, **env) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", *map(str, args)], cwd=self.folder,
                                env={**self.env, **{k: str(v) for k, v in env.items()}}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def calls(self) -> list[Call]:
        path = self.folder / "calls.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            table, session, pid, start, end = line.split()
            out.append(Call(table, int(session), int(pid), float(start), float(end)))
        return out

    def counts(self) -> Counter:
        return Counter((c.table, c.session) for c in self.calls())

    def rows(self, table: str) -> set[int]:
        out = self.python("import chain, json; "
                          f"print(json.dumps(sorted(int(s) for s in chain.{table}.fetch('session'))))")
        return set(json.loads(out.stdout.strip().splitlines()[-1]))

    def history_counts(self) -> Counter:
        """Successful makes per (table name, key hash), from the history rows written in make's transaction."""
        out = self.python("import chain, json, djhpc as dj; c = dj.conn(); "
                          "print(json.dumps([list(r) for r in c.query('SELECT table_name, key_hash FROM ' + "
                          "c.dialect.table(chain.schema.database, '~history')).fetchall()]))")
        return Counter(tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1]))


def dependants_of_motion() -> tuple[str, ...]:
    """The tables a failed Motion key blocks: every table below it."""
    return TABLES[1:]
