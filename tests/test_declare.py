"""djhpc.declare: definition text -> table spec -> CREATE TABLE, without a database."""

from __future__ import annotations

import pytest

from djhpc.db.dialects import DIALECTS
from djhpc.declare import SQL_NOW, Attribute, parse_definition, parse_type
from djhpc.errors import DefinitionError
from djhpc.query import Heading


class FakeTable:
    """Just enough of a declared table for a reference: a heading and a full name."""

    def __init__(self, name, attributes):
        self.heading = Heading(attributes)
        self.full_table_name = f"`s`.`{name}`"


SUBJECT = FakeTable("subject", [
    Attribute("subject_id", "int", "int", in_key=True, sql_int="int", comment="lab id"),
    Attribute("species", "varchar(32)", "string", length=32),
])
SESSION = FakeTable("session", [
    Attribute("subject_id", "int", "int", in_key=True, sql_int="int"),
    Attribute("session", "smallint", "int", in_key=True, sql_int="smallint"),
])
TABLES = {"Subject": SUBJECT, "Session": SESSION, "lab.Subject": SUBJECT}


def resolve(name):
    if name not in TABLES:
        raise DefinitionError(f"no table named {name}")
    return TABLES[name]


def parse(text):
    return parse_definition(text, resolve)


def attrs(spec):
    return {a.name: a for a in spec.attributes}


# ------------------------------------------------------------------ structure
def test_comment_key_and_secondary():
    spec = parse("""
    # a recording session
    session_id : int            # unique id
    ---
    notes = "" : varchar(255)   # free text
    """)
    assert spec.comment == "a recording session"
    assert spec.primary_key == ["session_id"]
    a = attrs(spec)
    assert a["session_id"].in_key and a["session_id"].comment == "unique id"
    assert not a["notes"].in_key and a["notes"].comment == "free text"
    assert a["notes"].has_default and a["notes"].default == ""


def test_definition_without_divider_is_all_key():
    spec = parse("a : int\nb : int\n")
    assert spec.primary_key == ["a", "b"]


def test_definition_with_equals_divider():
    spec = parse("a : int\n===\nb : int\n")
    assert spec.primary_key == ["a"]


def test_reference_in_key_copies_parent_key():
    spec = parse("""
    -> Subject
    session : smallint
    ---
    """)
    assert spec.primary_key == ["subject_id", "session"]
    (fk,) = spec.foreign_keys
    assert fk.parent is SUBJECT and fk.attributes == ["subject_id"] and fk.in_key and not fk.nullable
    assert attrs(spec)["subject_id"].comment == "lab id"
    assert "species" not in attrs(spec)  # only the parent's key is copied


def test_nullable_reference_below_divider():
    spec = parse("""
    id : int
    ---
    -> [nullable] Subject
    """)
    a = attrs(spec)["subject_id"]
    assert not a.in_key and a.nullable and a.has_default and a.default is None
    assert spec.foreign_keys[0].nullable


def test_non_nullable_secondary_reference():
    spec = parse("id : int\n---\n-> Subject\n")
    a = attrs(spec)["subject_id"]
    assert not a.in_key and not a.nullable


def test_dotted_reference_and_comment_after_it():
    spec = parse("-> lab.Subject   # who\nx : int\n")
    assert spec.foreign_keys[0].parent is SUBJECT
    assert spec.foreign_keys[0].line == "-> lab.Subject"


def test_shared_ancestor_attribute_appears_once():
    spec = parse("-> Subject\n-> Session\n")
    assert spec.primary_key == ["subject_id", "session"]
    assert [fk.attributes for fk in spec.foreign_keys] == [["subject_id"], ["subject_id", "session"]]


def test_renamed_reference():
    spec = parse("-> Subject.proj(donor_id='subject_id')\n-> Subject\n")
    assert spec.primary_key == ["donor_id", "subject_id"]
    assert spec.foreign_keys[0].attributes == ["donor_id"]
    assert spec.foreign_keys[0].parent_attributes == ["subject_id"]


def test_unique_reference_adds_unique_index():
    spec = parse("id : int\n---\n-> [unique] Subject\n")
    assert spec.indexes == [(True, ["subject_id"])]


def test_indexes():
    spec = parse("""
    id : int
    ---
    a : int
    b : varchar(8)
    index(a)
    unique index(a, b)
    """)
    assert spec.indexes == [(False, ["a"]), (True, ["a", "b"])]


# ------------------------------------------------------------------ types
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tinyint", dict(category="int", sql_int="tinyint", unsigned=False)),
        ("tinyint unsigned", dict(category="int", sql_int="tinyint", unsigned=True, type="tinyint unsigned")),
        ("smallint", dict(category="int", sql_int="smallint")),
        ("mediumint unsigned", dict(category="int", sql_int="mediumint", unsigned=True)),
        ("int", dict(category="int", sql_int="int")),
        ("integer", dict(category="int", sql_int="int", type="int")),
        ("int(11) unsigned", dict(category="int", sql_int="int", unsigned=True, type="int unsigned")),
        ("bigint", dict(category="int", sql_int="bigint")),
        ("BIGINT   UNSIGNED", dict(category="int", sql_int="bigint", unsigned=True)),
        ("float", dict(category="float", double=False, type="float")),
        ("double", dict(category="float", double=True, type="double")),
        ("decimal(8,3)", dict(category="decimal", precision=8, scale=3, type="decimal(8,3)")),
        ("decimal(5)", dict(category="decimal", precision=5, scale=0)),
        ("decimal(6, 2) unsigned", dict(category="decimal", precision=6, scale=2, unsigned=True)),
        ("varchar(64)", dict(category="string", length=64, fixed=False, type="varchar(64)")),
        ("char(3)", dict(category="string", length=3, fixed=True, type="char(3)")),
        ("bool", dict(category="bool")),
        ("boolean", dict(category="bool", type="bool")),
        ("date", dict(category="date")),
        ("datetime", dict(category="datetime", precision=0, type="datetime")),
        ("datetime(6)", dict(category="datetime", precision=6, type="datetime(6)")),
        ("timestamp", dict(category="timestamp", precision=0)),
        ("timestamp(3)", dict(category="timestamp", precision=3)),
        ("time", dict(category="time", precision=0)),
        ("year", dict(category="year")),
        ("uuid", dict(category="uuid")),
        ("json", dict(category="json")),
        ("blob", dict(category="blob", type="blob")),
        ("mediumblob", dict(category="blob", type="mediumblob")),
        ("longblob", dict(category="blob", type="longblob")),
        ("attach", dict(category="blob", type="longblob")),
    ],
)
def test_types(text, expected):
    fields = parse_type(text)
    for key, value in expected.items():
        assert fields[key] == value, key


def test_int_ranges():
    def rng(text):
        return Attribute(name="x", **parse_type(text)).int_range

    assert rng("tinyint") == (-128, 127)
    assert rng("tinyint unsigned") == (0, 255)
    assert rng("smallint") == (-(2**15), 2**15 - 1)
    assert rng("mediumint unsigned") == (0, 2**24 - 1)
    assert rng("int") == (-(2**31), 2**31 - 1)
    assert rng("bigint") == (-(2**63), 2**63 - 1)
    assert rng("bigint unsigned") == (0, 2**64 - 1)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("enum('a', 'b')", ("a", "b")),
        ('enum("x","y z")', ("x", "y z")),
        ("enum('a,b', 'c')", ("a,b", "c")),
        ("enum('it''s', 'ok')", ("it's", "ok")),
    ],
)
def test_enum_values(text, values):
    fields = parse_type(text)
    assert fields["category"] == "enum"
    assert fields["enum_values"] == values


def test_every_type_in_one_definition():
    spec = parse("""
    # all the types
    id : bigint unsigned
    ---
    t8 : tinyint
    t8u : tinyint unsigned
    t16 : smallint unsigned
    t24 : mediumint
    t32 : int unsigned
    f : float
    d : double
    dec : decimal(10,4)
    vc : varchar(100)
    c : char(8)
    ok : bool
    day : date
    at : datetime
    at6 : datetime(6)
    ts = CURRENT_TIMESTAMP : timestamp
    dur : time
    yr : year
    kind : enum('one', 'two')
    uid : uuid
    meta : json
    small : blob
    mid : mediumblob
    big : longblob
    """)
    assert spec.comment == "all the types"
    assert len(spec.attributes) == 24
    assert attrs(spec)["ts"].default is SQL_NOW


# ------------------------------------------------------------------ defaults
@pytest.mark.parametrize(
    ("line", "default", "nullable"),
    [
        ("x = null : int", None, True),
        ("x = NULL : varchar(8)", None, True),
        ("x = 5 : int", 5, False),
        ("x = -5 : int", -5, False),
        ("x = 2.5 : double", 2.5, False),
        ("x = 1e3 : double", 1000.0, False),
        ('x = "hi there" : varchar(16)', "hi there", False),
        ("x = 'single' : varchar(16)", "single", False),
        ("x = true : bool", True, False),
        ("x = False : bool", False, False),
        ("x = CURRENT_TIMESTAMP : timestamp", SQL_NOW, False),
        ("x = current_timestamp : datetime(6)", SQL_NOW, False),
        ('x = "12:30:00" : varchar(8)', "12:30:00", False),
        ("x = 'http://example.org' : varchar(64)  # a url: here", "http://example.org", False),
        ("x = 'a' : enum('a', 'b')", "a", False),
    ],
)
def test_defaults(line, default, nullable):
    a = attrs(parse(f"id : int\n---\n{line}\n"))["x"]
    assert a.has_default
    assert a.default == default and type(a.default) is type(default)
    assert a.nullable is nullable


def test_comment_may_contain_colons_and_hashes():
    a = attrs(parse("id : int  # id: the # of the thing\n"))["id"]
    assert a.comment == "id: the # of the thing"


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id : int\n---\nthis is not an attribute\n", "cannot parse line 'this is not an attribute'"),
        ("id : int\n---\nx : strange\n", "unknown type 'strange' in line 'x : strange'"),
        ("id : int\n---\nx : varchar\n", "unknown type 'varchar'"),
        ("id : int\nid : int\n", "attribute 'id' is declared twice"),
        ("-> Subject\nsubject_id : int\n", "attribute 'subject_id' is declared twice"),
        ("---\nx : int\n", "the primary key is empty"),
        ("# only a comment\n", "the primary key is empty"),
        ("", "the primary key is empty"),
        ("id : int\n---\nx : int\n---\ny : int\n", "a second '---' divider"),
        ("-> [nullable] Subject\n", "cannot be [nullable]"),
        ("id : int\n---\n-> [often] Subject\n", "unknown option 'often'"),
        ("id : int\n---\n-> Nowhere\n", "no table named Nowhere"),
        ("id : int\n---\n-> \n", "cannot parse reference"),
        ("data : longblob\n", "blob attribute 'data' cannot be in the primary key"),
        ("id = null : int\n", "primary key attribute 'id' cannot default to null"),
        ("id : int\n---\nx = nope : int\n", "default 'nope' in line 'x = nope : int' is not a literal"),
        ("id : int\n---\nx : decimal(70,2)\n", "decimal(70,2)"),
        ("id : int\n---\nx : decimal(5,6)\n", "out of range"),
        ("id : int\n---\nx : varchar(0)\n", "length must be between 1 and"),
        ("id : int\n---\nx : char(256)\n", "length must be between 1 and 255"),
        ("id : int\n---\nx : datetime(7)\n", "precision must be 0 to 6"),
        ("id : int\n---\nx : enum()\n", "lists no values"),
        ("id : int\n---\nindex(nothing)\n", "index names unknown attribute 'nothing'"),
        ("Id : int\n", "cannot parse line 'Id : int'"),
    ],
)
def test_bad_definitions(text, fragment):
    with pytest.raises(DefinitionError) as e:
        parse(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_definition_must_be_text():
    with pytest.raises(DefinitionError, match="must be a string"):
        parse(None)


# ------------------------------------------------------------------ DDL
def ddl(dialect, text, table="child"):
    from djhpc.declare import create_table_sql

    return create_table_sql(DIALECTS[dialect], parse(text), "s", table)


def test_mysql_ddl():
    (sql,) = ddl("mysql", """
    # kids
    -> Subject
    n : tinyint unsigned   # count
    ---
    label = "it's" : varchar(16)
    at = CURRENT_TIMESTAMP : datetime(6)
    f : float
    kind : enum('a', 'b')
    unique index(label)
    """)
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `s`.`child`")
    assert "`n` tinyint unsigned NOT NULL COMMENT 'count'" in sql
    assert "`label` varchar(16) NOT NULL DEFAULT 'it''s'" in sql
    assert "DEFAULT CURRENT_TIMESTAMP(6)" in sql
    assert "enum('a','b')" in sql
    assert "PRIMARY KEY (`subject_id`, `n`)" in sql
    assert "FOREIGN KEY (`subject_id`) REFERENCES `s`.`subject` (`subject_id`)" in sql
    assert "UNIQUE INDEX (`label`)" in sql
    assert sql.endswith("COMMENT='kids'")


def test_sqlite_ddl_default_now_keeps_fractional_seconds():
    (sql,) = ddl("sqlite", "id : int\n---\na = CURRENT_TIMESTAMP : datetime(3)\nb = CURRENT_TIMESTAMP : timestamp\n")
    assert "\"a\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))" in sql
    assert '"b" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP' in sql


def test_sqlite_ddl_has_separate_index_statements():
    sql, index = ddl("sqlite", "id : int\n---\nbig : bigint unsigned\nx : int\nindex(x)\n")
    assert sql.startswith('CREATE TABLE IF NOT EXISTS "s.child"')
    assert '"big" BLOB NOT NULL' in sql
    assert index.startswith('CREATE INDEX IF NOT EXISTS "s.child__idx0" ON "s.child" ("x")')
