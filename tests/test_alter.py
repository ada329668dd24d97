"""table.alter() (djhpc/tables.py, declare.alter_clauses) on both backends: MariaDB changes the secondary
attributes and the comment in place and restores SHOW CREATE TABLE exactly, as DataJoint 0.14's alter does
(its suite's test_alter); SQLite refuses column changes with one line; the key, references and indexes stay."""

from __future__ import annotations

import pytest

import djhpc as dj


def one_line(error: BaseException):
    assert "\n" not in str(error), str(error)

ORIGINAL = """  # a session
-> Subject
session : smallint  # number
---
started : date  # when
-> [nullable] User
path = "" : varchar(255)  # data file
notes = "" : varchar(2048)  # purpose
"""
CHANGED = """  # a recording session
-> Subject
session : smallint  # number
---
path : int  # some number
extra = null : longblob  # added
-> [nullable] User
subject_notes = null : varchar(2048)  # {notes} renamed
"""


@pytest.fixture
def tables(schema):
    @schema
    class Subject(dj.Manual):
        definition = "subject : int\n"

    @schema
    class User(dj.Lookup):
        definition = "user : varchar(16)\n"
        contents = [("ann",)]

    @schema
    class Session(dj.Manual):
        definition = ORIGINAL

    Subject.insert1((1,))
    Session.insert1(dict(subject=1, session=2, started="2024-01-02", user="ann", path="12",
                         notes="first"))
    return Subject, User, Session


def create_text(table) -> str:
    return table.connection.query(f"SHOW CREATE TABLE {table.full_table_name}").fetchone()[1]


def test_alter_changes_attributes_and_restores_exactly(tables, backend, caplog):
    Subject, User, Session = tables
    if backend.startswith("sqlite"):
        return sqlite_alter(Session, caplog, {"Subject": Subject, "User": User})
    original = create_text(Session)
    Session.definition = CHANGED
    Session.alter(prompt=False)
    altered = create_text(Session)
    assert "`extra` longblob" in altered and "`started`" not in altered and "`subject_notes`" in altered
    assert "COMMENT='a recording session'" in altered
    assert Session.heading.names == ["subject", "session", "path", "extra", "user", "subject_notes"]
    assert Session.fetch1("subject_notes") == "first"  # renamed, its values kept
    assert [e for e in Session.connection.query(
        f"SELECT event FROM {Session._schema.log.full_table_name} ORDER BY id").fetchall()][-1][0] == \
        f"Altered {Session.full_table_name}"
    Session.delete_quick()  # a date without a default cannot be added to a row (MariaDB's strict mode)
    Session.definition = ORIGINAL
    Session().alter(prompt=False)
    assert create_text(Session) == original


def test_alter_refuses_what_it_cannot_change(tables, backend):
    Subject, User, Session = tables
    Session.definition = ORIGINAL.replace("session : smallint", "session : smallint\nrun : int")
    with pytest.raises(dj.DefinitionError, match=r"cannot alter the primary key \(yet\)") as e:
        Session.alter(prompt=False)
    one_line(e.value)
    Session.definition = ORIGINAL.replace("-> [nullable] User\n", "")
    with pytest.raises(dj.DefinitionError, match=r"cannot alter foreign keys \(yet\)"):
        Session.alter(prompt=False)
    Session.definition = ORIGINAL + "index(path)\n"
    with pytest.raises(dj.DefinitionError, match=r"cannot alter indexes \(yet\)"):
        Session.alter(prompt=False)
    Session.definition = ORIGINAL.replace("# purpose", "# {nothing} purpose")
    with pytest.raises(dj.DefinitionError, match="renames attribute nothing, which the table does not have"):
        Session.alter(prompt=False)


def sqlite_alter(Session, caplog, context):
    """SQLite changes the comment (kept in the class) and refuses column changes."""
    Session.definition = ORIGINAL
    Session.alter(prompt=True, context=context)
    assert "Nothing to alter." in caplog.text
    Session.definition = ORIGINAL.replace("# a session", "# a recording session")
    Session.alter(prompt=False, context=context)
    assert Session().describe().startswith("# a recording session")
    Session.definition = CHANGED
    with pytest.raises(dj.UsageError, match="on SQLite cannot change its attributes") as e:
        Session.alter(prompt=False, context=context)
    one_line(e.value)
    assert Session.heading.names[2] == "started"  # nothing changed


def test_alter_inside_a_transaction_is_refused(tables):
    Subject, User, Session = tables
    with Session.connection.transaction:
        with pytest.raises(dj.UsageError, match="cannot run inside a transaction"):
            Session.alter(prompt=False)
