"""pipeview: a pipeline's progress table by table (done of the keys to come, waiting, blocked, ETA across the
pipeline's workers), its jobs rows, errors and running makes in dependency order, and which recorded runs serve
which tables; on chain.py made by a real `djhpc work`, SQLite and MariaDB."""

from __future__ import annotations

import datetime as dt
import sys
import time

import pytest
from support.chain import TABLES
from support.chainviews import EXPECTED, PARENTS, counts, filled_chain

from djhpc import jobrows
from djhpc.errors import UsageError
from djhpc.pipeline import load_pipeline
from djhpc.pipeview import (
    PipelineTableProgress,
    blocked_text,
    error_groups,
    find,
    job_rows,
    outlook,
    pipeline_table_progress,
    running_makes,
    select,
    table_groups,
)
from djhpc.pipework import targets_for
from djhpc.reservation import Reservations, Worker
from djhpc.status import serves
from djhpc.submissions import Submission


def _row(**kw) -> PipelineTableProgress:
    base = dict(name="T", table_name="__t", total=4, done=4, remaining=0)
    return PipelineTableProgress(**{**base, **kw})


def test_a_table_is_done_only_when_the_keys_to_come_are_made_too():
    waiting = _row(waiting=3, blocked=1, workers=1)
    assert (waiting.expected, waiting.coming, waiting.left, waiting.percent) == (7, 2, 2, pytest.approx(400 / 7))
    assert not waiting.done_all and not waiting.finished and waiting.waiting_upstream
    assert outlook(waiting) == "waiting for upstream" and waiting.stuck is None
    blocked = _row(waiting=1, blocked=1)
    assert blocked.finished and not blocked.done_all and blocked.left == 0
    assert blocked.stuck == "1 blocked by failures upstream — see djhpc jobs errors"
    assert _row(waiting=0, blocked=0).done_all and outlook(_row(waiting=0, blocked=0)) == "done"
    # nothing in the key source yet, keys to come: not "nothing to make"
    assert not _row(total=0, done=0, waiting=5, blocked=0).empty and _row(total=0, done=0, waiting=0).empty
    # a key source that cannot be foreseen (custom key_source): as one table
    unknown = _row(total=4, done=2, remaining=2, waiting=None, blocked=None, workers=0)
    assert unknown.expected == 4 and unknown.left == 2 and outlook(unknown) == "no workers running"
    assert blocked_text([blocked, waiting]) == "2 keys blocked by failures upstream (T 1, T 1)"
    assert blocked_text([_row(waiting=1, blocked=1, name="A")]) == "1 key blocked by failures upstream (A 1)"
    assert blocked_text([unknown]) is None


def test_runs_serve_the_tables_they_record_else_their_pipeline():
    def run(target, table_name):
        return Submission(1, "9", "slurm", target, table_name, 1, 0, 1, dt.datetime(2024, 1, 1), "u", "h", "", {})

    assert serves(run("p.py:T", "__t"), {"__t"}) and not serves(run("p.py:T", "__t"), {"__u"})
    assert serves(run("p.py", "__a,__b"), {"__b", "__c"}) and not serves(run("p.py", "__a,__b"), {"__c"}, "p.py")
    assert serves(run("p.py --tables A", ""), {"__c"}, "p.py") and not serves(run("q.py", ""), {"__c"}, "p.py")


@pytest.fixture
def chain(backend, db, schema_name, tmp_path, monkeypatch):
    """(pipeline, targets) of chain.py, imported here, after `djhpc work chain.py` made it (session 2 failed)."""
    project = filled_chain(tmp_path / "project", backend, schema_name)
    monkeypatch.setenv("DJHPC_TEST_SCHEMA", schema_name)
    pipeline = load_pipeline("chain.py", base=project.folder)
    yield pipeline, targets_for(pipeline)
    sys.modules.pop("djhpc_target_chain", None)


def test_progress_of_every_table(chain, db, schema_name):
    pipeline, targets = chain
    rows = pipeline_table_progress(pipeline, targets)
    assert [r.name for r in rows] == list(TABLES)
    assert {r.name: counts(r.as_dict()) for r in rows} == EXPECTED
    assert {r.name: list(r.depends_on) for r in rows} == PARENTS
    assert all(r.workers == 0 and r.completions == 5 and r.duration is not None for r in rows)
    # a live worker on Motion works for every table below it: none of them says "no workers running"
    holder = Reservations(db, schema_name, Worker(host="node-r", pid=4242))
    try:
        assert len(holder.reserve("__motion", [{"session": 6}])) == 1
        rows = pipeline_table_progress(pipeline, targets)
        assert [r.workers for r in rows] == [1] * 5 and (rows[0].ready, rows[0].reserved) == (1, 1)
        assert rows[0].eta_seconds > 0 and all(outlook(r) == "waiting for upstream" for r in rows[1:])
    finally:
        holder.close()
    # limited: the rows asked for, their keys to come foreseen in the whole pipeline
    below = pipeline.restrict(downstream_of=["Trace"])
    limited = pipeline_table_progress(below, targets, whole=pipeline)
    assert [(r.name, r.waiting, r.blocked, r.depends_on) for r in limited] == [
        ("Trace", 3, 1, ("Segment",)), ("Summary", 3, 1, ("Trace", "Quality"))]


def test_jobs_rows_errors_and_running_makes_in_dependency_order(chain, db, schema_name):
    pipeline, targets = chain
    [group] = table_groups(pipeline, targets)
    assert (group.schema, group.jobs_table, group.table_names) == (
        schema_name, "~jobs", ["__motion", "__segment", "__trace", "__quality", "__summary"])
    holder = Reservations(db, schema_name, Worker(host="node-r", pid=4242))
    try:
        assert len(holder.reserve("__summary", [{"session": 7}])) == 1
        time.sleep(0.002)  # SQLite's timestamps are to the millisecond: Summary's must be the older
        assert len(holder.reserve("__motion", [{"session": 6}])) == 1
        rows, total = job_rows(pipeline, targets)
        assert total == 3 and [(r.table_name, r.status, r.key) for r in rows] == [
            ("__motion", "error", {"session": 2}), ("__motion", "reserved", {"session": 6}),
            ("__summary", "reserved", {"session": 7})]
        rows, total = job_rows(pipeline, targets, limit=2)  # the two oldest, by table
        assert total == 3 and [(r.table_name, r.key) for r in rows] == [("__motion", {"session": 2}),
                                                                        ("__summary", {"session": 7})]
        rows, total = job_rows(pipeline, targets, statuses=["reserved"])
        assert total == 2 and [r.table_name for r in rows] == ["__motion", "__summary"]
        rows, total = job_rows(pipeline.restrict(tables=["Segment"]), targets)
        assert (rows, total) == ([], 0)
        [group] = error_groups(pipeline, targets)
        assert (group.table_name, group.error_type, group.count) == ("__motion", "ValueError", 1)
        assert error_groups(pipeline.restrict(downstream_of=["Segment"]), targets) == []
        assert sorted(m.table_name for m in running_makes(pipeline, targets)) == ["__motion", "__summary"]
        assert [m.table_name for m in running_makes(pipeline.restrict(tables=["Summary"]), targets)] == ["__summary"]
        # one key in every table that has it, upstream first; a hash prefix; deleting through the selections
        assert [(r.table_name, r.status) for r in find(pipeline, targets, "session=6")] == [("__motion", "reserved")]
        [failed] = find(pipeline, targets, "session=2")
        assert [r.table_name for r in find(pipeline, targets, failed.key_hash[:8])] == ["__motion"]
        with pytest.raises(UsageError, match="no jobs row for session=7 in the tables of pipeline chain.py"):
            find(pipeline.restrict(tables=["Motion"]), targets, "session=7")
        assert sum(jobrows.delete(q) for q in select(pipeline, targets, statuses=["error"])) == 1
        assert job_rows(pipeline, targets, statuses=["error"]) == ([], 0)
    finally:
        holder.close()
