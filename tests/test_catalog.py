"""Tables read back from the catalog (djhpc/catalog.py): dj.FreeTable, dj.VirtualModule, spawn_missing_classes,
dj.list_schemas, schema.code, on both backends."""

from __future__ import annotations

import types

import pytest

import djhpc as dj


def test_free_table_reads_the_heading(filled):
    p = filled
    free = dj.FreeTable(p.Subject.connection, p.Subject.full_table_name)
    assert repr(free).startswith("FreeTable(") and p.Subject.full_table_name in repr(free)
    assert free.heading.names == p.Subject.heading.names and free.primary_key == ["subject_id"]
    assert sorted((free & {"species": "mouse"}).fetch("subject_id").tolist()) == [1, 2]
    with pytest.raises(dj.errors.MissingTableError, match="does not exist"):
        dj.FreeTable(p.Subject.connection, p.Subject.full_table_name.replace("subject", "nothing"))
    with pytest.raises(dj.UsageError, match="takes a connection first"):
        dj.FreeTable(p.Subject.full_table_name, "x")


def test_virtual_module_and_spawned_classes(filled, schema):
    p = filled
    module = dj.VirtualModule("lab", schema.database, connection=p.Subject.connection)
    assert issubclass(module.Subject, dj.Manual) and issubclass(module.Species, dj.Lookup)
    assert issubclass(module.Analysis, dj.Computed) and issubclass(module.Analysis.Unit, dj.Part)
    assert module.Analysis.Unit.master is module.Analysis
    assert len(module.Session & {"subject_id": 1}) == 2
    assert module.schema.database == schema.database
    context = {}
    schema.spawn_missing_classes(context=context)
    assert {"Species", "Subject", "Session", "Analysis", "Note"} <= set(context)
    assert schema.database in dj.list_schemas(p.Subject.connection)


def test_schema_code_declares_each_table(filled, schema):
    code = schema.code
    assert "class Subject(dj.Manual)" in code and "class Analysis(dj.Computed)" in code
    assert "    class Unit(dj.Part)" in code and "-> Species" in code
    module = types.ModuleType("saved")
    compile(code, "saved.py", "exec")  # valid Python
    del module


def test_a_class_whose_table_exists_takes_it_as_it_is(filled, schema):
    class Session(dj.Manual):
        definition = "# no attributes written: the table exists\n"

    schema(Session)
    assert Session.heading.names == filled.Session.heading.names
    assert len(Session()) == 4

    class Missing(dj.Manual):
        definitions = "id : int\n"  # misspelt

    with pytest.raises(NotImplementedError, match="no definition"):
        schema(Missing)
