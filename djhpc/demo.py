"""A small pipeline that shows djhpc at work on one machine: no server, no cluster.

``djhpc demo`` writes it to a folder (by default ``djhpc/demo`` in the user's cache folder, never the current
one: run from a source tree it would leave files there), fills a Manual table, starts several worker processes
(``djhpc work``) on the embedded SQLite database, and prints what happened.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = '''"""djhpc demo pipeline: recording sessions and a per-session analysis."""
import math
import os
import time

import djhpc as dj

schema = dj.Schema("demo")


@schema
class Subject(dj.Lookup):
    definition = """
    subject : varchar(16)
    ---
    species = "mouse" : varchar(32)
    """
    contents = [("m1", "mouse"), ("m2", "mouse"), ("r1", "rat")]


@schema
class Session(dj.Manual):
    definition = """
    # one recording session
    -> Subject
    session_id : int unsigned
    ---
    duration_s : double
    """


@schema
class Analysis(dj.Computed):
    definition = """
    -> Session
    ---
    mean_rate : double
    rates     : longblob
    """

    class Unit(dj.Part):
        definition = """
        -> master
        unit : smallint
        ---
        rate : float
        """

    def make(self, key):
        time.sleep(0.05)  # stands in for real work
        if key["subject"] == "r1" and key["session_id"] == 7:
            raise ValueError("corrupt recording in session r1/7")
        rates = [abs(math.sin(key["session_id"] * 7 + u)) * 20 for u in range(4)]
        self.insert1(dict(key, mean_rate=sum(rates) / len(rates), rates=rates))
        self.Unit.insert([dict(key, unit=u, rate=r) for u, r in enumerate(rates)])
'''

YAML = """# djhpc project settings for the demo
target: pipeline.py:Analysis
database: sqlite:///demo.db
scheduler: local
"""


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/djhpc/demo`` (``~/.cache/djhpc/demo``); a new temporary folder when that is not writable."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "djhpc" / "demo"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="djhpc-demo-"))


def run_demo(folder: Path, workers: int = 4, sessions: int = 40, out=print) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    (folder / "pipeline.py").write_text(PIPELINE)
    (folder / "djhpc.yaml").write_text(YAML)
    for stale in ("demo.db", "demo.db-wal", "demo.db-shm", *(p.name for p in folder.glob("worker-*"))):
        (folder / stale).unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env["DJHPC_DATABASE_URL"] = f"sqlite:///{(folder / 'demo.db').resolve()}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder.resolve()), env.get("PYTHONPATH", "")]))
    setup = ("import pipeline as p; "
             f"p.Session.insert([(s, i, 60.0 + i) for s in ('m1', 'm2', 'r1') for i in range({sessions // 3 + 1})]); "
             "print(len(p.Session()))")
    n = subprocess.run([sys.executable, "-c", setup], cwd=folder, env=env, check=True, capture_output=True,
                       text=True).stdout.strip()
    out(f"demo: {folder}/pipeline.py declared on {env['DJHPC_DATABASE_URL']} with {n} sessions")
    out(f"demo: starting {workers} workers: djhpc work pipeline.py:Analysis")
    t0 = time.monotonic()
    procs = []
    for task in range(1, workers + 1):
        task_env = dict(env, DJHPC_TASK_ID=str(task), DJHPC_TASK_COUNT=str(workers), DJHPC_JOB_ID="demo",
                        DJHPC_SCHEDULER="local")
        log = open(folder / f"worker-{task}.log", "w")  # noqa: SIM115 - the child writes it
        procs.append(subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "work", "pipeline.py:Analysis",
                                       "--log", str(folder / f"worker-{task}.keys.tsv")], cwd=folder, env=task_env,
                                      stdout=log, stderr=subprocess.STDOUT))
        log.close()
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - t0
    report = ("import pipeline as p; import djhpc as dj; from djhpc.keytext import format_key; "
              "r, t = p.Analysis().progress(); "
              "print(f'progress: {t - r} of {t} sessions analysed, {r} left'); "
              "print('units:', len(p.Analysis.Unit())); "
              "[print(f'failed: {format_key(e[\"key\"])}: {e[\"error_message\"]} (host {e[\"host\"]}, "
              "pid {e[\"pid\"]})') for e in (p.schema.jobs & {'status': 'error'}).fetch(as_dict=True)]; "
              "print('jobs table rows:', len(p.schema.jobs))")
    summary = subprocess.run([sys.executable, "-c", report], cwd=folder, env=env, capture_output=True, text=True)
    out(f"demo: {workers} workers finished in {elapsed:.1f} s (exit codes {codes}: 1 = a key failed)")
    out(summary.stdout.rstrip() or summary.stderr.rstrip())
    out(f"demo: its files (pipeline.py, djhpc.yaml, demo.db, worker logs) are in {folder}")
    out(f"next: cd {shlex.quote(str(folder))} && djhpc progress && djhpc jobs errors && "
        "djhpc render --array 4 --scheduler slurm")
    return 0 if summary.returncode == 0 else 1
