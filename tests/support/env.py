"""The test environment: the repository, the MariaDB server, skip-or-fail, worker processes, binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
MYSQL_URL = os.environ.get("DJHPC_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NO_MYSQL = "no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)"


def unavailable(reason: str):
    """Skip locally; fail under CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def _mysql_answers() -> bool:
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2).close()
        return True
    except pymysql.err.Error:
        return False


_mysql_state: dict = {}


def mysql_available() -> bool:
    if "ok" not in _mysql_state:
        ok = _mysql_answers()
        script = ROOT / "tests" / "cluster" / "ensure-mariadb.sh"
        if not ok and os.geteuid() == 0 and script.exists():
            subprocess.run(["bash", str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
            ok = _mysql_answers()
        _mysql_state["ok"] = ok
    return _mysql_state["ok"]


def worker_env(url: str, schema: str, **extra) -> dict:
    """Environment for a worker subprocess: the package on the path, the database and schema named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PBS_", "PARALLEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "pipelines")])
    env["DJHPC_DATABASE_URL"] = url
    env["DJHPC_TEST_SCHEMA"] = schema
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        unavailable(f"{name} is not installed (tests/cluster/ensure-tools.sh installs it)")
    return path


def wait_for(predicate, timeout=30.0, what="condition"):
    """Poll ``predicate`` until it holds, bounded by ``timeout`` seconds (tests wait for events, not for sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
