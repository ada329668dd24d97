"""Fixtures shared by the suite: both database backends, a fresh schema per test, worker processes.

Tests that need MariaDB use the ``backend`` fixture's "mysql" parameter: without a server on
127.0.0.1:3306 they skip with the reason, except under CI (``CI=true``) where a missing server fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parent.parent
MYSQL_URL = os.environ.get("DJHPC_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# hygiene: the user's own settings must not leak into the tests
KEEP = {"DJHPC_TEST_MYSQL_URL", "DJHPC_BENCH_DATAJOINT_PYTHON"}  # test settings, not user settings
for _name in list(os.environ):
    if _name.startswith(("DJHPC_", "DJ_")) and _name not in KEEP:
        del os.environ[_name]
os.environ["DJHPC_SAFEMODE"] = "0"
os.environ["XDG_CONFIG_HOME"] = "/nonexistent-djhpc-test-config"


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


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def backend(request, tmp_path) -> str:
    """The database URL of one backend: an SQLite file in tmp_path, or the MariaDB server."""
    if request.param == "mysql":
        if not mysql_available():
            unavailable("no MariaDB/MySQL answers on 127.0.0.1:3306 (start it: tests/cluster/ensure-mariadb.sh)")
        return MYSQL_URL
    return f"sqlite:///{tmp_path}/test.db"


@pytest.fixture
def db(backend):
    """The process connection, pointed at the backend."""
    import djhpc as dj

    connection = dj.conn(backend, reset=True)
    yield connection
    connection.close()


@pytest.fixture
def schema_name(db):
    """A fresh schema name, dropped after the test."""
    name = "djhpc_test_" + uuid.uuid4().hex[:10]
    yield name
    if db.is_sqlite:
        return
    try:
        db.reconnect()
        db.query(f"DROP DATABASE IF EXISTS `{name}`")
    except Exception:  # dropping is a courtesy; a failed test may have left the connection broken
        pass


@pytest.fixture
def schema(db, schema_name):
    import djhpc as dj

    return dj.Schema(schema_name, connection=db)


@pytest.fixture
def target(db, schema):
    """A bare table with one integer key column ``k``: what the reservation tests treat as made."""
    t = db.dialect.table(schema.database, "target")
    db.query(f"CREATE TABLE {t} ({db.dialect.quote('k')} INTEGER NOT NULL PRIMARY KEY)")
    return t


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
