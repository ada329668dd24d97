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
import sys
import uuid
from types import SimpleNamespace

import pytest
from support.env import MYSQL_URL, NO_MYSQL, mysql_available, need_binary, unavailable

# hygiene: the user's own settings must not leak into the tests
# test settings, not user settings
KEEP = {"DJHPC_TEST_MYSQL_URL", "DJHPC_BENCH_DATAJOINT_PYTHON", "DJHPC_DATAJOINT_PYTHONS"}
for _name in list(os.environ):
    if _name.startswith(("DJHPC_", "DJ_")) and _name not in KEEP:
        del os.environ[_name]
os.environ["DJHPC_SAFEMODE"] = "0"
os.environ["XDG_CONFIG_HOME"] = "/nonexistent-djhpc-test-config"
# dj.config reads the environment on first use: read it now, so that a test that clears DJHPC_* before anything
# else touched dj.config does not leave the process with DataJoint's default safemode (asking before deletes)
import djhpc  # noqa: E402

assert djhpc.config["safemode"] is False


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
def pipeline(backend, schema_name, monkeypatch, tmp_path, db):
    """The counting test pipeline (tests/pipelines/pipeline_counts.py) imported in this process on the backend
    and a fresh schema: Item, Pair (manual), Square with part Note, PairSum, Held (computed).

    Each make() is logged to tmp_path/calls.log (``support.pipeline.calls`` counts them). The working
    directory is tmp_path, where the CLI run in this process looks for djhpc.yaml and writes its files.
    """
    from support.pipeline import load_pipeline

    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    yield p
    sys.modules.pop("pipeline_counts", None)


@pytest.fixture
def lab(schema):
    """A small lab schema declared in this process, tables empty but for the lookup: Species (lookup) <- Subject
    <- Session <- Analysis (computed) with part Unit; Note -> [nullable] Subject."""
    import djhpc as dj

    @schema
    class Species(dj.Lookup):
        definition = """
        # species of the subjects
        species : varchar(32)
        ---
        latin = "" : varchar(64)
        """
        contents = [("mouse", "Mus musculus"), ("rat", "Rattus norvegicus")]

    @schema
    class Subject(dj.Manual):
        definition = """
        # a lab animal
        subject_id : int            # lab id
        ---
        -> Species
        name : varchar(32)
        weight = null : double      # grams
        index(name)
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : smallint
        ---
        rig = "A" : char(1)
        """

    @schema
    class Analysis(dj.Computed):
        definition = """
        -> Session
        ---
        score : float
        """

        class Unit(dj.Part):
            definition = """
            -> master
            unit : int
            ---
            rate : double
            """

    @schema
    class Note(dj.Manual):
        definition = """
        note_id : int
        ---
        -> [nullable] Subject
        text : varchar(255)
        unique index(text)
        """

    return SimpleNamespace(Species=Species, Subject=Subject, Session=Session, Analysis=Analysis, Note=Note)


@pytest.fixture
def filled(lab):
    """The lab schema with rows: subjects 1 (mouse ann, 20.5 g), 2 (mouse bob, no weight), 3 (rat cid, 310 g);
    sessions (1, 1, A), (1, 2, B), (2, 1, A), (3, 1, C); analyses of (1, 1), (1, 2), (2, 1) with four units;
    notes 1 (subject 1, "first") and 2 (no subject, "orphan")."""
    p = lab
    p.Subject.insert([
        {"subject_id": 1, "species": "mouse", "name": "ann", "weight": 20.5},
        {"subject_id": 2, "species": "mouse", "name": "bob"},
        {"subject_id": 3, "species": "rat", "name": "cid", "weight": 310.0},
    ])
    p.Session.insert([(1, 1, "A"), (1, 2, "B"), (2, 1, "A"), (3, 1, "C")])
    p.Analysis.insert([(1, 1, 0.5), (1, 2, 0.25), (2, 1, 1.0)], allow_direct_insert=True)
    p.Analysis.Unit.insert([(1, 1, 1, 3.0), (1, 1, 2, 4.0), (1, 2, 1, 5.0), (2, 1, 1, 6.0)], allow_direct_insert=True)
    p.Note.insert([(1, 1, "first"), (2, None, "orphan")])
    return p


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
