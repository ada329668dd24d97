"""``dj.Schema()`` without a name, then ``schema.activate(...)``, as every DataJoint Element starts (issue 14), on
both backends, with what DataJoint 0.14.10 was seen to do on MariaDB: tables decorated before activation are
declared by it, with the names of ``add_objects``; ``create_schema=False`` on a missing schema is an error;
activating again with the same name does nothing, with another name is an error."""

from __future__ import annotations

import sys
import types
import uuid

import pytest

import djhpc as dj


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


@pytest.fixture
def other_name(db):
    """A second fresh schema name, dropped after the test."""
    name = "djhpc_test_" + uuid.uuid4().hex[:10]
    yield name
    if not db.is_sqlite:
        db.reconnect()
        db.query(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def upstream(schema):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject : varchar(8)
        """

    Subject.insert([("ann",), ("bob",)])
    return Subject


def element():
    """An Element's module body: a schema without a name and its tables, which reference an upstream
    ``Subject`` they do not define (the pipeline links it in at activation)."""
    schema = dj.Schema()

    @schema
    class Task(dj.Lookup):
        definition = """
        task : varchar(8)
        """
        contents = [("rest",), ("reach",)]

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int
        ---
        -> Task
        """

        class Epoch(dj.Part):
            definition = """
            -> master
            epoch : int
            """

    return schema, Task, Session


def test_a_schema_without_a_name_waits_for_activate(db, upstream, other_name):
    schema, Task, Session = element()
    assert not schema.is_activated() and schema.database is None
    with pytest.raises(dj.UsageError, match="is not declared"):
        len(Session())  # nothing is declared before activation (an instance may be made, as in DataJoint)
    assert schema.drop(force=True) is None  # nothing to drop (a teardown after a failed activate must not fail)
    for use in (lambda: schema.jobs, schema.list_tables, schema.activate):
        with pytest.raises(dj.UsageError, match=r"not activated yet; call schema.activate\('schema_name'\)") as e:
            use()
        one_line(e.value)

    schema.activate(
        other_name, connection=db, create_schema=True, create_tables=True, add_objects={"Subject": upstream}
    )
    assert schema.is_activated() and schema.database == other_name
    assert schema.list_tables() == ["#task", "session", "session__epoch"]
    assert Task.fetch("task", order_by="task").tolist() == ["reach", "rest"]  # Lookup contents are inserted then
    Session.insert1(("ann", 1, "rest"))
    Session.Epoch.insert1(("ann", 1, 0))
    assert (Session * upstream * Session.Epoch).fetch1("epoch") == 0
    with pytest.raises(dj.DataError):
        Session.insert1(("zed", 1, "rest"))  # the upstream reference is a foreign key
    assert not schema.jobs

    schema.activate(other_name)  # the same name again: nothing happens
    schema.activate()  # without a name: checks that it is activated
    with pytest.raises(dj.UsageError, match=f"already activated for '{other_name}'") as e:
        schema.activate(other_name + "x")
    one_line(e.value)

    @schema  # after activation a table is declared at once
    class Note(dj.Manual):
        definition = """
        -> Session
        ---
        text : varchar(32)
        """

    assert "note" in schema.list_tables() and Note.primary_key == ["subject", "session"]


def test_create_schema_false_on_a_missing_schema(db, upstream, other_name):
    schema, _, Session = element()
    with pytest.raises(dj.UsageError, match=f"schema '{other_name}' does not exist: pass create_schema=True") as e:
        schema.activate(other_name, connection=db, create_schema=False, add_objects={"Subject": upstream})
    one_line(e.value)
    assert not schema.is_activated()
    schema.activate(other_name, create_schema=True)  # it may be tried again, add_objects kept
    assert Session.heading.primary_key == ["subject", "session"]


def test_an_existing_schema_is_linked_without_creating(db, upstream, other_name):
    first, _, Session = element()
    first.activate(other_name, connection=db, add_objects={"Subject": upstream})
    Session.insert1(("bob", 2, "reach"))
    # another program (an analysis notebook) links the same tables, creating nothing
    second, _, Again = element()
    second.activate(
        other_name, connection=db, create_schema=False, create_tables=False, add_objects={"Subject": upstream}
    )
    assert Again.fetch1("KEY") == {"subject": "bob", "session": 2}


def test_linking_module(db, upstream, other_name, monkeypatch):
    pipeline = types.ModuleType("lab_pipeline")
    pipeline.Subject = upstream
    monkeypatch.setitem(sys.modules, "lab_pipeline", pipeline)
    schema, _, Session = element()
    for wrong, message in (
        (42, "linking_module must be a module or a module's name, not int"),
        ("no_such_pipeline_module", "linking_module 'no_such_pipeline_module' cannot be imported"),
    ):
        with pytest.raises(dj.UsageError, match=message) as e:
            schema.activate(other_name, connection=db, linking_module=wrong)
        one_line(e.value)
        assert not schema.is_activated()
    schema.activate(other_name, connection=db, linking_module="lab_pipeline")
    assert Session.heading.primary_key == ["subject", "session"]


def test_a_missing_reference_at_activation_is_a_definition_error(db, other_name):
    schema, _, _ = element()
    with pytest.raises(dj.DefinitionError, match="no table named Subject") as e:
        schema.activate(other_name, connection=db)
    one_line(e.value)


def test_a_part_decorated_alone_is_refused_before_activation(db):
    schema = dj.Schema()

    class Lonely(dj.Part):
        definition = "x : int\n"

    with pytest.raises(dj.DefinitionError, match="must be declared inside its master class"):
        schema(Lonely)
    with pytest.raises(dj.UsageError, match="schema name '1bad' is not valid"):
        schema.activate("1bad", connection=db)


def test_schema_function_without_a_name(db, other_name):
    schema = dj.schema()
    assert not schema.is_activated()
    schema.activate(other_name, connection=db)
    assert schema.list_tables() == [] and schema.database == other_name


def test_activate_where_the_user_may_not_create_the_schema(mysql_user, mysql_schema):
    """DataJoint 0.14.10: 'Schema `x` does not exist and could not be created. Check permissions.'"""
    url, _ = mysql_user
    connection = dj.Connection(url)
    try:
        schema = dj.Schema()
        with pytest.raises(dj.UsageError, match="'unauthorized_h14' does not exist and this user may not create") as e:
            schema.activate("unauthorized_h14", connection=connection)
        one_line(e.value)
        assert not schema.is_activated()
        schema.activate(mysql_schema)  # the one it may use
        assert schema.list_tables() == []
    finally:
        connection.close()


def test_a_user_who_may_only_read_declares_classes_of_missing_tables(mysql_schema, caplog):
    """DataJoint 0.14.10 skips a CREATE TABLE the server denies (so that a read-only user imports the pipeline's
    module); using the missing table then fails on the server's refusal."""
    from support.cluster import root_query

    from djhpc.errors import DjhpcError

    root_query(f"CREATE DATABASE `{mysql_schema}`")
    root_query(f"CREATE TABLE `{mysql_schema}`.`present` (id INT PRIMARY KEY)")
    root_query(f"INSERT INTO `{mysql_schema}`.`present` VALUES (1)")
    user, password = "djhpc_r_" + uuid.uuid4().hex[:8], "pw-" + uuid.uuid4().hex
    root_query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    root_query(f"GRANT SELECT ON `{mysql_schema}`.* TO '{user}'@'%'")
    connection = dj.Connection("127.0.0.1", user, password)
    try:
        schema = dj.Schema(mysql_schema, connection=connection)

        @schema
        class Present(dj.Manual):
            definition = "id : int\n"

        @schema
        class Missing(dj.Manual):
            definition = "id : int\n---\nvalue : float\n"

        assert Present.fetch("id").tolist() == [1]
        assert "Missing not created: this user may not create tables" in caplog.text
        with pytest.raises(DjhpcError) as e:
            Missing.insert1((1, 1.5))
        one_line(e.value)
    finally:
        connection.close()
        root_query(f"DROP USER IF EXISTS '{user}'@'%'")
