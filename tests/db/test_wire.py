"""The PyMySQL internals djhpc relies on (db/wire.py), pinned to the driver versions they were checked against."""

from __future__ import annotations

import pymysql
import pytest

from djhpc.db import wire

pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


def test_the_installed_driver_is_one_the_wire_calls_were_checked_against(backend):
    major_minor = "{}.{}".format(*pymysql.VERSION[:2])  # pymysql.__version__ imitates mysqlclient's
    assert major_minor in wire.CHECKED_VERSIONS, (
        f"PyMySQL {major_minor}: check db/wire.py's private calls against it, then add it to CHECKED_VERSIONS")
    for name in ("_execute_command", "_read_query_result", "next_result"):
        assert callable(getattr(pymysql.connections.Connection, name, None)), name


def test_a_packet_sent_now_is_read_later_statement_by_statement(db):
    raw = db.raw
    wire.send(raw, "SELECT 1; SELECT 2; SELECT 3")
    wire.read_first(raw)
    results = [raw._result.rows]
    while wire.has_more(raw):
        wire.read_next(raw)
        results.append(raw._result.rows)
    assert results == [((1,),), ((2,),), ((3,),)]
    assert db.query("SELECT 4").fetchone() == (4,)  # the connection is in step again


def test_an_error_in_the_packet_is_raised_where_it_is_read(db):
    raw = db.raw
    wire.send(raw, "SELECT 1; SELECT * FROM mysql.no_such_table_here; SELECT 3")
    wire.read_first(raw)
    assert wire.has_more(raw)
    with pytest.raises(pymysql.err.ProgrammingError):
        wire.read_next(raw)
    assert not wire.has_more(raw)  # the server ran nothing after the failing statement
    assert db.query("SELECT 4").fetchone() == (4,)
