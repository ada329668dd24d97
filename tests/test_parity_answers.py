"""Answers that were silently wrong (issue 14), on both backends, with the values DataJoint 0.14.10 gives on
MariaDB: ``bool(query)`` is True iff the query has rows; decimals compare and sort as numbers on SQLite too and
come back as Decimals of the declared scale."""

from __future__ import annotations

import decimal

import pytest

import djhpc as dj

D = decimal.Decimal


@pytest.fixture
def measured(schema):
    @schema
    class Probe(dj.Manual):
        definition = """
        probe : varchar(8)
        ---
        kind : varchar(8)
        """

    @schema
    class Reading(dj.Manual):
        definition = """
        -> Probe
        reading : int
        ---
        t : decimal(8,4)
        price = null : decimal(5,2)
        """

    Probe.insert([("p1", "neuro"), ("p2", "neuro")])
    Reading.insert([("p1", 1, D("101"), None), ("p1", 2, 3, D("9.5")), ("p1", 3, D("-0.25"), D("10.00"))])
    return Probe, Reading


# ------------------------------------------------------------------ bool(query)
def test_bool_of_a_query_is_whether_it_has_rows(measured):
    Probe, Reading = measured
    # DataJoint 0.14.10: bool(A & "id=5") False, bool(A) True, bool(A & "id=1") True, len(A & "id=5") 0
    assert bool(Reading & {"reading": 1}) and bool(Reading()) and bool(Probe & {"probe": "p2"})
    assert not (Reading & {"reading": 5}) and len(Reading & {"reading": 5}) == 0
    assert not (Reading & {"probe": "p2"}) and not (Probe - Reading & {"probe": "p1"})
    assert not (Probe * Reading & "t > 1000") and bool(Probe * Reading & "t > 100")
    assert bool(Reading.proj() & "reading = 2") and not Reading.proj(r="reading") & "r = 7"
    assert bool(Reading & []) is False and bool(Reading - []) is True


def test_if_table_and_key_takes_the_branch_datajoint_takes(measured):
    """An Element's ``if not (ProbeType & key): ProbeType.insert1(key)`` inserted nothing: bool was always True."""
    Probe, _ = measured
    inserted = []
    for key in ({"probe": "p1", "kind": "neuro"}, {"probe": "p3", "kind": "glass"}):
        if not Probe & {"probe": key["probe"]}:
            Probe.insert1(key)
            inserted.append(key["probe"])
    assert inserted == ["p3"] and len(Probe()) == 3


def test_bool_of_the_jobs_table(schema, measured):
    _, Reading = measured
    assert not schema.jobs
    schema.jobs.ignore(Reading, {"probe": "p1", "reading": 1})
    assert schema.jobs and not schema.jobs & {"status": "error"}


# ------------------------------------------------------------------ decimals
def test_decimal_restriction_by_sql_compares_numbers(measured):
    _, Reading = measured
    # DataJoint 0.14.10 on MariaDB: A & "d between 0.0 and 9.0" gives the one row of 3.0000, not 101.0000
    assert (Reading & "t BETWEEN 0.0 AND 9.0").fetch("reading", order_by="reading").tolist() == [2]
    assert (Reading & "t > 9").fetch("reading").tolist() == [1]
    assert (Reading & "t < 0").fetch("reading").tolist() == [3]
    assert (Reading & "price >= 9.5").fetch("reading", order_by="reading").tolist() == [2, 3]
    assert (Reading & "t = 101").fetch("reading").tolist() == [1]


def test_decimal_order_is_numeric(measured):
    _, Reading = measured
    t = Reading.fetch("t", order_by="t")  # an object array of Decimals, as DataJoint's
    assert t.dtype == object and t.tolist() == [D("-0.2500"), D("3.0000"), D("101.0000")]
    assert Reading.fetch("reading", order_by="t DESC").tolist() == [1, 2, 3]


def test_decimals_come_back_with_the_declared_scale(measured):
    _, Reading = measured
    # DataJoint 0.14.10: insert1(d=Decimal("101")) fetches Decimal('101.0000'), d=3 Decimal('3.0000')
    rows = Reading.fetch(order_by="reading")
    assert [(r["t"], r["price"]) for r in rows] == [
        (D("101.0000"), None),
        (D("3.0000"), D("9.50")),
        (D("-0.2500"), D("10.00")),
    ]
    assert all(type(r["t"]) is D for r in rows)
    assert [str(r["t"]) for r in rows] == ["101.0000", "3.0000", "-0.2500"]
    assert str(rows[1]["price"]) == "9.50"


def test_decimal_restriction_by_value(measured):
    _, Reading = measured
    assert (Reading & {"t": D("3")}).fetch1("reading") == 2
    assert (Reading & {"t": 3}).fetch1("reading") == 2
    assert (Reading & {"price": D("9.50")}).fetch1("reading") == 2
    assert (Reading & {"price": "10"}).fetch1("reading") == 3
    assert (Reading & dj.SQL("t BETWEEN %s AND %s", (0, 9.5))).fetch1("reading") == 2
    assert (Reading & dj.SQL("t BETWEEN %s AND %s", (D("0"), D("9")))).fetch1("reading") == 2
    assert (Reading & dj.SQL("t * 2 > %s", (D("200.5"),))).fetch1("reading") == 1


def test_decimal_in_a_primary_key(schema):
    @schema
    class Dose(dj.Manual):
        definition = """
        dose : decimal(6,3)
        ---
        label : varchar(8)
        """

    Dose.insert([(D("0.5"), "half"), (D("10"), "ten"), (D("2.125"), "odd")])
    with pytest.raises(dj.DuplicateError):
        Dose.insert1((D("0.500"), "again"))
    assert Dose.fetch("dose", order_by="dose").tolist() == [D("0.500"), D("2.125"), D("10.000")]
    assert (Dose & {"dose": D("2.125")}).fetch1("label") == "odd"
    assert Dose.keys(order_by="KEY")[0] == {"dose": D("0.500")}
    assert D("10.000") in [k["dose"] for k in Dose.keys()]


def test_more_digits_than_sqlite_keeps_are_refused_there(schema, db):
    @schema
    class Wide(dj.Manual):
        definition = """
        id : int
        ---
        x : decimal(30,10)
        """

    exact = D("12345678901234567890.0123456789")
    small = D("1234567890.12345")  # 15 significant digits: exact on both
    Wide.insert1((2, small))
    assert Wide.fetch1("x") == small
    if db.is_sqlite:
        with pytest.raises(dj.DataError, match="15 significant digits") as e:
            Wide.insert1((1, exact))
        assert "\n" not in str(e.value) and "MariaDB" in str(e.value)
        assert len(Wide()) == 1
    else:
        Wide.insert1((1, exact))
        assert (Wide & {"id": 1}).fetch1("x") == exact


def test_a_table_class_is_true_and_its_instance_asks(measured):
    Probe, Reading = measured
    (Reading & {"reading": 1}).delete_quick()
    (Reading()).delete_quick()
    assert bool(Reading) is True  # the class, as in DataJoint: `master or cls` must not count rows
    assert not Reading() and len(Reading) == 0 and bool(Probe())
