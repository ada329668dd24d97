"""DataJoint's query cache (conn.set_query_cache, purge_query_cache, dj.config["query_cache"]) on both backends."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pytest

import djhpc as dj
from djhpc.db import querycache
from djhpc.errors import ConfigError, UsageError


@pytest.fixture
def reading(schema, tmp_path):
    @schema
    class Reading(dj.Manual):
        definition = """
        id : int
        ---
        value : decimal(8,3)
        taken : datetime
        trace = null : longblob
        note = "" : varchar(40)
        """

    cache = tmp_path / "cache"
    cache.mkdir()
    Reading.insert([dict(id=i, value=decimal.Decimal(f"{i}.125"), taken=datetime.datetime(2024, 1, 2, 3, 4, i),
                         trace=np.arange(i + 1.0), note=f"n{i}") for i in range(2)])
    with dj.config(query_cache=str(cache)):
        yield Reading, cache
    Reading.connection.set_query_cache()


def test_a_cache_name_answers_from_files_until_it_changes(reading):
    Reading, cache = reading
    conn = Reading.connection
    conn.set_query_cache("main")
    first = Reading.fetch(as_dict=True, order_by="id")
    assert [r["id"] for r in first] == [0, 1]
    assert len(Reading()) == 2 and Reading.fetch("note").tolist() == ["n0", "n1"]
    conn.set_query_cache()
    Reading.insert1(dict(id=7, value=1, taken="2024-01-01 00:00:00"))
    conn.set_query_cache("main")
    again = Reading.fetch(as_dict=True, order_by="id")  # from the files: the insert is not seen
    assert [r["id"] for r in again] == [0, 1]
    for a, b in zip(first, again, strict=True):
        assert a["value"] == b["value"] == decimal.Decimal(f"{a['id']}.125")
        assert a["taken"] == b["taken"]
        np.testing.assert_array_equal(a["trace"], b["trace"])
    assert len(Reading()) == 2 and Reading.fetch("note").tolist() == ["n0", "n1"]  # counted and read before
    conn.set_query_cache("next")  # another state: the server is asked again
    assert sorted(Reading.fetch("id").tolist()) == [0, 1, 7]
    conn.set_query_cache()
    assert len(Reading()) == 3


def test_writes_are_refused_while_caching(reading):
    Reading, _ = reading
    Reading.connection.set_query_cache("main")
    with pytest.raises(UsageError, match="only SELECT queries are allowed when query caching is on") as e:
        Reading.insert1(dict(id=9, value=1, taken="2024-01-01 00:00:00"))
    assert "\n" not in str(e.value)
    with pytest.raises(dj.DataJointError):
        (Reading & "id = 0").delete_quick()
    Reading.connection.set_query_cache()
    assert len(Reading()) == 2


def test_files_are_blobs_never_pickle_and_purge_removes_only_them(reading):
    Reading, cache = reading
    other = cache / "keep.txt"
    other.write_text("not the cache's")
    Reading.connection.set_query_cache("main")
    Reading.fetch()
    files = [p for p in cache.iterdir() if p != other]
    assert files and all(p.read_bytes()[:4] in (b"dj0\0", b"mYm\0") for p in files)
    Reading.connection.purge_query_cache()
    assert list(cache.iterdir()) == [other]


def test_caching_without_a_folder_says_which_setting(db):
    db.set_query_cache("main")
    try:
        with dj.config(query_cache=None), pytest.raises(ConfigError, match=r"dj.config\['query_cache'\]"):
            db.query("SELECT 1")
    finally:
        db.set_query_cache()
    assert db.query("SELECT 1").fetchone()[0] == 1


def test_a_cache_name_must_be_a_string(db):
    with pytest.raises(ConfigError, match="string"):
        db.set_query_cache(3)


@pytest.mark.parametrize("sql", ["SELECT 1", " show tables", 'PRAGMA table_info("s.t")', "select * from x"])
def test_reads_pass(sql, backend):
    querycache.check_read_only(sql)


@pytest.mark.parametrize("sql", ["INSERT INTO t VALUES (1)", "DELETE FROM t", "PRAGMA journal_mode = WAL",
                                 "UPDATE t SET a=1", "BEGIN"])
def test_other_statements_are_refused(sql, backend):
    with pytest.raises(UsageError):
        querycache.check_read_only(sql)
