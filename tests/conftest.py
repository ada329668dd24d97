"""Fixtures shared by the suite: both database backends, a fresh schema per test, a MariaDB schema and user
of its own, the SLURM cluster.

Tests that need MariaDB use the ``backend`` fixture's "mysql" parameter: without a server on
127.0.0.1:3306 they skip with the reason, except under CI (``CI=true``) where a missing server fails.

Helpers are not here: test modules import them from the ``support`` package (tests/support/).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid

import pytest
from support.env import (  # noqa: F401 - some only re-exported, for a module that imports them from here
    IN_CI,
    MYSQL_URL,
    NO_MYSQL,
    ROOT,
    mysql_available,
    need_binary,
    run_python,
    unavailable,
    worker_env,
)

# hygiene: the user's own settings must not leak into the tests
KEEP = {"DJHPC_TEST_MYSQL_URL", "DJHPC_BENCH_DATAJOINT_PYTHON"}  # test settings, not user settings
for _name in list(os.environ):
    if _name.startswith(("DJHPC_", "DJ_")) and _name not in KEEP:
        del os.environ[_name]
os.environ["DJHPC_SAFEMODE"] = "0"
os.environ["XDG_CONFIG_HOME"] = "/nonexistent-djhpc-test-config"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def backend(request, tmp_path) -> str:
    """The database URL of one backend: an SQLite file in tmp_path, or the MariaDB server."""
    if request.param == "mysql":
        if not mysql_available():
            unavailable(NO_MYSQL)
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


@pytest.fixture
def mysql_schema():
    """A fresh MariaDB schema name, dropped afterwards."""
    from support.cluster import root_query

    if not mysql_available():
        unavailable(NO_MYSQL)
    name = "djhpc_test_" + uuid.uuid4().hex[:10]
    yield name
    root_query(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mysql_user(mysql_schema):
    """A MariaDB user with a password, allowed on mysql_schema only: (url with password, password)."""
    from support.cluster import root_query

    user = "djhpc_u_" + uuid.uuid4().hex[:8]
    password = "pw-" + secrets.token_hex(12)
    root_query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    root_query(f"GRANT ALL ON `{mysql_schema}`.* TO '{user}'@'%'")
    yield f"mysql://{user}:{password}@127.0.0.1:3306", password
    root_query(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture(scope="session")
def slurm():
    """The single-node cluster, started (idempotently) with KillWait=5 as in CI."""
    from support.cluster import start_slurm

    need_binary("sbatch")
    if os.geteuid() != 0:
        if subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode != 0:
            unavailable("SLURM is not running and starting it needs root (tests/cluster/start-slurm.sh)")
        return
    try:
        start_slurm()
    except RuntimeError as e:
        unavailable(str(e))
