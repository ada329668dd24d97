"""djhpc jobs: listing with filters, error groups, show, retry (the keys really run again), ignore, clear,
asking before deleting, bad input."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from support.chainviews import filled_chain
from support.env import worker_env
from support.jobstate import TARGET, cli, one_line_error
from support.narrow import djhpc_at, fits, uncut
from support.pipeline import calls

import djhpc as dj
from djhpc.keytext import format_key
from djhpc.reservation import Reservations, Worker


def _rows(capsys, *argv):
    rc, out, err = cli(capsys, "jobs", *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def _statuses(p):
    return sorted(zip(*p.schema.jobs.fetch("status", "key"), strict=True), key=lambda r: (r[0], r[1]["item"]))


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_list_and_filters(state, capsys):
    rows = _rows(capsys, TARGET)
    assert sorted((r["status"], r["key"]["item"]) for r in rows) == [
        ("error", 3), ("error", 5), ("error", 17), ("ignore", 19), ("pending", 10), ("reserved", 15),
        ("reserved", 16)]
    assert [r["key"]["item"] for r in _rows(capsys, TARGET, "--status", "error")] == [3, 5, 17] or \
        sorted(r["key"]["item"] for r in _rows(capsys, TARGET, "--status", "error")) == [3, 5, 17]
    both = _rows(capsys, "list", TARGET, "--status", "ignore", "--status", "pending")
    assert sorted(r["key"]["item"] for r in both) == [10, 19]
    assert sorted(r["key"]["item"] for r in _rows(capsys, "--host", "node-r", TARGET)) == [15, 16]
    assert [r["key"]["item"] for r in _rows(capsys, TARGET, "--job-id", "778_1")] == [17]
    assert sorted(r["key"]["item"] for r in _rows(capsys, TARGET, "--job-id", "777")) == [15, 16]
    assert _rows(capsys, TARGET, "--older-than", "1h") == []
    time.sleep(1.1)
    assert len(_rows(capsys, TARGET, "--older-than", "1s")) == 7
    # the table view: aligned, no colour when piped, a line per row
    rc, out, _ = cli(capsys, "jobs", TARGET)
    assert rc == 0 and "\x1b[" not in out and out.count("Square") == 7 and "RuntimeError: disk full" in out


def test_list_a_whole_schema(state, schema_name, capsys):
    rows = _rows(capsys, "--schema", schema_name, "--status", "reserved")
    assert sorted(r["key"]["item"] for r in rows) == [15, 16]
    rows = _rows(capsys, "list", "--schema", schema_name, "--table", "Square", "--status", "error")
    assert len(rows) == 3
    rc, _, err = cli(capsys, "jobs", "--schema", schema_name, "--table", "Nope")
    assert rc == 2 and one_line_error(err) and "Square" in err


def test_times_are_local(state, capsys, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        rows = _rows(capsys, TARGET, "--status", "ignore")
        assert rows[0]["timestamp"].endswith("+05:30")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_errors_are_grouped_by_type_and_message(state, capsys):
    rows = _rows(capsys, "errors", TARGET)
    groups = [(g["error_type"], g["message"], g["count"]) for g in rows]
    assert groups == [("ValueError", "bad item <n>", 2), ("RuntimeError", "disk full on /scratch/<n>", 1)]
    assert rows[0]["example_key"] in ({"item": 3}, {"item": 5}) and rows[1]["example_key"] == {"item": 17}
    exact = _rows(capsys, "errors", TARGET, "--exact")
    assert sorted((g["message"], g["count"]) for g in exact) == [
        ("bad item 3", 1), ("bad item 5", 1), ("disk full on /scratch/17", 1)]
    rc, out, _ = cli(capsys, "jobs", "errors", TARGET)
    assert rc == 0 and "ValueError" in out and "bad item <n>" in out and "3 failed keys in 2 groups" in out


def test_show_by_key_or_hash(state, capsys):
    (row,) = _rows(capsys, "show", '{"item": 3}', TARGET)
    assert row["status"] == "error" and "Traceback" in row["error_stack"] and "bad item 3" in row["error_stack"]
    assert [a["outcome"] for a in row["history"]] == ["error"]
    (same,) = _rows(capsys, "show", row["key_hash"][:10], TARGET)
    assert same["key"] == {"item": 3}
    (pending,) = _rows(capsys, "show", '{"item": 10}', TARGET)
    assert pending["status"] == "pending" and pending["failures"] == 1 and pending["retry_after"]
    rc, out, _ = cli(capsys, "jobs", "show", '{"item": 3}', TARGET)
    assert rc == 0 and "ValueError: bad item 3" in out and "stack:" in out and "attempts:" in out


@pytest.mark.parametrize("argv", [
    ["show", '{"item": 4}', TARGET],  # made: no row
    ["show", "ffffffffffff", TARGET],
    ["show", "{not json", TARGET],
    ["show", '{"itm": 3}', TARGET],
    ["ignore", '{"item": "x"}', TARGET],
    ["list", TARGET, "--older-than", "ten days"],
    ["--status", "bogus", TARGET],
    ["retry", "pipeline_counts:Nope", "--yes"],
])
def test_bad_input_is_one_line_and_exit_2(state, capsys, argv):
    before = _statuses(state)
    rc, _, err = cli(capsys, "jobs", *argv)
    assert rc == 2 and one_line_error(err), err
    assert _statuses(state) == before


def test_retry_runs_the_failed_keys_again(state, capsys, tmp_path, monkeypatch):
    before = _statuses(state)
    # no terminal, no --yes: refused, nothing deleted
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    rc, _, err = cli(capsys, "jobs", "retry", TARGET)
    assert rc == 2 and one_line_error(err) and "--yes" in err and "3 error rows" in err
    assert _statuses(state) == before
    # a terminal that answers no: nothing deleted
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    rc, out, err = cli(capsys, "jobs", "retry", TARGET, "--match", "bad item 3")
    assert rc == 1 and "nothing deleted" in out and "Delete 1 error rows" in err
    assert _statuses(state) == before
    # yes: only the matching key
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    rc, out, _ = cli(capsys, "jobs", "retry", TARGET, "--match", "bad item 3")
    assert rc == 0 and "deleted 1 error rows" in out
    rc, out, _ = cli(capsys, "jobs", "retry", TARGET, "--yes")
    assert rc == 0 and "deleted 2 error rows" in out
    assert [s for s, _ in _statuses(state)].count("error") == 0
    # the next populate makes them (restricted or not); the pending key waits for its retry time
    made_before = calls(tmp_path)
    state.Square.populate("item in (3, 5, 17)", reserve_jobs=True)
    made = calls(tmp_path) - made_before
    assert sorted(made) == ["Square [('item', 17)]", "Square [('item', 3)]", "Square [('item', 5)]"]
    assert {3, 5, 17} <= set(state.Square.fetch("item"))


def test_ignore_then_clear(state, capsys):
    rc, out, err = cli(capsys, "jobs", "ignore", '{"item": 12}', TARGET)
    assert rc == 0 and "ignored Square item=12" in out, err
    state.Square.populate("item in (11, 12)", reserve_jobs=True)
    assert 12 not in state.Square.fetch("item") and 11 in state.Square.fetch("item")
    # a running key stays reserved
    rc, out, _ = cli(capsys, "jobs", "ignore", '{"item": 15}', TARGET)
    assert rc == 1 and "running right now" in out
    # clear without --yes and without a terminal: refused
    rc, _, err = cli(capsys, "jobs", "clear", TARGET, "--status", "ignore")
    assert rc == 2 and one_line_error(err)
    rc, out, _ = cli(capsys, "jobs", "clear", TARGET, "--status", "ignore", "--yes")
    assert rc == 0 and "deleted 2 rows" in out
    assert [s for s, _ in _statuses(state)].count("ignore") == 0
    state.Square.populate("item = 12", reserve_jobs=True)
    assert 12 in state.Square.fetch("item")
    # default statuses: error, ignore, pending; reserved rows stay
    rc, out, _ = cli(capsys, "jobs", "clear", TARGET, "--yes")
    assert rc == 0 and "deleted 4 rows" in out
    assert sorted(k["item"] for _, k in _statuses(state)) == [15, 16]


def test_running_makes_and_those_past_their_p95(state, capsys):
    """Issue 15, item 8: the first key left of a worker's batch is the one being made; with the history's p95 of
    the table (milliseconds here), a make held for a second is past it."""
    time.sleep(1.0)
    rows = _rows(capsys, "running", TARGET)
    assert [(r["key"], r["host"], r["pid"], r["task"]) for r in rows] == [({"item": 15}, "node-r", 4242, "777_2")]
    assert rows[0]["seconds"] >= 1.0 and rows[0]["p95"] is not None and rows[0]["p95"] < 1.0
    assert rows[0]["over_p95"] is True
    assert [r["key"] for r in _rows(capsys, "running", TARGET, "--slow")] == [{"item": 15}]
    rc, out, _ = cli(capsys, "jobs", "running", TARGET)
    assert rc == 0 and "past p95" in out and "node-r" in out and "--make-timeout" in out


def test_keys_are_taken_as_they_are_printed(state, capsys):
    """Issue 18 item 4: the key text jobs prints is what show and ignore take (JSON and a hash still work)."""
    rc, out, _ = cli(capsys, "jobs", TARGET, "-q")
    lines = [ln.split("\t") for ln in out.splitlines()]
    assert ["Square", "item=3", "error"] == lines[[ln[1] for ln in lines].index("item=3")][:3]
    for printed in ("item=3", "item = 3", '{"item": 3}'):
        (row,) = _rows(capsys, "show", printed, TARGET)
        assert row["key"] == {"item": 3} and row["status"] == "error", printed
    rc, out, err = cli(capsys, "jobs", "ignore", "item=12", TARGET)
    assert rc == 0 and "ignored Square item=12" in out, err
    rc, out, _ = cli(capsys, "jobs", "errors", TARGET)
    assert "djhpc jobs show item=" in out  # a command to copy, in the same form
    rc, _, err = cli(capsys, "jobs", "show", "item=None", TARGET)
    assert rc == 2 and one_line_error(err) and "never NULL" in err
    rc, _, err = cli(capsys, "jobs", "show", "itm=3", TARGET)
    assert rc == 2 and one_line_error(err) and "primary key is item" in err


@pytest.mark.parametrize("columns", [80, 200])
def test_every_column_at_80_and_200_columns(state, backend, schema_name, tmp_path, columns):
    """Issue 18 item 3, through the real CLI: jobs, jobs errors and jobs running keep Table and the whole key at
    80 columns (a block per row when the columns do not fit) and lay out one line per row at 200."""
    env = worker_env(backend, schema_name)
    for argv, words in ((["jobs", TARGET], ("Table", "Key", "Status", "Host", "PID", "Task", "Since", "Error")),
                        (["jobs", "errors", TARGET], ("Count", "Table", "Exception", "Message", "Example key")),
                        (["jobs", "running", TARGET], ("Table", "Key", "Host", "PID", "Task", "Running", "p95"))):
        out = djhpc_at(columns, argv, env, tmp_path)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert fits(text, columns) and uncut(text), text
        for word in words:
            assert word in text, (argv, word, text)
        assert "Square" in text
    listing = djhpc_at(columns, ["jobs", TARGET], env, tmp_path).stdout
    for item in (3, 5, 10, 15, 16, 17, 19):
        assert f"item={item} " in listing or f"item={item}\n" in listing, listing
    rows = [ln for ln in listing.splitlines() if ln.startswith("Square")]
    if columns == 200:
        assert len(rows) == 7 and any("RuntimeError: disk full on /scratch/17" in ln for ln in rows), listing
    else:
        assert listing.count("Table Square  Key item=") == 7, listing


def test_a_long_key_wraps_but_is_never_cut(db, schema, backend, schema_name, tmp_path):
    """A key of text with commas and quotes at 80 columns: shown whole (wrapped between words), and the text
    printed is the text show takes."""

    @schema
    class Rec(dj.Manual):
        definition = """
        subject    : varchar(64)
        session_id : int
        """

    @schema
    class Ana(dj.Computed):
        definition = """
        -> Rec
        """

        def make(self, key):
            raise ValueError("boom")

    subject = "mouse, 'Zoë' the second of a very long line of mice"
    Rec.insert1((subject, 7))
    Ana.populate(reserve_jobs=True, suppress_errors=True)
    key = {"subject": subject, "session_id": 7}
    env = worker_env(backend, schema_name)
    text = djhpc_at(80, ["jobs", "--schema", schema_name], env, tmp_path).stdout
    assert fits(text, 80) and uncut(text), text
    assert " ".join(text.split()).count(" ".join(format_key(key).split())) == 1, text
    shown = djhpc_at(80, ["jobs", "show", format_key(key), "--schema", schema_name, "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["key"] == key


# ---------------------------------------------------------------------------- a whole pipeline (issue 19)
@pytest.fixture
def chain(backend, db, schema_name, tmp_path):
    """chain.py made by `djhpc work chain.py` (session 2's Motion failed), and a worker on node-r holding session 6's
    Motion key and session 6's Quality key (as array task 777_2) until the test ends."""
    project = filled_chain(tmp_path / "project", backend, schema_name)
    holder = Reservations(db, schema_name, Worker(host="node-r", pid=4242, sched_job_id="777", sched_task_id="2"))
    project.claims = holder.reserve("__quality", [{"session": 6}]) + holder.reserve("__motion", [{"session": 6}])
    assert len(project.claims) == 2
    project.holder = holder
    yield project
    holder.close()


def _pipeline_rows(project, *argv) -> list[dict]:
    out = project.djhpc("jobs", *argv, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_jobs_rows_of_a_whole_pipeline(chain):
    rows = _pipeline_rows(chain, "chain.py")
    # every table's rows, upstream tables first (Motion's reserved row is newer than Quality's, yet listed first)
    assert [(r["table"], r["table_name"], r["status"], r["key"]) for r in rows] == [
        ("Motion", "__motion", "error", {"session": 2}), ("Motion", "__motion", "reserved", {"session": 6}),
        ("Quality", "__quality", "reserved", {"session": 6})]
    assert "the recording is corrupt" in rows[0]["error_message"]
    assert _pipeline_rows(chain, "list", "chain.py") == rows
    assert [r["table"] for r in _pipeline_rows(chain, "chain.py", "--tables", "Quality")] == ["Quality"]
    assert [r["status"] for r in _pipeline_rows(chain, "list", "chain.py", "--status", "reserved")] == ["reserved"] * 2
    assert [r["key"] for r in _pipeline_rows(chain, "chain.py", "--job-id", "777_2")] == [{"session": 6}] * 2
    assert _pipeline_rows(chain, "chain.py", "--downstream-of", "Trace") == []
    limited = _pipeline_rows(chain, "list", "chain.py", "--limit", "1")
    assert [(r["table"], r["status"]) for r in limited] == [("Motion", "error")]  # the oldest row

    out = chain.djhpc("jobs", "chain.py", "-q")
    assert [ln.split("\t")[:3] for ln in out.stdout.splitlines()] == [
        ["Motion", "session=2", "error"], ["Motion", "session=6", "reserved"], ["Quality", "session=6", "reserved"]]
    text = djhpc_at(80, ["jobs", "chain.py"], chain.env, chain.folder).stdout
    assert fits(text, 80) and uncut(text) and text.index("Motion") < text.index("Quality"), text


def test_errors_and_running_makes_of_a_whole_pipeline(chain):
    groups = _pipeline_rows(chain, "errors", "chain.py")
    assert [(g["table"], g["error_type"], g["message"], g["count"], g["example_key"]) for g in groups] == [
        ("Motion", "ValueError", "session <n>: the recording is corrupt", 1, {"session": 2})]
    assert _pipeline_rows(chain, "errors", "chain.py", "--downstream-of", "Segment") == []
    text = chain.djhpc("jobs", "errors", "chain.py").stdout
    assert "Motion" in text and "1 failed keys in 1 groups" in text, text
    running = _pipeline_rows(chain, "running", "chain.py")
    assert sorted((m["table"], m["key"]["session"], m["host"]) for m in running) == [
        ("Motion", 6, "node-r"), ("Quality", 6, "node-r")]
    assert [m["table"] for m in _pipeline_rows(chain, "running", "chain.py", "--tables", "Motion")] == ["Motion"]


def test_show_ignore_retry_and_clear_in_a_whole_pipeline(chain):
    """A key found in every table that has it; ignore in the one table named; retry of the failed upstream key,
    then a worker: its four dependants are made, nothing is blocked any more."""
    shown = _pipeline_rows(chain, "show", "session=6", "chain.py")
    assert [(r["table"], r["status"]) for r in shown] == [("Motion", "reserved"), ("Quality", "reserved")]
    [failed] = _pipeline_rows(chain, "show", "session=2", "chain.py")
    assert failed["table"] == "Motion" and "ValueError" in failed["error_stack"]
    assert [r["table"] for r in _pipeline_rows(chain, "show", failed["key_hash"][:8], "chain.py")] == ["Motion"]
    text = chain.djhpc("jobs", "show", "session=2", "chain.py").stdout
    assert text.startswith("Motion session=2") and "the recording is corrupt" in text, text
    missing = chain.djhpc("jobs", "show", "session=5", "chain.py")
    assert missing.returncode == 2 and one_line_error(missing.stderr) and "pipeline chain.py" in missing.stderr

    refused = chain.djhpc("jobs", "ignore", "session=7", "chain.py")
    assert refused.returncode == 2 and one_line_error(refused.stderr) and "--tables T" in refused.stderr
    ignored = chain.djhpc("jobs", "ignore", "session=7", "chain.py", "--tables", "Summary")
    assert ignored.returncode == 0 and ignored.stdout.startswith("ignored Summary session=7"), ignored.stderr
    assert [(r["table"], r["status"]) for r in _pipeline_rows(chain, "chain.py", "--status", "ignore")] == [
        ("Summary", "ignore")]
    cleared = chain.djhpc("jobs", "clear", "chain.py", "--status", "ignore", "--yes")
    assert cleared.returncode == 0 and cleared.stdout.strip() == "deleted 1 rows", cleared.stderr

    asked = chain.djhpc("jobs", "retry", "chain.py")  # no terminal to ask: --yes
    assert asked.returncode == 2 and one_line_error(asked.stderr) and "--yes" in asked.stderr
    retried = chain.djhpc("jobs", "retry", "chain.py", "--yes")
    assert retried.returncode == 0 and retried.stdout.startswith("deleted 1 error rows"), retried.stderr
    assert _pipeline_rows(chain, "errors", "chain.py") == []
    for claim in chain.claims:  # node-r gives its keys back
        assert chain.holder.release(claim)
    worked = chain.djhpc("work", "chain.py", "--tables", "Motion,Segment,Trace", DJHPC_TEST_FAIL="", timeout=120)
    assert worked.returncode == 0, worked.stderr[-2000:]
    progress = json.loads(chain.djhpc("progress", "chain.py", "--json").stdout)
    assert [(r["table"], r["done"], r["ready"], r["waiting"], r["blocked"]) for r in progress] == [
        ("Motion", 8, 0, 0, 0), ("Segment", 8, 0, 0, 0), ("Trace", 8, 0, 0, 0), ("Quality", 5, 3, 0, 0),
        ("Summary", 5, 0, 3, 0)]  # the tables not worked: Quality's keys ready, Summary's waiting for them
