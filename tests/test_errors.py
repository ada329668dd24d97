"""Errors keep their cause and carry typed fields: ``code`` (the driver's error number) and ``context``.

A driver error translated by the dialect keeps the driver's exception as ``__cause__``; the command line
still prints one line for any DjhpcError, never the chain.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
from support.env import MYSQL_URL, NO_MYSQL, ROOT, mysql_available, unavailable

from djhpc import errors
from djhpc.config import parse_url
from djhpc.db.dialects import DIALECTS
from djhpc.errors import (
    ConfigError,
    ConnectError,
    DatabaseError,
    DjhpcError,
    DuplicateError,
    QueryError,
)

ERROR_CLASSES = sorted(
    (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DjhpcError)), key=lambda c: c.__name__
)


# ----------------------------------------------------------------------------------------------- the fields
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_code_and_context_default_to_nothing(cls):
    e = cls("something failed")
    assert (e.code, e.context) == (0, "")
    assert str(e) == "something failed" and e.args == ("something failed",)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_code_and_context_through_the_constructor(cls):
    e = cls("something failed", code=1064, context="insert")
    assert (e.code, e.context) == (1064, "insert")
    assert str(e) == "something failed" and e.args == ("something failed",)  # keyword-only: not in the message


def test_fields_are_keyword_only():
    e = DatabaseError("a", 1064)  # positional arguments stay the exception's arguments, as for any exception
    assert e.args == ("a", 1064) and e.code == 0
    with pytest.raises(TypeError):
        DatabaseError("a", errno=1064)


def test_the_old_ways_still_work():
    err = DatabaseError("binlog refuses")
    err.code = 1665  # set after the fact, as older code does
    assert err.code == 1665 and getattr(err, "code", 0) == 1665
    assert getattr(DjhpcError("x"), "code", 0) == 0 and DjhpcError.code == 0 and DjhpcError.context == ""


def test_fields_survive_pickling():
    err = pickle.loads(pickle.dumps(DuplicateError("duplicate", code=1062, context="insert")))
    assert type(err) is DuplicateError and str(err) == "duplicate"
    assert (err.code, err.context) == (1062, "insert")


# --------------------------------------------------------------------------------- translated driver errors
def _mysql_connection():
    if not mysql_available():
        unavailable(NO_MYSQL)
    url = parse_url(MYSQL_URL)
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password, connect_timeout=5)


@pytest.mark.mysql
@pytest.mark.parametrize(
    "sql, code, cls",
    [
        ("SELEC 1", 1064, DatabaseError),  # syntax error: the generic translation
        ("SELECT no_such_column_djhpc", 1054, QueryError),
        ("SELECT * FROM mysql.no_such_table_djhpc", 1146, DatabaseError),
    ],
)
def test_pymysql_error_keeps_cause_code_and_context(sql, code, cls):
    connection = _mysql_connection()
    try:
        with connection.cursor() as cursor, pytest.raises(pymysql.err.Error) as raised:
            cursor.execute(sql)
    finally:
        connection.close()
    driver_error = raised.value
    assert driver_error.args[0] == code

    err = DIALECTS["mysql"].translate(driver_error, context="query")
    assert type(err) is cls
    assert err.__cause__ is driver_error  # even before it is raised
    assert (err.code, err.context) == (code, "query")
    assert str(err).startswith("query: ") and "\n" not in str(err)

    with pytest.raises(cls) as again:  # raised the way the sessions raise it
        try:
            raise driver_error
        except pymysql.err.Error as exc:
            raise DIALECTS["mysql"].translate(exc, context="query") from exc
    assert again.value.__cause__ is driver_error and again.value.code == code


@pytest.mark.mysql
def test_pymysql_connect_error_keeps_cause_and_code():
    url = parse_url(MYSQL_URL)
    if not mysql_available():
        unavailable(NO_MYSQL)
    with pytest.raises(pymysql.err.OperationalError) as raised:
        pymysql.connect(host=url.host, port=url.port, user="no_such_user_djhpc", password="x", connect_timeout=5)
    err = DIALECTS["mysql"].translate(raised.value, context="connect")
    assert isinstance(err, ConnectError)
    assert err.__cause__ is raised.value and err.context == "connect"
    assert err.code == raised.value.args[0] and err.code in (1045, 1698)  # MariaDB may say 1698 for no such user


def test_sqlite_error_keeps_cause_code_and_context():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as raised:
        db.execute("INSERT INTO t VALUES (1)")
    db.close()
    err = DIALECTS["sqlite"].translate(raised.value, context="insert")
    assert isinstance(err, DuplicateError)
    assert err.__cause__ is raised.value and err.context == "insert"
    assert err.code == getattr(raised.value, "sqlite_errorcode", 0)
    if sys.version_info >= (3, 11):
        assert err.code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY


def test_other_exceptions_pass_through_untouched():
    for dialect in DIALECTS.values():
        exc = ValueError("not a driver error")
        assert dialect.translate(exc, context="insert") is exc and exc.__cause__ is None


def test_an_error_from_the_connection_keeps_the_driver_error(db):
    with pytest.raises(DatabaseError) as raised:
        db.query("SELEC 1", context="probe")
    err = raised.value
    assert isinstance(err.__cause__, (pymysql.err.Error, sqlite3.Error))
    assert err.context == "probe" and str(err).startswith("probe: ")
    if not db.is_sqlite:
        assert err.code == 1064
    elif sys.version_info >= (3, 11):
        assert err.code == sqlite3.SQLITE_ERROR


def test_config_error_keeps_its_cause():
    with pytest.raises(ConfigError) as raised:
        parse_url("mysql://user@host:notaport/")
    assert isinstance(raised.value.__cause__, ValueError)


# ------------------------------------------------------------------------------------------ the command line
def _djhpc(tmp_path, *args, env):
    script = Path(sys.executable).with_name("djhpc")  # the installed command, e.g. .venv/bin/djhpc
    command = [str(script)] if script.exists() else [sys.executable, "-m", "djhpc.cli.main"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    environment.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "xdg"), **env)
    return subprocess.run([*command, *args], cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    "env, expected, code",
    [
        ({"DJ_HOST": "127.0.0.1", "DJ_PORT": "abc"}, "djhpc: error: DJ_PORT must be a number (got 'abc')", 2),
        ({"DJHPC_DATABASE_URL": "mysql://root@127.0.0.1:1"}, "djhpc: error: cannot reach the database", 69),
    ],
    ids=["config error caused by a ValueError", "connect error caused by the driver"],
)
def test_cli_prints_one_line_without_the_chain(tmp_path, env, expected, code):
    done = _djhpc(tmp_path, "status", "--schema", "anything", env=env)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected), done.stderr
    assert "Traceback" not in done.stderr and "cause" not in done.stderr


def test_a_statement_the_user_may_not_run_is_an_access_error(mysql_user, mysql_schema):
    """MySQL 1044/1142 (no privilege for a database or table) are DataJoint's AccessError, with the fix named,
    not a refused password: the connection itself was accepted."""
    from djhpc.db.connection import Connection

    url, _ = mysql_user
    c = Connection(url)
    try:
        c.query(f"CREATE DATABASE `{mysql_schema}`")  # allowed: its own schema
        for sql, code in (("CREATE DATABASE djhpc_not_granted_here", 1044), ("SELECT * FROM mysql.user", 1142)):
            with pytest.raises(errors.AccessError, match="may not do this .* ask its administrator") as e:
                c.query(sql)
            assert e.value.code == code and isinstance(e.value, errors.DatabaseError)
    finally:
        c.close()
