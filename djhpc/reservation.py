"""The reservation library: reserve, complete, fail, release and ignore keys in a schema's jobs table.

It stands on its own: it takes a connection, a table name and key dicts, and knows nothing of table
classes, so other table layers can drive it.

Protocol (the invariants the tests check):
- A reservation is a row ``(table_name, key_hash)`` with ``status='reserved'`` and a random ``token``.
  Reserving is one ``INSERT ... SELECT`` that skips keys already reserved/failed/ignored and keys already
  in the target table (``NOT EXISTS``). Reservers of a table take turns, so that statement sees every
  earlier reservation and no two workers race for a key: on MySQL it is sent in one packet between
  ``GET_LOCK`` and ``RELEASE_LOCK`` with the read of the keys won, so a batch costs one round trip.
- Completing is ``DELETE ... WHERE token = ?`` as the last statement of make's own transaction; if it
  deletes nothing, the reservation was reclaimed and the transaction must roll back (fencing).
- Failing and releasing present the token too, so a late worker never touches another's reservation.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import secrets
import socket
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

import psutil

from . import blob
from .errors import DatabaseError, ReservationLostError

log = logging.getLogger(__name__)

JOBS_TABLE = "~jobs"
_created: set = set()  # (database, schema, pid) whose jobs table this process has made sure of
ERROR_MESSAGE_LIMIT = 2047
RESERVE_LOCK_WAIT = 2  # seconds a reserver waits for its turn before reserving without one
_TRUNCATED = "...truncated"


# ------------------------------------------------------------------------ key hashing
def _canonical(value):
    """A type-tagged, unambiguous form of one key value."""
    if isinstance(value, bool):
        return ["b", int(value)]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, Decimal):
        return ["d", str(value.normalize())]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, (bytes, bytearray)):
        return ["x", bytes(value).hex()]
    if isinstance(value, dt.datetime):
        return ["t", value.isoformat()]
    if isinstance(value, dt.date):
        return ["D", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["T", str(value.total_seconds())]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if hasattr(value, "item"):  # numpy scalar
        return _canonical(value.item())
    return ["r", repr(value)]


def key_hash(key: dict) -> str:
    """32 hex digits (128 bits of SHA-256) over attribute names and type-tagged values, sorted by name.

    Names and values are JSON-encoded, so ``{'a': 1, 'b': 23}`` and ``{'a': 12, 'b': 3}`` differ.
    """
    canon = json.dumps([[k, _canonical(key[k])] for k in sorted(key)], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:32]


# ------------------------------------------------------------------------ who is working
@cache
def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def scheduler_ids(env=None) -> tuple[str, str]:
    """(cluster job id, array task index) of this process, as ``Scheduler.task_states`` names tasks.

    djhpc's rendered scripts export DJHPC_JOB_ID and DJHPC_TASK_ID for every scheduler; a worker
    started by hand under SLURM, PBS or GNU parallel is recognised by their own variables.
    """
    env = os.environ if env is None else env
    if env.get("DJHPC_JOB_ID"):
        return env["DJHPC_JOB_ID"], env.get("DJHPC_TASK_ID", "")
    if env.get("SLURM_ARRAY_JOB_ID"):
        return env["SLURM_ARRAY_JOB_ID"], env.get("SLURM_ARRAY_TASK_ID", "")
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"], ""
    if env.get("PBS_JOBID"):
        job = env["PBS_JOBID"].split(".")[0].split("[")[0]
        return job, env.get("PBS_ARRAY_INDEX") or env.get("PBS_ARRAYID") or ""
    if env.get("PARALLEL_SEQ"):
        return "parallel", env["PARALLEL_SEQ"]
    return "", ""


@dataclass
class Worker:
    """The identity a worker writes into every reservation and error row."""

    owner: str = field(default_factory=lambda: secrets.token_hex(16))
    user: str = ""
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    pid_start: float = 0.0
    boot_id: str = field(default_factory=boot_id)
    sched_job_id: str = ""
    sched_task_id: str = ""
    connection_id: int = 0

    @classmethod
    def current(cls, connection=None) -> Worker:
        job, task = scheduler_ids()
        try:
            start = psutil.Process().create_time()
        except psutil.Error:
            start = 0.0
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user=user, pid_start=start, sched_job_id=job, sched_task_id=task,
                   connection_id=getattr(connection, "connection_id", 0) or 0)


@dataclass
class Claim:
    """One reserved key: present ``token`` to complete, fail or release it."""

    table_name: str
    key: dict
    key_hash: str
    token: str
    attempts: int = 1
    failures: int = 0
    deaths: int = 0
    history: list = field(default_factory=list)


@dataclass
class Taken:
    """What one reservation statement did: the claims won, and why the other keys were not."""

    claims: list[Claim]
    seen_taken: int  # held or done by another worker when this one looked: skipped, no race
    lost: int  # tried at the same time as another worker, who won (only when reservers could not take turns)
    tried: int = 0  # keys of the offer the statement looked at, from the first: the rest were not needed
    then: list = field(default_factory=list)  # rows of each ``then`` statement, read in the same round trip


def reserve_lock_name(schema: str, table_name: str) -> str:
    """The named lock that reservers of one table take turns on (MySQL limits names to 64 characters)."""
    return "djhpc-reserve:" + hashlib.sha1(f"{schema}.{table_name}".encode()).hexdigest()


def truncate_message(message: str, limit: int = ERROR_MESSAGE_LIMIT) -> str:
    return message if len(message) <= limit else message[: limit - len(_TRUNCATED)] + _TRUNCATED


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class Reservations:
    """The jobs table of one schema, seen through one connection."""

    def __init__(self, connection, schema: str, worker: Worker | None = None, *, lease_seconds: float | None = None):
        from .liveness import LEASE_SECONDS

        self.connection = connection
        self.schema = schema
        self.worker = worker or Worker.current(connection)
        self.jobs = connection.dialect.table(schema, JOBS_TABLE)
        self.lease_seconds = lease_seconds or LEASE_SECONDS
        self._ready = False
        self._heartbeat = None
        self._read_committed = True
        self._lock_skip_until = 0.0

    # -------------------------------------------------------------- liveness
    def _start_liveness(self):
        """Before the first reservation: hold the session lock (MySQL) and start the heartbeat thread."""
        if self._heartbeat is not None:
            return
        from .liveness import HEARTBEAT_SECONDS, Heartbeat

        if not self.connection.is_sqlite:
            try:
                self._take_session_lock(self.connection)
                self.connection.on_connect.append(self._take_session_lock)
            except DatabaseError as e:
                # e.g. Galera (error 1235) or a proxy without session locks: the lease alone decides
                log.warning("session locks are not available (%s): dead workers are found by their lease only", e)
        self._heartbeat = Heartbeat(self, HEARTBEAT_SECONDS or max(self.lease_seconds / 6, 0.2))
        self._heartbeat.start()

    def _take_session_lock(self, connection):
        from .liveness import lock_name

        got = connection.run("take_session_lock", (lock_name(self.worker.owner),)).fetchone()[0]
        if got != 1:
            raise ReservationLostError("another session holds this worker's lock: is the owner id shared?")

    def close(self):
        """Stop the heartbeat and drop the session lock (the worker holds no reservation any more)."""
        if self._heartbeat is None:
            return
        self._heartbeat.stop()
        self._heartbeat = None
        if not self.connection.is_sqlite:
            if self._take_session_lock in self.connection.on_connect:
                self.connection.on_connect.remove(self._take_session_lock)
            try:
                from .liveness import lock_name

                self.connection.run("release_session_lock", (lock_name(self.worker.owner),))
            except Exception:  # the lock goes with the session anyway
                pass

    def still_mine(self, claim: Claim) -> bool:
        row = self._run("token_of", (claim.table_name, claim.key_hash)).fetchone()
        return bool(row) and row[0] == claim.token

    # -------------------------------------------------------------- plumbing
    def _run(self, name, params=()):
        return self.connection.run(name, params, jobs=self.jobs)

    def ensure_table(self):
        """Create the jobs table once per process and database (CREATE ... IF NOT EXISTS)."""
        marker = (self.connection.url.redacted, self.schema, os.getpid())
        if not self._ready and marker not in _created:
            if not self.connection.has_table(self.jobs):
                self._run("create_jobs")
                index = self.connection.dialect.table(self.schema, JOBS_TABLE + "__status")
                self.connection.run("create_jobs_index", jobs=self.jobs, jobs_index=index)
            _created.add(marker)
        self._ready = True

    def _identity(self) -> tuple:
        w = self.worker
        w.connection_id = self.connection.connection_id
        return (w.user, w.host, w.pid, w.connection_id, w.owner, w.pid_start, w.boot_id, w.sched_job_id,
                w.sched_task_id)

    # -------------------------------------------------------------- reserve
    def reserve(self, table_name: str, keys: list[dict], *, done_table: str | None = None,
                key_columns: list[str] | None = None, encoded: list[tuple] | None = None) -> list[Claim]:
        """Reserve as many of ``keys`` as possible in one round trip; returns the claims won (see ``take``)."""
        return self.take(table_name, keys, done_table=done_table, key_columns=key_columns, encoded=encoded).claims

    def take(self, table_name: str, keys: list[dict], *, done_table: str | None = None,
             key_columns: list[str] | None = None, encoded: list[tuple] | None = None,
             begin_next: bool = False, want: int | None = None, hashes: list[str] | None = None,
             packed: list[bytes] | None = None, then: list[tuple[str, tuple]] = ()) -> Taken:
        """Reserve the keys of ``keys`` that nobody holds, in one round trip, and say why the others were not won.

        With ``done_table``, keys whose row exists there already (``key_columns`` equal to ``encoded``)
        are skipped in the same statement, so a key finished by another worker is never reserved again.
        Reservers of one table take turns (SQLite's write lock; on MySQL a named lock taken and released in
        the same packet), so a key is skipped because it was seen held or done, never lost in a race.
        ``want`` reserves at most that many, the first free ones in the order offered: offering more keys
        than wanted lets the batch stay full when some of them turn out held. ``Taken.tried`` says how many
        of the offered keys were looked at; the rest can be offered again.
        ``then`` (MySQL): read-only statements sent in the same packet after the turn; their rows come back
        in ``Taken.then``. ``begin_next`` (MySQL) ends the packet with BEGIN for the first key's make.
        ``hashes`` and ``packed`` (the keys' hashes and blobs) may be passed when the caller has them already.
        """
        if not keys:
            return Taken([], 0, 0, 0, self._read_each(then))
        self.ensure_table()
        self._start_liveness()
        token = secrets.token_hex(16)
        hashes = hashes or [key_hash(k) for k in keys]
        packed = packed or [blob.pack(k) for k in keys]
        limit = want if want is not None and want < len(keys) else None
        statement = self._reserve_statement(table_name, hashes, packed, token, done_table, key_columns or [],
                                            encoded or [()] * len(keys))
        if self.connection.is_sqlite:
            # one statement is one write transaction: it reads the latest state under the write lock
            sql, params = statement(limit)
            won_count = self.connection.query(sql, params, context="reserve").rowcount
            serialized = True
            won = self._winners(table_name, token, hashes, won_count)
            later = self._read_each(then)
        else:
            won, serialized, later = self._reserve_in_turn(table_name, token, statement, limit, begin_next, then)
        tried = len(keys)
        if limit is not None and won and (len(won) >= limit or not serialized):
            # the statement stopped at its limit: keys after the last one won were not looked at (without a
            # turn, a key may have been passed over for a race; it is offered again, and skipped if held)
            tried = 1 + max(i for i, h in enumerate(hashes) if h in won)
        claims = [Claim(table_name, k, h, token) for k, h in zip(keys[:tried], hashes[:tried], strict=True)
                  if h in won]
        missed = tried - len(claims)
        return Taken(claims, missed if serialized else 0, 0 if serialized else missed, tried, later)

    def _reserve_statement(self, table_name, hashes, packed, token, done_table, key_columns, encoded):
        """A function of the row limit that returns the reservation statement and its parameters."""
        d = self.connection.dialect
        q, ph = d.quote, d.placeholder
        rows_sql, params = [], []
        for i, (h, p, enc) in enumerate(zip(hashes, packed, encoded, strict=True)):
            cols = [ph, ph, ph, ph] + [ph] * len(key_columns)
            if i == 0:
                names = ["_tn", "_kh", "_k", "_pos"] + [f"_c{j}" for j in range(len(key_columns))]
                cols = [f"{c} AS {n}" for c, n in zip(cols, names, strict=True)]
            rows_sql.append("SELECT " + ", ".join(cols))
            params += [table_name, h, p, i, *enc]
        identity = self._identity()
        head = [ph] * len(identity)
        insert_cols = ["table_name", "key_hash", "status", "key", "user", "host", "pid", "connection_id",
                       "owner", "pid_start", "boot_id", "sched_job_id", "sched_task_id", "token", "attempts",
                       "heartbeat_at", "position"]
        verb = "INSERT IGNORE" if d.name == "mysql" else "INSERT OR IGNORE"
        sql = (
            f"{verb} INTO {self.jobs} ({', '.join(q(c) for c in insert_cols)}) "
            f"SELECT v._tn, v._kh, 'reserved', v._k, {', '.join(head)}, {ph}, 1, {d.now}, v._pos "
            f"FROM ({' UNION ALL '.join(rows_sql)}) AS v "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.jobs} AS j WHERE j.{q('table_name')} = v._tn "
            f"AND j.{q('key_hash')} = v._kh)"
        )
        if done_table and key_columns:
            match = " AND ".join(f"t.{q(c)} = v._c{j}" for j, c in enumerate(key_columns))
            sql += f" AND NOT EXISTS (SELECT 1 FROM {done_table} AS t WHERE {match})"
        params = (*identity, token, *params)

        def statement(limit):
            return (sql + f" ORDER BY v._pos LIMIT {int(limit)}" if limit is not None else sql), params

        return statement

    def _read_each(self, statements) -> list:
        """The rows of each read, one statement at a time (where they cannot ride in a reservation's packet)."""
        return [self.connection.query(sql, params, context="reserve").fetchall() for sql, params in statements]

    def _winners(self, table_name, token, hashes, won_count) -> set[str]:
        if won_count <= 0:
            return set()
        if won_count == len(hashes):
            return set(hashes)
        return {r[0] for r in self._run("winners", (table_name, token)).fetchall()}

    def _reserve_in_turn(self, table_name, token, statement, limit, begin_next=False, then=()):
        """MySQL: take the table's reservation lock, reserve, read the winners and drop the lock, in one packet
        (with the ``then`` reads after it). Returns (hashes won, whether it was in turn, rows of each read).

        The lock is waited for at most RESERVE_LOCK_WAIT seconds; past that (a holder stuck mid-packet) the
        statement runs anyway, unserialized but still correct (INSERT IGNORE), and the lock is skipped for a
        while. The reservation reads committed rows,
        not locking ones, so it never deadlocks with completions.
        """
        import time

        q = self.connection.dialect.queries
        lock = reserve_lock_name(self.schema, table_name)
        use_lock = time.monotonic() >= self._lock_skip_until
        statements = [(q["take_reserve_lock"], (lock, RESERVE_LOCK_WAIT))] if use_lock else []
        if self._read_committed:
            statements.append((q["read_committed_next"], ()))
        statements += [statement(limit), (q["winners"].format(jobs=self.jobs), (table_name, token))]
        winners_at = len(statements) - 1
        if use_lock:
            statements.append((q["release_reserve_lock"], (lock,)))
        statements += list(then)
        try:
            results = self.connection.script(statements, begin_next=begin_next, context="reserve")
        except DatabaseError as e:
            if use_lock:
                self._drop_reserve_lock(lock)
            if getattr(e, "code", 0) == 1665 and self._read_committed:
                # binlog_format=STATEMENT refuses READ COMMITTED writes: reserve with locking reads instead
                self._read_committed = False
                return self._reserve_in_turn(table_name, token, statement, limit, begin_next, then)
            raise
        got_lock = use_lock and results[0][1] and results[0][1][0][0] == 1
        if use_lock and not got_lock:
            log.warning("waited %ss for the reservation lock of %s: reserving without it for a minute",
                        RESERVE_LOCK_WAIT, table_name)
            self._lock_skip_until = time.monotonic() + 60
        later = [rows for _, rows in results[len(results) - len(then):]] if then else []
        return {r[0] for r in results[winners_at][1]}, got_lock, later

    def _drop_reserve_lock(self, lock):
        try:
            self.connection.run("release_reserve_lock", (lock,))
        except Exception:  # a lost session has dropped its locks already
            pass

    def claim_pending(self, table_name: str, limit: int = 1) -> list[Claim]:
        """Take keys that wait for a retry (released with history, reclaimed, or failed with attempts left).

        A plain read finds candidates without locking ranges; the compare-and-set UPDATE then takes
        only rows still pending, so any number of workers may do this at once.
        """
        self.ensure_table()
        hashes = [r[0] for r in self._run("pending_hashes", (table_name, int(limit))).fetchall()]
        if not hashes:
            return []
        self._start_liveness()
        token = secrets.token_hex(16)
        w = self.worker
        w.connection_id = self.connection.connection_id
        params = (token, w.owner, w.user, w.host, w.pid, w.connection_id, w.pid_start, w.boot_id,
                  w.sched_job_id, w.sched_task_id, table_name, *hashes)
        marks = ", ".join([self.connection.dialect.placeholder] * len(hashes))
        sql = self.connection.dialect.queries["claim_pending"].format(jobs=self.jobs, hashes=marks)
        if self.connection.query(sql, params, context="claim_pending").rowcount == 0:
            return []
        claims = []
        for h, k, attempts, failures, deaths, history in self._run("claimed", (table_name, token)).fetchall():
            claims.append(Claim(table_name, blob.unpack(bytes(k)), h, token, attempts, failures, deaths,
                                json.loads(history) if history else []))
        return claims

    # -------------------------------------------------------------- finish
    def complete(self, claim: Claim):
        """Remove the reservation; run it inside make's transaction, just before the commit."""
        cur = self._run("complete", (claim.table_name, claim.key_hash, claim.token))
        if cur.rowcount != 1:
            raise ReservationLostError(
                f"reservation of {claim.table_name} {claim.key} was reclaimed by another worker: result rolled back"
            )

    def complete_statements(self, claim: Claim) -> list[tuple[str, tuple]]:
        """MySQL: the completion as statements for ``Connection.commit_batch``: the fenced DELETE and a check
        that fails unless it removed exactly this reservation (so a reclaimed key's make never commits)."""
        q = self.connection.dialect.queries
        return [(q["complete"].format(jobs=self.jobs), (claim.table_name, claim.key_hash, claim.token)),
                (q["fence_check"], ())]

    def fail(self, claim: Claim, message: str, stack: str, *, max_attempts: int = 1,
             retry_delay_seconds: float = 0) -> str:
        """Record a failed make; the key waits for a retry while attempts remain, else it is an error."""
        message = truncate_message(self._scrub(message))
        stack = self._scrub(stack)
        failures = claim.failures + 1
        status = "pending" if failures < max_attempts else "error"
        history = claim.history + [self._attempt("error", message)]
        delay = retry_delay_seconds * (2 ** (failures - 1)) if status == "pending" else 0
        cur = self._run("fail", (status, message, stack, float(delay), json.dumps(history),
                                 claim.table_name, claim.key_hash, claim.token))
        return status if cur.rowcount == 1 else "lost"

    def release(self, claim: Claim) -> bool:
        """Give the key back (interrupted or not started): no error, no attempt counted against it."""
        cur = self._run("release", (claim.table_name, claim.key_hash, claim.token))
        if cur.rowcount == 1:
            return True
        cur = self._run("release_keep_history", (claim.table_name, claim.key_hash, claim.token))
        return cur.rowcount == 1

    def ignore(self, table_name: str, key: dict):
        """Mark a key to be skipped by populate until the row is removed."""
        self.ensure_table()
        w = self.worker
        self._run("ignore", (table_name, key_hash(key), blob.pack(key), w.user, w.host, w.pid))

    def counts(self, table_name: str) -> dict[str, int]:
        self.ensure_table()
        out = {"reserved": 0, "error": 0, "ignore": 0, "pending": 0}
        for status, n in self._run("count_by_status", (table_name,)).fetchall():
            out[status] = int(n)
        return out

    def heartbeat(self) -> int:
        return self._run("heartbeat", (self.worker.owner,)).rowcount

    # -------------------------------------------------------------- helpers
    def _attempt(self, outcome: str, message: str = "") -> dict:
        w = self.worker
        return {"at": _now_text(), "outcome": outcome, "host": w.host, "pid": w.pid, "job": w.sched_job_id,
                "task": w.sched_task_id, "message": message[:500]}

    def _scrub(self, text: str) -> str:
        password = getattr(self.connection.url, "password", "")
        return text.replace(password, "***") if password and len(password) >= 3 else text
