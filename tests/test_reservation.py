"""The reservation library on its own: a connection, a table name and key dicts; no table classes.

Includes a hypothesis state machine (reliability.md T13): random interleavings of reserve, complete, fail,
release, reclaim and stale workers, checked against a model after every step, on both backends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from support.reservations import quiet

import djhpc as dj
from djhpc.liveness import Reaper, ReservedRow
from djhpc.reservation import key_hash, truncate_message


def test_key_hash_is_canonical_and_does_not_collide():
    assert key_hash({"a": 1, "b": 23}) != key_hash({"a": 12, "b": 3})
    assert key_hash({"a": "ab", "b": "c"}) != key_hash({"a": "a", "b": "bc"})
    assert key_hash({"a": 1}) != key_hash({"a": "1"}) != key_hash({"a": True})
    assert key_hash({"a": 1, "b": 2}) == key_hash({"b": 2, "a": 1})
    assert key_hash({"x": 1}) != key_hash({"y": 1})
    values = [dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5), uuid.UUID(int=7), Decimal("1.50"), b"\x00", 1.5]
    assert len({key_hash({"v": v}) for v in values}) == len(values)
    assert len(key_hash({"a": 1})) == 32


def test_error_messages_are_truncated_safely():
    text = "é" * 5000
    out = truncate_message(text)
    assert len(out) == 2047 and out.endswith("...truncated")
    assert truncate_message("short") == "short"


def test_reserve_complete_fail_release_ignore(db, schema, target):
    a, b = quiet(db, schema.database), quiet(db, schema.database)
    keys = [{"k": i} for i in range(4)]
    enc = [(i,) for i in range(4)]
    won = a.reserve("__t", keys, done_table=target, key_columns=["k"], encoded=enc)
    assert [c.key for c in won] == keys
    assert b.reserve("__t", keys, done_table=target, key_columns=["k"], encoded=enc) == []
    # complete inside a transaction with the result
    with db.transaction:
        db.query(f"INSERT INTO {target} VALUES ({db.dialect.placeholder})", (0,))
        a.complete(won[0])
    assert a.fail(won[1], "ValueError: boom", "Traceback...") == "error"
    assert a.release(won[2]) is True
    a.ignore("__t", {"k": 9})
    assert a.counts("__t") == {"reserved": 1, "error": 1, "ignore": 1, "pending": 0}
    # a made key is not reserved again, even without a jobs row
    assert b.reserve("__t", [keys[0]], done_table=target, key_columns=["k"], encoded=[enc[0]]) == []
    # the released key is free again; the failed and ignored ones are skipped
    again = b.reserve("__t", keys + [{"k": 9}], done_table=target, key_columns=["k"], encoded=enc + [(9,)])
    assert [c.key for c in again] == [{"k": 2}]


def test_failed_key_with_attempts_left_waits_then_runs_again(db, schema):
    r = quiet(db, schema.database)
    (claim,) = r.reserve("__t", [{"k": 1}])
    assert r.fail(claim, "E: x", "stack", max_attempts=3, retry_delay_seconds=0) == "pending"
    (again,) = r.claim_pending("__t")
    assert again.key == {"k": 1} and again.failures == 1 and again.attempts == 2
    assert [h["outcome"] for h in again.history] == ["error"]
    assert r.fail(again, "E: y", "stack", max_attempts=3, retry_delay_seconds=3600) == "pending"
    assert r.claim_pending("__t") == []  # waits for its retry time


# ----------------------------------------------------------------------------- the state machine
def make_machine(db, schema_name, target):
    ph = db.dialect.placeholder
    keys = [0, 1, 2]

    class Reservation(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.workers = [quiet(db, schema_name, host=f"w{i}") for i in range(3)]
            self.workers[0].ensure_table()
            db.query(f"DELETE FROM {target}")
            db.query(f"DELETE FROM {db.dialect.table(schema_name, '~jobs')}")
            self.model = {k: {"status": "free", "token": None, "attempts": 0, "failures": 0, "deaths": 0}
                          for k in keys}
            self.claims = []  # (worker index, claim): some go stale

        def _current(self, claim):
            m = self.model[claim.key["k"]]
            return m["status"] == "reserved" and m["token"] == claim.token

        @rule(w=st.integers(0, 2), k=st.sampled_from(keys))
        def reserve(self, w, k):
            won = self.workers[w].reserve("__t", [{"k": k}], done_table=target, key_columns=["k"], encoded=[(k,)])
            m = self.model[k]
            assert bool(won) == (m["status"] == "free")
            if won:
                m.update(status="reserved", token=won[0].token, attempts=1, failures=0, deaths=0)
                self.claims.append((w, won[0]))

        @rule(w=st.integers(0, 2))
        def claim_pending(self, w):
            got = self.workers[w].claim_pending("__t", limit=5)
            expected = {k for k, m in self.model.items() if m["status"] == "pending"}
            assert {c.key["k"] for c in got} == expected
            for c in got:
                m = self.model[c.key["k"]]
                m.update(status="reserved", token=c.token, attempts=m["attempts"] + 1)
                self.claims.append((w, c))

        @precondition(lambda self: self.claims)
        @rule(i=st.integers(0, 50))
        def complete(self, i):
            w, claim = self.claims[i % len(self.claims)]
            current = self._current(claim)
            try:
                with db.transaction:
                    db.query(f"INSERT INTO {target} VALUES ({ph})", (claim.key["k"],))
                    self.workers[w].complete(claim)
                committed = True
            except (dj.ReservationLostError, dj.DuplicateError):
                committed = False
            assert committed == current
            if committed:
                self.model[claim.key["k"]].update(status="done", token=None)

        @precondition(lambda self: self.claims)
        @rule(i=st.integers(0, 50))
        def fail(self, i):
            w, claim = self.claims[i % len(self.claims)]
            current = self._current(claim)
            outcome = self.workers[w].fail(claim, "E: x", "stack")
            assert outcome == ("error" if current else "lost")
            if current:
                m = self.model[claim.key["k"]]
                m.update(status="error", token=None, failures=m["failures"] + 1)

        @precondition(lambda self: self.claims)
        @rule(i=st.integers(0, 50))
        def release(self, i):
            w, claim = self.claims[i % len(self.claims)]
            current = self._current(claim)
            assert self.workers[w].release(claim) == current
            if current:
                m = self.model[claim.key["k"]]
                fresh = m["attempts"] <= 1 and m["failures"] == 0 and m["deaths"] == 0
                m.update(status="free" if fresh else "pending", token=None)
                if fresh:
                    m.update(attempts=0)

        @precondition(lambda self: self.claims)
        @rule(i=st.integers(0, 50))
        def reclaim(self, i):
            """A reaper decides the claim's owner is dead (rightly or not): compare-and-set on its token."""
            _, claim = self.claims[i % len(self.claims)]
            current = self._current(claim)
            m = self.model[claim.key["k"]]
            row = ReservedRow("__t", claim.key_hash, claim.token, "", "elsewhere", 1, 0.0, "", "", "", 0, None,
                              m["deaths"], [], claim.key)
            done = Reaper(quiet(db, schema_name), max_deaths=3)._reclaim(row, "lease-expired")
            assert (done is not None) == current
            if current:
                deaths = m["deaths"] + 1
                m.update(status="error" if deaths >= 3 else "pending", token=None, deaths=deaths)

        @invariant()
        def database_matches_model(self):
            check_database_matches_model(db, schema_name, target, self.model)

    return Reservation


def check_database_matches_model(db, schema_name, target, model):
    jobs = {r["key"]["k"]: r for r in dj.JobsTable(db, schema_name).fetch()}
    made = sorted(r[0] for r in db.query(f"SELECT k FROM {target}").fetchall())
    assert made == sorted(k for k, m in model.items() if m["status"] == "done")
    for k, m in model.items():
        if m["status"] in ("free", "done"):
            assert k not in jobs
        else:
            assert jobs[k]["status"] == m["status"]
            if m["status"] == "reserved":
                assert jobs[k]["token"] == m["token"]  # one current token per key
    # the jobs table is empty when every key is done
    if all(m["status"] == "done" for m in model.values()):
        assert not jobs


def test_reservation_rules_hold_over_random_interleavings(db, schema, target):
    from hypothesis.stateful import run_state_machine_as_test

    machine = make_machine(db, schema.database, target)
    run_state_machine_as_test(machine, settings=settings(max_examples=40, stateful_step_count=25, deadline=None,
                                                         suppress_health_check=list(HealthCheck)))
