"""Reservers of one table take turns: a key is skipped because it was seen held or made, never lost in a race.

On MySQL the turn is a named lock taken and dropped inside the reservation packet, which also reads the
keys won and may BEGIN the next transaction; on SQLite it is the write lock of the one statement.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from support.reservations import quiet

import djhpc as dj
from djhpc import reservation
from djhpc.errors import DatabaseError
from djhpc.reservation import ReserveRequest, reserve_lock_name


def keys_and_encoded(n, start=0):
    return [{"k": i} for i in range(start, start + n)], [(i,) for i in range(start, start + n)]


def test_keys_held_or_made_are_seen_not_lost(db, schema, target):
    a, b = quiet(db, schema.database), quiet(db, schema.database)
    keys, enc = keys_and_encoded(6)
    first = a.take(ReserveRequest("__t", keys[:3], done_table=target, key_columns=["k"], encoded=enc[:3]))
    assert [c.key for c in first.claims] == keys[:3] and (first.seen_taken, first.lost) == (0, 0)
    db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (5,))  # made elsewhere
    second = b.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc))
    assert [c.key for c in second.claims] == [{"k": 3}, {"k": 4}]
    assert (second.seen_taken, second.lost) == (4, 0)


def _reserve_all(url, schema, target, n, out):
    db = dj.conn(url, reset=True)
    jobs = quiet(db, schema)
    keys, enc = keys_and_encoded(n)
    won = lost = seen = 0
    for i in range(0, n, 5):  # every process walks the same keys in the same order: the worst case
        taken = jobs.take(ReserveRequest("__t", keys[i:i + 5], done_table=target, key_columns=["k"],
                                         encoded=enc[i:i + 5]))
        won += len(taken.claims)
        lost += taken.lost
        seen += taken.seen_taken
    out.put((won, lost, seen))
    db.close()


def test_workers_racing_over_the_same_keys_lose_none(db, schema, target, backend):
    quiet(db, schema.database).ensure_table()
    n, workers = 200, 4
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_reserve_all, args=(backend, schema.database, target, n, out))
             for _ in range(workers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(r[0] for r in results) == n  # every key reserved once
    assert sum(r[1] for r in results) == 0  # and no attempt lost a race
    assert sum(r[2] for r in results) == (workers - 1) * n
    counts = quiet(db, schema.database).counts("__t")
    assert counts["reserved"] == n


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_reserving_is_one_round_trip_and_can_begin_the_next_transaction(db, schema, target):
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    keys, enc = keys_and_encoded(8)
    with db.counting() as c:
        taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc,
                                         begin_next=True))
    assert len(taken.claims) == 8 and c["statements"] == 1
    assert db.in_transaction is False
    with db.counting() as c:
        db.start_transaction()  # already begun by the reservation packet
        db.query(f"INSERT INTO {target} VALUES (%s)", (0,))
        jobs.complete(taken.claims[0])
        db.commit()
    assert c["statements"] == 3  # INSERT, DELETE, COMMIT: no BEGIN of its own
    assert not db.query("SELECT IS_USED_LOCK(%s)", (reserve_lock_name(schema.database, "__t"),)).fetchone()[0]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_stuck_turn_holder_delays_others_briefly_then_they_reserve_without_turns(db, schema, target,
                                                                                   monkeypatch, caplog):
    monkeypatch.setattr(reservation, "RESERVE_LOCK_WAIT", 0.3)
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    holder = dj.Connection(db.url)  # a worker stopped while it held the turn
    holder.query("SELECT GET_LOCK(%s, 0)", (reserve_lock_name(schema.database, "__t"),))
    try:
        keys, enc = keys_and_encoded(4)
        t0 = time.monotonic()
        taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc))
        assert 0.25 < time.monotonic() - t0 < 5
        assert len(taken.claims) == 4
        assert "reserving without it" in caplog.text
        t0 = time.monotonic()  # for a while it does not wait again
        more_keys, more_enc = keys_and_encoded(4, start=4)
        extra = jobs.take(ReserveRequest("__t", more_keys + keys[:1], done_table=target, key_columns=["k"],
                          encoded=more_enc + enc[:1]))
        assert time.monotonic() - t0 < 0.25
        # out of turn, the statement still saw key 0 held (no race: nothing lost)
        assert len(extra.claims) == 4 and (extra.seen_taken, extra.lost) == (1, 0)
    finally:
        holder.close()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_statement_binlog_falls_back_to_locking_reads(db, schema, target, monkeypatch):
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    real = db.script
    sent = []

    def script(statements, **kw):
        texts = [sql for sql, _ in statements]
        sent.append(texts)
        if any("READ COMMITTED" in t for t in texts):
            err = DatabaseError("reserve: database error 1665: Binary logging not possible")
            err.code = 1665
            db.query("SELECT RELEASE_LOCK(%s)", (reserve_lock_name(schema.database, "__t"),))
            raise err
        return real(statements, **kw)

    monkeypatch.setattr(db, "script", script)
    keys, enc = keys_and_encoded(3)
    taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc))
    assert len(taken.claims) == 3 and len(sent) == 2
    assert not any("READ COMMITTED" in t for t in sent[1])


def test_an_offer_larger_than_wanted_fills_the_batch_past_held_keys(db, schema, target):
    a, b = quiet(db, schema.database), quiet(db, schema.database)
    keys, enc = keys_and_encoded(10)
    a.take(ReserveRequest("__t", [keys[1], keys[2]], done_table=target, key_columns=["k"], encoded=[enc[1], enc[2]]))
    db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (4,))  # made elsewhere
    taken = b.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc, want=3))
    assert [c.key["k"] for c in taken.claims] == [0, 3, 5]  # the first three free ones, in the order offered
    assert taken.tried == 6  # keys 6..9 were not looked at: they can be offered again
    assert (taken.seen_taken, taken.lost) == (3, 0)
    rest = b.take(ReserveRequest("__t", keys[6:], done_table=target, key_columns=["k"], encoded=enc[6:], want=3))
    assert [c.key["k"] for c in rest.claims] == [6, 7, 8] and rest.tried == 3
    short = b.take(ReserveRequest("__t", keys[8:], done_table=target, key_columns=["k"], encoded=enc[8:], want=3))
    assert [c.key["k"] for c in short.claims] == [9] and short.tried == 2 and short.seen_taken == 1


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_reads_sent_with_the_reservation_come_back_in_the_same_round_trip(db, schema, target):
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    keys, enc = keys_and_encoded(4)
    db.query(f"INSERT INTO {target} VALUES (%s), (%s)", (7, 8))
    with db.counting() as c:
        taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc, want=2,
                          then=[(f"SELECT k FROM {target} WHERE k > %s ORDER BY k", (6,))], begin_next=True))
    assert c["statements"] == 1
    assert [cl.key["k"] for cl in taken.claims] == [0, 1] and taken.then == [[(7,), (8,)]]
    assert not db.query("SELECT IS_USED_LOCK(%s)", (reserve_lock_name(schema.database, "__t"),)).fetchone()[0]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_a_reservation_out_of_turn_never_hands_out_a_key_made_meanwhile(db, schema, target, monkeypatch):
    """Without its turn (the lock waited for in vain), a reservation's view of the tables may predate another
    worker's whole reserve-make-commit of a key, so the key looks free. Seen at 128 workers on a loaded machine:
    such a key was made twice. A fresh read after such a reservation gives those keys back."""
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    keys, enc = keys_and_encoded(4)
    db.query(f"INSERT INTO {target} VALUES (%s)", (2,))  # made by another worker
    # the old view: the reservation does not see key 2's row (as if read before that worker committed)
    monkeypatch.setitem(db.dialect.queries, "reserve_skip_done", "")
    jobs._lock_skip_until = time.monotonic() + 60  # out of turn
    taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc))
    assert sorted(c.key["k"] for c in taken.claims) == [0, 1, 3]
    assert quiet(db, schema.database).counts("__t")["reserved"] == 3  # key 2's reservation is gone, not left held

    # in turn, the reservation's one statement sees every commit before it: no second read
    monkeypatch.undo()
    more, enc_more = keys_and_encoded(3, start=10)
    in_turn = quiet(db, schema.database)
    with db.counting() as c:
        taken = in_turn.take(ReserveRequest("__t", more, done_table=target, key_columns=["k"], encoded=enc_more))
    assert len(taken.claims) == 3 and c["statements"] == 1


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_among_many_workers_nobody_takes_turns_and_a_made_key_is_still_never_handed_out(db, schema, target,
                                                                                         monkeypatch):
    """Issue 16: with one turn lock for hundreds of workers every reservation queues behind all others. Among
    many, reservers take no turns (two statements less each); a reservation reads afresh, in the same packet,
    which of its keys were made meanwhile and gives them back."""
    assert reservation.takes_turns(8) and reservation.takes_turns(32) and not reservation.takes_turns(33)
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    jobs.in_turn = False
    other = type(db)(db.url)  # a reserver in its turn for a long time
    busy = reserve_lock_name(schema.database, "__t")
    assert other.query("SELECT GET_LOCK(%s, 0)", (busy,)).fetchone()[0] == 1
    keys, enc = keys_and_encoded(4)
    db.query(f"INSERT INTO {target} VALUES (%s)", (2,))  # made by another worker
    monkeypatch.setitem(db.dialect.queries, "reserve_skip_done", "")  # an older view that misses key 2's row
    questions = "SHOW SESSION STATUS LIKE 'Questions'"
    before = int(db.query(questions).fetchone()[1])
    started = time.monotonic()
    with db.counting() as c:
        taken = jobs.take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc))
    assert time.monotonic() - started < reservation.RESERVE_LOCK_WAIT  # not behind the other's turn
    # the isolation level, the reservation, the fresh read, the DELETE of key 2's (and the SHOW): no lock taken
    assert int(db.query(questions).fetchone()[1]) - before == 5
    assert sorted(cl.key["k"] for cl in taken.claims) == [0, 1, 3]
    assert c["statements"] == 2  # the packet, and the DELETE of key 2's reservation
    assert quiet(db, schema.database).counts("__t")["reserved"] == 3
    other.close()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_out_of_turn_a_key_lost_in_a_race_is_told_from_one_seen_held(db, schema, target, monkeypatch):
    """Without turns a key can be lost in a race: free in the statement's view, inserted by another worker first
    (INSERT IGNORE skips it with a warning). Only those count as lost; keys the statement saw held count as seen
    held (at W=256 every key an offer passed over was counted as lost: 33,000 in one run)."""
    jobs, other = quiet(db, schema.database), quiet(db, schema.database)
    jobs.ensure_table()
    jobs.in_turn = False
    keys, enc = keys_and_encoded(6)
    assert len(other.reserve("__t", keys[:2])) == 2  # seen held: the statement's view has them
    taken = jobs.take(ReserveRequest("__t", keys[:4], done_table=target, key_columns=["k"], encoded=enc[:4]))
    assert len(taken.claims) == 2 and (taken.seen_taken, taken.lost) == (2, 0)
    assert len(other.reserve("__t", keys[4:5])) == 1
    # a view that misses the other worker's row of key 4: its insert collides, as when both insert at once
    racing = quiet(db, schema.database)
    racing.in_turn = False
    monkeypatch.setitem(db.dialect.queries, "reserve", db.dialect.queries["reserve"].replace(
        "WHERE NOT EXISTS (SELECT 1 FROM {jobs} AS j WHERE j.`table_name` = v._tn AND j.`key_hash` = v._kh)",
        "WHERE 1"))
    taken = racing.take(ReserveRequest("__t", keys[4:], done_table=target, key_columns=["k"], encoded=enc[4:]))
    assert [c.key["k"] for c in taken.claims] == [5] and (taken.seen_taken, taken.lost) == (0, 1)


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_on_mariadb_the_reservation_returns_its_winners_itself(db, schema, target):
    """Issue 16: INSERT ... RETURNING (MariaDB >= 10.5) gives the keys won with the reservation, one statement
    fewer per reservation than reading them back; partial wins come back right."""
    from djhpc.db.mysql_session import _takes_returning

    assert _takes_returning("5.5.5-10.11.19-MariaDB-0+deb12u1") and _takes_returning("10.5.2-MariaDB")
    assert not _takes_returning("10.4.30-MariaDB") and not _takes_returning("8.0.36")
    jobs = quiet(db, schema.database)
    jobs.ensure_table()
    keys, enc = keys_and_encoded(5)
    db.query("SELECT 1")
    assert db.takes_returning == ("mariadb" in db.query("SELECT VERSION()").fetchone()[0].lower())
    first = jobs.take(ReserveRequest("__t", keys[1:3], done_table=target, key_columns=["k"], encoded=enc[1:3]))
    statement, _ = quiet(db, schema.database)._reserve_statement(
        ReserveRequest("__t", keys, done_table=target, key_columns=["k"], encoded=enc), "t" * 32)
    assert statement.rstrip().endswith("RETURNING `key_hash`") == db.takes_returning
    second = quiet(db, schema.database).take(ReserveRequest("__t", keys, done_table=target, key_columns=["k"],
                                                            encoded=enc))
    assert [c.key["k"] for c in first.claims] == [1, 2]
    assert [c.key["k"] for c in second.claims] == [0, 3, 4] and second.seen_taken == 2
