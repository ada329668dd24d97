"""djhpc progress: counts of a hand-built state in every status, a fixed number of statements, percentiles,
--watch ending by itself while a real worker finishes the table, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from support.chain import TABLES, ChainProject
from support.chainviews import EXPECTED as CHAIN_EXPECTED
from support.chainviews import PARENTS, counts, filled_chain
from support.env import worker_env
from support.jobstate import EXPECTED, TARGET, cli, one_line_error
from support.narrow import djhpc_at, fits, uncut

from djhpc.history import History
from djhpc.pipeview import PIPELINE_FIELDS
from djhpc.progress import is_auto_populated, table_progress
from djhpc.reservation import Reservations, Worker, key_hash


def _counts(row: dict) -> dict:
    return {k: row[k] for k in EXPECTED}


def test_counts_match_a_state_with_every_status(state, schema_name, capsys):
    pipeline = state
    p = table_progress(pipeline.Square)
    assert _counts(p.as_dict()) == EXPECTED
    assert p.left == 8 and not p.finished  # 12 remaining, less 3 failed and 1 ignored
    assert p.completions == 8 and p.recent == 8 and p.rate_per_minute > 0 and p.eta_seconds > 0
    assert p.duration.median <= p.duration.p95 and p.max_rss_mb.median > 0
    # under a restriction, the jobs rows of its keys only: every key, or none
    assert _counts(table_progress(pipeline.Square, "item >= 0").as_dict()) == EXPECTED
    assert _counts(table_progress(pipeline.Square, "item < 0").as_dict()) == dict.fromkeys(EXPECTED, 0)

    rc, out, err = cli(capsys, "progress", TARGET, "--json")
    assert rc == 0, err
    (row,) = json.loads(out)
    assert _counts(row) == EXPECTED and row["name"] == "Square" and row["left"] == 8

    rc, out, _ = cli(capsys, "progress", TARGET)
    assert rc == 0 and "\x1b[" not in out  # no colour without a terminal
    assert "Square" in out and "40.0%" in out and "Time p95" in out

    rc, out, _ = cli(capsys, "progress", TARGET, "-q")
    assert out.strip().startswith("Square: 8 of 20 done (40.0%), 2 running, 3 failed, 1 ignored")

    # the schema alone: rows made and jobs, no total
    rc, out, err = cli(capsys, "progress", "--schema", schema_name, "--json")
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"Square", "PairSum", "Held"}  # no Manual tables, no Square.Note part
    sq = rows["Square"]
    assert (sq["total"], sq["remaining"], sq["done"], sq["error"], sq["reserved"]) == (None, None, 8, 3, 2)


def test_a_handful_of_statements_whatever_the_size(state, db, schema_name):
    pipeline = state
    table_progress(pipeline.Square)  # tables exist
    with db.counting() as small:
        table_progress(pipeline.Square)
    pipeline.Item.insert([(i, i) for i in range(20, 5020)])
    history = History(db, schema_name)
    worker = Worker(host="node-big")
    with db.transaction:
        for i in range(1500):
            history.record("__square", key_hash({"item": 10_000 + i}), worker, time.time() - i, 1.0, 1.0, 10.0)
    with db.counting() as large:
        p = table_progress(pipeline.Square)
    assert p.total == 5020 and p.completions == 1508
    assert small["statements"] == large["statements"] <= 6, (small, large)


def test_percentiles_come_from_the_history(pipeline, db, schema_name, capsys):
    pipeline.Item.insert([(i, i) for i in range(5)])
    history = History(db, schema_name)
    history.ensure_table()
    with db.transaction:
        for i in range(1, 101):  # durations 1..100 s, CPU half of it, memory 10..1000 MB
            history.record("__square", key_hash({"item": i}), Worker(host=f"node{i % 3}"), time.time() - 60, float(i),
                           i / 2, i * 10.0)
    p = table_progress(pipeline.Square)
    assert p.duration.median == pytest.approx(50.5) and p.duration.p95 == pytest.approx(95.05)
    assert p.cpu_seconds.median == pytest.approx(25.25) and p.max_rss_mb.p95 == pytest.approx(950.5)
    rc, out, _ = cli(capsys, "progress", TARGET)
    assert rc == 0 and "50.5 s" in out and "1m 35s" in out and "950 MB" in out


def test_no_history_yet_says_so(pipeline, capsys):
    pipeline.Item.insert([(i, i) for i in range(3)])
    rc, out, err = cli(capsys, "progress", TARGET)
    assert rc == 0, err
    assert "no completions recorded yet" in out and "no workers running" in out and "3 keys left" in out
    rc, out, _ = cli(capsys, "progress", TARGET, "--json")
    (row,) = json.loads(out)
    assert row["duration"] is None and row["eta_seconds"] is None and row["total"] == 3


def test_a_restriction_counts_its_keys_only(pipeline, schema_name, capsys):
    """--restrict as djhpc work's (repeatable, all must hold): total and done of the restricted key source."""
    pipeline.Item.insert([(i, i) for i in range(10)])
    pipeline.Square.populate("item < 3")
    rc, out, err = cli(capsys, "progress", TARGET, "--restrict", "item < 6", "--restrict", "item <> 0", "--json")
    assert rc == 0, err
    (row,) = json.loads(out)
    assert (row["total"], row["done"], row["remaining"]) == (5, 2, 3)
    rc, out, _ = cli(capsys, "progress", TARGET, "--restrict", "item >= 3", "-q")
    assert out.startswith("Square: 0 of 7 done (0.0%)"), out
    rc, _, err = cli(capsys, "progress", "--schema", schema_name, "--restrict", "item < 3")
    assert rc == 2 and one_line_error(err) and "--restrict needs TARGET" in err


@pytest.mark.parametrize("argv", [
    ["progress", "--schema", "no_such_schema_xyz"],
    ["progress", "pipeline_counts:NoSuchTable"],
    ["progress", "pipeline_counts:Item"],  # a Manual table has no key source
    ["progress", TARGET, "--window", "5x"],
    ["progress", TARGET, "--schema", "x"],
])
def test_bad_input_is_one_line_and_exit_2(pipeline, capsys, argv):
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and one_line_error(err), err


def test_watch_needs_a_target(pipeline, schema_name, capsys):
    pipeline.Item.insert1((1, 1))
    rc, _, err = cli(capsys, "progress", "--schema", schema_name, "--watch")
    assert rc == 2 and one_line_error(err) and "--watch needs TARGET" in err


def test_table_names_that_are_auto_populated():
    assert is_auto_populated("__square") and is_auto_populated("_imported")
    assert not is_auto_populated("__square__note") and not is_auto_populated("_master__part")
    assert not is_auto_populated("item") and not is_auto_populated("~jobs") and not is_auto_populated("#lookup")


def test_watch_ends_by_itself_when_the_table_is_stuck(pipeline, backend, schema_name, tmp_path):
    """A worker makes 30 keys (one fails) while --watch follows; it ends with exit 0 once nothing is left to run."""
    pipeline.Item.insert([(i, i) for i in range(30)])
    env = worker_env(backend, schema_name, DJHPC_TEST_SLEEP=0.04, DJHPC_TEST_FAIL=4)
    watch = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "progress", TARGET, "--watch", "--interval",
                              "0.2"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        time.sleep(0.5)
        worker = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "work", TARGET], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert worker.returncode == 1, worker.stderr[-2000:]  # 1: some makes failed
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    # a failed key is left and nothing runs: not "done"; it ends, non-zero, saying why in one line
    assert watch.returncode == 1, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[-1].startswith("Square: 29 of 30 done (96.7%), 0 running, 1 failed"), lines[-3:]
    assert lines[-1].endswith("1 failed — see djhpc jobs errors") and "done" not in lines[-1].split(",")[-1]
    assert len(lines) >= 2 and not lines[0].startswith("Square: 29 of 30"), "it did not watch the run"
    assert err.strip().splitlines() == ["djhpc: nothing is running and the table is not done: Square: 1 failed — "
                                        "see djhpc jobs errors"]


def _on_a_terminal(argv, env, cwd, stop_after=None):
    """Run djhpc on a pseudo-terminal: (exit code, everything it wrote). ``stop_after``: seconds before Ctrl-C,
    counted from its first drawing (a loaded machine may take longer than that to start it)."""
    import os
    import pty
    import select
    import signal

    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", *argv], env={**env, "TERM": "xterm-256color",
                            "COLUMNS": "160"}, cwd=cwd, stdin=child_fd, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    chunks, started, interrupted = [], time.monotonic(), False
    try:
        while True:
            if stop_after is not None and not interrupted and b"Ctrl-C to stop watching" in b"".join(chunks):
                time.sleep(stop_after)
                proc.send_signal(signal.SIGINT)
                interrupted = True
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(main_fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
            assert time.monotonic() - started < 120, "watch did not end"
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_watch_on_a_terminal_draws_a_bar_and_stops_on_ctrl_c(pipeline, backend, schema_name, tmp_path):
    pipeline.Item.insert([(i, i) for i in range(4)])
    env = worker_env(backend, schema_name)
    # nothing made yet: it watches until Ctrl-C (exit 130)
    rc, text = _on_a_terminal(["progress", TARGET, "--watch", "--interval", "0.2"], env, tmp_path, stop_after=0.5)
    assert rc == 130, text[-2000:]
    assert "━" in text and "0/4" in text and "Ctrl-C to stop watching" in text and "\x1b[" in text
    # done: it draws once and ends by itself; NO_COLOR keeps colour codes out
    pipeline.Square.populate()
    rc, text = _on_a_terminal(["progress", TARGET, "--watch"], {**env, "NO_COLOR": "1"}, tmp_path)
    assert rc == 0 and "4/4" in text and "100.0%" in text and "done" in text, text[-2000:]
    assert "\x1b[3" not in text and "\x1b[9" not in text  # no foreground colours


def test_global_quiet_flag_works_before_the_command(state, capsys):
    rc, out, _ = cli(capsys, "-q", "progress", TARGET)
    assert rc == 0 and out.count("\n") == 1 and out.startswith("Square: 8 of 20 done")


def _run(columns, argv, env, cwd):
    out = djhpc_at(columns, argv, env, cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_every_column_at_80_and_200_columns(state, backend, schema_name, tmp_path, columns):
    """Issue 18 item 3: the real CLI at COLUMNS=80 keeps Table and ETA (a block per table when the columns do not
    fit), and at 200 one row per table; no line wider than the terminal, nothing cut with an ellipsis."""
    env = worker_env(backend, schema_name)
    text = _run(columns, ["progress", TARGET], env, tmp_path)
    assert fits(text, columns) and uncut(text), text
    for word in ("Table", "Square", "Total", "Done", "Remaining", "Running", "Failed", "Ignored", "Rate /min", "ETA",
                 "Time p95", "Peak mem p95"):
        assert word in text, (word, text)
    if columns == 200:
        assert any(ln.startswith("Square") and "40.0%" in ln and "(" in ln for ln in text.splitlines()), text
    else:
        assert "Table Square  Total 20  Done 8" in text and "ETA " in text, text
    schema = _run(columns, ["progress", "--schema", schema_name], env, tmp_path)
    assert fits(schema, columns) and uncut(schema) and "PairSum" in schema and "Held" in schema, schema


def test_an_empty_key_source_is_not_done(pipeline, backend, schema_name, tmp_path, capsys):
    """Issue 18 items 2 and 6: nothing upstream reads as "nothing to make", never as 100 % done."""
    env = worker_env(backend, schema_name)
    text = _run(80, ["progress", TARGET], env, tmp_path)
    assert "the key source is empty: nothing to make (is the upstream table filled?)" in text
    assert "100" not in text and "done" not in text.replace("Done", ""), text
    quiet = _run(80, ["progress", TARGET, "-q"], env, tmp_path)
    assert quiet.strip() == "Square: the key source is empty: nothing to make (is the upstream table filled?)"
    (row,) = json.loads(_run(80, ["progress", TARGET, "--json"], env, tmp_path))
    assert row["percent"] is None and row["done_all"] is False and row["stuck"].startswith("the key source is empty")
    watch = djhpc_at(80, ["progress", TARGET, "--watch", "--interval", "0.2"], env, tmp_path)
    assert watch.returncode == 1 and "the key source is empty" in watch.stderr, watch.stderr


def test_keys_left_and_no_worker_alive_say_so(pipeline, db, backend, schema_name, tmp_path):
    """A worker on another host holds a key: while its heartbeat is fresh there is an ETA; once its lease is long
    past (it died), "no workers running" and no ETA, though its key is still reserved."""
    pipeline.Item.insert([(i, i) for i in range(10)])
    pipeline.Square.populate("item < 5", reserve_jobs=True)
    holder = Reservations(db, schema_name, Worker(host="node-gone", pid=4242))
    assert len(holder.reserve("__square", [{"item": 7}])) == 1
    holder.close()  # no more heartbeats
    env = worker_env(backend, schema_name)
    fresh = _run(200, ["progress", TARGET, "-q"], env, tmp_path)
    assert "1 running" in fresh and "ETA " in fresh and "no workers running" not in fresh, fresh
    jobs = db.dialect.table(schema_name, "~jobs")
    with db.transaction:
        db.query(f"UPDATE {jobs} SET {db.dialect.quote('heartbeat_at')} = '2000-01-01 00:00:00'")
    text = _run(200, ["progress", TARGET], env, tmp_path)
    assert "no workers running" in text and "5 keys left and no workers running" in text, text
    (row,) = json.loads(_run(200, ["progress", TARGET, "--json"], env, tmp_path))
    assert row["workers"] == 0 and row["reserved"] == 1 and row["eta_seconds"] is None and row["done_all"] is False


def test_done_means_every_key_made(pipeline, backend, schema_name, tmp_path):
    pipeline.Item.insert([(i, i) for i in range(3)])
    pipeline.Square.populate()
    env = worker_env(backend, schema_name)
    text = _run(80, ["progress", TARGET, "-q"], env, tmp_path)
    assert text.startswith("Square: 3 of 3 done (100.0%)") and text.rstrip().endswith("done"), text
    watch = djhpc_at(80, ["progress", TARGET, "--watch"], env, tmp_path)
    assert watch.returncode == 0 and watch.stderr == "", watch.stderr


# ---------------------------------------------------------------------------- a whole pipeline (issue 19)
@pytest.fixture
def chain(backend, db, schema_name, tmp_path):
    """chain.py made by a real `djhpc work chain.py` (session 2's Motion fails), two sessions added after it."""
    return filled_chain(tmp_path / "project", backend, schema_name)


def _json(project, *argv) -> list[dict]:
    out = project.djhpc("progress", *argv, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_pipeline_is_one_row_per_table_in_dependency_order(chain):
    rows = _json(chain, "chain.py")
    assert [r["table"] for r in rows] == list(TABLES)
    for r in rows:
        assert set(PIPELINE_FIELDS) <= set(r), r.keys()
        assert counts(r) == CHAIN_EXPECTED[r["table"]], r["table"]
        assert r["depends_on"] == PARENTS[r["table"]] and r["expected"] == 8
    assert sum(r["blocked"] for r in rows) == 4  # the failed session's dependants, one per table below Motion
    motion, summary = rows[0], rows[-1]
    assert motion["left"] == 2 and motion["percent"] == 62.5 and motion["done_all"] is False
    assert summary["coming"] == 2 and summary["left"] == 2 and summary["completions"] == 5
    # the module by name (the project folder is where targets are looked for) and djhpc.yaml's target: the same
    assert [counts(r) for r in _json(chain, "chain")] == [counts(r) for r in rows]
    assert [counts(r) for r in _json(chain)] == [counts(r) for r in rows]


@pytest.mark.parametrize("columns", [80, 200])
def test_a_pipeline_at_80_and_200_columns(chain, columns):
    text = _run(columns, ["progress", "chain.py"], chain.env, chain.folder)
    assert fits(text, columns) and uncut(text), text
    flat = " ".join(text.split())
    assert ("4 keys blocked by failures upstream (Segment 1, Trace 1, Quality 1, Summary 1): fix or retry the "
            "failed keys above them (djhpc jobs errors chain.py)") in flat, text
    assert "Motion: 1 failed" not in flat  # not stuck: two of its keys are ready
    assert "10 keys left and no workers running" in flat  # two new sessions in each of five tables
    if columns == 200:
        lines = [ln.split() for ln in text.splitlines() if ln.split() and ln.split()[0] in TABLES]
        shown = [ln[0] for ln in lines]
        assert shown[:5] == list(TABLES), text  # progress rows, then the make-size rows, each upstream first
        #                 Total Done Done% Ready Running Failed Ignored Waiting Blocked
        assert lines[0][1:10] == ["8", "5", "62.5%", "2", "0", "1", "0", "0", "0"], lines[0]
        assert " ".join(lines[0][11:]) == "no workers running", lines[0]
        for ln in lines[1:5]:
            assert ln[1:10] == ["8", "5", "62.5%", "0", "0", "0", "0", "3", "1"], ln
            assert " ".join(ln[11:]) == "waiting for upstream", ln
    else:
        assert "Table Motion  Total 8  Done 5  Done % 62.5%  Ready 2" in text, text
        assert text.index("Table Segment") < text.index("Table Trace") < text.index("Table Quality") < \
            text.index("Table Summary")


def test_a_pipeline_quiet_and_limited(chain):
    text = _run(200, ["progress", "chain.py", "-q"], chain.env, chain.folder)
    lines = text.splitlines()
    assert [ln.split(":")[0] for ln in lines] == list(TABLES), text
    assert lines[0].startswith("Motion: 5 of 8 done (62.5%), 2 ready, 0 running, 1 failed, 0 ignored, 0 waiting, "
                               "0 blocked, ")
    assert lines[1].startswith("Segment: 5 of 8 done (62.5%), 0 ready, 0 running, 0 failed, 0 ignored, 3 waiting, "
                               "1 blocked, ") and lines[1].endswith("waiting for upstream")
    # rows in dependency order whatever order they are named in
    assert [r["table"] for r in _json(chain, "chain.py", "--tables", "Quality,Motion")] == ["Motion", "Quality"]
    # below Trace: its upstream tables are not shown, yet what they will give is still counted
    rows = _json(chain, "chain.py", "--downstream-of", "Trace")
    assert [r["table"] for r in rows] == ["Trace", "Summary"]
    assert [counts(r) for r in rows] == [CHAIN_EXPECTED["Trace"], CHAIN_EXPECTED["Summary"]]
    assert rows[0]["depends_on"] == ["Segment"]
    # --restrict: each table's key source under it (sessions 5, 6 and 7: one made, two new; 2, the failure, out)
    rows = _json(chain, "chain.py", "--restrict", "session >= 5")
    assert [(r["table"], r["expected"], r["done"], r["ready"], r["waiting"], r["blocked"], r["error"]) for r in rows] \
        == [("Motion", 3, 1, 2, 0, 0, 0)] + [(t, 3, 1, 0, 2, 0, 0) for t in TABLES[1:]], rows
    # the failure is counted, and blocks below, where the restriction takes it in
    rows = _json(chain, "chain.py", "--restrict", "session BETWEEN 2 AND 3")
    assert [(r["table"], r["expected"], r["done"], r["ready"], r["waiting"], r["blocked"], r["error"]) for r in rows] \
        == [("Motion", 2, 1, 0, 0, 0, 1)] + [(t, 2, 1, 0, 1, 1, 0) for t in TABLES[1:]], rows


def test_watching_a_pipeline_ends_when_it_cannot_go_further(backend, db, schema_name, tmp_path):
    """--watch follows a worker through the two new sessions; it ends (exit 1: a failed key is left) once nothing
    can move, saying why in one line."""
    project = filled_chain(tmp_path / "project", backend, schema_name, DJHPC_TEST_SLEEP=0.1)
    watch = subprocess.Popen([sys.executable, "-m", "djhpc.cli.main", "progress", "chain.py", "--watch", "--json",
                              "--interval", "0.2"], env=project.env, cwd=project.folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(watch.stdout.readline())
        assert [counts(r) for r in first] == [CHAIN_EXPECTED[t] for t in TABLES]  # it saw the start
        worker = project.djhpc("work", "chain.py")
        assert worker.returncode == 0, worker.stderr[-2000:]  # nothing failed this time
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 1, err
    last = json.loads(out.splitlines()[-1])
    assert [(r["table"], r["done"], r["expected"], r["blocked"]) for r in last] == [
        ("Motion", 7, 8, 0), *[(t, 7, 8, 1) for t in TABLES[1:]]]
    assert err.startswith("djhpc: nothing is running and the pipeline is not done: Motion: 1 failed — see djhpc "
                          "jobs errors; Segment: 1 blocked by failures upstream") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [
    ["progress", "nonexistent.py"],
    ["progress", "empty.py"],  # no computed tables
    ["progress", "chain.py", "--tables", "Qualty"],
    ["progress", "chain.py:Motion", "--tables", "Quality"],
    ["progress", "--schema", "x", "--downstream-of", "Motion"],
    ["status", "empty.py"],
    ["jobs", "nonexistent.py"],
    ["jobs", "ignore", "session=3", "chain.py"],  # which table's key? (--tables T)
    ["cancel", "chain.py"],  # takes one table
    ["report", "empty.py", "-o", "r.html"],
])
def test_bad_pipeline_input_is_one_line_and_exit_2(backend, db, schema_name, tmp_path, argv):
    project = ChainProject.create(tmp_path / "project", backend, schema_name)
    project.add_sessions([1])  # the database and the pipeline's tables exist
    (project.folder / "empty.py").write_text("import djhpc as dj\n\nschema = dj.Schema('empty_' + "
                                             f"{schema_name!r})\n\n\n@schema\nclass Note(dj.Manual):\n"
                                             "    definition = 'note : int'\n")
    out = project.djhpc(*argv)
    assert out.returncode == 2 and one_line_error(out.stderr), out.stderr
    assert out.stdout == ""
    if "Qualty" in argv:
        assert "did you mean Quality?" in out.stderr
