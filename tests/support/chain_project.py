"""A project folder around tests/pipelines/chain.py (a whole pipeline of five computed tables, Segment on the gpu
partition) run through the ``djhpc`` command: sessions inserted, workers run here, the call log read back.

chain.py appends ``table session pid start end`` to DJHPC_TEST_CALLS for every make that gets past its failure
check (Motion raises first for the sessions in DJHPC_TEST_FAIL), so a test counts makes per (table, session), not
only rows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support.cluster import cli_env, djhpc
from support.env import ROOT

CHAIN = ROOT / "tests" / "pipelines" / "chain.py"
TABLES = ("Motion", "Segment", "Trace", "Quality", "Summary")
DEFAULT_CLASS = ("Motion", "Trace", "Quality", "Summary")  # chain.py's tables without resources, in order


class ChainProject:
    """chain.py and a djhpc.yaml (mode 0600) in ``folder`` naming ``database`` (a server, or an SQLite file by its
    absolute path); ``env`` is the command's environment."""

    def __init__(self, folder: Path, database: str, schema: str, tmp_path: Path, extra_yaml: str = "", **env):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHAIN, folder / "chain.py")
        self.folder, self.url, self.schema, self.tmp_path = folder, database, schema, tmp_path
        self.config = folder / "djhpc.yaml"
        self.write_config(f"database: {database}\n{extra_yaml}")
        self.env = cli_env(schema, tmp_path, DJHPC_TEST_SLEEP="0.05", **env)

    def write_config(self, text: str) -> None:
        self.config.write_text(text, encoding="utf-8")
        self.config.chmod(0o600)

    def run(self, *args, timeout: float = 120, **env) -> subprocess.CompletedProcess:
        return djhpc(args, self.folder, {**self.env, **{k: str(v) for k, v in env.items()}}, timeout=timeout)

    def add_sessions(self, sessions) -> None:
        """Insert sessions through chain.py itself, in a process of its own (as a lab would)."""
        code = f"import chain; chain.Session.insert([(s,) for s in {list(sessions)!r}])"
        env = {**self.env, "PYTHONPATH": f"{self.folder}:{self.env['PYTHONPATH']}", "DJHPC_DATABASE_URL": self.url}
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr

    def work(self, *args, **env) -> subprocess.CompletedProcess:
        """`djhpc work chain.py ARGS` here, to the end."""
        out = self.run("work", "chain.py", *args, **env)
        assert out.returncode in (0, 1), out.stderr
        return out

    def calls(self) -> Counter:
        """Make calls per (table, session) (those that did not fail on purpose)."""
        path = self.tmp_path / "calls.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return Counter((line.split()[0], int(line.split()[1])) for line in lines)

    def kept_scripts(self) -> list[Path]:
        folder = self.folder / ".djhpc" / "scripts"
        return sorted(folder.iterdir()) if folder.exists() else []


def scripts_by_class(text: str) -> dict[str, str]:
    """`djhpc render PIPELINE` output split at its '# ==> CLASS class: TABLES <==' lines: class -> script."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith("# ==> ") and " class: " in line:
            name = line[len("# ==> "):].split(" class: ")[0]
            out[name] = ""
        elif name is not None:
            out[name] += line
    return out


def exec_line(script: str) -> list[str]:
    """The words of the script's ``exec`` line (the worker's command)."""
    import shlex

    [line] = [x for x in script.splitlines() if x.startswith("exec ")]
    return shlex.split(line)[1:]
