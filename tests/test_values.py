"""djhpc.values: any valid value of each attribute type round-trips exactly through insert and fetch, and a
restriction by that value finds it, on both backends (property tests)."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import djhpc as dj

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def ints(lo, hi):
    """The whole range, with its ends and zero tried on purpose."""
    return st.one_of(st.sampled_from([lo, hi, max(lo, min(hi, 0))]), st.integers(lo, hi))


def decimals(p, s):
    bound = decimal.Decimal("9" * (p - s) + ("." + "9" * s if s else ""))
    return st.one_of(
        st.sampled_from([bound, bound.copy_negate()]),
        st.decimals(min_value=bound.copy_negate(), max_value=bound, places=s, allow_nan=False, allow_infinity=False),
    )


TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
MAX_TIME = 838 * 3600 + 59 * 60 + 59
ENUM = ("a", "b", "it's", "ünïcode ✓", "with space")


def json_values():
    scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                             max_size=4),
                        max_leaves=12)


def arrays():
    dtypes = st.sampled_from([np.int8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.complex128,
                              np.bool_])
    return dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                                               elements=None if d not in (np.float32, np.float64, np.complex128)
                                               else {"allow_nan": False}))


def blob_values():
    scalar = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet=TEXT)
              | st.binary() | st.datetimes() | st.dates() | st.uuids() | arrays())
    return st.recursive(
        scalar,
        lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                       | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)),
        max_leaves=15,
    )


# type -> (strategy, restrict by the value too)
CASES = {
    "tinyint": (ints(-128, 127), True),
    "tinyint unsigned": (ints(0, 255), True),
    "smallint": (ints(-(2**15), 2**15 - 1), True),
    "smallint unsigned": (ints(0, 2**16 - 1), True),
    "mediumint": (ints(-(2**23), 2**23 - 1), True),
    "mediumint unsigned": (ints(0, 2**24 - 1), True),
    "int": (ints(-(2**31), 2**31 - 1), True),
    "int unsigned": (ints(0, 2**32 - 1), True),
    "bigint": (ints(-(2**63), 2**63 - 1), True),
    "bigint unsigned": (ints(0, 2**64 - 1), True),
    "float": (st.floats(width=32, allow_nan=False, allow_infinity=False), True),
    "double": (st.floats(allow_nan=False, allow_infinity=False), True),
    "decimal(12,4)": (decimals(12, 4), True),
    "decimal(5,0)": (decimals(5, 0), True),
    "decimal(65,30)": (decimals(65, 30), True),
    "varchar(64)": (st.text(alphabet=TEXT, max_size=64), True),
    "char(10)": (st.text(alphabet=TEXT, max_size=10).map(lambda s: s.rstrip(" ")), True),
    "bool": (st.booleans(), True),
    "date": (st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)), True),
    "datetime": (st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59))
                 .map(lambda d: d.replace(microsecond=0)), True),
    "datetime(6)": (st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)), True),
    "timestamp": (st.datetimes(dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7))
                  .map(lambda d: d.replace(microsecond=0)), True),
    "timestamp(6)": (st.datetimes(dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7, 999999)),
                     True),
    "time": (ints(-MAX_TIME, MAX_TIME).map(lambda s: dt.timedelta(seconds=s)), True),
    "time(6)": (st.integers(-MAX_TIME * 10**6, MAX_TIME * 10**6).map(lambda us: dt.timedelta(microseconds=us)),
                True),
    "year": (ints(1901, 2155), True),
    "enum('a', 'b', 'it''s', 'ünïcode ✓', \"with space\")": (st.sampled_from(ENUM), True),
    "uuid": (st.uuids(), True),
    "json": (json_values(), False),
    "longblob": (blob_values(), False),
}


def same(a, b) -> bool:
    """Equal and of the same type, all the way down (numpy arrays by dtype, shape and contents)."""
    if isinstance(a, np.generic) and isinstance(b, np.ndarray) and b.ndim == 0:
        b = b[()]  # a 0-d array comes back as its numpy scalar, as DataJoint reads its blob format
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a == 0.0:
        return b == 0.0  # both databases store -0.0 as 0.0
    if isinstance(a, float):
        return a == b
    return a == b


def sqlite_decimal(d: decimal.Decimal) -> decimal.Decimal:
    """``d`` cut to the 15 significant digits SQLite stores (toward zero: it stays within its type's range)."""
    with decimal.localcontext() as context:
        context.prec, context.rounding = 15, decimal.ROUND_DOWN
        return +d


@pytest.mark.parametrize("type_text", list(CASES), ids=lambda t: t.split("(")[0].replace(" ", "_") + (
    "(" + t.split("(")[1] if "(" in t and not t.startswith("enum") else ""))
def test_value_round_trips(schema, type_text, db):
    strategy, restrict = CASES[type_text]
    if db.is_sqlite and type_text.startswith("decimal"):  # SQLite keeps 15 significant digits (a number)
        strategy = strategy.map(sqlite_decimal)
    # None is a JSON and a blob value too: it is stored as NULL, so these columns are nullable
    nullable = " = null" if type_text in ("json", "longblob") else ""

    @schema
    class Value(dj.Manual):
        definition = f"""
        id : int
        ---
        value{nullable} : {type_text}
        """

    @SETTINGS
    @given(value=strategy)
    def check(value):
        Value.delete_quick()
        Value.insert1({"id": 1, "value": value})
        got = Value.fetch1()["value"]  # the dict holds Python values (fetch1("value") a numpy scalar, as DataJoint)
        assert same(got, value), f"stored {value!r}, fetched {got!r}"
        if restrict:
            assert len(Value & {"value": value}) == 1, f"restricting by {value!r} does not find it"

    check()


def test_double_extremes_round_trip(schema):
    @schema
    class Extreme(dj.Manual):
        definition = "id : int\n---\nd : double\nf : float\n"

    tiny32 = float(np.float32(1.4e-45))
    rows = [(1, 1.7976931348623157e308, float(np.finfo(np.float32).max)), (2, 2.2250738585072014e-308, tiny32),
            (3, -0.0, -0.0), (4, 0.1, float(np.float32(0.1))), (5, 1e-300, float(np.finfo(np.float32).tiny))]
    Extreme.insert(rows)
    assert [tuple(r.values()) for r in Extreme.fetch(order_by="id", as_dict=True)] == rows
    assert Extreme.fetch("d", order_by="id").tolist() == [r[1] for r in rows]  # a float64 array holds them too


def test_numpy_scalars_are_stored_as_their_python_values(schema):
    @schema
    class FromNumpy(dj.Manual):
        definition = """
        id : int
        ---
        flag : bool
        small : tinyint unsigned
        big : bigint unsigned
        single : float
        real : double
        price : decimal(6,2)
        label : varchar(8)
        """

    FromNumpy.insert1({"id": np.int64(1), "flag": np.True_, "small": np.uint8(200), "big": np.uint64(2**64 - 1),
                       "single": np.float32(0.1), "real": np.float64(2.5), "price": np.float64(1.25),
                       "label": np.str_("ab")})
    row = (FromNumpy & {"id": np.int32(1), "flag": np.True_, "label": np.str_("ab")}).fetch1()
    assert row == {"id": 1, "flag": True, "small": 200, "big": 2**64 - 1, "single": float(np.float32(0.1)),
                   "real": 2.5, "price": decimal.Decimal("1.25"), "label": "ab"}
    assert [type(v) for v in row.values()] == [int, bool, int, int, float, float, decimal.Decimal, str]


def test_a_lone_surrogate_is_a_data_error_not_a_driver_crash(schema):
    """Issue 15, item 9: text decoded with errors='surrogateescape' holds lone surrogates, which are not text."""

    @schema
    class Named(dj.Manual):
        definition = "id : int\n---\nname : varchar(16)\n"

    broken = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(dj.errors.DataError, match="lone surrogate"):
        Named.insert1((1, broken))
    assert len(Named()) == 0
    Named.insert1((2, "café ☕"))  # real non-ASCII text is fine
    assert Named.fetch1("name") == "café ☕"


def test_a_float_into_a_decimal_is_rounded_to_its_scale_as_mysql_stores_it():
    """DataJoint 0.14's test_autopopulate stores np.float64(0.7727693521393469) into decimal(7,3): MySQL rounds it
    (half away from zero). encode() compares too (restrictions), so a Decimal with more digits stays refused there;
    insert rounds it first (values.cast)."""
    from djhpc import values
    from djhpc.declare import parse_definition

    spec = parse_definition("id : int\n---\nd : decimal(7,3)\n", lambda name: None)
    d = spec.attributes[1]
    for dialect in ("mysql", "sqlite"):
        assert values.encode(d, np.float64(0.7727693521393469), dialect) == "0.773"
        assert values.encode(d, 2.0005, dialect) == "2.001"
        assert values.encode(d, -1.25, dialect) == "-1.250"
        with pytest.raises(dj.DataError, match="more than 3 digits after the point"):
            values.encode(d, decimal.Decimal("0.7775"), dialect)
        with pytest.raises(dj.DataError, match="more than 4 digits before the point"):
            values.encode(d, 12345.0, dialect)


# What DataJoint 0.14.10 on MariaDB 10.11 stored for each (attribute, value) inserted, fetched back (its insert sends
# numbers as text; MySQL converts them). Checked by inserting each value with DataJoint itself.
CONVERTED = [
    ("i", 2.5, 3), ("i", -0.369, 0), ("i", -2.5, -3), ("i", "5", 5), ("i", "5.7", 6), ("i", np.float64(1.5), 2),
    ("ti", -0.4, 0), ("ti", 255.4, 255),
    ("d", "1.5", 1.5), ("d", decimal.Decimal("1.25"), 1.25),
    ("dec", decimal.Decimal("3.1415926"), decimal.Decimal("3.142")), ("dec", decimal.Decimal("3.1425"),
                                                                      decimal.Decimal("3.143")),
    ("dec", decimal.Decimal("-3.1425"), decimal.Decimal("-3.143")), ("dec", 3.14159, decimal.Decimal("3.142")),
    ("dec", "2.71828", decimal.Decimal("2.718")),
    ("s", 200, "200"), ("s", 0.1, "0.1"), ("s", 1 / 3, "0.33333333"), ("s", 1e20, "1e20"), ("s", True, "1"),
    ("s", decimal.Decimal("1.50"), "1.50"), ("s", np.int64(5), "5"), ("s", np.float64(0.25), "0.25"),
    ("s", b"abc", "abc"),
    # None, NaN and '' in a number are the attribute's default: NULL here, 7.5 for dd
    ("i", "", None), ("i", np.nan, None), ("d", np.nan, None), ("d", "", None), ("f", np.nan, None),
    ("dec", np.nan, None), ("dd", np.nan, 7.5), ("dd", None, 7.5),
]
REFUSED = [  # and what DataJoint (MariaDB) refused
    ("i", "abc", "expected an integer"), ("i", 1e20, "out of range"), ("ti", 255.5, "out of range"),
    ("ti", -0.6, "out of range"), ("d", float("inf"), "nan and infinity"), ("d", "x", "expected a number"),
    ("f", 1e39, "out of range"), ("dec", decimal.Decimal("99.1"), "digits before the point"),
    ("dec", decimal.Decimal("9.9999"), "digits before the point"), ("s", 12345678901, "longer than 10"),
    ("s", np.nan, "expected a string"),
]


def test_values_of_another_type_are_converted_as_mysql_converts_them(schema):
    @schema
    class Converted(dj.Manual):
        definition = """
        id : int
        ---
        i = null : int
        ti = null : tinyint unsigned
        d = null : double
        dd = 7.5 : double
        f = null : float
        dec = null : decimal(4,3)
        s = null : varchar(10)
        """

    for k, (name, value, stored) in enumerate(CONVERTED):
        Converted.insert1({"id": k, name: value})
        got = (Converted & {"id": k}).fetch1(name)
        assert got == stored or stored is None and (got is None or np.isnan(got)), (name, value, got)
    for k, (name, value, fragment) in enumerate(REFUSED, start=len(CONVERTED)):
        with pytest.raises(dj.DataError, match=fragment) as e:
            Converted.insert1({"id": k, name: value})
        assert "\n" not in str(e.value)
    assert len(Converted()) == len(CONVERTED)


def test_nan_into_a_number_without_default_is_refused(schema):
    """DataJoint sends DEFAULT, which MySQL refuses for an attribute without one."""

    @schema
    class NoDefault(dj.Manual):
        definition = "id : int\n---\ndn : double\n"

    with pytest.raises(dj.DataError, match="not nullable"):
        NoDefault.insert1({"id": 1, "dn": np.nan})
    with pytest.raises(dj.DataError, match="primary key attributes cannot be null"):
        NoDefault.insert1({"id": np.nan, "dn": 1.0})
    assert len(NoDefault()) == 0


def test_restrictions_compare_exactly(schema):
    """Insert rounds 2.5 into an int (to 3); a restriction by 2.5 must not find that row, so it stays refused."""

    @schema
    class Exact(dj.Manual):
        definition = "id : int\n---\nn : int\n"

    Exact.insert1({"id": 1, "n": 2.5})
    assert Exact.fetch1("n") == 3
    with pytest.raises(dj.DataError, match="expected an integer"):
        len(Exact & {"n": 2.5})


def test_float_text_is_mysqls():
    """A float into varchar(n): the text MariaDB 10.11 stored for it (probed with PyMySQL, DataJoint's STRICT mode)."""
    from djhpc.values import float_text

    seen = [(2.0, 40, "2"), (1e14, 40, "100000000000000"), (1e14, 5, "1e14"), (1e15, 40, "1e15"),
            (123456.789, 5, "1.2e5"), (1e-5, 40, "0.00001"), (0.000123, 5, "1e-4"), (1 / 3, 5, "0.333"),
            (2 / 3, 3, "0.7"), (1.5e300, 40, "1.5e300"), (123.456, 5, "123.5"), (12345.6, 5, "12346"),
            (5e-324, 40, "5e-324"), (1e-15, 40, "0.000000000000001"), (1e-16, 40, "1e-16"), (1.5e14, 5, "2e14"),
            (-1e-7, 40, "-0.0000001"), (1.2345678901234567e19, 40, "1.2345678901234567e19"), (-0.0, 3, "0")]
    assert [(v, w, float_text(v, w)) for v, w, _ in seen] == seen


def test_a_whole_decimal_beyond_2_53_comes_back_on_sqlite(schema):
    """SQLite turns '44350987326259700.000' into the integer 44350987326259696 (through a double); decode gives
    back the 15 significant digits stored (found by test_value_round_trips)."""

    @schema
    class Big(dj.Manual):
        definition = "id : int\n---\nd : decimal(65,30)\n"

    value = decimal.Decimal("4.43509873262597E+16")
    Big.insert1({"id": 1, "d": value})
    assert Big.fetch1()["d"] == value and len(Big & {"d": value}) == 1
