"""The ~log table (DataJoint's ``schema.log``, djhpc/tables.py Log) on both backends: a row per declared table,
``log(event)`` adds one, ``delete()`` asks nothing; restricted as in DataJoint's suite (``like "Declared%%"``)."""

from __future__ import annotations

import djhpc as dj


def test_declares_are_logged(schema):
    @schema
    class Subject(dj.Manual):
        definition = "subject : int\n"

    @schema
    class Session(dj.Manual):
        definition = "-> Subject\nsession : int\n"

    events = (schema.log & 'event like "Declared%%"').fetch("event", order_by="id")
    assert list(events) == [f"Declared {Subject.full_table_name}", f"Declared {Session.full_table_name}"]
    row = schema.log.fetch(as_dict=True, order_by="id")[0]
    assert row["version"].startswith("djhpc") and row["user"] and row["timestamp"] is not None
    schema.log("a note")
    assert schema.log.fetch("event", order_by="id")[-1] == "a note"
    assert len(schema.log) == 3
    schema.log("skipped", skip_logging=True)
    assert len(schema.log) == 3
    assert schema.log.delete() == 3 and len(schema.log) == 0
    assert "~log" in schema.table_names() and "~log" not in schema.list_tables()  # DataJoint lists no ~ tables


def test_a_table_that_exists_is_not_logged_again(schema, db):
    @schema
    class Subject(dj.Manual):
        definition = "subject : int\n"

    again = dj.Schema(schema.database, connection=db)

    @again
    class Subject(dj.Manual):  # noqa: F811 (the same table, declared by another schema object)
        definition = "subject : int\n"

    assert len(again.log) == 1
