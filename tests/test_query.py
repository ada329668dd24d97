"""djhpc.query on both backends, through its public API: restriction by dict, string, SQL, list (OR), AndList,
query (semijoin), Not and ``-``; join; proj with renames and computed attributes; fetch and fetch1 with
order_by, limit, offset and as_dict; len, ``in``, iteration, repr; headings; key_range; and the SQL of
select_sql, count_sql and make_sql run as it is.

The tables are the ``lab`` schema of conftest.py, ``filled``: subjects 1 (mouse ann, 20.5 g), 2 (mouse bob,
no weight), 3 (rat cid, 310 g); sessions (1, 1, A), (1, 2, B), (2, 1, A), (3, 1, C); analyses of (1, 1) 0.5,
(1, 2) 0.25, (2, 1) 1.0 with units (1, 1, 1), (1, 1, 2), (1, 2, 1), (2, 1, 1); notes 1 (subject 1), 2 (none).
There is no aggregation in djhpc.query, so none is tested here.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.queries import key_set

import djhpc as dj


# ------------------------------------------------------------------ headings
def test_heading_of_a_join_is_both_headings_key_first(filled):
    h = (filled.Session * filled.Analysis.Unit).heading
    assert h.names == ["subject_id", "session", "unit", "rig", "rate"]
    assert h.primary_key == ["subject_id", "session", "unit"] and h.secondary_attributes == ["rig", "rate"]
    assert list(h) == h.names == list(h.attributes) and [a.name for a in h.attributes.values()] == h.names
    assert h["rate"].type == "double" and "rate" in h and "score" not in h
    assert repr(h).splitlines()[3] == "---"
    product = (filled.Species * filled.Note).heading
    assert product.primary_key == ["species", "note_id"]
    assert product.secondary_attributes == ["latin", "subject_id", "text"]


def test_heading_as_datajoint_gives_it(filled):
    """DataJoint's heading: attributes a dict of name -> attribute with DataJoint's fields, as_dtype fetch's dtype."""
    h = filled.Subject.heading
    assert isinstance(h.attributes, dict) and list(h.attributes) == h.names == list(h._attributes)
    sid, name, weight = h.attributes["subject_id"], h.attributes["name"], h.attributes["weight"]
    assert sid.numeric and not sid.string and not sid.autoincrement and not sid.is_hidden and sid.in_key
    assert name.string and not name.numeric and not name.is_blob and not name.json and not name.uuid
    assert weight.nullable and weight.dtype is np.float64 and sid.dtype is np.int64 and name.dtype is object
    assert h.as_dtype == np.dtype([("subject_id", np.int64), ("species", object), ("name", object),
                                   ("weight", np.float64)])
    assert h.as_dtype == filled.Subject.fetch().dtype and len(h) == 4 and not h.has_autoincrement
    assert sid.todict()["name"] == "subject_id" and sid.sql_type == "int"
    assert filled.Subject.proj(w2="weight * 2").heading.new_attributes == ["w2"]
    assert filled.Analysis.Unit.heading.non_blobs == filled.Analysis.Unit.heading.names


def test_hidden_timestamp_is_in_the_table_not_in_its_queries(schema):
    """dj.config["add_hidden_timestamp"]: DataJoint's hidden _<sha1>_timestamp column, filled by the database."""
    with dj.config(add_hidden_timestamp=True):
        @schema
        class Stamped(dj.Manual):
            definition = "id : int\n---\nx : int\n"

    Stamped.insert1((1, 2))
    h = Stamped.heading
    hidden = [a for a in h._attributes.values() if a.is_hidden]
    assert len(hidden) == 1 and hidden[0].name.startswith("_") and hidden[0].name.endswith("_timestamp")
    assert h.names == ["id", "x"] and hidden[0].name not in h.attributes and hidden[0].name not in h
    assert Stamped.fetch(as_dict=True) == [{"id": 1, "x": 2}] and Stamped.fetch1() == {"id": 1, "x": 2}
    assert (Stamped * Stamped.proj(y="x")).heading.names == ["id", "x", "y"]

    @schema
    class Plain(dj.Manual):
        definition = "id : int\n"

    assert not any(a.is_hidden for a in Plain.heading._attributes.values())


def test_heading_of_a_projection(filled):
    S = filled.Subject
    renamed = S.proj(animal="name")
    assert renamed.heading.names == ["subject_id", "animal"] and "name" not in renamed.heading
    assert renamed.heading["animal"].type == S.heading["name"].type == "varchar(32)"
    assert S.proj(sid="subject_id").primary_key == ["sid"]
    computed = S.proj(w2="weight * 2").heading
    assert computed.names == ["subject_id", "w2"] and computed["w2"].category == "expression"


# ------------------------------------------------------------------ restriction
def test_restrict_by_dict(filled):
    S = filled.Subject
    assert key_set(S & {"species": "mouse"}) == [(1,), (2,)]
    assert key_set(S & {"species": "mouse", "name": "bob"}) == [(2,)]
    assert key_set(S & {"weight": None}) == [(2,)]  # None is IS NULL
    assert key_set(S & {"species": "rat", "colour": "brown"}) == [(3,)]  # names not in the heading are left out
    assert key_set(S.restrict({"name": "cid"})) == key_set(S & {"name": "cid"}) == [(3,)]
    # as in DataJoint, a dict with no attribute of the query restricts nothing (and takes everything away)
    assert len(S & {"colour": "brown"}) == 3 and len(S - {"colour": "brown"}) == 0


def test_an_empty_dict_restricts_nothing(filled):
    assert len(filled.Subject & {}) == 3
    assert len(filled.Subject - {}) == 0


def test_restrict_by_string_and_sql(filled):
    S = filled.Subject
    assert key_set(S & "weight > 100") == [(3,)]
    assert key_set(S & "species = 'mouse' AND weight IS NULL") == [(2,)]
    assert key_set(S & dj.SQL("name IN (%s, %s)", ("ann", "cid"))) == [(1,), (3,)]
    assert key_set(S & dj.SQL("weight BETWEEN %s AND %s", (20, 21))) == [(1,)]
    # a string names the query's attributes, renamed ones by their new name, on a join too
    assert key_set(S.proj(animal="name") & "animal = 'bob'") == [(2,)]
    assert key_set((filled.Subject * filled.Session) & "rig = 'A' AND weight IS NULL") == [(2, 1)]
    assert key_set((filled.Subject * filled.Session) & dj.SQL("rig = %s", ("C",))) == [(3, 1)]


def test_a_list_is_or(filled):
    S = filled.Subject
    assert key_set(S & [{"subject_id": 1}, {"subject_id": 3}]) == [(1,), (3,)]
    assert key_set(S & ({"subject_id": 1}, "weight > 300")) == [(1,), (3,)]
    assert key_set(S & {"name = 'bob'", "name = 'ann'"}) == [(1,), (2,)]
    assert key_set(S & []) == []
    assert key_set(S & [[], {"subject_id": 2}]) == [(2,)]
    assert key_set(S & [{"subject_id": 1}, None]) == [(1,), (2,), (3,)]  # None (no restriction) in an OR: all
    joined = filled.Subject * filled.Session
    assert key_set(joined & [{"rig": "B"}, {"subject_id": 3}]) == [(1, 2), (3, 1)]
    assert key_set(joined & ["rig = 'B'", {"subject_id": 3}]) == [(1, 2), (3, 1)]


def test_an_andlist_is_and(filled):
    S = filled.Subject
    assert key_set(S & dj.AndList([{"species": "mouse"}, "weight IS NULL"])) == [(2,)]
    nested = dj.AndList([dj.AndList([{"species": "mouse"}]), [{"subject_id": 1}, {"subject_id": 2}],
                         "subject_id > 1"])
    assert key_set(S & nested) == [(2,)]
    assert len(S & dj.AndList([])) == 3 and len(S - dj.AndList([])) == 0
    joined = filled.Subject * filled.Session
    assert key_set(joined & dj.AndList(["weight IS NULL", {"rig": "A"}])) == [(2, 1)]
    assert key_set(joined - dj.AndList(["weight IS NULL", {"rig": "A"}])) == [(1, 1), (1, 2), (3, 1)]


def test_restrict_by_a_query_is_a_semijoin(filled):
    S, Se = filled.Subject, filled.Session
    assert key_set(S & (Se & {"rig": "B"})) == [(1,)]
    assert key_set(S - (Se & {"rig": "B"})) == [(2,), (3,)]
    assert key_set(Se & (S & {"species": "rat"})) == [(3, 1)]
    assert key_set(Se & filled.Analysis) == [(1, 1), (1, 2), (2, 1)]
    assert key_set(Se & filled.Analysis.Unit.proj()) == [(1, 1), (1, 2), (2, 1)]
    # no attribute in common: any row of the other query will do
    assert key_set(filled.Note & filled.Species) == [(1,), (2,)]
    assert key_set(filled.Note & (filled.Species & {"species": "dog"})) == []


@pytest.mark.parametrize("restriction, kept, removed", [
    ({"species": "mouse"}, [(1,), (2,)], [(3,)]),
    ("weight > 100", [(3,)], [(1,)]),  # bob has no weight: NULL is neither > 100 nor NOT > 100
    ([{"subject_id": 1}, "name = 'cid'"], [(1,), (3,)], [(2,)]),
    (dj.AndList([{"species": "mouse"}, "subject_id > 1"]), [(2,)], [(1,), (3,)]),
    (dj.SQL("name IN (%s, %s)", ("ann", "cid")), [(1,), (3,)], [(2,)]),
], ids=["dict", "string", "or-list", "andlist", "sql"])
def test_minus_and_not_remove_what_and_keeps(filled, restriction, kept, removed):
    S = filled.Subject
    assert key_set(S & restriction) == kept
    assert key_set(S - restriction) == removed
    assert key_set(S & dj.Not(restriction)) == removed
    assert key_set(S - dj.Not(restriction)) == kept
    assert key_set(S & dj.Not(dj.Not(restriction))) == kept


def test_minus_a_query(filled):
    assert key_set(filled.Session - filled.Analysis) == [(3, 1)]
    assert key_set(filled.Session & dj.Not(filled.Analysis)) == [(3, 1)]
    assert key_set(filled.Subject - (filled.Session & {"rig": "A"})) == [(3,)]
    assert key_set(filled.Session - (filled.Subject & {"species": "rat"})) == [(1, 1), (1, 2), (2, 1)]


def test_booleans_and_none(filled):
    S = filled.Subject
    assert (len(S & True), len(S & False), len(S & None)) == (3, 0, 3)
    assert (len(S - True), len(S - False), len(S - None)) == (0, 3, 0)


def test_restrict_by_a_fetched_key_or_row(filled):
    S = filled.Subject
    keys = S.fetch("KEY", order_by="KEY")
    assert key_set(S & keys[1]) == [(2,)]
    assert key_set(S & keys[:2]) == [(1,), (2,)]
    bob = (S & {"subject_id": 2}).fetch1()
    assert bob["weight"] is None and key_set(S & bob) == [(2,)]  # the whole row, its NULL too, finds itself
    analysis = (filled.Analysis & {"subject_id": 1, "session": 1}).fetch1("KEY")
    assert key_set(filled.Analysis.Unit & analysis) == [(1, 1, 1), (1, 1, 2)]


def test_restrict_by_numpy_values(filled):
    S = filled.Subject
    assert key_set(S & np.array([(1,), (3,)], dtype=[("subject_id", "i8")])) == [(1,), (3,)]
    assert (S & {"subject_id": np.int64(2)}).fetch1("name") == "bob"
    assert (S & {"weight": np.float64(310.0)}).fetch1("name") == "cid"


def test_an_unknown_kind_of_restriction_is_refused(filled):
    with pytest.raises(dj.QueryError, match="Invalid restriction type int"):
        filled.Subject & 5
    with pytest.raises(dj.QueryError, match="Invalid restriction type float"):
        filled.Subject - 2.5


def test_a_query_restricted_and_joined_by_itself(filled):
    q = filled.Session()
    # rig is a secondary attribute of both operands: DataJoint 0.14 refuses to match on it (& - *) ...
    for combine in (lambda a, b: a & b, lambda a, b: a - b, lambda a, b: a * b):
        with pytest.raises(dj.DataJointError, match="Cannot join query expressions on dependent attribute `rig`"):
            combine(q, q)
    # ... but ^ and @ match on it anyway, and without rig the operands match on the key
    assert len(q ^ q) == 4 and len(q - q.proj()) == 0 and len(q @ q) == 4 and len(q * q.proj()) == 4
    assert key_set(q ^ (q & {"rig": "B"})) == [(1, 2)]
    assert key_set(q & (q & {"rig": "B"}).proj()) == [(1, 2)]


# ------------------------------------------------------------------ join
def test_join_matches_the_common_attributes(filled):
    j = filled.Session * filled.Analysis
    assert key_set(j) == [(1, 1), (1, 2), (2, 1)]
    rig, score = j.fetch("rig", "score", order_by="KEY")
    assert rig.tolist() == ["A", "B", "A"] and score.tolist() == [0.5, 0.25, 1.0]
    three = filled.Subject * filled.Session * filled.Analysis.Unit
    name, rate = three.fetch("name", "rate", order_by="KEY")
    assert name.tolist() == ["ann", "ann", "ann", "bob"] and rate.tolist() == [3.0, 4.0, 5.0, 6.0]
    # renamed away, session is no longer common: each session of a subject meets each analysis of it
    assert len(filled.Session.proj(other="session") * filled.Analysis) == 2 * 2 + 1 * 1


def test_join_without_common_attributes_is_a_product(filled):
    product = filled.Species * filled.Note
    assert len(product) == 4
    assert key_set(product) == [("mouse", 1), ("mouse", 2), ("rat", 1), ("rat", 2)]


def test_join_of_restricted_operands_keeps_every_restriction(filled):
    S, Se, An = filled.Subject, filled.Session, filled.Analysis
    j = (S & {"species": "mouse"}) * (Se & {"rig": "A"}) * (An & dj.SQL("score > %s", (0.4,)))
    assert key_set(j) == [(1, 1), (2, 1)]
    assert key_set(((S & {"species": "mouse"}) * Se) & {"rig": "B"}) == [(1, 2)]
    assert key_set((S.proj(animal="name") & {"animal": "ann"}) * (Se & {"rig": "B"})) == [(1, 2)]
    computed = (S & {"species": "mouse"}).proj(w2="weight * 2") * (Se & {"rig": "A"})
    assert computed.fetch("w2", order_by="KEY").tolist() == [41.0, None]


def test_join_with_something_else_is_refused(filled):
    with pytest.raises(dj.QueryError, match="cannot join with int"):
        filled.Subject * 5
    with pytest.raises(dj.QueryError, match="cannot join with str"):
        filled.Subject().join("Session")


def test_left_join_keeps_every_row_of_the_left(filled):
    Se, An = filled.Session, filled.Analysis
    rows = Se.join(An, left=True).fetch(order_by="KEY")  # DataJoint 0.14.10: (3, 1) with a NaN score
    assert rows[["subject_id", "session"]].tolist() == [(1, 1), (1, 2), (2, 1), (3, 1)]
    assert rows["score"][:3].tolist() == [0.5, 0.25, 1.0] and np.isnan(rows["score"][3])
    assert len(Se.join(An, left=True)) == 4 and len(Se.join(An)) == 3
    product = filled.Subject.proj().join(filled.Note.proj("text"), left=True)
    assert len(product) == len(product.fetch()) == 6
    # the right operand's restriction applies to it before the join: no left row is lost (DataJoint 0.14.10
    # applies it after the join and drops sessions (1, 2) and (3, 1) here)
    kept = Se.join(An & "score > 0.4", left=True).fetch(order_by="KEY", as_dict=True)
    assert [(r["session"], r["subject_id"], r["score"]) for r in kept] == [(1, 1, 0.5), (2, 1, None), (1, 2, 1.0),
                                                                           (1, 3, None)]


# ------------------------------------------------------------------ aggr, union, dj.U, dj.Top
def test_aggr_computes_over_the_matching_rows(filled):
    """DataJoint 0.14.10's answers on the same rows."""
    S, Se, An = filled.Subject, filled.Session, filled.Analysis
    counted = S.aggr(Se, n="count(*)")
    assert counted.heading.names == ["subject_id", "n"] and counted.primary_key == ["subject_id"]
    rows = counted.fetch(order_by="KEY")
    assert rows.dtype == np.dtype([("subject_id", "<i8"), ("n", "O")]) and rows.tolist() == [(1, 2), (2, 1), (3, 1)]
    assert S.aggr(Se, ..., n="count(*)").heading.names == ["subject_id", "species", "name", "weight", "n"]
    assert S.aggr(Se, "name", n="count(*)").fetch(order_by="KEY", as_dict=True)[0] == {
        "subject_id": 1, "name": "ann", "n": 2}
    assert (counted & "n > 1").fetch("KEY") == [{"subject_id": 1}]  # restricted by what it computed
    assert len(S.aggr(An, n="count(*)")) == 2  # a subject without analyses has no row ...
    every = S.aggr(An, n="count(score)", m="max(score)", keep_all_rows=True)  # ... unless kept
    assert every.fetch(order_by="KEY").tolist() == [(1, 2, 0.5), (2, 1, 1.0), (3, 0, None)]
    assert filled.Subject.aggregate(Se, n="count(*)").fetch("n", order_by="KEY").tolist() == [2, 1, 1]
    assert key_set(S & (counted & "n > 1")) == [(1,)]  # an aggregation restricts like any query
    assert len(counted * Se) == 4
    with pytest.raises(dj.QueryError, match="attribute `name` already exists"):
        S.aggr(Se, "name", name="count(*)")


def test_universal_sets(filled):
    Se = filled.Session
    rigs = dj.U("rig") & Se
    assert rigs.primary_key == ["rig"] and rigs.heading.names == ["rig"] and len(rigs) == 3
    assert rigs.fetch("rig", order_by="rig").tolist() == ["A", "B", "C"]
    assert (Se * dj.U("rig")).primary_key == ["subject_id", "session", "rig"]
    assert (dj.U("rig") * Se).primary_key == ["subject_id", "session", "rig"] and len(dj.U("rig") * Se) == 4
    assert dj.U().aggr(Se, n="count(*)").fetch1() == {"n": 4}
    assert dj.U().aggr(filled.Session, n="count(*)").fetch1("n") == 4
    per_rig = dj.U("rig").aggr(Se, n="count(*)")
    assert per_rig.fetch(order_by="rig").tolist() == [("A", 2), ("B", 1), ("C", 1)]
    assert (per_rig & {"rig": "A"}).fetch1("n") == 2
    assert len(Se & dj.U("rig")) == 4 and len(Se - dj.U("rig")) == 0  # U restricts nothing
    for bad in (lambda: dj.U("rig") & {"rig": "A"}, lambda: dj.U("rig") * {"rig": "A"}):
        with pytest.raises(dj.DataJointError, match="dj.U can only be"):
            bad()
    with pytest.raises(dj.DataJointError, match="keep_all_rows=True when aggregating on a universal set"):
        dj.U("rig").aggr(Se, n="count(*)", keep_all_rows=True)
    with pytest.raises(dj.DataJointError, match="attribute `colour`"):
        dj.U("colour") & Se


def test_union(filled):
    S, Note = filled.Subject, filled.Note
    keys = S.proj() + Note.proj(subject_id="note_id")
    assert key_set(keys) == [(1,), (2,), (3,)] and len(keys) == 3
    outer = (S & "subject_id = 1").proj("name") + (S & "subject_id = 3").proj("weight")
    rows = outer.fetch(order_by="KEY")  # DataJoint 0.14.10: [(1, 'ann', nan), (3, None, 310.0)]
    assert rows[["subject_id", "name"]].tolist() == [(1, "ann"), (3, None)] and np.isnan(rows["weight"][0])
    assert rows["weight"][1] == 310.0 and outer.heading.names == ["subject_id", "name", "weight"]
    both = (S.proj("name") + Note.proj("text", subject_id="note_id")).fetch(order_by="KEY")
    assert both.tolist() == [(1, "ann", "first"), (2, "bob", "orphan"), (3, "cid", None)]
    assert key_set(filled.Session & (S.proj() + Note.proj(subject_id="note_id"))) == key_set(filled.Session)
    with pytest.raises(dj.DataJointError, match="must share the same primary key"):
        S.proj("name") + filled.Session.proj()
    with pytest.raises(dj.DataJointError, match="must not share any secondary attributes"):
        S.proj("name") + S.proj("name")


def test_top(filled):
    S = filled.Subject
    top = S & dj.Top(2, "name DESC")
    assert len(top) == 2 and top.fetch("name").tolist() == ["cid", "bob"]  # in the Top's order
    assert (top & "subject_id < 3").fetch("name").tolist() == ["bob"]  # later restrictions see its rows only
    assert (S & "subject_id < 3" & dj.Top(1, "name DESC")).fetch1("name") == "bob"
    assert (S & dj.Top()).fetch(as_dict=True) == [{"subject_id": 1, "species": "mouse", "name": "ann",
                                                   "weight": 20.5}]
    assert (S & dj.Top(None, "KEY DESC", 1)).fetch("subject_id").tolist() == [2, 1]
    assert key_set(filled.Session & top) == [(2, 1), (3, 1)] and len(top * filled.Session) == 2
    assert sorted(top.proj("name").fetch("name").tolist()) == ["bob", "cid"]
    assert bool(top) and not (top & "subject_id > 3")
    # DataJoint 0.14.10's messages, word for word (its test_top_errors compares them whole)
    for inside in (["subject_id = 1", dj.Top()], ("subject_id = 1", dj.Top()),
                   dj.AndList(["subject_id = 1", dj.Top()])):
        with pytest.raises(dj.DataJointError) as e:
            S & inside
        assert str(e.value) == "Invalid restriction type Top(limit=1, order_by=['KEY'], offset=0)"
    for bad, message in ((dict(limit="1"), "Top limit must be an integer"),
                         (dict(order_by=1), "Top order_by attributes must all be strings"),
                         (dict(offset="1"), "The offset argument must be an integer")):
        with pytest.raises(TypeError) as e:
            S & dj.Top(**bad)
        assert str(e.value) == message


# ------------------------------------------------------------------ proj
def test_proj_keeps_the_key_and_the_named_attributes(filled):
    S = filled.Subject
    assert S.proj().heading.names == ["subject_id"]
    # in the heading's order, a renamed attribute in its place (DataJoint 0.14's answers)
    assert S.proj("weight", "name").heading.names == ["subject_id", "name", "weight"]
    assert S.proj("subject_id").heading.names == ["subject_id"]
    assert S.proj(...).heading.names == S.heading.names
    assert S.proj(..., animal="name").heading.names == ["subject_id", "species", "animal", "weight"]
    assert S.proj(..., "-weight").heading.names == ["subject_id", "species", "name"]
    assert S.proj(name="name").heading.names == ["subject_id", "name"]
    assert S.proj("name", name2="name").heading.names == ["subject_id", "name", "name2"]
    assert S.proj("name").fetch(order_by="KEY", as_dict=True)[2] == {"subject_id": 3, "name": "cid"}
    with pytest.raises(dj.QueryError, match="cannot leave out primary key attribute 'subject_id'"):
        S.proj("-subject_id")
    with pytest.raises(dj.QueryError, match="attribute `name` already exists"):
        S.proj("name", name="species")
    keys = (filled.Subject * filled.Session).proj()
    assert keys.heading.names == ["subject_id", "session"] and len(keys) == 4


def test_proj_renames(filled):
    S = filled.Subject
    renamed = S.proj(animal="name")
    assert (renamed & {"animal": "bob"}).fetch1("KEY") == {"subject_id": 2}
    assert renamed.fetch("animal", order_by="KEY").tolist() == ["ann", "bob", "cid"]
    assert len(renamed & {"name": "bob"}) == 3  # name is gone: the dict shares no attribute, restricts nothing
    assert S.proj(sid="subject_id").fetch("KEY", order_by="KEY") == [{"sid": 1}, {"sid": 2}, {"sid": 3}]
    swapped = S.proj(name="species", species="name")
    assert swapped.heading.names == ["subject_id", "name", "species"]
    assert swapped.fetch(order_by="KEY", as_dict=True)[0] == {"subject_id": 1, "name": "mouse", "species": "ann"}
    assert (renamed * filled.Session).fetch("animal", order_by="KEY").tolist() == ["ann", "ann", "bob", "cid"]
    # name="(attr)" copies: the original stays, and a copy of a key attribute is in the key too
    assert S.proj(a="(name)").heading.names == ["subject_id", "a"]
    copied = S.proj("name", sid="(subject_id)")
    assert copied.primary_key == ["subject_id", "sid"]
    assert copied.fetch(order_by="KEY", as_dict=True)[1] == {"subject_id": 2, "sid": 2, "name": "bob"}


def test_proj_computes(filled):
    S = filled.Subject
    doubled = S.proj(w2="weight * 2")
    assert doubled.fetch("w2", order_by="KEY").tolist() == [41.0, None, 620.0]
    assert (doubled & {"w2": 620.0}).fetch1("subject_id") == 3
    assert (doubled & "w2 > 100").fetch1("KEY") == {"subject_id": 3}
    assert S.proj(animal="name").proj(loud="UPPER(animal)").fetch("loud", order_by="KEY").tolist() == [
        "ANN", "BOB", "CID"]
    pct = (filled.Session * filled.Analysis).proj(pct="score * 100")
    assert pct.fetch("pct", order_by="KEY").tolist() == [50.0, 25.0, 100.0]


# ------------------------------------------------------------------ fetch
def test_fetch_shapes(filled):
    """DataJoint 0.14.10's answers on the same rows (checked against it on MariaDB)."""
    S = filled.Subject
    rows = S.fetch(order_by="KEY")
    assert isinstance(rows, np.ndarray)
    assert rows.dtype == np.dtype([("subject_id", "<i8"), ("species", "O"), ("name", "O"), ("weight", "<f8")])
    assert rows["name"].tolist() == ["ann", "bob", "cid"] and rows["subject_id"].tolist() == [1, 2, 3]
    assert rows[0].tolist() == (1, "mouse", "ann", 20.5) and np.isnan(rows[1]["weight"])  # NULL: NaN in a float
    assert np.isnan(rows["weight"].mean()) and np.nanmean(rows["weight"]) == 165.25  # code calls .mean() on it
    name = S.fetch("name", order_by="KEY")
    assert name.dtype == object and name.tolist() == ["ann", "bob", "cid"]
    both = S.fetch("name", "weight", order_by="KEY")
    assert isinstance(both, list) and both[0].tolist() == ["ann", "bob", "cid"] and both[1].dtype == np.float64
    assert both[1][[0, 2]].tolist() == [20.5, 310.0] and np.isnan(both[1][1])
    keys, names = S.fetch("KEY", "name", order_by="KEY")
    assert keys == [{"subject_id": 1}, {"subject_id": 2}, {"subject_id": 3}] and names.tolist() == ["ann", "bob", "cid"]
    assert S.fetch("name", "species", as_dict=True, order_by="KEY")[0] == {"species": "mouse", "name": "ann"}
    assert S.fetch("KEY", "name", as_dict=True, order_by="KEY")[2] == {"subject_id": 3, "name": "cid"}
    assert S.fetch(as_dict=True, order_by="KEY")[1] == {"subject_id": 2, "species": "mouse", "name": "bob",
                                                         "weight": None}
    assert S.keys(order_by="KEY") == S.fetch("KEY", order_by="KEY") == S.fetch(dj.key, order_by="KEY")
    empty = (S & False).fetch()
    assert empty.shape == (0,) and empty.dtype == rows.dtype
    none_name, none_weight = (S & False).fetch("name", "weight")
    assert none_name.dtype == object and none_weight.dtype == np.float64 and len(none_name) == 0
    notes = filled.Note.fetch(order_by="KEY")  # a nullable integer is an object column holding None
    assert notes.dtype["subject_id"] == np.dtype("O") and notes["subject_id"].tolist() == [1, None]
    with pytest.raises(dj.DataJointError, match="fetch names unknown attribute None"):
        S.fetch(None)
    with pytest.raises(dj.DataJointError, match="format= applies to fetch\\(\\) of whole rows only"):
        S.fetch("name", format="array")
    with pytest.raises(dj.DataJointError, match="format must be 'array' or 'frame'"):
        S.fetch(format="list")


def test_fetch_dtypes_of_every_kind(schema):
    """Integers that cannot be null are int64, floats float64, everything else an object column of the value
    DataJoint gives (Decimal, date, datetime, UUID, None, a blob's array or number), as DataJoint 0.14.10."""
    import datetime as dt
    import decimal
    import uuid

    @schema
    class Kinds(dj.Manual):
        definition = """
        k : int
        ---
        n = null : int
        d : decimal(5,2)
        day : date
        u : uuid
        b : longblob
        f : float
        t : datetime
        flag : bool
        """

    Kinds.insert([
        dict(k=1, n=None, d=decimal.Decimal("1.50"), day=dt.date(2020, 1, 2), u=uuid.UUID(int=5), b=np.arange(3),
             f=1.5, t=dt.datetime(2020, 1, 2, 3, 4, 5), flag=True),
        dict(k=2, n=7, d=decimal.Decimal("2.25"), day=dt.date(2021, 1, 2), u=uuid.UUID(int=6), b=5, f=2.5,
             t=dt.datetime(2021, 1, 2, 3, 4, 5), flag=False),
    ])
    rows = Kinds.fetch(order_by="KEY")
    assert [rows.dtype[n] for n in rows.dtype.names] == [np.dtype(t) for t in ("i8", "O", "O", "O", "O", "O", "f8",
                                                                               "O", "i8")]
    first = rows[0]
    assert first["n"] is None and first["d"] == decimal.Decimal("1.50") and first["day"] == dt.date(2020, 1, 2)
    assert first["u"] == uuid.UUID(int=5) and first["t"] == dt.datetime(2020, 1, 2, 3, 4, 5)
    assert isinstance(first["b"], np.ndarray) and first["b"].tolist() == [0, 1, 2] and rows[1]["b"] == 5
    assert rows["flag"].tolist() == [1, 0] and rows["f"].tolist() == [1.5, 2.5]
    blobs = Kinds.fetch("b", order_by="KEY")
    assert blobs.dtype == object and blobs.shape == (2,) and blobs[0].tolist() == [0, 1, 2]
    assert Kinds.fetch("n", order_by="KEY").tolist() == [None, 7]
    n, f = (Kinds & {"k": 1}).fetch1("n", "f")
    assert n is None and type(f) is np.float64 and f == 1.5
    assert (Kinds & {"k": 2}).fetch1("b") == 5
    assert (Kinds & {"k": 1}).fetch1()["b"].tolist() == [0, 1, 2]


def test_fetch_frame_needs_pandas_or_gives_a_frame(filled):
    S = filled.Subject
    try:
        import pandas
    except ImportError:
        with pytest.raises(dj.DataJointError, match="needs pandas, an optional dependency: pip install pandas"):
            S.fetch(format="frame")
        with dj.config(fetch_format="frame"), pytest.raises(dj.DataJointError, match="needs pandas"):
            S.fetch()
        with pytest.raises(dj.DataJointError, match="needs pandas"):
            S.to_pandas()
        return
    frame = S.fetch(format="frame", order_by="KEY")
    assert isinstance(frame, pandas.DataFrame) and frame.index.names == ["subject_id"]
    assert frame.loc[3, "name"] == "cid" and list(frame.columns) == ["species", "name", "weight"]
    with dj.config(fetch_format="frame"):
        assert isinstance(S.fetch(), pandas.DataFrame)
        assert S.fetch("KEY", order_by="KEY")[0] == {"subject_id": 1}  # the format is for whole rows only
    assert S.to_pandas(order_by="KEY").equals(frame)


def test_datajoint_2_spellings(filled):
    S = filled.Subject
    assert S.to_dicts(order_by="KEY") == S.fetch(as_dict=True, order_by="KEY")
    assert S.to_dicts(order_by="KEY", limit=1) == [{"subject_id": 1, "species": "mouse", "name": "ann",
                                                    "weight": 20.5}]
    whole = S.to_arrays(order_by="KEY")
    assert whole.dtype == S.fetch().dtype and whole["name"].tolist() == ["ann", "bob", "cid"]
    names, weights = S.to_arrays("name", "weight", order_by="KEY")
    assert isinstance(S.to_arrays("name", "weight"), tuple) and names.tolist() == ["ann", "bob", "cid"]
    keys, names = S.to_arrays("name", include_key=True, order_by="name DESC")
    assert keys == [{"subject_id": 3}, {"subject_id": 2}, {"subject_id": 1}] and names.tolist() == ["cid", "bob", "ann"]
    assert S.keys(order_by="KEY DESC", limit=2) == [{"subject_id": 3}, {"subject_id": 2}]


def test_head_and_tail(filled):
    S = filled.Subject
    assert S.head(2)["subject_id"].tolist() == [1, 2] and S.tail(2)["subject_id"].tolist() == [2, 3]
    assert S.head(2, as_dict=True)[1]["name"] == "bob" and S.tail(1, as_dict=True) == [
        {"subject_id": 3, "species": "rat", "name": "cid", "weight": 310.0}]


def test_fetch_order_by_limit_and_offset(filled):
    S = filled.Subject
    assert S.fetch("name", order_by="name DESC").tolist() == ["cid", "bob", "ann"]
    assert S.fetch("name", order_by="name desc").tolist() == ["cid", "bob", "ann"]
    assert S.fetch("name", order_by="weight DESC", limit=1).tolist() == ["cid"]  # by an attribute not fetched
    assert S.fetch("name", order_by=["species DESC", "name DESC"]).tolist() == ["cid", "bob", "ann"]
    assert (filled.Subject * filled.Session).fetch("session", order_by=["subject_id DESC", "session DESC"]).tolist() \
        == [1, 1, 2, 1]
    assert filled.Session.fetch("KEY", order_by="KEY", limit=2, offset=1) == [
        {"subject_id": 1, "session": 2}, {"subject_id": 2, "session": 1}]
    assert filled.Session.fetch("KEY", order_by="KEY DESC", limit=2) == [
        {"subject_id": 3, "session": 1}, {"subject_id": 2, "session": 1}]
    assert S.fetch("name", order_by="KEY", limit=10, offset=2).tolist() == ["cid"]
    assert len(S.fetch(limit=0)) == 3  # as DataJoint: a limit of 0 is no limit
    assert S.fetch("name", offset=1, order_by="KEY").tolist() == ["bob", "cid"]  # an offset alone skips rows
    assert S.fetch("name", limit=2).tolist() == ["ann", "bob"]  # a limit alone takes them in key order
    with pytest.raises(dj.QueryError, match="order_by names unknown attribute 'colour'"):
        S.fetch(order_by="colour")


def test_fetch1(filled):
    S = filled.Subject
    assert (S & {"subject_id": 3}).fetch1() == {"subject_id": 3, "species": "rat", "name": "cid", "weight": 310.0}
    assert (S & {"subject_id": 3}).fetch1("name", "species") == ("cid", "rat")
    assert ((S * filled.Session) & {"subject_id": 3}).fetch1("KEY") == {"subject_id": 3, "session": 1}
    assert type((S & {"subject_id": 3}).fetch1("subject_id")) is np.int64  # a value of an int64 column
    assert (S & {"subject_id": 3}).fetch1("weight") == 310.0 and np.isnan((S & {"subject_id": 2}).fetch1("weight"))
    with pytest.raises(dj.MissingError, match="no row"):
        (S & {"subject_id": 9}).fetch1()
    with pytest.raises(dj.MissingError, match="more than one row"):
        (S & {"species": "mouse"}).fetch1("name")


# ------------------------------------------------------------------ len, in, iteration, repr
def counting_cases(p):
    """(query, rows it has) for a table and each kind of operation."""
    S, Se = p.Subject, p.Session
    return [
        (S(), 3),
        (S & {"species": "mouse"}, 2),
        (S * Se, 4),
        ((S * Se) & "rig = 'A'", 2),
        (S.proj(animal="name") & "animal > 'b'", 2),
        (S.proj(w2="weight * 2") & "w2 > 100", 1),
        (Se - p.Analysis, 1),
        (Se & p.Analysis.Unit, 3),
        (S & dj.SQL("name <> %s", ("bob",)), 2),
    ]


def test_len_and_count_sql_count_the_rows(filled):
    for query, n in counting_cases(filled):
        sql, params = query.count_sql()
        assert len(query) == len(query.fetch()) == n
        assert query.connection.query(sql, params).fetchone()[0] == n, sql


def test_select_sql_is_what_fetch_runs(filled):
    S, Se, An = filled.Subject, filled.Session, filled.Analysis
    cases = [
        (S(), None, "KEY", None, None),
        (Se * An, ["rig", "score"], "score DESC", 2, 1),
        (S.proj(w2="weight * 2"), ["w2"], "w2", None, None),
        (S & dj.SQL("name <> %s", ("bob",)), ["name"], "name", 1, 1),
        ((S * Se) & {"rig": "A"}, None, ["subject_id DESC"], None, None),
    ]
    for query, names, order_by, limit, offset in cases:
        sql, params = query.select_sql(names, order_by=order_by, limit=limit, offset=offset)
        rows = query.connection.query(sql, params).fetchall()
        decoded = query.decode_rows(rows, names or query.heading.names)
        fetched = query.fetch(*(names or []), as_dict=True, order_by=order_by, limit=limit, offset=offset)
        assert decoded == fetched and decoded, sql
    sql, params = S().select_sql(offset=1)  # as DataJoint: an offset alone has a limit that holds every row
    assert len(query.connection.query(sql, params).fetchall()) == 2


def test_make_sql_and_as_subquery(filled):
    q = (filled.Subject & {"species": "mouse"}) * filled.Session
    sql, params = q.make_sql(["name"])
    assert sorted(r[0] for r in q.connection.query(sql, params).fetchall()) == ["ann", "ann", "bob"]
    wrapped = q.as_subquery()
    assert wrapped.heading.names == q.heading.names
    assert wrapped.fetch(order_by="KEY", as_dict=True) == q.fetch(order_by="KEY", as_dict=True)
    assert key_set(wrapped & "rig = 'B'") == [(1, 2)]
    a = filled.Session & {"rig": "A"}
    assert len(a.as_subquery() @ a) == 2


def test_in(filled):
    S = filled.Subject
    assert {"subject_id": 2} in S and {"subject_id": 9} not in S
    assert "weight > 300" in S and "weight > 400" not in S
    assert {"subject_id": 1, "session": 2} in S * filled.Session
    assert {"subject_id": 2, "session": 2} not in S * filled.Session
    assert {"animal": "bob"} in S.proj(animal="name")
    assert (filled.Session & {"rig": "C"}) in S and (filled.Session & {"rig": "Z"}) not in S
    assert {"subject_id": 1} not in S & False


def test_iteration_gives_the_rows(filled):
    S = filled.Subject
    assert sorted(S, key=lambda r: r["subject_id"]) == S.fetch(order_by="KEY", as_dict=True)
    assert all(type(r) is dict for r in S)
    assert sorted(r["session"] for r in filled.Session & {"subject_id": 1}) == [1, 2]
    assert list(S & False) == []


def test_repr_shows_rows_and_never_raises(filled):
    lines = repr(filled.Analysis.Unit()).splitlines()
    assert lines[0] == "*subject_id  *session  *unit  rate" and lines[-1] == " (4 tuples)"
    assert sorted(lines[1:-1]) == ["1  1  1  3.0", "1  1  2  4.0", "1  2  1  5.0", "2  1  1  6.0"]
    filled.Subject.insert([(i, "rat", "n" * 30 if i == 12 else f"r{i}", None) for i in range(4, 13)])
    lines = repr(filled.Subject()).splitlines()
    assert len(lines) == 1 + 10 + 2 and lines[-2:] == ["...", " (12 tuples)"]
    assert repr(filled.Subject & {"subject_id": 12}).splitlines()[1] == "12  rat  " + "n" * 21 + "...  None"
    assert repr(filled.Subject & "no_such_column = 1") == "<Subject>"


def test_repr_html_is_the_preview_as_a_table(filled):
    """Jupyter shows DataJoint's _repr_html_: a style block, then the rows; values escaped."""
    filled.Note.insert1({"note_id": 3, "text": "<b>&</b>"})
    page = filled.Note()._repr_html_()
    assert page.startswith("<style") and "<th class=\"primary_key\"" in page and "&lt;b&gt;&amp;&lt;/b&gt;" in page
    assert page.count("<tr>") == 1 + 3 and "<p>Total: 3</p>" in page
    assert "=BLOB=" not in page and (filled.Subject & "subject_id > 5")._repr_html_().count("<tr>") == 1


def test_preview_is_laid_out_as_datajoint_lays_it_out(filled):
    """The strings DataJoint 0.14.10 gives for the same rows (display.limit 2; then limit=5, width=8)."""
    with dj.config(display__limit=2):
        assert filled.Subject().preview() == (
            "*subject_id    species     name     weight    \n+------------+ +---------+ +------+ +--------+\n"
            "1              mouse       ann      20.5      \n2              mouse       bob      nan       \n"
            "   ...\n (Total: 3)\n")
        assert filled.Session.proj(r="rig").preview() == (
            "*subject_id    *session    r    \n+------------+ +---------+ +---+\n1              1           A    \n"
            "1              2           B    \n   ...\n (Total: 4)\n")
    assert filled.Subject().preview(limit=5, width=8) == (
        "*subject species  name     weight  \n+------+ +------+ +------+ +------+\n"
        "1        mouse    ann      20.5    \n2        mouse    bob      nan     \n"
        "3        rat      cid      310.0   \n (Total: 3)\n")


# ------------------------------------------------------------------ key_range
def test_key_range_pages_by_key(filled):
    Se, key = filled.Session(), ["subject_id", "session"]
    first = {"subject_id": 1, "session": 1}
    assert key_set(Se.key_range(key, after=first)) == [(1, 2), (2, 1), (3, 1)]
    assert key_set(Se.key_range(key, after=first, after_inclusive=True)) == [(1, 1), (1, 2), (2, 1), (3, 1)]
    assert key_set(Se.key_range(key, after=first, before={"subject_id": 3, "session": 1})) == [(1, 2), (2, 1)]
    assert key_set(Se.key_range(key, after={"subject_id": 2, "session": 1}, descending=True)) == [(1, 1), (1, 2)]
    assert key_set(Se.key_range(key)) == key_set(Se)
    assert key_set((Se & {"rig": "A"}).key_range(key, after=first)) == [(2, 1)]
    assert key_set((filled.Subject * Se).key_range(key, after={"subject_id": 1, "session": 2})) == [(2, 1), (3, 1)]
    assert key_set(filled.Subject().key_range(["subject_id"], before={"subject_id": 3})) == [(1,), (2,)]


# ------------------------------------------------------------------ SQL strings with joins and lists (were xfails)
@pytest.mark.parametrize("side", ["left", "right"])
def test_join_after_a_string_restriction_on_a_shared_attribute(filled, side):
    first_sessions = filled.Session & "session = 1"
    joined = first_sessions * filled.Analysis if side == "left" else filled.Analysis * first_sessions
    assert key_set(joined) == [(1, 1), (2, 1)]


@pytest.mark.parametrize("operand", ["join", "renamed"])
def test_andlist_with_a_condition_before_an_sql_string(filled, operand):
    if operand == "join":
        query, conditions, expected = filled.Subject * filled.Session, [{"rig": "A"}, "weight IS NULL"], [(2, 1)]
    else:
        query, conditions, expected = filled.Subject.proj(animal="name"), [{"animal": "bob"}, "subject_id > 1"], [(2,)]
    assert key_set(query & dj.AndList(conditions)) == expected


def test_sql_strings_nested_in_lists_on_joins(filled):
    joined = filled.Subject * filled.Session
    assert key_set(joined & dj.AndList([{"rig": "A"}, ["weight IS NULL", {"subject_id": 1}]])) == [(1, 1), (2, 1)]
    assert key_set(joined & [{"rig": "C"}, dj.AndList([{"rig": "A"}, "weight > 20"])]) == [(1, 1), (3, 1)]
    assert key_set(joined & [{"rig": "C"}, dj.SQL("rig = %s", ("B",))]) == [(1, 2), (3, 1)]
    # an operand restricted by a string, projected or joined again, still joins by its key
    first = (filled.Session & "session = 1").proj()
    assert key_set(first * filled.Analysis * filled.Subject) == [(1, 1), (2, 1)]
    assert key_set(filled.Analysis * (filled.Subject & "subject_id < 3") & "session = 2") == [(1, 2)]


@pytest.mark.parametrize("negation", ["minus", "not"])
def test_negated_andlist_with_a_condition_before_an_sql_string(filled, negation):
    joined, conditions = filled.Subject * filled.Session, dj.AndList([False, "weight IS NULL"])
    result = joined - conditions if negation == "minus" else joined & dj.Not(conditions)
    assert len(result) == 4


def test_literal_percent_in_a_string_restriction(filled):
    """A literal % in an SQL string, with or without parameters elsewhere in the statement (PyMySQL %-formats
    only statements with parameters), alone, negated, in an OR-list, after a join."""
    S = filled.Subject
    assert (S & "name LIKE 'a%'").fetch("name").tolist() == ["ann"]
    assert ((S & {"species": "mouse"}) & "name LIKE 'b%'").fetch("name").tolist() == ["bob"]
    assert "name LIKE 'b%'" in (S & {"species": "mouse"})
    assert "name LIKE 'c%'" not in (S & {"species": "mouse"})
    assert (S - "name LIKE '%n%'").fetch("name", order_by="name").tolist() == ["bob", "cid"]
    assert len(S & "name LIKE '%%'") == 3
    assert key_set(S & ["name LIKE 'a%'", {"subject_id": 3}]) == [(1,), (3,)]
    assert key_set((S * filled.Session) & "rig LIKE 'A%'" & {"species": "mouse"}) == [(1, 1), (2, 1)]
    assert len(S & "name = 'a%'") == 0 and len(S & "subject_id % 2 = 1") == 2
