"""Bad input of every kind: a djhpc exception of the right class, a one-line message naming the problem and
the fix, and a database left exactly as it was."""

from __future__ import annotations

import datetime as dt
import decimal
import traceback
import uuid

import pytest

import djhpc as dj


# ------------------------------------------------------------------ helpers
def table_names(connection, schema_name) -> set[str]:
    if connection.is_sqlite:
        rows = connection.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')").fetchall()
        return {r[0] for r in rows if r[0].startswith(schema_name + ".")}
    rows = connection.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                            (schema_name,)).fetchall()
    return {r[0] for r in rows}


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


def snapshot(*tables):
    return [sorted(map(repr, t.fetch(order_by="KEY"))) for t in tables]


@pytest.fixture
def thing(schema):
    @schema
    class Owner(dj.Manual):
        definition = """
        owner_id : int
        ---
        """

    @schema
    class Thing(dj.Manual):
        definition = """
        id : int
        ---
        -> [nullable] Owner
        name : varchar(8)
        small = 0 : tinyint
        tiny_u = 0 : tinyint unsigned
        big_u = 0 : bigint unsigned
        code = "" : char(4)
        kind = "a" : enum('a', 'b')
        day = null : date
        at = null : datetime
        ts = null : timestamp
        dur = null : time
        yr = null : year
        uid = null : uuid
        ratio = null : float
        precise = null : double
        price = null : decimal(5,2)
        flag = 0 : bool
        meta = null : json
        data = null : longblob
        """

    Owner.insert1((1,))
    Thing.insert1({"id": 1, "name": "first", "owner_id": 1})
    return Thing, Owner


# ------------------------------------------------------------------ definitions
BAD_DEFINITIONS = [
    ("id : int\n---\nthis line is nonsense\n", "cannot parse line 'this line is nonsense'"),
    ("id : int\n---\nx : text16\n", "unknown type 'text16' in line 'x : text16'"),
    ("id : int\n---\n-> Missing\n", "no table named Missing"),
    ("id : int\n---\nx : int\nx : double\n", "attribute 'x' is declared twice"),
    ("---\nx : int\n", "the primary key is empty"),
    ("id : int\n---\nx : varchar(8)\nindex(y)\n", "index names unknown attribute 'y'"),
    ("id : int\n---\nx = what : int\n", "default 'what' in line 'x = what : int' is not a literal"),
    ("id : int\n---\nkind = \"c\" : enum('a', 'b')\n", "the default of 'kind' does not fit"),
    ("id : int\n---\nn = 300 : tinyint\n", "out of range -128..127"),
    ("id : int\n---\nday = \"2021-02-30\" : date\n", "expected a date"),
    ("id : int\n---\nlabel = \"too long\" : varchar(3)\n", "longer than 3 characters"),
]


@pytest.mark.parametrize(("definition", "fragment"), BAD_DEFINITIONS)
def test_bad_definition_creates_nothing(db, schema, schema_name, definition, fragment):
    before = table_names(db, schema_name)

    class Broken(dj.Manual):
        pass

    Broken.definition = definition
    with pytest.raises(dj.DefinitionError) as e:
        schema(Broken)
    message = one_line(e.value)
    assert message.startswith("Broken: ") and fragment in message
    assert table_names(db, schema_name) == before
    with pytest.raises(dj.UsageError, match="not declared"):
        len(Broken())  # an instance may be made, as in DataJoint; using it says the class is not declared


def test_reference_to_undeclared_table(db, schema, schema_name):
    class Parent(dj.Manual):  # never decorated
        definition = "pid : int\n"

    before = table_names(db, schema_name)
    with pytest.raises(dj.DefinitionError) as e:

        @schema
        class Child(dj.Manual):
            definition = "-> Parent\n"

    assert "Parent is not declared in a schema yet" in one_line(e.value)
    assert table_names(db, schema_name) == before


def test_bad_part_definition_creates_no_master(db, schema, schema_name):
    before = table_names(db, schema_name)
    with pytest.raises(dj.DefinitionError) as e:

        @schema
        class Master(dj.Manual):
            definition = "mid : int\n"

            class Piece(dj.Part):
                definition = "-> master\npiece : nonsense_type\n"

    assert "unknown type 'nonsense_type'" in one_line(e.value)
    assert "Piece" in str(e.value)
    assert table_names(db, schema_name) == before


def test_not_a_table_class(schema):
    with pytest.raises(dj.DefinitionError) as e:
        schema(dict)
    assert "is not a table class" in one_line(e.value)


def test_bad_schema_name(db):
    with pytest.raises(dj.UsageError) as e:
        dj.Schema("bad-name; drop", connection=db)
    assert "is not valid" in one_line(e.value)


# ------------------------------------------------------------------ values
BAD_VALUES = [
    ("small", "many", "expected an integer"),
    ("small", 128, "out of range -128..127"),
    ("small", -129, "out of range -128..127"),
    ("small", 127.5, "out of range -128..127"),  # rounded first, as MySQL does: 1.5 is 2
    ("small", b"1", "expected an integer"),  # True and False are 1 and 0, as in DataJoint
    ("tiny_u", -1, "out of range 0..255"),
    ("big_u", 2**64, "out of range 0..18446744073709551615"),
    ("name", "much too long", "longer than 8 characters"),
    ("name", 123456789, "longer than 8 characters"),  # a number is its text, as in MySQL
    ("name", float("nan"), "expected a string"),
    ("name", "nul\x00byte", "cannot contain NUL"),
    ("code", "ab  ", "drops trailing spaces"),
    ("kind", "c", "not one of a, b"),
    ("day", "2021-02-30", "expected a date"),
    ("day", dt.datetime(2021, 1, 1), "expected a date"),
    ("day", dt.date(999, 1, 1), "years before 1000"),
    ("at", "yesterday", "expected a datetime"),
    ("at", 17, "expected a datetime"),
    ("ts", dt.datetime(1960, 1, 1), "timestamp covers 1970-01-01 00:00:01 .. 2038-01-19 03:14:07"),
    ("ts", dt.datetime(2040, 1, 1), "use datetime"),
    ("dur", dt.timedelta(hours=839), "time covers -838:59:59 .. 838:59:59"),
    ("dur", "10:00", "expected a datetime.timedelta"),
    ("yr", 1900, "year covers 1901..2155"),
    ("uid", "not-a-uuid", "expected a UUID"),
    ("uid", 5, "expected a uuid.UUID"),
    ("ratio", float("inf"), "nan and infinity cannot be stored"),  # NaN is the default, as in DataJoint
    ("ratio", 1e39, "out of range for a single-precision float"),
    ("ratio", "1.5x", "expected a number"),  # "1.5" is 1.5, as in MySQL
    ("precise", float("inf"), "nan and infinity cannot be stored"),
    ("price", decimal.Decimal("1000.00"), "more than 3 digits before the point"),
    ("price", decimal.Decimal("999.995"), "more than 3 digits before the point"),  # rounded to 1000.00
    ("price", "abc", "expected a decimal number"),
    ("price", float("inf"), "expected a finite decimal number"),
    ("flag", 2, "expected True or False"),
    ("meta", {1, 2}, "not JSON-serialisable"),
    ("meta", float("nan"), "not JSON-serialisable"),
    ("data", object(), "cannot store object in a blob"),
    ("id", None, "primary key attributes cannot be null"),
    ("name", None, "the attribute is not nullable"),
]


@pytest.mark.parametrize(("attribute", "value", "fragment"), BAD_VALUES,
                         ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD_VALUES)])
def test_bad_value_writes_nothing(thing, attribute, value, fragment):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    good = {"id": 2, "name": "good"}
    bad = {"id": 3, "name": "bad", attribute: value}
    with pytest.raises(dj.DataError) as e:
        Thing.insert([good, bad])  # the good row must not land either
    message = one_line(e.value)
    assert f"attribute '{attribute}'" in message and fragment in message
    assert snapshot(Thing, Owner) == before


def test_bad_value_in_a_transaction_rolls_back_earlier_inserts(thing, schema):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    with pytest.raises(dj.DataError):
        with schema.connection.transaction:
            Owner.insert1((2,))
            Thing.insert1({"id": 2, "name": "ok", "owner_id": 2})
            Thing.insert1({"id": 3, "name": "x", "small": 1000})
    assert snapshot(Thing, Owner) == before


def test_duplicate_key(thing):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    with pytest.raises(dj.DuplicateError) as e:
        Thing.insert([{"id": 2, "name": "new"}, {"id": 1, "name": "again"}])
    message = one_line(e.value)
    assert "duplicate primary key" in message and "skip_duplicates=True" in message
    assert snapshot(Thing, Owner) == before
    with pytest.raises(dj.DuplicateError):
        Thing.insert([{"id": 5, "name": "a"}, {"id": 5, "name": "b"}])  # duplicates inside one call
    assert snapshot(Thing, Owner) == before


def test_duplicate_of_a_key_with_a_newline(schema):
    @schema
    class Named(dj.Manual):
        definition = "name : varchar(16)\n"

    Named.insert1(("two\nlines",))
    with pytest.raises(dj.DuplicateError) as e:
        Named.insert1(("two\nlines",))
    one_line(e.value)
    assert len(Named) == 1


def test_sql_syntax_error_in_restriction(thing):
    Thing, _ = thing
    with pytest.raises(dj.DatabaseError) as e:
        (Thing & "id = = 1\nAND\nname").fetch()
    one_line(e.value)


def test_missing_attribute(thing):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    with pytest.raises(dj.DataError) as e:
        Thing.insert([{"id": 2, "name": "ok"}, {"id": 3}])
    assert "attribute 'name' is missing and has no default: give a value for it" in one_line(e.value)
    with pytest.raises(dj.DataError) as e:
        Thing.insert1({"name": "no key"})
    assert "attribute 'id' is missing" in one_line(e.value)
    assert snapshot(Thing, Owner) == before


def test_missing_parent_row(thing):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    with pytest.raises(dj.DataError) as e:
        Thing.insert1({"id": 2, "name": "orphan", "owner_id": 77})
    assert "insert the parent" in one_line(e.value)
    assert snapshot(Thing, Owner) == before


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"id": 2, "name": "x", "colour": "red"}], "has no attribute 'colour': remove it or pass ignore_extra_fields"),
        ([(2, "x")], "a row of 2 values does not match the 20 attributes"),
        ({"id": 2, "name": "x"}, "use insert1(row) for a single dict"),
        ([42], "cannot insert a int: give dicts or tuples"),
    ],
)
def test_malformed_rows(thing, rows, fragment):
    Thing, Owner = thing
    before = snapshot(Thing, Owner)
    with pytest.raises(dj.DataError) as e:
        Thing.insert(rows)
    assert fragment in one_line(e.value)
    assert snapshot(Thing, Owner) == before


def test_direct_insert_into_computed_table(schema):
    @schema
    class Source(dj.Manual):
        definition = "sid : int\n"

    @schema
    class Derived(dj.Computed):
        definition = "-> Source\n---\nv : int\n"

    Source.insert1((1,))
    with pytest.raises(dj.DataError) as e:
        Derived.insert1((1, 2))
    assert "allow_direct_insert=True" in one_line(e.value)
    assert len(Derived) == 0


# ------------------------------------------------------------------ queries
def test_restriction_by_unknown_attribute(thing):
    Thing, _ = thing
    assert len(Thing & {"colour": "red"}) == len(Thing())  # as DataJoint's: a dict of no attribute of it is true
    with pytest.raises(dj.QueryError) as e:
        (Thing & "colour = 'red'").fetch()
    assert "colour" in one_line(e.value)
    with pytest.raises(dj.QueryError) as e:
        len(Thing - "colour = 'red'")
    assert "colour" in one_line(e.value)


def test_restriction_by_badly_typed_value(thing):
    Thing, _ = thing
    with pytest.raises(dj.DataError) as e:
        (Thing & {"id": "one"}).fetch()
    assert "expected an integer" in one_line(e.value)


def test_restriction_by_unsupported_object(thing):
    Thing, _ = thing
    with pytest.raises(dj.QueryError) as e:
        Thing & 3.5
    assert "use a dict, a list of dicts, an SQL string, a query" in one_line(e.value)


def test_fetch1_needs_exactly_one_row(thing):
    Thing, _ = thing
    with pytest.raises(dj.MissingError) as e:
        (Thing & {"id": 99}).fetch1()
    assert "fetch1 found no row" in one_line(e.value)
    Thing.insert1({"id": 2, "name": "second"})
    with pytest.raises(dj.MissingError) as e:
        Thing.fetch1("name")
    assert "fetch1 found more than one row" in one_line(e.value)
    with pytest.raises(dj.MissingError):
        (Thing & {"id": 99}).fetch1("KEY")


def test_offset_without_limit_skips_rows_as_datajoint(thing):
    Thing, _ = thing
    Thing.insert1({"id": 2, "name": "second"})
    assert Thing.fetch("id", offset=1).tolist() == [2]  # DataJoint 0.14: every row after the first, in key order


# ------------------------------------------------------------------ connections
def test_unreachable_database(backend, tmp_path):
    url = "mysql://root@127.0.0.1:1" if backend.startswith("mysql") else f"sqlite:///{tmp_path}/no/such/dir/x.db"
    connection = dj.Connection(url, connect_timeout=3)
    with pytest.raises(dj.ConnectError) as e:
        connection.query("SELECT 1")
    message = one_line(e.value)
    if backend.startswith("mysql"):
        assert "cannot reach the database at 127.0.0.1:1" in message and "check the host and port" in message
    else:
        assert "its folder does not exist" in message
    # a server that does not answer may come back (EX_UNAVAILABLE, 69); a file that cannot be made will not
    assert e.value.exit_code == (69 if backend.startswith("mysql") else 2)


@pytest.fixture
def password_user(db):
    user, password = "djhpc_pw_" + uuid.uuid4().hex[:8], "Right-" + uuid.uuid4().hex
    for host in ("%", "localhost", "127.0.0.1"):
        db.query(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
    yield user, password
    for host in ("%", "localhost", "127.0.0.1"):
        db.query(f"DROP USER IF EXISTS '{user}'@'{host}'")


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_wrong_password_is_refused_without_showing_it(password_user, monkeypatch):
    user, right = password_user
    assert dj.Connection(f"mysql://{user}:{right}@127.0.0.1:3306").query("SELECT 1").fetchone()[0] == 1
    wrong = "Wrong-" + uuid.uuid4().hex
    via_url = dj.Connection(f"mysql://{user}:{wrong}@127.0.0.1:3306")
    monkeypatch.setenv("DJ_HOST", "127.0.0.1")
    monkeypatch.setenv("DJ_USER", user)
    monkeypatch.setenv("DJ_PASS", wrong)
    via_env = dj.Connection()
    for connection in (via_url, via_env):
        with pytest.raises(dj.ConnectError) as e:
            connection.query("SELECT 1")
        message = one_line(e.value)
        assert f"refused user '{user}'" in message and "check the user name and password" in message
        shown = "".join(traceback.format_exception(e.value)) + repr(e.value) + repr(connection)
        for secret in (wrong, right):
            assert secret not in shown


def test_unknown_url_scheme(monkeypatch):
    with pytest.raises(dj.ConfigError) as e:
        dj.Connection("postgresql://u:Secret99@h:5432")
    message = one_line(e.value)
    assert "unknown database URL scheme 'postgresql'" in message and "mysql://" in message
    assert "Secret99" not in message
    monkeypatch.setenv("DJHPC_DATABASE_URL", "oracle://x")
    with pytest.raises(dj.ConfigError, match="unknown database URL scheme 'oracle'"):
        dj.conn(reset=True)
