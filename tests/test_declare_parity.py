"""Declarations DataJoint 0.14 accepts (issue 14), on both backends: ``int auto_increment``, True/False into an
integer, a part referencing a sibling part (``-> Master.Part``, ``-> master.Part``), ``-> self.attr``; and the wrong
forms of each refused with a one-line error that leaves no table behind."""

from __future__ import annotations

import numpy as np
import pytest

import djhpc as dj


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


def tables_of(schema) -> list[str]:
    return [t for t in schema.list_tables() if not t.startswith("~")]


# ------------------------------------------------------------------ auto_increment
def test_auto_increment_numbers_rows_inserted_without_it(schema):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int unsigned auto_increment
        ---
        name : varchar(16)
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int
        """

    # DataJoint 0.14.10 on MariaDB: two inserts without the attribute get 1 and 2
    Subject.insert1({"name": "ann"})
    Subject.insert([{"name": "bob"}, {"name": "cid"}])
    ids, names = Subject.fetch("subject_id", "name", order_by="subject_id")
    assert ids.tolist() == [1, 2, 3] and names.tolist() == ["ann", "bob", "cid"]
    Subject.insert1({"subject_id": 10, "name": "dan"})  # an explicit number is kept, and numbering goes on after it
    Subject.insert1({"name": "eve"})
    assert (Subject & {"name": "eve"}).fetch1("subject_id") == 11
    (Subject & {"subject_id": 11}).delete_quick()
    Subject.insert1({"name": "fay"})  # a number is never given twice, as MySQL does not
    assert (Subject & {"name": "fay"}).fetch1("subject_id") == 12
    assert "subject_id : int unsigned auto_increment" in Subject.describe()
    # the child copies the key, not the numbering: its subject_id is a plain reference
    assert not Session.heading["subject_id"].auto_increment and Session.heading["subject_id"].type == "int unsigned"
    Session.insert1({"subject_id": 2, "session": 1})
    with pytest.raises(dj.DataError):
        Session.insert1({"subject_id": 99, "session": 1})
    assert (Subject * Session).fetch1("name") == "bob"


def test_auto_increment_first_of_a_composite_key_on_mysql(schema, db):
    class Event(dj.Manual):
        definition = """
        event_id : bigint auto_increment
        kind : varchar(8)
        """

    if db.is_sqlite:
        with pytest.raises(dj.DefinitionError, match="on SQLite make it the whole primary key") as e:
            schema(Event)
        one_line(e.value)
        assert tables_of(schema) == []
        return
    schema(Event)
    Event.insert([{"kind": "a"}, {"kind": "b"}])
    assert Event.fetch("event_id", order_by="event_id").tolist() == [1, 2]


def test_a_lookup_with_an_auto_increment_key_does_not_insert_its_contents(schema, caplog):
    """DataJoint 0.14.10 warns and inserts nothing: rows without the key would be added at every import."""

    @schema
    class Label(dj.Lookup):
        definition = """
        label_id : int auto_increment
        ---
        label : varchar(8)
        """
        contents = [{"label": "a"}, {"label": "b"}]

    assert len(Label()) == 0
    assert "contents has rows the table lacks, but are not inserted" in caplog.text


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            "id : varchar(8) auto_increment\n",
            "auto_increment in line 'id : varchar(8) auto_increment' needs an integer",
        ),
        ("id : double auto_increment\n", "needs an integer type"),
        ("id : int\n---\nn : int auto_increment\n", "'n' must be the first attribute of the primary key"),
        ("k : int\nid : int auto_increment\n", "'id' must be the first attribute of the primary key"),
        ("id : int auto_increment\nid2 : int auto_increment\n", "two auto_increment attributes ('id', 'id2')"),
        ("id = 3 : int auto_increment\n", "'id' cannot have a default"),
    ],
)
def test_auto_increment_in_the_wrong_place_is_refused(schema, definition, message):
    class Wrong(dj.Manual):
        pass

    Wrong.definition = definition
    with pytest.raises(dj.DefinitionError) as e:
        schema(Wrong)
    assert message in one_line(e.value)
    assert tables_of(schema) == []


# ------------------------------------------------------------------ True/False into integers
def test_true_and_false_into_integers(schema):
    @schema
    class Flags(dj.Manual):
        definition = """
        id : int
        ---
        t : tinyint
        u : tinyint unsigned
        n = 0 : int
        """

    # DataJoint 0.14.10 on MariaDB: insert1(dict(t=True, ...)) fetches t=1, t=False fetches 0
    Flags.insert1({"id": 1, "t": True, "u": False, "n": np.True_})
    Flags.insert1((2, False, True, False))
    assert Flags.fetch(as_dict=True, order_by="id") == [
        {"id": 1, "t": 1, "u": 0, "n": 1},
        {"id": 2, "t": 0, "u": 1, "n": 0},
    ]
    assert all(type(v) is int for row in Flags.fetch(as_dict=True) for v in row.values())
    assert (Flags & {"t": True}).fetch1("id") == 1 and (Flags & {"u": True}).fetch1("id") == 2
    with pytest.raises(dj.DataError, match="expected an integer") as e:
        Flags.insert1((3, "yes", 0, 0))
    one_line(e.value)
    assert len(Flags()) == 2


def test_bool_is_a_type(schema):
    @schema
    class Switch(dj.Manual):
        definition = """
        id : int
        ---
        on : bool
        off = false : boolean
        """

    Switch.insert1({"id": 1, "on": True})
    Switch.insert1({"id": 2, "on": 0})
    assert [a.tolist() for a in Switch.fetch("on", "off", order_by="id")] == [[True, False], [False, False]]
    assert (Switch & {"on": True}).fetch1("id") == 1
    with pytest.raises(dj.DataError, match="expected True or False"):
        Switch.insert1({"id": 3, "on": 2})


# ------------------------------------------------------------------ parts referencing parts, -> self.attr
def test_a_part_references_a_sibling_part(schema):
    @schema
    class Probe(dj.Manual):
        definition = """
        probe : varchar(8)
        """

        class Shank(dj.Part):
            definition = """
            -> master
            shank : int
            """

        class Electrode(dj.Part):
            definition = """
            -> Probe.Shank
            electrode : int
            """

        class Channel(dj.Part):
            definition = """
            -> master.Electrode
            channel : int
            ---
            -> [nullable] master.Shank.proj(other_shank='shank')
            """

    assert Probe.Electrode.primary_key == ["probe", "shank", "electrode"]
    assert Probe.Channel.primary_key == ["probe", "shank", "electrode", "channel"]
    Probe.insert1(("p1",))
    Probe.Shank.insert([("p1", 0), ("p1", 1)])
    Probe.Electrode.insert1(("p1", 1, 7))
    Probe.Channel.insert1({"probe": "p1", "shank": 1, "electrode": 7, "channel": 3, "other_shank": 0})
    with pytest.raises(dj.DataError):  # the sibling reference is a foreign key
        Probe.Electrode.insert1(("p1", 2, 7))
    assert (Probe.Channel * Probe.Electrode).fetch1("channel") == 3
    assert "-> Probe.Shank" in Probe.Electrode.describe()
    # the cascade follows it: deleting a shank deletes its electrodes and their channels (a part alone: force)
    with pytest.raises(dj.UsageError, match="cannot delete from part table Shank alone"):
        (Probe.Shank & {"shank": 1}).delete(safemode=False)
    (Probe.Shank & {"shank": 1}).delete(force=True, safemode=False)
    assert len(Probe.Electrode()) == len(Probe.Channel()) == 0 and len(Probe.Shank()) == 1


def test_self_attr_references_a_table_held_by_the_class(schema):
    @schema
    class Device(dj.Lookup):
        definition = """
        device : varchar(8)
        """
        contents = [("rig1",), ("rig2",)]

    @schema
    class Recording(dj.Manual):
        source = Device  # an Element's linking: the upstream table is an attribute of the class

        definition = """
        recording : int
        ---
        -> self.source
        """

        class Trace(dj.Part):
            origin = Device

            definition = """
            -> master
            trace : int
            ---
            -> self.origin.proj(trace_device='device')
            """

    Recording.insert1((1, "rig2"))
    Recording.Trace.insert1((1, 1, "rig1"))
    assert (Recording * Device).fetch1("device") == "rig2"
    with pytest.raises(dj.DataError):
        Recording.insert1((2, "rig9"))


@pytest.mark.parametrize(
    ("part_reference", "message"),
    [
        ("-> Probe.Missing", "no table named Probe.Missing"),
        ("-> master.Missing", "no table named master.Missing"),
        ("-> Probe.Later", "Probe.Later is not declared in a schema yet"),
        ("-> self.nothing", "no table named self.nothing"),
    ],
)
def test_a_wrong_sibling_reference_is_refused_and_nothing_is_created(schema, part_reference, message):
    class Probe(dj.Manual):
        definition = """
        probe : varchar(8)
        """

        class Shank(dj.Part):
            definition = f"""
            -> master
            shank : int
            ---
            {part_reference}
            """

        class Later(dj.Part):
            definition = """
            -> master
            later : int
            """

    with pytest.raises(dj.DefinitionError) as e:
        schema(Probe)
    assert message in one_line(e.value) and "Shank" in str(e.value)
    assert tables_of(schema) == []


class Keyed(dj.Manual):
    """A master written once, with its upstream table left to its subclasses (DataJoint's test_schema_keywords)."""

    source = None
    definition = """
    -> self.source
    b_id : int
    """

    class H(dj.Part):
        definition = """
        -> master
        name : varchar(16)
        """

    class C(dj.Part):
        definition = """
        -> master
        -> master.H
        """


def test_a_subclass_of_a_master_declares_its_inherited_parts(schema):
    @schema
    class A(dj.Manual):
        definition = """
        a_id : int
        """

    @schema
    class D(Keyed):
        source = A

    # DataJoint 0.14.10: D's heading and D.C's have a_id, b_id (and D.C name)
    assert D.heading.names == ["a_id", "b_id"]
    assert D.C.heading.names == ["a_id", "b_id", "name"] and D.C().table_name == "d__c"
    assert "d__h" in schema.list_tables()
    A.insert1((1,))
    D.insert1((1, 7))
    D.H.insert1((1, 7, "x"))
    D.C.insert1((1, 7, "x"))
    assert D.C.fetch1("KEY") == {"a_id": 1, "b_id": 7, "name": "x"}
