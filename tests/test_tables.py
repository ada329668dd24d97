"""djhpc.tables and djhpc.query on both backends: tiers, keys, insert, fetch, restrict, join, proj, delete,
drop, transactions, and the connection's behaviour across fork, dropped connections and concurrent writers."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pymysql
import pytest
from support.env import ROOT
from support.queries import key_set

import djhpc as dj
from djhpc.config import parse_url


# ------------------------------------------------------------------ helpers
def db_table_names(connection, schema_name) -> set[str]:
    """The tables of a schema as the database itself names them."""
    if connection.is_sqlite:
        rows = connection.query("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        prefix = schema_name + "."
        return {r[0][len(prefix):] for r in rows if r[0].startswith(prefix)}
    return {r[0] for r in connection.query(f"SHOW TABLES FROM `{schema_name}`").fetchall()}


def count_rows(table) -> int:
    """Rows of a table, counted with plain SQL (not through djhpc's query layer)."""
    table = table() if isinstance(table, type) else table
    return table.connection.query(f"SELECT COUNT(*) FROM {table.full_table_name}").fetchone()[0]


# ------------------------------------------------------------------ tiers and names
def test_tier_table_names_in_database(db, schema, schema_name):
    @schema
    class Subject(dj.Manual):
        definition = "subject_id : int\n"

    @schema
    class SpeciesKind(dj.Lookup):
        definition = "kind : varchar(8)\n"

    @schema
    class Recording(dj.Imported):
        definition = "-> Subject\n"

    @schema
    class Analysis(dj.Computed):
        definition = "-> Recording\n"

        class Unit(dj.Part):
            definition = "-> master\nunit : int\n"

    assert db_table_names(db, schema_name) == {  # ~log: DataJoint's log of the declares
        "subject", "#species_kind", "_recording", "__analysis", "__analysis__unit", "~log"}
    assert Analysis.Unit().table_name == "__analysis__unit"
    assert Analysis.Unit().master is Analysis
    assert schema.list_tables() == sorted(n for n in db_table_names(db, schema_name) if n != "~log")
    assert schema.table_names() == sorted(db_table_names(db, schema_name))
    if db.is_sqlite:
        names = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        assert f"{schema_name}.__analysis__unit" in names
        assert Subject.full_table_name == f'"{schema_name}.subject"'
    else:
        assert Subject.full_table_name == f"`{schema_name}`.`subject`"
    # DataJoint's tier_regexp: each tier's pattern matches its own tables' names and no other tier's
    tiers = [dj.Manual, dj.Lookup, dj.Imported, dj.Computed]
    for table in (Subject, SpeciesKind, Recording, Analysis):
        assert re.match(table.tier_regexp, table.table_name)
        assert [t for t in tiers if re.match(t.tier_regexp, table.table_name)] == [type(table()).__mro__[1]]
    m = re.fullmatch(dj.Part.tier_regexp, Analysis.Unit.table_name)
    assert m and m.group("master") == "__analysis" and m.group("part") == "unit"


def test_size_on_disk_of_a_table(filled):
    """DataJoint's table.size_on_disk: bytes of data and indexes (SQLite: its pages, from dbstat)."""
    size = filled.Subject().size_on_disk
    assert isinstance(size, int) and size > 100 and filled.Subject.size_on_disk == size


def test_lookup_contents_are_inserted_once(lab, schema):
    assert sorted(lab.Species.fetch("species")) == ["mouse", "rat"]
    schema(lab.Species)  # declaring again (another process importing the module) adds nothing
    assert len(lab.Species) == 2


def test_declaring_again_reuses_the_table(db, schema, schema_name):
    @schema
    class Thing(dj.Manual):
        definition = "thing : int\n"

    Thing.insert1((1,))
    again = dj.Schema(schema_name, connection=db)

    @again
    class Thing(dj.Manual):  # noqa: F811 - a second module declaring the same table
        definition = "thing : int\n"

    assert Thing.fetch("thing") == [1]


# ------------------------------------------------------------------ foreign keys
def test_foreign_keys_are_constraints_in_the_catalog(db, lab, schema_name):
    if db.is_sqlite:
        rows = db.query(f"PRAGMA foreign_key_list(\"{schema_name}.session\")").fetchall()
        assert [(r[2], r[3], r[4]) for r in rows] == [(f"{schema_name}.subject", "subject_id", "subject_id")]
        assert db.query("PRAGMA foreign_keys").fetchone()[0] == 1
    else:
        rows = db.query(
            "SELECT REFERENCED_TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA=%s AND TABLE_NAME='session' AND REFERENCED_TABLE_NAME IS NOT NULL",
            (schema_name,)).fetchall()
        assert [tuple(r) for r in rows] == [("subject", "subject_id")]


def test_indexes_and_comments_are_in_the_catalog(db, lab, schema_name):
    if db.is_sqlite:
        def indexed(table):
            out = []
            for _, name, unique, *_ in db.query(f'PRAGMA index_list("{schema_name}.{table}")').fetchall():
                cols = [r[2] for r in db.query(f'PRAGMA index_info("{name}")').fetchall()]
                out.append((bool(unique), cols))
            return out

        assert (False, ["name"]) in indexed("subject")
        assert (True, ["text"]) in indexed("note")
        return
    rows = db.query("SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
                    "WHERE TABLE_SCHEMA=%s AND INDEX_NAME <> 'PRIMARY'", (schema_name,)).fetchall()
    assert ("subject", 1, "name") in {(t, int(nu), c) for t, _, nu, c in rows}
    assert ("note", 0, "text") in {(t, int(nu), c) for t, _, nu, c in rows}
    comments = dict(db.query("SELECT COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                             "WHERE TABLE_SCHEMA=%s AND TABLE_NAME='subject'", (schema_name,)).fetchall())
    assert comments["subject_id"] == "lab id" and comments["weight"] == "grams"
    table_comment = db.query("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                             "AND TABLE_NAME='subject'", (schema_name,)).fetchone()[0]
    assert table_comment == "a lab animal"


def test_session_settings(db):
    if db.is_sqlite:
        assert db.query("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert db.query("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert db.query("PRAGMA foreign_keys").fetchone()[0] == 1
    else:
        zone, mode = db.query("SELECT @@session.time_zone, @@session.sql_mode").fetchone()
        assert zone == "+00:00" and "STRICT_ALL_TABLES" in mode


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_takes_the_write_lock_at_the_first_write(db, filled, backend):
    import sqlite3

    other = sqlite3.connect(parse_url(backend).path, timeout=0, isolation_level=None)
    table = filled.Note.full_table_name
    try:
        with db.transaction:
            len(filled.Subject)  # reads take no write lock: another writer is not blocked
            other.execute(f"INSERT INTO {table} VALUES (10, NULL, 'other')")
            filled.Note.insert1((11, None, "mine"))  # BEGIN IMMEDIATE: now the file is ours until commit
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute(f"INSERT INTO {table} VALUES (12, NULL, 'blocked')")
        other.execute(f"INSERT INTO {table} VALUES (12, NULL, 'after')")
    finally:
        other.close()
    assert sorted(filled.Note.fetch("note_id")) == [1, 2, 10, 11, 12]


def test_child_without_parent_is_refused(filled):
    before = count_rows(filled.Session)
    with pytest.raises(dj.DataError) as e:
        filled.Session.insert1({"subject_id": 99, "session": 1})
    assert "\n" not in str(e.value)
    assert count_rows(filled.Session) == before


def test_delete_quick_of_referenced_parent_is_refused(filled):
    with pytest.raises(dj.DataError) as e:
        (filled.Subject & {"subject_id": 1}).delete_quick()
    assert "delete()" in str(e.value) and "\n" not in str(e.value)
    assert len(filled.Subject) == 3 and len(filled.Session) == 4


def test_nullable_reference(filled):
    assert (filled.Note & {"note_id": 2}).fetch1("subject_id") is None
    assert (filled.Note & "subject_id IS NULL").fetch("note_id") == [2]
    with pytest.raises(dj.DataError):
        filled.Note.insert1((3, 42, "dangling"))
    assert len(filled.Note) == 2


def test_unique_index_is_enforced(filled):
    with pytest.raises(dj.DuplicateError):
        filled.Note.insert1((3, None, "first"))
    assert len(filled.Note) == 2


# ------------------------------------------------------------------ insert
def test_insert_dicts_tuples_and_insert1(lab):
    s = lab.Subject
    s.insert([{"subject_id": 1, "species": "rat", "name": "a"}, (2, "mouse", "b", 3.5)])
    s.insert1({"subject_id": 3, "species": "rat", "name": "c"})
    s.insert1((4, "rat", "d", None))
    assert s.fetch(order_by="subject_id", as_dict=True) == [
        {"subject_id": 1, "species": "rat", "name": "a", "weight": None},
        {"subject_id": 2, "species": "mouse", "name": "b", "weight": 3.5},
        {"subject_id": 3, "species": "rat", "name": "c", "weight": None},
        {"subject_id": 4, "species": "rat", "name": "d", "weight": None},
    ]


def test_insert_generator_and_numpy_record(lab):
    lab.Subject.insert({"subject_id": i, "species": "rat", "name": f"n{i}"} for i in range(5))
    rec = np.array([(10, "mouse", "rec", 1.5)],
                   dtype=[("subject_id", "i8"), ("species", "U8"), ("name", "U8"), ("weight", "f8")])
    lab.Subject.insert(rec)
    assert len(lab.Subject) == 6
    assert (lab.Subject & {"subject_id": 10}).fetch1("weight") == 1.5


def test_skip_duplicates(filled):
    filled.Subject.insert([(1, "rat", "changed", None), (4, "rat", "new", None)], skip_duplicates=True)
    assert (filled.Subject & {"subject_id": 1}).fetch1("name") == "ann"  # not overwritten
    assert (filled.Subject & {"subject_id": 4}).fetch1("name") == "new"


def test_duplicate_without_skip_inserts_nothing(filled):
    with pytest.raises(dj.DuplicateError) as e:
        filled.Subject.insert([(4, "rat", "new", None), (1, "rat", "dup", None)])
    assert "skip_duplicates=True" in str(e.value)
    assert len(filled.Subject) == 3


def test_ignore_extra_fields(lab):
    row = {"subject_id": 1, "species": "rat", "name": "x", "colour": "brown"}
    with pytest.raises(dj.DataError, match="no attribute 'colour'"):
        lab.Subject.insert1(row)
    lab.Subject.insert1(row, ignore_extra_fields=True)
    assert lab.Subject.fetch1("name") == "x"


def test_insert_from_query(filled, schema):
    @schema
    class Copy(dj.Manual):
        definition = "subject_id : int\n---\nname : varchar(32)\n"

    Copy.insert((filled.Subject & "subject_id > 1").proj("name"))
    assert Copy.fetch("name", order_by="subject_id").tolist() == ["bob", "cid"]


def test_defaults_fill_missing_attributes(schema):
    @schema
    class Thing(dj.Manual):
        definition = """
        id : int
        ---
        label = "none" : varchar(16)
        count = 7 : int
        ratio = 0.5 : double
        flag = true : bool
        kind = "b" : enum('a', 'b')
        price = 1.25 : decimal(6,2)
        day = "2020-02-29" : date
        optional = null : varchar(8)
        at = "2001-02-03 04:05:06" : datetime
        wait = "-01:30:00" : time
        year = 1999 : year
        created = CURRENT_TIMESTAMP : timestamp
        updated = CURRENT_TIMESTAMP : datetime(6)
        """

    start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    Thing.insert1({"id": 1})
    row = Thing.fetch1()
    assert {k: v for k, v in row.items() if k not in ("created", "updated")} == {
        "id": 1, "label": "none", "count": 7, "ratio": 0.5, "flag": True, "kind": "b",
        "price": __import__("decimal").Decimal("1.25"), "day": dt.date(2020, 2, 29), "optional": None,
        "at": dt.datetime(2001, 2, 3, 4, 5, 6), "wait": dt.timedelta(hours=-1, minutes=-30), "year": 1999}
    for name in ("created", "updated"):
        assert isinstance(row[name], dt.datetime)
        assert abs((row[name] - start).total_seconds()) < 120  # stored in UTC on both backends
    assert row["updated"].microsecond or row["updated"].microsecond == 0  # datetime(6) keeps sub-seconds
    assert len(Thing & row) == 1  # a fetched row, defaults included, finds itself


# ------------------------------------------------------------------ fetch
def test_fetch_forms(filled):
    s = filled.Subject
    rows = s.fetch(order_by="subject_id")  # DataJoint's: a structured array of the rows
    assert isinstance(rows, np.ndarray) and rows.dtype.names == ("subject_id", "species", "name", "weight")
    assert rows[0].tolist() == (1, "mouse", "ann", 20.5)
    assert s.fetch(order_by="subject_id", as_dict=True)[0] == {"subject_id": 1, "species": "mouse", "name": "ann",
                                                               "weight": 20.5}
    assert s.fetch("KEY", order_by="subject_id") == [{"subject_id": 1}, {"subject_id": 2}, {"subject_id": 3}]
    names, weights = s.fetch("name", "weight", order_by="subject_id")
    assert names.tolist() == ["ann", "bob", "cid"] and weights[0] == 20.5 and np.isnan(weights[1])
    assert weights.mean() != weights.mean() and np.nanmean(weights) == 165.25  # DataJoint code calls .mean()
    assert s.fetch("name", as_dict=True, order_by="name DESC") == [{"name": "cid"}, {"name": "bob"}, {"name": "ann"}]
    assert s.fetch("name", order_by=["species DESC", "name"], limit=2).tolist() == ["cid", "ann"]
    assert s.fetch("subject_id", order_by="KEY", limit=1, offset=1).tolist() == [2]
    assert s.keys(order_by="KEY") == s.fetch("KEY", order_by="KEY")
    assert [r["name"] for r in sorted(s, key=lambda r: r["subject_id"])] == ["ann", "bob", "cid"]


def test_fetch1_forms(filled):
    one = filled.Subject & {"subject_id": 3}
    assert one.fetch1() == {"subject_id": 3, "species": "rat", "name": "cid", "weight": 310.0}
    assert one.fetch1("name") == "cid"
    assert one.fetch1("name", "species") == ("cid", "rat")
    assert one.fetch1("KEY") == {"subject_id": 3}


def test_class_and_instance_give_the_same(filled):
    assert filled.Subject.fetch("KEY", order_by="KEY") == filled.Subject().fetch("KEY", order_by="KEY")
    assert len(filled.Subject) == len(filled.Subject()) == 3


# ------------------------------------------------------------------ restrict, join, proj
def test_restrictions(filled):
    S, Se = filled.Subject, filled.Session
    assert key_set(S & {"species": "mouse"}) == [(1,), (2,)]
    assert key_set(S & {"species": "mouse", "name": "bob"}) == [(2,)]
    assert key_set(S & [{"subject_id": 1}, {"name": "cid"}]) == [(1,), (3,)]
    assert key_set(S & []) == []
    assert key_set(S & "weight > 100") == [(3,)]
    assert key_set(S & dj.SQL("name = %s OR name = %s", ("ann", "bob"))) == [(1,), (2,)]
    assert key_set(S & (Se & {"session": 2})) == [(1,)]
    assert key_set(S & Se) == [(1,), (2,), (3,)]
    assert key_set(S & dj.AndList([{"species": "mouse"}, "weight IS NULL"])) == [(2,)]
    assert key_set(S & {"species": "mouse"} & "subject_id > 1") == [(2,)]
    assert key_set(S & dj.Not({"species": "mouse"})) == [(3,)]
    assert key_set(S & {"subject_id": 1, "unrelated": 5}) == [(1,)]  # DataJoint ignores foreign keys of a dict


def test_anti_restrictions(filled):
    S = filled.Subject
    assert key_set(S - {"species": "mouse"}) == [(3,)]
    assert key_set(S - [{"subject_id": 1}, {"subject_id": 3}]) == [(2,)]
    assert key_set(S - filled.Analysis) == [(3,)]
    assert key_set(filled.Session - filled.Analysis) == [(3, 1)]
    assert key_set(S - "weight IS NULL") == [(1,), (3,)]
    assert key_set(S - []) == [(1,), (2,), (3,)]


def test_join(filled):
    j = filled.Subject * filled.Session
    assert j.primary_key == ["subject_id", "session"]
    names, rigs = j.fetch("name", "rig", order_by=["subject_id", "session"])
    assert names.tolist() == ["ann", "ann", "bob", "cid"] and rigs.tolist() == ["A", "B", "A", "C"]
    both = (filled.Subject & {"species": "mouse"}) * (filled.Session & {"rig": "A"})
    assert key_set(both) == [(1, 1), (2, 1)]
    three = filled.Subject * filled.Session * filled.Analysis
    assert key_set(three & "score < 0.4") == [(1, 2)]
    assert len(filled.Subject * filled.Species) == 3


def test_proj(filled):
    S = filled.Subject
    assert S.proj().heading.names == ["subject_id"]
    assert S.proj().fetch(order_by="KEY", as_dict=True) == [{"subject_id": 1}, {"subject_id": 2}, {"subject_id": 3}]
    assert S.proj("name").heading.names == ["subject_id", "name"]
    assert S.proj(...).heading.names == S.heading.names
    renamed = S.proj(animal="name")
    assert renamed.heading.names == ["subject_id", "animal"]
    assert (renamed & {"animal": "bob"}).fetch1("subject_id") == 2
    key_renamed = S.proj(sid="subject_id")
    assert key_renamed.primary_key == ["sid"]
    assert key_set(key_renamed & "sid > 1") == [(2,), (3,)]
    doubled = S.proj(double_weight="weight * 2")
    assert (doubled & {"subject_id": 1}).fetch1("double_weight") == 41.0
    assert (doubled & {"double_weight": 41.0}).fetch1("subject_id") == 1
    assert doubled.fetch("subject_id", order_by="double_weight DESC", limit=1).tolist() == [3]
    # a computed attribute's column names must not bind to another operand's columns
    next_id = S.proj(next_id="subject_id + 1")
    assert (next_id * filled.Session).fetch("next_id", order_by=["subject_id", "session"]).tolist() == [2, 2, 3, 4]
    assert key_set(next_id & filled.Session.proj(next_id="session")) == [(1,)]
    assert key_set(filled.Session & S.proj(session="subject_id + 1")) == [(1, 2)]
    # a renamed projection restricts another table by the new name only
    assert key_set(filled.Session & (S & {"subject_id": 2}).proj(session="subject_id")) == [(1, 2)]


def test_len_and_in(filled):
    assert len(filled.Subject) == 3
    assert len(filled.Subject & {"species": "rat"}) == 1
    assert len(filled.Session * filled.Subject) == 4
    assert {"subject_id": 2} in filled.Subject
    assert {"subject_id": 9} not in filled.Subject
    assert "weight > 300" in filled.Subject
    assert {"session": 2} in (filled.Session & {"subject_id": 1})


def test_queries_are_lazy_and_run_as_one_statement(db, filled):
    with db.counting() as built:
        q = ((filled.Subject & {"species": "mouse"}) * (filled.Session - filled.Analysis.Unit)).proj(
            "name", animal="name") & "session > 0"
    assert built["statements"] == 0
    with db.counting() as fetched:
        q.fetch()
    assert fetched["statements"] == 1
    with db.counting() as counted:
        len(q)
        {"subject_id": 1} in q  # noqa: B015 - the test counts the statement
        (filled.Subject & {"subject_id": 1}).fetch1()
    assert counted["statements"] == 3


def test_unknown_attribute_in_order_by_or_fetch(filled):
    with pytest.raises(dj.QueryError, match="order_by names unknown attribute 'colour'"):
        filled.Subject.fetch(order_by="colour")
    with pytest.raises(dj.QueryError, match="fetch names unknown attribute 'colour'"):
        filled.Subject.fetch("colour")
    with pytest.raises(dj.QueryError, match="proj names unknown attribute 'colour'"):
        filled.Subject.proj("colour")


# ------------------------------------------------------------------ delete and drop
def test_delete_cascades_to_dependents_and_parts_in_one_transaction(db, filled):
    p = filled
    with db.counting() as c:
        deleted = (p.Subject & {"subject_id": 1}).delete(safemode=False)
    # subject 1 (with 2 sessions, 2 analyses, 3 units, 1 note): DataJoint's count is of the table's own rows
    assert deleted == 1
    assert c["commits"] == 1
    assert key_set(p.Subject) == [(2,), (3,)]
    assert key_set(p.Session) == [(2, 1), (3, 1)]
    assert key_set(p.Analysis) == [(2, 1)]
    assert key_set(p.Analysis.Unit) == [(2, 1, 1)]
    assert p.Note.fetch("note_id") == [2]
    assert len(p.Species) == 2  # parents are untouched


def test_delete_of_a_part_master_removes_its_parts(filled):
    (filled.Analysis & {"subject_id": 1, "session": 1}).delete(safemode=False)
    assert key_set(filled.Analysis.Unit) == [(1, 2, 1), (2, 1, 1)]
    assert len(filled.Session) == 4


def test_delete_with_safemode_from_environment(filled):
    assert dj.config["safemode"] is False  # DJHPC_SAFEMODE=0, set by conftest
    assert filled.Session.delete() == 4  # and 3 analyses, 4 units
    assert len(filled.Subject) == 3


def test_delete_asks_in_safemode(filled, monkeypatch, capsys):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty("no\n"))
    assert (filled.Subject & {"subject_id": 2}).delete(safemode=True) == 0
    assert "Deletes cancelled" in capsys.readouterr().out
    assert len(filled.Subject) == 3 and len(filled.Analysis) == 3
    monkeypatch.setattr(sys, "stdin", Tty("yes\n"))
    assert (filled.Subject & {"subject_id": 2}).delete(safemode=True) == 1
    assert key_set(filled.Subject) == [(1,), (3,)]


def test_delete_in_safemode_without_terminal_refuses(filled):
    with pytest.raises(dj.UsageError, match="pass safemode=False"):
        filled.Subject.delete(safemode=True)
    assert len(filled.Subject) == 3


def test_failed_cascade_leaves_everything(filled, monkeypatch):
    import djhpc.dependencies as dependencies

    real = dependencies.primary_key_columns
    calls = []

    def fail_late(connection, name):
        calls.append(name)
        if len(calls) == 4:  # after the units, analyses and sessions are deleted
            raise RuntimeError("injected failure")
        return real(connection, name)

    monkeypatch.setattr(dependencies, "primary_key_columns", fail_late)
    with pytest.raises(RuntimeError, match="injected"):
        (filled.Subject & {"subject_id": 1}).delete(safemode=False)
    monkeypatch.undo()
    assert len(filled.Analysis.Unit) == 4 and len(filled.Analysis) == 3 and len(filled.Session) == 4
    assert len(filled.Subject) == 3 and len(filled.Note) == 2


def test_delete_quick_deletes_only_the_restriction(filled):
    assert (filled.Analysis.Unit & {"unit": 2}).delete_quick(get_count=True) == 1
    assert (filled.Analysis.Unit & "rate > 4.5").delete_quick(get_count=True) == 2
    assert key_set(filled.Analysis.Unit) == [(1, 1, 1)]


def test_drop_removes_dependents(db, filled, schema_name):
    filled.Session.drop(safemode=False)
    assert db_table_names(db, schema_name) == {"#species", "subject", "note", "~log"}
    assert len(filled.Subject) == 3
    with pytest.raises(dj.UsageError, match="not declared"):
        len(filled.Session())


def test_declare_again_after_drop(db, filled, schema, schema_name):
    filled.Analysis.drop(safemode=False)
    assert "__analysis" not in db_table_names(db, schema_name)
    schema(filled.Analysis, context={"Session": filled.Session})
    assert {"__analysis", "__analysis__unit"} <= db_table_names(db, schema_name)
    filled.Analysis.insert1((1, 1, 0.5), allow_direct_insert=True)
    assert len(filled.Analysis) == 1


def test_schema_drop(db, filled, schema_name):
    dj.Schema(schema_name, connection=db).drop(force=True)
    assert db_table_names(db, schema_name) == set() if db.is_sqlite else not db.query(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (schema_name,)).fetchall()


# ------------------------------------------------------------------ describe and heading
def test_describe_round_trips(db, filled, schema_name):
    text = filled.Subject.describe()
    assert text.splitlines() == [
        "# a lab animal", "subject_id : int  # lab id", "---", "-> Species", "name : varchar(32)",
        "weight = null : double  # grams", "index(name)"]
    session_text = filled.Analysis.Unit.describe()
    assert "-> master" in session_text
    other = dj.Schema(schema_name + "_b", connection=db)
    try:
        Species = filled.Species  # noqa: F841 - resolved by name from this frame

        @other
        class Subject(dj.Manual):
            definition = text

        assert Subject.heading.names == filled.Subject.heading.names
        assert [a.type for a in Subject.heading.attributes.values()] == \
            [a.type for a in filled.Subject.heading.attributes.values()]
        assert Subject.describe() == text
    finally:
        other.drop(force=True)


def test_describe_of_references_round_trips(db, schema, schema_name):
    @schema
    class Animal(dj.Manual):
        definition = "animal_id : int\n"

    @schema
    class Pair(dj.Manual):
        definition = """
        -> Animal.proj(first='animal_id')
        -> Animal.proj(second='animal_id')
        ---
        -> [unique] Animal
        -> [nullable] Animal.proj(judge='animal_id')
        """

    text = Pair.describe()
    assert text.splitlines() == ["-> Animal.proj(first='animal_id')", "-> Animal.proj(second='animal_id')", "---",
                                 "-> [unique] Animal", "-> [nullable] Animal.proj(judge='animal_id')"]
    other = dj.Schema(schema_name + "_c", connection=db)
    try:
        again = type("Pair", (dj.Manual,), {"definition": text})
        other(again, context={"Animal": Animal})
        assert again.describe() == text
        assert again.heading.names == ["first", "second", "animal_id", "judge"]
    finally:
        other.drop(force=True)
    Animal.insert([(1,), (2,), (3,)])
    Pair.insert1((1, 2, 3, None))
    with pytest.raises(dj.DuplicateError):
        Pair.insert1((2, 1, 3, 1))  # animal 3 is in a pair already
    assert (Animal & {"animal_id": 2}).delete(safemode=False) == 1  # and its pair
    assert len(Pair) == 0


def test_heading(filled):
    h = filled.Session.heading
    assert h.names == ["subject_id", "session", "rig"]
    assert h.primary_key == ["subject_id", "session"] == filled.Session.primary_key
    assert h.secondary_attributes == ["rig"]
    assert h["rig"].type == "char(1)" and h["rig"].default == "A"
    assert "session" in h and "nope" not in h
    shown = repr(h).splitlines()
    assert shown[2] == "---" and shown[0].startswith("subject_id") and "char(1)" in shown[3]
    assert repr(filled.Subject & {"subject_id": 1}).splitlines()[-1] == " (1 tuples)"


# ------------------------------------------------------------------ blobs
BLOB_VALUES = [
    0, -7, 2**80, 3.25, float("inf"), "text ✓", b"\x00\x01bytes", True, False, [None],
    [1, "two", [3.0, None]], (1, (2, 3)), {"a": 1, "nested": {"b": [1, 2]}, "t": (1,)},
    dt.datetime(2024, 2, 29, 12, 30, 1, 5), dt.date(1999, 12, 31), dt.timedelta(days=-1, seconds=5),
    uuid.UUID(int=12345), {1, 2, 3},
]


def test_blobs_round_trip(schema):
    @schema
    class Store(dj.Manual):
        definition = "id : int\n---\nvalue : longblob\nsmall = null : blob\n"

    Store.insert([(i, v, v) for i, v in enumerate(BLOB_VALUES)])
    Store.insert1((99, [], None))  # None is stored as NULL, so only in a nullable blob
    values, smalls = Store.fetch("value", "small", order_by="id")
    assert smalls[-1] is None
    for want, have, small in zip([*BLOB_VALUES, []], values, [*smalls[:-1], []], strict=True):
        assert have == want and type(have) is type(want)
        assert small == want and type(small) is type(want)

    arrays = [np.arange(12, dtype=np.int16).reshape(3, 4), np.linspace(0, 1, 7), np.array([], dtype=np.float32),
              np.array([[1 + 2j]]), np.array(["a", "bc"]), np.zeros((2, 0, 3)), np.float32(2.5),
              np.asfortranarray(np.arange(6.0).reshape(2, 3))]
    Store.insert([(100 + i, a, {"arr": a}) for i, a in enumerate(arrays)])
    for i, a in enumerate(arrays):
        value, small = (Store & {"id": 100 + i}).fetch1("value", "small")
        # as DataJoint reads its blob format: a str array comes back as an object array of str
        assert value.dtype == (object if a.dtype.kind == "U" else a.dtype) and value.shape == a.shape
        np.testing.assert_array_equal(value, a)
        np.testing.assert_array_equal(small["arr"], a)


# ------------------------------------------------------------------ transactions
def test_transaction_groups_inserts(filled, schema):
    with schema.connection.transaction:
        filled.Subject.insert1((10, "rat", "t1", None))
        filled.Session.insert1((10, 1, "A"))
    assert {"subject_id": 10, "session": 1} in filled.Session


def test_exception_rolls_back_the_transaction(filled, schema):
    with pytest.raises(ZeroDivisionError):
        with schema.connection.transaction:
            filled.Subject.insert1((10, "rat", "t1", None))
            filled.Session.insert([(10, 1, "A"), (10, 2, "B")])
            (filled.Note & {"note_id": 2}).delete_quick()
            with schema.connection.transaction:  # nested: still one transaction
                filled.Session.insert1((10, 3, "C"))
            raise ZeroDivisionError
    assert not schema.connection.in_transaction
    assert len(filled.Subject) == 3 and len(filled.Session) == 4 and len(filled.Note) == 2


def test_failed_statement_in_transaction_rolls_back_earlier_ones(filled, schema):
    with pytest.raises(dj.DuplicateError):
        with schema.connection.transaction:
            filled.Subject.insert1((10, "rat", "t1", None))
            filled.Subject.insert1((1, "rat", "dup", None))
    assert len(filled.Subject) == 3


# ------------------------------------------------------------------ the connection
def test_connection_survives_fork(db, filled):
    parent_id = db.connection_id
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: query and write through the inherited Connection object, report, exit
        try:
            os.close(read_end)
            n = len(filled.Subject)
            filled.Subject.insert1((50, "rat", "child", None))
            report = f"ok {n} {db.connection_id}"
        except BaseException as e:  # noqa: BLE001 - everything must reach the parent
            report = f"error {type(e).__name__}: {e}"
        os.write(write_end, report.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        report = f.read()
    os.waitpid(pid, 0)
    status, n, child_id = report.split(" ", 2)
    assert status == "ok", report
    assert n == "3"
    if not db.is_sqlite:
        assert int(child_id) != parent_id  # the child opened its own session
    assert db.connection_id == parent_id
    assert len(filled.Subject) == 4  # the parent's connection still works and sees the child's row
    assert (filled.Subject & {"subject_id": 50}).fetch1("name") == "child"


def test_connection_survives_multiprocessing_fork(db, filled):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def work(i):  # runs in the forked child: nothing is pickled but the result
        filled.Subject.insert1((100 + i, "rat", f"w{i}", None))
        results.put(len(filled.Subject & "subject_id < 100"))

    workers = [ctx.Process(target=work, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    counts = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert counts == [3] * 3
    assert len(filled.Subject) == 6


def kill(connection_id: int):
    """End a session from a second connection, as a server restart or an idle timeout would."""
    u = parse_url(os.environ.get("DJHPC_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
    other = pymysql.connect(host=u.host, port=u.port, user=u.user, password=u.password)
    try:
        with other.cursor() as cur:
            cur.execute(f"KILL {int(connection_id)}")
    finally:
        other.close()
    time.sleep(0.1)


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_query_after_server_dropped_the_connection(db, filled):
    old = db.connection_id
    kill(old)
    assert len(filled.Subject) == 3  # reconnected transparently
    assert db.connection_id != old
    kill(db.connection_id)
    filled.Subject.insert1((20, "rat", "after", None))  # an insert is its own transaction: retried whole
    assert len(filled.Subject) == 4


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_query_after_idle_timeout(db, filled):
    db.query("SET SESSION wait_timeout = 1")
    time.sleep(2.2)  # the server closes the idle session
    assert len(filled.Subject) == 3
    with db.counting():
        filled.Subject.insert1((20, "rat", "later", None))
    assert len(filled.Subject) == 4


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_query_after_driver_connection_closed(db, filled):
    db.raw.close()  # what the driver does itself after a read timeout
    assert len(filled.Subject) == 3
    db.raw.close()
    with db.transaction:  # a transaction that starts on a dead connection starts on a new one
        filled.Subject.insert1((20, "rat", "later", None))
    assert len(filled.Subject) == 4


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_drop_inside_transaction_is_lost_connection(db, filled):
    with pytest.raises(dj.LostConnectionError) as e:
        with db.transaction:
            filled.Subject.insert1((20, "rat", "lost", None))
            kill(db.connection_id)
            filled.Subject.insert1((21, "rat", "lost", None))
    assert "\n" not in str(e.value)
    assert not db.in_transaction
    assert len(filled.Subject) == 3  # the first insert went with the session; the connection works again


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_drop_before_transaction_starts(db, filled):
    kill(db.connection_id)
    with db.transaction:
        filled.Subject.insert1((20, "rat", "fresh", None))
    assert len(filled.Subject) == 4


WRITER = textwrap.dedent("""
    import os, sys, time
    import djhpc as dj

    start = float(os.environ["START_AT"])
    while time.time() < start:  # all writers open the (new) file and declare the table at once
        time.sleep(0.005)
    schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"])

    @schema
    class Event(dj.Manual):
        definition = '''
        writer : int
        n : int
        ---
        payload : longblob
        '''

    me = int(os.environ["WRITER"])
    for n in range(int(os.environ["ROWS"])):
        if n % 3:
            Event.insert1((me, n, list(range(n))))
        else:
            with schema.connection.transaction:
                len(Event)
                Event.insert1((me, n, b""))
                Event.insert([(me, 1000 + n, b"x")])
    print(len(Event & {"writer": me}))
""")


def test_concurrent_writers_never_see_locked(backend, schema_name, tmp_path, db):
    url = backend if backend.startswith("mysql") else f"sqlite:///{tmp_path}/shared.db"  # a fresh file
    writers, rows = 8, 24
    start_at = time.time() + 2.0
    procs = []
    for w in range(writers):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJHPC_")}
        env.update(PYTHONPATH=str(ROOT), DJHPC_DATABASE_URL=url, DJHPC_TEST_SCHEMA=schema_name,
                   WRITER=str(w), ROWS=str(rows), START_AT=str(start_at))
        procs.append(subprocess.Popen([sys.executable, "-c", WRITER], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower() and "busy" not in err.lower()
        assert int(out) == rows + rows // 3
    check = dj.Connection(url)
    try:
        table = check.dialect.table(schema_name, "event")
        assert check.query(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == writers * (rows + rows // 3)
    finally:
        check.close()


def test_update1_and_csv_insert(filled, tmp_path):
    """DataJoint's update1 (a None is the default: null here) and insert of a CSV file's rows."""
    s = filled.Subject
    s.update1({"subject_id": 1, "name": "anna", "weight": None})
    name, weight = (s & {"subject_id": 1}).fetch1("name", "weight")
    assert name == "anna" and weight != weight  # null: NaN, as DataJoint fetches a null double
    with pytest.raises(dj.DataError, match="has no row"):
        s.update1({"subject_id": 9, "name": "x"})
    with pytest.raises(dj.DataError, match="whole primary key"):
        s.update1({"name": "x"})
    with pytest.raises(KeyError):  # DataJoint raises a KeyError for an unknown attribute in insert
        s.insert1({"subject_id": 8, "species": "rat", "name": "x", "colour": "red"})
    path = tmp_path / "subjects.csv"
    path.write_text("subject_id,species,name,weight\n5,rat,eve,12.5\n6,mouse,fay,\n")
    s.insert(path)
    assert (s & "subject_id > 4").fetch("weight", order_by="subject_id").tolist()[0] == 12.5
    weight = (s & {"subject_id": 6}).fetch1("weight")
    assert weight != weight  # the empty field of a nullable attribute is null
