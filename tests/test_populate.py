"""populate() alone and with many processes at once, on both backends: every key made exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from support.env import worker_env
from support.pipeline import calls, load_pipeline

import djhpc as dj
from djhpc import batching

WORKER = "import pipeline_counts as p; r = p.{table}().populate(reserve_jobs=True, suppress_errors=True{extra}); " \
         "print('RESULT', r['success_count'], r['error_count'], r['make_calls'])"


def start_workers(n, backend, schema_name, tmp_path, table="Square", extra="", **env):
    environment = worker_env(backend, schema_name, DJHPC_TEST_CALLS=tmp_path / "calls.log", **env)
    code = WORKER.format(table=table, extra=extra)
    return [subprocess.Popen([sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def wait_all(procs, timeout=300):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def test_four_workers_make_every_key_exactly_once(pipeline, backend, schema_name, tmp_path):
    p = pipeline
    p.Item.insert([(i, i) for i in range(500)])
    procs = start_workers(4, backend, schema_name, tmp_path, DJHPC_TEST_FAIL="7,13")
    outs = wait_all(procs)
    made = calls(tmp_path)
    assert len(made) == 500 and set(made.values()) == {1}, made.most_common(3)
    assert len(p.Square()) == 498 and len(p.Square.Note()) == 498
    working = [int(o.split("RESULT")[1].split()[2]) for o in outs]
    assert sum(working) == 500
    jobs = p.schema.jobs
    rows = jobs.fetch(order_by="error_message")
    assert [r["status"] for r in rows] == ["error", "error"]
    assert [r["error_message"] for r in rows] == ["ValueError: bad item 13", "ValueError: bad item 7"]
    assert {r["key"]["item"] for r in rows} == {7, 13}
    pids = {proc.pid for proc in procs}
    for r in rows:
        assert r["host"] and r["pid"] in pids and r["table_name"] == "__square"
        assert "Traceback" in r["error_stack"] and "ValueError: bad item" in r["error_stack"]
    # errors are cleared, the fault fixed, and a rerun finishes the table
    assert jobs.clear_errors() == 2
    wait_all(start_workers(2, backend, schema_name, tmp_path))
    assert len(p.Square()) == 500 and len(jobs) == 0
    made = calls(tmp_path)
    assert all(n == 1 for k, n in made.items() if "7)" not in k and "13)" not in k)


def test_composite_keys_that_glue_to_the_same_string_are_both_made(pipeline, tmp_path):
    p = pipeline
    p.Pair.insert([(1, 23), (12, 3), (123, 4)])
    assert dj.key_hash({"a": 1, "b": 23}) != dj.key_hash({"a": 12, "b": 3})
    p.Pair.insert([(1, 2)])
    p.schema.jobs.ignore(p.PairSum, {"a": 1, "b": 2})
    r = p.PairSum().populate(reserve_jobs=True)
    assert r["success_count"] == 3
    assert sorted(p.PairSum.fetch("total")) == [15, 24, 127]


def test_statement_budget_per_job(pipeline, db, monkeypatch):
    """Reservation bookkeeping beyond make's own statements (its insert, BEGIN, COMMIT): at most 2 round trips
    and 1 commit per job. The completion history adds one INSERT per job inside make's transaction (on MySQL
    in the round trip that commits)."""
    p = pipeline
    n = 300
    p.PairSum().populate()  # nothing to do, but declares everything
    p.Pair.insert([(i, i) for i in range(2 * n)])
    runs = {}
    for history in ("0", "1"):
        monkeypatch.setenv("DJHPC_HISTORY", history)
        with db.counting() as count:
            r = p.PairSum().populate(reserve_jobs=True, limit=n)
        assert r["success_count"] == n
        runs[history] = count
    makes_own = 3 * n
    assert (runs["0"]["statements"] - makes_own) / n <= 2.0, runs
    assert (runs["0"]["commits"] - n) / n <= 1.0, runs
    assert runs["1"]["commits"] == runs["0"]["commits"]
    history_cost = (runs["1"]["statements"] - runs["0"]["statements"]) / n
    if db.is_sqlite:
        assert 0.9 <= history_cost <= 1.1, runs  # one in-process INSERT
    else:
        assert abs(history_cost) < 0.1, runs  # sent in the same round trip as the COMMIT
        # one round trip per job: make's insert, the fence, history, COMMIT and the next BEGIN together
        assert runs["1"]["statements"] / n < 1.3, runs


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_reservation_that_won_nothing_leaves_no_empty_transaction_behind(pipeline, db, monkeypatch):
    """Issue 16: a reservation packet ends with BEGIN for the make of the key it wins; among keys others hold
    (the end of a run) it wins nothing, and that BEGIN cost a COMMIT of nothing. After a reservation that won
    nothing the next one sends no BEGIN: at most one empty transaction per streak of losses."""
    p = pipeline
    p.PairSum().populate()  # declares everything
    p.Pair.insert([(i, i) for i in range(40)])
    other = dj.Reservations(type(db)(db.url), p.schema.database)
    held = other.reserve(p.PairSum.table_name, [{"a": i, "b": i} for i in range(30)])
    assert len(held) == 30

    def com(name):
        return int(db.query("SHOW SESSION STATUS LIKE %s", (name,)).fetchone()[1])

    monkeypatch.setattr(batching.random, "random", lambda: 0.0)  # every jump lands on the held keys again
    before = {name: com(name) for name in ("Com_begin", "Com_commit", "Com_insert_select")}
    r = p.PairSum().populate(reserve_jobs=True, position=0.0)
    n = {name: com(name) - before[name] for name in before}
    assert r["success_count"] == 10 and len(p.PairSum()) == 10
    # the start and two jumps among held keys won nothing, then the end walk won the ten free keys in batches
    assert n["Com_insert_select"] >= 3 + 1, n
    assert n["Com_begin"] <= 10 + 1 and n["Com_commit"] <= 10 + 1, n  # one empty transaction, not three
    other.connection.close()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_failing_insert_of_make_is_named_by_its_line_and_commits_nothing(pipeline, db, monkeypatch):
    p = pipeline
    p.Pair.insert([(1, 2), (3, 4)])

    def make(self, key):
        self.insert1(dict(key, total=0))
        if key["a"] == 3:
            self.insert1(dict(key, total=1))  # the same key again: fails when the inserts are sent

    line = make.__code__.co_firstlineno + 3
    monkeypatch.setattr(p.PairSum, "make", make)
    r = p.PairSum().populate(reserve_jobs=True, suppress_errors=True)
    assert r["success_count"] == 1 and r["error_count"] == 1
    assert p.PairSum.fetch("a") == [1]  # the failed make left no row
    row = p.schema.jobs.fetch1()
    assert row["status"] == "error" and row["key"] == {"a": 3, "b": 4}
    assert row["error_message"].startswith("DuplicateError: insert into PairSum (queued at test_populate.py:")
    assert f"test_populate.py:{line})" in row["error_message"]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_make_reads_what_it_inserted_before(pipeline, db, monkeypatch):
    p = pipeline
    p.Pair.insert([(i, i) for i in range(5)])
    seen = []

    def make(self, key):
        self.insert1(dict(key, total=key["a"] + key["b"]))
        seen.append((self & key).fetch1("total"))  # the queued insert is sent before this read

    monkeypatch.setattr(p.PairSum, "make", make)
    r = p.PairSum().populate(reserve_jobs=True)
    assert r["success_count"] == 5 and sorted(seen) == [0, 2, 4, 6, 8]
    assert sorted(p.PairSum.fetch("total")) == [0, 2, 4, 6, 8]


def test_start_up_costs_a_handful_of_statements_whatever_the_backlog(pipeline, db):
    p = pipeline
    seen = {}

    def first_make_statements(n_keys):
        p.Item.insert([(i, i) for i in range(len(p.Item()), n_keys)])
        before = db.stats.statements
        p.Square().populate(reserve_jobs=True, max_calls=1, position=0.5)
        seen[n_keys] = db.stats.statements - before

    first_make_statements(40)  # the first run also creates the jobs table
    first_make_statements(50)
    first_make_statements(5000)
    # count, offset, reap, pending check, window, reserve, session lock (MySQL),
    # then make's own (fetch, 2 inserts, fence, history row, begin, commit)
    assert seen[5000] == seen[50] and seen[50] <= 15, seen


def test_max_calls_counts_per_worker(pipeline, backend, schema_name, tmp_path):
    p = pipeline
    p.Item.insert([(i, i) for i in range(200)])
    wait_all(start_workers(4, backend, schema_name, tmp_path, extra=", max_calls=10"))
    assert len(p.Square()) == 40
    assert set(calls(tmp_path).values()) == {1}


def test_order_limit_and_restrictions(pipeline, tmp_path):
    p = pipeline
    p.Item.insert([(i, i) for i in range(30)])
    p.Square().populate("item < 5")
    assert sorted(p.Square.fetch("item")) == [0, 1, 2, 3, 4]
    p.Square().populate(order="reverse", limit=3, position=0)
    assert sorted(p.Square.fetch("item")) == [0, 1, 2, 3, 4, 27, 28, 29]
    r = p.Square().populate({"item": 10}, reserve_jobs=True)
    assert r["success_count"] == 1 and (p.Square & {"item": 10})
    r = p.Square().populate(order="random", limit=4, reserve_jobs=True)
    assert r["success_count"] == 4 and len(p.Square()) == 13
    r = p.Square().populate(p.Item & "item >= 20", max_calls=2, reserve_jobs=True)
    assert r["make_calls"] == 2
    with pytest.raises(dj.UsageError, match="order must be one of"):
        p.Square().populate(order="sideways")


def test_error_raises_rolls_back_and_leaves_an_error_row(backend, schema_name, monkeypatch, tmp_path, db):
    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path, DJHPC_TEST_FAIL="3")
    p.Item.insert([(3, 3)])
    with pytest.raises(ValueError, match="bad item 3"):
        p.Square().populate(reserve_jobs=True)
    assert len(p.Square()) == 0 and len(p.Square.Note()) == 0  # master insert rolled back too
    row = p.schema.jobs.fetch1()
    assert row["status"] == "error" and row["error_message"] == "ValueError: bad item 3"
    assert row["pid"] == os.getpid()
    # an error row makes populate skip the key until the row is removed
    r = p.Square().populate(reserve_jobs=True, suppress_errors=True)
    assert r["success_count"] == 0 and r["make_calls"] == 0
    r = p.Square().populate(suppress_errors=True)
    assert r["error_count"] == 1 and r["error_list"][0][1] == "ValueError: bad item 3"


def test_a_keyboard_interrupt_raised_in_make_is_the_keys_error_and_the_rest_go_back(pipeline, monkeypatch):
    """Issue 14: a KeyboardInterrupt that make() raises (a Ctrl-C in populate() alone, as in a notebook) is that
    key's error, as DataJoint 0.14 records it ("KeyboardInterrupt", its suite's test_sigint), and populate stops
    with it; this test once asked for no row at all (the key given back). The batch's other keys still go back,
    and djhpc's own stop signals still give the key back (test_djhpcs_stop_signal_inside_make_gives_the_key_back,
    tests/test_reliability.py for djhpc work's Ctrl-C)."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(5)])

    def interrupted(self, key):
        raise KeyboardInterrupt

    monkeypatch.setattr(p.Square, "make", interrupted)
    with pytest.raises(KeyboardInterrupt):
        p.Square().populate(reserve_jobs=True, suppress_errors=True)
    row = p.schema.jobs.fetch1()  # one row: the key whose make was interrupted; nothing left reserved
    assert row["status"] == "error" and row["error_message"] == "KeyboardInterrupt"
    assert "make() was interrupted" in row["error_stack"] and len(p.Square()) == 0


def test_djhpcs_stop_signal_inside_make_gives_the_key_back(pipeline, monkeypatch):
    """SIGTERM (a scheduler's stop) inside populate() raises djhpc's Interrupted, not DataJoint's
    SystemExit("SIGTERM received"): the make rolls back and its key goes back for the next worker, no error row."""
    import signal

    from djhpc.signals import Interrupted

    p = pipeline
    p.Item.insert([(i, i) for i in range(5)])

    def preempted(self, key):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises Interrupted here

    monkeypatch.setattr(p.Square, "make", preempted)
    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        p.Square().populate(reserve_jobs=True, suppress_errors=True)
    assert time.monotonic() - t0 < 20
    assert len(p.schema.jobs) == 0 and len(p.Square()) == 0
    monkeypatch.undo()
    assert p.Square().populate(reserve_jobs=True)["success_count"] == 5


def test_three_part_make_and_legacy_make_tuples(pipeline):
    p = pipeline
    p.Item.insert([(i, i) for i in range(4)])
    order = []

    @p.schema
    class Cube(dj.Computed):
        definition = """
        -> Item
        ---
        cube : bigint
        """

        def make_fetch(self, key):
            return (p.Item & key).fetch1("value")

        def make_compute(self, key, value):
            order.append(("compute", key["item"], dj.conn().in_transaction))
            return value**3

        def make_insert(self, key, cube):
            self.insert1(dict(key, cube=cube))

    @p.schema
    class Legacy(dj.Computed):
        definition = """
        -> Item
        ---
        twice : int
        """

        def _make_tuples(self, key):
            self.insert1(dict(key, twice=2 * key["item"]))

    assert Cube().populate(reserve_jobs=True)["success_count"] == 4
    assert sorted(Cube.fetch("cube")) == [0, 1, 8, 27]
    assert all(not in_tx for _, _, in_tx in order)  # compute ran outside any transaction
    assert Legacy().populate()["success_count"] == 4
    with pytest.raises(dj.DataError, match="filled by populate"):
        Legacy.insert1({"item": 0, "twice": 0})


def test_progress_counts_without_fetching_keys(pipeline, db):
    p = pipeline
    p.Item.insert([(i, i) for i in range(100)])
    p.Square().populate(limit=40)
    p.schema.jobs.ignore(p.Square, {"item": 99})
    with db.counting() as count:
        assert p.Square().progress() == (60, 100)
        detail = p.Square().progress(detail=True)
        assert p.Square().progress("item < 50") == (10, 50)  # restricted: counted by anti-join
    assert count["statements"] == 3  # one statement each, the jobs counts included
    assert detail == {"total": 100, "done": 40, "remaining": 60, "reserved": 0, "error": 0, "ignore": 1,
                      "pending": 0}


@pytest.mark.slow
def test_long_makes_run_in_parallel_on_sqlite(backend, schema_name, tmp_path, monkeypatch, db):
    """Nobody holds the file's write lock while make() computes: with one worker's make held open (its insert
    made, no commit yet), others reserve, make and commit every key of another table meanwhile."""
    import signal

    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path)
    p.Item.insert([(i, i) for i in range(8)])
    marker = tmp_path / "marker"
    (holder,) = start_workers(1, backend, schema_name, tmp_path, table="Held", extra=", limit=1",
                              DJHPC_TEST_MARKER=marker, DJHPC_TEST_HOLD=600)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the held make never started"
            time.sleep(0.05)
        wait_all(start_workers(3, backend, schema_name, tmp_path, DJHPC_TEST_SLEEP=0.2), timeout=300)
        assert holder.poll() is None, "the held make ended before the others ran: nothing was shown"
    finally:
        holder.send_signal(signal.SIGTERM)  # its key is given back
        holder.communicate(timeout=60)
    assert len(p.Square()) == 8 and set(calls(tmp_path).values()) == {1}
    assert len(p.Held()) == 0 and len(p.schema.jobs) == 0


def test_password_never_reaches_an_error_row(pipeline, db, monkeypatch):
    """A make whose error text contains the connection's password: the jobs row holds *** instead."""
    p = pipeline
    p.Item.insert1((1, 1))
    monkeypatch.setattr(type(db.url), "password", property(lambda self: "hunter2secret"), raising=False)

    def leaky(self, key):
        raise RuntimeError("could not log in with hunter2secret")

    monkeypatch.setattr(p.Square, "make", leaky)
    p.Square().populate(reserve_jobs=True, suppress_errors=True)
    row = p.schema.jobs.fetch1()
    assert "hunter2secret" not in row["error_message"] + row["error_stack"]
    assert "could not log in with ***" in row["error_message"]


def test_a_walk_hands_out_keys_in_order_and_reads_on_when_asked(backend, schema_name, monkeypatch, tmp_path):
    from djhpc.keywalk import KeyWalker

    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path)
    p.Item.insert([{"item": i, "value": i} for i in range(20)])
    walker = KeyWalker(p.Item.proj() - p.Square, ["item"], "original", None, min_window=8)
    assert [k["item"] for k in walker.peek(2)] == [0, 1]  # a window of 8 read: keys 0..7
    assert [k["item"] for k in walker.peek(3)] == [0, 1, 2]  # peeking takes nothing
    walker.consume(2)
    p.Square.insert([{"item": i, "square": i * i} for i in (9, 10)], allow_direct_insert=True)
    sql, params = walker.next_window(8)  # sent by the caller, e.g. in the reservation's round trip
    walker.accept(walker.q.connection.query(sql, params).fetchall(), 8)  # 8, 11..17: made keys left out
    assert [k["item"] for k in walker.peek(20)] == [2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17]
    assert [k["item"] for k in walker.next(14)][-1] == 17
    assert [k["item"] for k in walker.next(20)] == [18, 19]
    assert walker.next_window(8) is None and walker.next(5) == []


def test_a_walk_from_the_middle_wraps_round_to_its_start(backend, schema_name, monkeypatch, tmp_path):
    from djhpc.keywalk import KeyWalker

    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path)
    p.Item.insert([{"item": i, "value": i} for i in range(10)])
    p.Square.insert([{"item": i, "square": i * i} for i in (0, 1, 5)], allow_direct_insert=True)
    walker = KeyWalker(p.Item.proj() - p.Square, ["item"], "original", 0.5, min_window=8)
    # the first attribute is a number: half way from the first pending key (2) to the last (9) is 5, made: 6
    walker.accept(walker.q.connection.query(*walker.next_window(3)).fetchall(), 3)
    assert [k["item"] for k in walker.next(3)] == [6, 7, 8]
    walker.accept(walker.q.connection.query(*walker.next_window(3)).fetchall(), 3)  # 9: the end
    walker.accept(walker.q.connection.query(*walker.next_window(3)).fetchall(), 3)  # 2, 3, 4 from the start
    walker.accept(walker.q.connection.query(*walker.next_window(3)).fetchall(), 3)  # nothing more below 5
    assert walker.next_window(3) is None
    assert [k["item"] for k in walker.next(20)] == [9, 2, 3, 4]
    walker.reseek(0.9)  # the same range: 2 + 6.3 -> 8
    assert [k["item"] for k in walker.next(20)] == [8, 9, 2, 3, 4, 6, 7]


def test_a_walk_over_keys_that_cannot_be_interpolated_starts_at_its_share_of_them(backend, schema_name, monkeypatch,
                                                                                 tmp_path):
    """A first key attribute that is text has no middle value: the start is the share of the pending keys."""
    import djhpc as dj
    from djhpc.keywalk import KeyWalker

    p = load_pipeline(backend, schema_name, monkeypatch, tmp_path)

    @p.schema
    class Word(dj.Manual):
        definition = """
        word: varchar(16)
        """

    Word.insert([{"word": w} for w in ("ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen")])
    walker = KeyWalker(Word.proj(), ["word"], "original", 0.25, min_window=8)
    assert walker.pending_at_start == 8
    assert [k["word"] for k in walker.next(20)] == ["cat", "dog", "eel", "fox", "gnu", "hen", "ant", "bee"]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_workers_starting_at_their_share_of_a_numeric_key_read_a_few_rows_not_every_key(pipeline, db):
    """Issue 16: with W workers each counting the pending keys to find its start, rows read per key grew with W.
    An integer first attribute is interpolated: the start costs two index reads whatever the number of keys."""
    from djhpc.keywalk import KeyWalker

    p = pipeline
    seq = f"{db.dialect.quote(p.schema.database)}.seq_0_to_19999"
    db.query(f"INSERT INTO {p.Item.full_table_name} (item, value) SELECT seq, seq FROM {seq}")

    def rows_read():
        return sum(int(v) for k, v in db.query("SHOW SESSION STATUS LIKE 'Handler_read%'").fetchall())

    before = rows_read()
    walker = KeyWalker(p.Item.proj() - p.Square, ["item"], "original", 0.7, min_window=8)
    assert 13990 <= walker.next(1)[0]["item"] <= 14010
    assert rows_read() - before < 200  # counting and skipping 14,000 keys would read 30,000 rows


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_an_error_read_from_a_commit_reply_is_raised_once_the_loop_has_wound_down(pipeline, db, monkeypatch):
    """The commit of a reserved key is confirmed while the next key is made: a failure found in its reply
    is recorded for its own key and raised after the key in flight is accounted for."""
    from djhpc.errors import DuplicateError

    p = pipeline
    p.Pair.insert([(1, 0), (2, 0), (3, 0), (4, 0)])

    def make(self, key):
        self.insert1(dict(key, total=key["a"]))
        if key["a"] == 2:
            self.insert1(dict(key, total=0))  # fails when sent with the commit

    monkeypatch.setattr(p.PairSum, "make", make)
    with pytest.raises(DuplicateError):
        p.PairSum().populate(reserve_jobs=True, position=0.0)
    assert sorted(p.PairSum.fetch("a")) == [1, 3]  # 3 was made while 2's reply was on its way
    jobs = p.schema.jobs.fetch(as_dict=True)
    assert [(j["status"], j["key"]) for j in jobs] == [("error", {"a": 2, "b": 0})]
    r = p.PairSum().populate(reserve_jobs=True, suppress_errors=True)
    assert r["success_count"] == 1 and sorted(p.PairSum.fetch("a")) == [1, 3, 4]


def test_batches_shrink_to_one_key_as_the_keys_run_out():
    from djhpc.batching import MAX_BATCH, end_game_batch

    assert end_game_batch(left=100_000, held=40, holders=8) == MAX_BATCH  # far from the end: no limit of its own
    assert end_game_batch(left=96, held=16, holders=8) == 5  # 80 free keys, 8 workers: 5 each at most
    assert end_game_batch(left=20, held=16, holders=8) == 1
    assert end_game_batch(left=5, held=9, holders=0) == 1  # counts taken a moment apart may disagree


def test_the_per_key_log_line_never_holds_the_password(mysql_user, mysql_schema):
    """Issue 15, 3a: make's error quoting the connection string is scrubbed in the log line, as in the error row."""
    url, password = mysql_user
    connection = dj.conn(url, reset=True)
    try:
        schema = dj.Schema(mysql_schema, connection=connection)

        @schema
        class Source(dj.Manual):
            definition = """
            n : int
            """

        @schema
        class Leaky(dj.Computed):
            definition = """
            -> Source
            """

            def make(self, key):
                raise ConnectionError(f"cannot reach {url}/elsewhere")

        Source.insert1((1,))
        lines = []
        Leaky().populate(reserve_jobs=True, suppress_errors=True, on_key=lambda *a: lines.append(a[-1]))
        assert any("cannot reach" in line for line in lines)
        assert not any(password in line for line in lines), lines
        (message,) = schema.jobs.fetch("error_message")
        assert "cannot reach" in message and password not in message
    finally:
        connection.close()


def test_sys_exit_inside_make_is_the_keys_error_and_the_rest_go_back(schema, db):
    """Issue 15, item 6: the key whose make called sys.exit() gets an error row; the batch's other keys are given
    back, none is left reserved for a reaper to count as a death."""

    @schema
    class Count(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Quitter(dj.Computed):
        definition = """
        -> Count
        """

        def make(self, key):
            if key["n"] == 3:
                sys.exit(4)
            self.insert1(key)

    Count.insert([(i,) for i in range(10)])
    with pytest.raises(SystemExit) as info:
        Quitter().populate(reserve_jobs=True, order="original", position=0.0)
    assert info.value.code == 4
    assert sorted(Quitter.fetch("n")) == [0, 1, 2]
    rows = schema.jobs.fetch("status", "error_message", as_dict=True)
    assert [r["status"] for r in rows] == ["error"], rows  # nothing left reserved
    # DataJoint's message (its suite's test_sigterm: "SystemExit: SIGTERM received"); djhpc's hint in the stack
    assert rows[0]["error_message"] == "SystemExit: 4"
    (stack,) = schema.jobs.fetch("error_stack")
    assert "make() called sys.exit(4): the worker stopped; fix make, then djhpc jobs retry" in stack
    Quitter().populate(reserve_jobs=True)  # the rest run; the exited key waits for a retry by hand
    assert sorted(Quitter.fetch("n")) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_every_error_class_raised_by_make_itself_is_its_keys_error(schema, db):
    """Issue 14 (DataJoint's test_suppress_dj_errors): make raising any class of dj.errors, with no arguments, gives
    an error row at once, with DataJoint's bare class name for its message. djhpc's transient and protocol errors
    (LostConnectionError, TransientError, DiskFullError, KeyMadeElsewhere, MakeTimeout, ReservationLostError) mean
    a retry, a lost key or a time limit only where djhpc raised them; raised by make they were retried for
    DJHPC_RECONNECT_SECONDS, or dropped as lost, before."""
    import inspect

    names = sorted(n for n, c in inspect.getmembers(dj.errors) if inspect.isclass(c) and issubclass(c, Exception))
    djhpcs_own = {"LostConnectionError", "TransientError", "DiskFullError", "KeyMadeElsewhere", "MakeTimeout",
                  "ReservationLostError", "UnreachableError", "ServerFullError"}
    assert djhpcs_own <= set(names)

    @schema
    class ErrorName(dj.Lookup):
        definition = """
        error_name : varchar(64)
        """
        contents = [(n,) for n in names]

    @schema
    class Raiser(dj.Computed):
        definition = """
        -> ErrorName
        """

        def make(self, key):
            raise getattr(dj.errors, key["error_name"])

    t0 = time.monotonic()
    result = Raiser().populate(reserve_jobs=True, suppress_errors=True)
    assert time.monotonic() - t0 < 30
    assert result["success_count"] == 0 and result["error_count"] == len(names)
    rows = {r["key"]["error_name"]: r for r in schema.jobs.fetch(as_dict=True)}
    assert sorted(rows) == names
    # the class's own name: DataJointError is DjhpcError
    assert {n: (r["status"], r["error_message"]) for n, r in rows.items()} == \
        {n: ("error", getattr(dj.errors, n).__name__) for n in names}
    # without reservation the same: every key in error_list, none retried
    schema.jobs.delete()
    result = Raiser().populate(suppress_errors=True)
    assert result["make_calls"] == result["error_count"] == len(names)
    assert sorted(message for _, message in result["error_list"]) == sorted(getattr(dj.errors, n).__name__
                                                                             for n in names)


def test_where_an_error_was_raised_decides_whose_it_is():
    """raised_by_djhpc reads the innermost frame of the traceback: djhpc's modules and the drivers, or anything
    else (make, the user's helpers)."""
    import pymysql

    from djhpc import populate
    from djhpc.errors import LostConnectionError

    def raised(call):
        try:
            call()
        except BaseException as e:
            return e
        raise AssertionError("nothing raised")

    def by_make():
        raise LostConnectionError("make's own")

    def through_djhpc():
        populate._check_timeout(-1, "make_timeout")  # djhpc.populate raises UsageError

    def reraised_by_make():
        try:
            through_djhpc()
        except dj.UsageError:
            raise

    assert not populate.raised_by_djhpc(raised(by_make))
    assert populate.raised_by_djhpc(raised(through_djhpc))
    assert populate.raised_by_djhpc(raised(reraised_by_make))  # re-raised as it was: still djhpc's
    assert populate.raised_by_djhpc(raised(lambda: pymysql.connect(host="127.0.0.1", port=1, connect_timeout=1)))
    assert populate.raised_by_djhpc(LostConnectionError("settled from a commit's reply, never raised"))
    assert populate.error_message(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert populate.error_message(SystemExit("SIGTERM received")) == "SystemExit: SIGTERM received"


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_connection_lost_inside_make_is_made_again_but_one_make_raises_is_its_error(schema, db):
    """The server drops make's session while make reads (djhpc's database layer raises LostConnectionError): the
    key is made again on a new connection. make raising LostConnectionError itself is that key's error, at once."""
    from test_tables import kill

    @schema
    class Source(dj.Manual):
        definition = """
        n : int
        """

    calls = []

    @schema
    class Reader(dj.Computed):
        definition = """
        -> Source
        ---
        seen : int
        """

        def make(self, key):
            calls.append(key["n"])
            if key["n"] == 2:
                raise dj.LostConnectionError("make's own words")
            if key["n"] == 1 and calls.count(1) == 1:
                kill(self.connection.connection_id)
            self.insert1(dict(key, seen=len(Source & key)))

    Source.insert([(0,), (1,), (2,)])
    result = Reader().populate(reserve_jobs=True, suppress_errors=True, order="original", position=0.0)
    assert sorted(Reader.fetch("n")) == [0, 1] and result["success_count"] == 2
    assert calls.count(1) == 2 and calls.count(2) == 1, calls
    row = schema.jobs.fetch1()
    assert row["key"] == {"n": 2} and row["error_message"] == "LostConnectionError: make's own words"


def test_a_bare_memory_error_says_what_ran_out(schema, db):
    """Issue 15, item 9: not 'MemoryError: ' with nothing after it."""

    @schema
    class Size(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Hungry(dj.Computed):
        definition = """
        -> Size
        """

        def make(self, key):
            raise MemoryError()

    Size.insert1((1,))
    Hungry().populate(reserve_jobs=True, suppress_errors=True)
    (message,) = schema.jobs.fetch("error_message")
    assert message.startswith("MemoryError: make() ran out of memory (this worker's peak RSS ")
    assert message.endswith(" MB)")


def test_a_reservation_whose_reply_was_lost_is_given_back_not_stranded(schema, db, monkeypatch):
    """Issue 15, item 1: the reservation committed but its reply never came; the worker reserves again. It must
    not keep holding the first batch without knowing it (the heartbeat would keep those keys alive for good)."""
    from djhpc.errors import LostConnectionError
    from djhpc.reservation import Reservations

    @schema
    class Number(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Twice(dj.Computed):
        definition = """
        -> Number
        ---
        twice : int
        """

        def make(self, key):
            self.insert1(dict(key, twice=2 * key["n"]))

    Number.insert([(i,) for i in range(40)])
    real_take, lost = Reservations.take, []

    def take_then_lose_the_reply(self, request):
        taken = real_take(self, request)
        if not lost and taken.claims:
            lost.append(len(taken.claims))
            raise LostConnectionError("lost the connection to the database server (test: the reply never came)")
        return taken

    monkeypatch.setattr(Reservations, "take", take_then_lose_the_reply)
    result = Twice().populate(reserve_jobs=True)
    assert lost and lost[0] >= 1
    assert len(Twice()) == 40 and result["success_count"] == 40
    assert len(schema.jobs) == 0  # nothing stranded under this worker's owner id


def test_a_make_that_inserts_nothing_or_another_keys_row_is_rejected(schema, db):
    """Issue 15, item 7: the fenced completion requires the key's own row, so a make that inserted nothing, or
    computed one key's values under another, commits nothing and leaves an error naming what it inserted (on
    MySQL the check rides in the commit's packet, whose reply is read while the next key is made)."""

    @schema
    class Count(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Careless(dj.Computed):
        definition = """
        -> Count
        ---
        twice : int
        """

        def make(self, key):
            if key["n"] == 3:
                return  # nothing
            n = 9 if key["n"] == 5 else key["n"]  # key 5's values land under key 9
            self.insert1({"n": n, "twice": 2 * key["n"]})

    Count.insert([(i,) for i in range(10)])
    result = Careless().populate(reserve_jobs=True, suppress_errors=True, order="original", position=0.0)
    assert result["success_count"] == 8 and result["error_count"] == 2
    assert sorted(Careless.fetch("n")) == [0, 1, 2, 4, 6, 7, 8, 9]
    assert (Careless & {"n": 9}).fetch1("twice") == 18  # key 5's 10 never committed
    rows = {r["key_hash"]: r for r in schema.jobs.fetch(as_dict=True)}
    assert sorted(r["status"] for r in rows.values()) == ["error", "error"]
    messages = sorted(r["error_message"] for r in rows.values())
    assert all("committed no row for its key" in m and "must insert its own key" in m for m in messages)
    assert any("{'n': 3}" in m and "it inserted" not in m for m in messages), messages
    assert any("{'n': 5}" in m and "it inserted {'n': 9}" in m for m in messages), messages
    # without reservation nothing is checked, as in DataJoint: key 3 leaves nothing, silently; key 5 fails only
    # because the row it writes (key 9's) exists
    result = Careless().populate(suppress_errors=True, order="original")
    assert result["make_calls"] == 2 and [str(e) for _, e in result["error_list"]][0].startswith("DuplicateError")


def test_a_make_past_its_time_limit_is_stopped_and_its_key_is_an_error(schema, db):
    """Issue 15, item 8: make_timeout (the table's, or populate's make_timeout / djhpc work --make-timeout) stops
    a make that does not return; its key is an error, the rest are made on the same (fresh) connection."""
    import time as clock

    @schema
    class Job(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Slow(dj.Computed):
        definition = """
        -> Job
        ---
        seen : int
        """
        make_timeout = 60

        def make(self, key):
            if key["n"] == 2:
                (Job & key).fetch1()
                clock.sleep(600)  # never returns in time
            self.insert1(dict(key, seen=len(Job & key)))

    Job.insert([(i,) for i in range(5)])
    t0 = clock.monotonic()
    result = Slow().populate(reserve_jobs=True, suppress_errors=True, make_timeout=0.5, order="original",
                             position=0.0)
    assert clock.monotonic() - t0 < 120
    assert result["success_count"] == 4 and result["error_count"] == 1
    assert sorted(Slow.fetch("n")) == [0, 1, 3, 4]
    row = schema.jobs.fetch1()
    assert row["status"] == "error" and "ran past its 0.5 s limit" in row["error_message"], row
    assert "MakeTimeout" in row["error_message"]
    with pytest.raises(dj.UsageError, match="make_timeout must be a number of seconds > 0"):
        Slow().populate(reserve_jobs=True, make_timeout=-1)
    # the table's own limit applies when populate names none
    Slow.make_timeout = 0.3
    (schema.jobs & {"status": "error"}).delete()
    assert Slow().populate(reserve_jobs=True, suppress_errors=True)["error_count"] == 1


def test_a_duplicate_met_after_the_key_was_reclaimed_and_made_elsewhere_is_lost_not_failed(schema, db):
    """Issue 15, item 9: a worker resumed after its key was reclaimed and made by another finds that row when it
    commits (a duplicate, before the fence is reached): the key is lost to the other worker, no error row, and
    populate reports no failure (djhpc work exits 0)."""
    from djhpc.reservation import Reservations

    @schema
    class Source(dj.Manual):
        definition = """
        n : int
        """

    @schema
    class Late(dj.Computed):
        definition = """
        -> Source
        ---
        by : varchar(16)
        """

        def make(self, key):
            other = dj.Connection(db.url.full)
            try:  # meanwhile: reclaimed by a reaper, made by another worker
                jobs = Reservations(other, schema.database)
                (row,) = jobs.reserved_rows()
                assert jobs.reclaim(row, status="pending", death=True, history=[], message="")
                d = other.dialect
                other.query(f"INSERT INTO {Late.full_table_name} ({d.quote('n')}, {d.quote('by')}) VALUES "
                            f"({d.placeholder}, 'other')", (key["n"],))
                other.query(f"DELETE FROM {d.table(schema.database, '~jobs')}")  # the other made it: no row
            finally:
                other.close()
            self.insert1(dict(key, by="late"))

    Source.insert1((1,))
    result = Late().populate(reserve_jobs=True, suppress_errors=True)
    assert result["error_count"] == 0 and result["success_count"] == 0, result["error_list"]
    assert Late.fetch1("by") == "other" and len(schema.jobs) == 0


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_worker_costs_at_most_15_statements_besides_its_keys(pipeline, backend, schema_name, tmp_path):
    """Issue 16: a worker's fixed cost (connect, declare, start, look for dead workers, walk, exit) is at most 15
    statements, so that an array of many short tasks does not load the server with bookkeeping. Measured in a
    fresh worker process over a table with nothing left; the 2 statements of connecting (PyMySQL's SET NAMES and
    djhpc's session settings) are added to what the connection counted."""
    p = pipeline
    p.Item.insert([(i, i) for i in range(3)])
    p.Square().populate(reserve_jobs=True)  # made: the worker below finds nothing left
    code = ("import djhpc as dj, pipeline_counts as p; r = p.Square().populate(reserve_jobs=True); "
            "print(r['success_count'], dj.conn().stats.statements)")
    out = subprocess.run([sys.executable, "-c", code], env=worker_env(backend, schema_name), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    made, statements = map(int, out.stdout.split())
    assert made == 0 and statements + 2 <= 15, statements


def test_looks_for_dead_workers_are_spread_over_many_workers():
    """Issue 16: each of W workers looks for dead workers every REAP_SECONDS x W/REAPERS on average, so that all of
    them together look about REAPERS times per REAP_SECONDS (each look reads every reserved row)."""
    from djhpc.populate import REAP_SECONDS, REAPERS, reap_interval

    few = [reap_interval(2) for _ in range(2000)]
    assert min(few) >= 0.5 * REAP_SECONDS and max(few) <= 1.5 * REAP_SECONDS
    many = [reap_interval(256) for _ in range(2000)]
    assert min(many) >= 0.5 * REAP_SECONDS * 256 / REAPERS
    mean = sum(many) / len(many)
    assert 0.9 * REAP_SECONDS * 256 / REAPERS <= mean <= 1.1 * REAP_SECONDS * 256 / REAPERS
