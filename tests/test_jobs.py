"""``schema.jobs`` (djhpc/jobs.py) on both backends: its delete() deletes without asking, as DataJoint's jobs table
does in 0.14 and 2.x, even in safemode and without a terminal (issue 14)."""

from __future__ import annotations

import sys

import pytest

import djhpc as dj


class NoTerminal:
    """A stdin that is no terminal and fails the test if anything reads it."""

    def isatty(self):
        return False

    def readline(self, *args):
        raise AssertionError("jobs.delete() read stdin: it must not ask")

    read = readline


@pytest.fixture
def jobs_with_rows(schema, monkeypatch):
    @schema
    class Item(dj.Manual):
        definition = "item : int\n"

    @schema
    class Done(dj.Computed):
        definition = "-> Item\n"

        def make(self, key):
            raise RuntimeError(f"item {key['item']} fails")

    Item.insert([(i,) for i in range(4)])
    Done.populate(reserve_jobs=True, suppress_errors=True)
    schema.jobs.ignore(Done, {"item": 9})
    monkeypatch.setitem(dj.config, "safemode", True)
    monkeypatch.setattr(sys, "stdin", NoTerminal())
    return schema.jobs


def test_jobs_delete_does_not_ask(jobs_with_rows):
    jobs = jobs_with_rows
    assert len(jobs & {"status": "error"}) == 4 and len(jobs & {"status": "ignore"}) == 1
    assert (jobs & {"status": "error"} & "error_message LIKE '%item 2 fails%'").delete() == 1
    assert len(jobs) == 4
    assert (jobs & {"status": "ignore"}).delete(safemode=True) == 1  # accepted, and still does not ask
    assert jobs.delete() == 3
    assert len(jobs) == 0 and not jobs
    assert jobs.delete() == 0


def test_datajoint_reserve_complete_error(schema):
    """DataJoint's hand-driven jobs API: reserve -> bool, complete removes the row, error records a failure (its
    message cut to ERROR_MESSAGE_LENGTH, ending with TRUNCATION_APPENDIX), and a failed key is not reserved again."""
    from djhpc.jobs import ERROR_MESSAGE_LENGTH, TRUNCATION_APPENDIX

    jobs = schema.jobs
    assert jobs.reserve("fake", {"k": 1}) and not jobs.reserve("fake", {"k": 1})
    jobs.complete("fake", {"k": 1})
    assert len(jobs) == 0
    jobs.error("fake", {"k": 2}, "x" * (ERROR_MESSAGE_LENGTH + 10), "stack " * 20000)
    message, stack = (jobs & {"status": "error"}).fetch1("error_message", "error_stack")
    assert len(message) == ERROR_MESSAGE_LENGTH and message.endswith(TRUNCATION_APPENDIX)
    assert stack == "stack " * 20000
    assert not jobs.reserve("fake", {"k": 2})
    assert jobs.delete() == 1
