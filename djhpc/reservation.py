"""The reservation library: reserve, complete, fail, release and ignore keys in a schema's jobs table.

It stands on its own: it takes a connection, a table name and key dicts, and knows nothing of table
classes, so other table layers can drive it.

Protocol (the invariants the tests check):
- A reservation is a row ``(table_name, key_hash)`` with ``status='reserved'`` and a random ``token``.
  Reserving is one ``INSERT ... SELECT`` that skips keys already reserved/failed/ignored and keys already
  in the target table (``NOT EXISTS``). Reservers of a table take turns, so that statement sees every
  earlier reservation and no two workers race for a key: on MySQL it is sent in one packet between
  ``GET_LOCK`` and ``RELEASE_LOCK`` with the read of the keys won, so a batch costs one round trip. Among many
  workers (``takes_turns``) there are no turns: INSERT IGNORE skips a key another worker inserts at the same
  time, and a fresh read in the same packet gives back any key made while the statement's view was older.
- Completing is ``DELETE ... WHERE token = ?`` followed by a check that fails unless it deleted exactly one
  row, as the last statements of make's own transaction (``closing``): if the reservation was reclaimed, the
  check fails, the commit never runs, and the failure is recognised by the check's position (fencing).
- Failing and releasing present the token too, so a late worker never touches another's reservation.
- A live worker renews the lease of its rows (``Heartbeat``) and, on MySQL, holds a session lock named after
  its owner id; ``liveness.py`` judges who is dead and calls ``reclaim``, a compare-and-set on the token.

Every statement that changes a jobs row is here, by name, in ``db/mysql.sql`` and ``db/sqlite.sql``.
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
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

import psutil

from . import blob
from .errors import DatabaseError, KeyNotMadeError, LostConnectionError, ReservationLostError

log = logging.getLogger(__name__)

JOBS_TABLE = "~jobs"
_created: set = set()  # (database, schema, pid) whose jobs table this process has made sure of
ERROR_MESSAGE_LIMIT = 2047
KEYS_PER_COUNT = 500  # keys of the jobs table one restricted count looks for (an OR of that many keys)
RESERVE_LOCK_WAIT = 2  # seconds a reserver waits for its turn before reserving without one
LEASE_SECONDS = float(os.environ.get("DJHPC_LEASE_SECONDS", 180))
HEARTBEAT_SECONDS = float(os.environ.get("DJHPC_HEARTBEAT_SECONDS", 0)) or None
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


def forget_tables(connection) -> None:
    """Forget which jobs tables this process made on ``connection``'s database (a schema was dropped)."""
    _created.difference_update({m for m in _created if m[0] == connection.url.redacted})


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


LEASE_ONLY = "lease-"  # an owner id starting so holds no session lock: judge it alive by PID, scheduler and lease


def lease_only_owner() -> str:
    """An owner id for a worker that gives its connection back during long makes (populate's release_after): it
    takes no session lock, whose session would come and go, and reapers judge it without one."""
    return LEASE_ONLY + secrets.token_hex(13)


def is_lease_only(owner: str) -> bool:
    return owner.startswith(LEASE_ONLY)


@dataclass
class Worker:
    """The identity a worker writes into every reservation and error row (its scheduler ids are handed in)."""

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
    def current(cls, connection=None, *, job_id: str = "", task_id: str = "") -> Worker:
        """This process, in the cluster job and array task its caller read from the task environment."""
        try:
            start = psutil.Process().create_time()
        except psutil.Error:
            start = 0.0
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user=user, pid_start=start, sched_job_id=job_id, sched_task_id=task_id,
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
class ReserveRequest:
    """What to reserve: keys of ``table_name`` in the order offered, and how.

    ``done_table``/``key_columns``/``encoded``: skip keys whose row exists there already (``key_columns`` equal
    to ``encoded``), so a key another worker made is never reserved again. ``want``: reserve at most that many,
    the first free ones (offering more keys than wanted keeps a batch full when some are held).
    ``then`` (MySQL): read-only statements sent in the same packet after the turn; their rows come back in
    ``Taken.then``. ``begin_next`` (MySQL): the packet ends with BEGIN for the first key's make. ``hashes`` and
    ``packed`` (the keys' hashes and blobs) may be given when the caller has them already.
    """

    table_name: str
    keys: list[dict]
    done_table: str | None = None
    key_columns: list[str] = field(default_factory=list)
    encoded: list[tuple] | None = None
    want: int | None = None
    then: list[tuple[str, tuple]] = field(default_factory=list)
    begin_next: bool = False
    hashes: list[str] | None = None
    packed: list[bytes] | None = None

    def __post_init__(self):
        self.hashes = self.hashes or [key_hash(k) for k in self.keys]
        self.packed = self.packed or [blob.pack(k) for k in self.keys]
        self.encoded = self.encoded or [()] * len(self.keys)
        if not self.done_table:
            self.key_columns = []

    @property
    def limit(self) -> int | None:
        """The row limit of the statement, when fewer keys are wanted than offered."""
        return self.want if self.want is not None and self.want < len(self.keys) else None


@dataclass
class Taken:
    """What one reservation statement did: the claims won, and why the other keys were not."""

    claims: list[Claim]
    seen_taken: int  # held or done by another worker when this one looked: skipped, no race
    lost: int  # tried at the same time as another worker, who won (only when reservers could not take turns)
    tried: int = 0  # keys of the offer the statement looked at, from the first: the rest were not needed
    then: list = field(default_factory=list)  # rows of each ``then`` statement, read in the same round trip


@dataclass
class Closing:
    """The statements that end make's transaction for one claim. The one at ``fence_at`` must change exactly one
    row (pass it as ``Connection.commit_with(..., one_row_at=fence_at)``), else the commit never runs.

    Extra statements (a history row) may be appended: the fence keeps its position. With ``made`` the fence also
    requires the key's row in the target table, so a failure there is either a reclaimed reservation or a make
    that did not insert its key; ``error`` tells them apart by asking ``still_mine`` (only then)."""

    statements: list[tuple[str, tuple]]
    fence_at: int | None
    claim: Claim | None = None
    made: Made | None = None

    def error(self, pending, still_mine=None) -> Exception | None:
        """The commit's error, a reclaimed reservation recognised by the position of the statement that failed."""
        err = pending.result()
        if err is None or self.claim is None or pending.failed_at != self.fence_at or _connection_lost(err):
            return err
        if self.made is not None and still_mine is not None \
                and ask_still_mine(still_mine, self.claim, unknown=False):  # unknown: lost, the reaper acts
            missing = KeyNotMadeError(
                f"make() of {self.made.table} committed no row for its key {self.claim.key}"
                f"{self.made.inserted_note()}: make(self, key) must insert its own key "
                "(self.insert1(dict(key, ...))); nothing of it was kept")
            missing.__cause__ = err
            return missing
        lost = ReservationLostError(f"reservation of {self.claim.table_name} {self.claim.key} was reclaimed by "
                                    "another worker: result rolled back")
        lost.__cause__ = err
        return lost


def _connection_lost(err: Exception) -> bool:
    """A connection that broke while the closing statements ran (djhpc's error, or DataJoint's / PyMySQL's on a
    DataJoint target's connection): no statement failed, whichever position it was at."""
    if isinstance(err, LostConnectionError) or type(err).__name__ == "LostConnectionError":
        return True
    code = err.args[0] if err.args and isinstance(err.args[0], int) else None
    return code in (2006, 2013)


def ask_still_mine(still_mine, claim, *, unknown: bool) -> bool:
    """``still_mine(claim)``; ``unknown`` when the database cannot say (each caller knows which guess is safe)."""
    try:
        return bool(still_mine(claim))
    except Exception:  # cannot tell
        return unknown


@dataclass
class Made:
    """Where a make's key must be found for its completion to commit: the target table and the key's columns."""

    table: str  # the target's name, for the message
    done_table: str  # quoted, qualified
    key_columns: list[str]
    encoded: tuple  # the key's values as the table's columns hold them
    inserted: list = field(default_factory=list)  # primary keys make() inserted into the target, where known

    def inserted_note(self) -> str:
        if not self.inserted:
            return ""
        shown = ", ".join(str(k) for k in self.inserted[:3])
        return f" (it inserted {shown}{' ...' if len(self.inserted) > 3 else ''})"


@dataclass
class ReservedRow:
    """A reservation as a reaper sees it."""

    table_name: str
    key_hash: str
    token: str
    owner: str
    host: str
    pid: int
    pid_start: float
    boot_id: str
    sched_job_id: str
    sched_task_id: str
    connection_id: int
    heartbeat_age: float | None
    deaths: int
    history: list
    key: dict
    position: int = 0  # order in its reservation batch: the worker makes its batch in this order


TURN_WORKERS = 32  # reservers that take turns at most: a turn takes ~5 ms, so 32 keep the lock ~15 % busy


def takes_turns(workers: int) -> bool:
    """Whether the reservers of a table take turns when ``workers`` hold reservations in its schema: among a
    few, turns cost two statements and spare races; among many, every reservation would queue behind the
    others (the wait grows with W), so they reserve without turns and read afresh which keys were made."""
    return int(workers) <= TURN_WORKERS


def reserve_lock_name(schema: str, table_name: str) -> str:
    """The named lock that reservers of one table take turns on (MySQL limits names to 64 characters)."""
    return "djhpc-reserve:" + hashlib.sha1(f"{schema}.{table_name}".encode()).hexdigest()


def lock_name(owner: str) -> str:
    """The session-lock name of a worker (MySQL limits lock names to 64 characters)."""
    return "djhpc:" + hashlib.sha1(owner.encode()).hexdigest()


def truncate_message(message: str, limit: int = ERROR_MESSAGE_LIMIT) -> str:
    return message if len(message) <= limit else message[: limit - len(_TRUNCATED)] + _TRUNCATED


def _offer_rows(dialect, names: list[str], n: int) -> str:
    """``n`` rows of placeholders named ``names``, as a derived table: the keys a statement is offered."""
    first = "SELECT " + ", ".join(f"{dialect.placeholder} AS {name}" for name in names)
    other = "SELECT " + ", ".join([dialect.placeholder] * len(names))
    return " UNION ALL ".join([first] + [other] * (n - 1))


def _match_offered(dialect, key_columns: list[str]) -> str:
    """The target table's key columns (``t``) equal to an offered row's (``v._c0``, ...)."""
    return " AND ".join(f"t.{dialect.quote(c)} = v._c{j}" for j, c in enumerate(key_columns))


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _safe_key(raw):
    try:
        return blob.unpack(bytes(raw)) if raw is not None else {}
    except Exception:  # a damaged key must not stop the reaper
        return {}


class Reservations:
    """The jobs table of one schema, seen through one connection: every statement that changes a jobs row."""

    def __init__(self, connection, schema: str, worker: Worker | None = None, *, lease_seconds: float | None = None,
                 jobs_table: str = JOBS_TABLE):
        self.connection = connection
        self.schema = schema
        self.worker = worker or Worker.current(connection)
        self.jobs_table = jobs_table  # DataJoint pipelines get their own name: 0.14 owns ~jobs there
        self.jobs = connection.dialect.table(schema, jobs_table)
        self.lease_seconds = lease_seconds or LEASE_SECONDS
        self._ready = False
        self._heartbeat = None
        self._read_committed = True
        self._lock_skip_until = 0.0
        #: whether reservers take turns on the table's lock (``takes_turns``): among many workers they do not,
        #: and each reservation checks afresh, in its packet, for keys made meanwhile
        self.in_turn = True
        self._offers: dict[tuple, str] = {}  # statement shape (keys, key columns, limited, ...) -> its text
        #: seconds a make may leave the connection unused before the heartbeat thread releases it (MySQL, a
        #: lease-only owner); None: the worker holds its connection
        self.release_after: float | None = None

    # -------------------------------------------------------------- liveness
    def _start_liveness(self):
        """Before the first reservation: hold the session lock (MySQL) and start the heartbeat thread."""
        if self._heartbeat is not None:
            return
        if not self.connection.is_sqlite and not is_lease_only(self.worker.owner):
            try:
                self._take_session_lock(self.connection)
                self.connection.on_connect.append(self._take_session_lock)
            except DatabaseError as e:
                # e.g. Galera (error 1235) or a proxy without session locks: the lease alone decides
                log.warning("session locks are not available (%s): dead workers are found by their lease only", e)
        self._heartbeat = Heartbeat(self, HEARTBEAT_SECONDS or max(self.lease_seconds / 6, 0.2),
                                    release_after=self.release_after)
        self._heartbeat.start()

    def _take_session_lock(self, connection):
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
                self.connection.run("release_session_lock", (lock_name(self.worker.owner),))
            except Exception:  # the lock goes with the session anyway
                pass

    def still_mine(self, claim: Claim) -> bool:
        row = self._run("token_of", (claim.table_name, claim.key_hash)).fetchone()
        return bool(row) and row[0] == claim.token

    # -------------------------------------------------------------- plumbing
    def _run(self, name, params=()):
        return self.connection.run(name, params, jobs=self.jobs)

    def _sql(self, name: str, **slots) -> str:
        return self.connection.dialect.queries[name].format(jobs=self.jobs, **slots)

    def ensure_table(self):
        """Create the jobs table once per process and database (CREATE ... IF NOT EXISTS)."""
        marker = (self.connection.url.redacted, self.jobs, os.getpid())
        if not self._ready and marker not in _created:
            if not self.connection.has_table(self.jobs):
                self._run("create_jobs")
                if self.connection.is_sqlite:  # MySQL declares its indexes in CREATE TABLE
                    index = self.connection.dialect.table(self.schema, self.jobs_table + "__status")
                    self.connection.run("create_jobs_index", jobs=self.jobs, jobs_index=index)
            _created.add(marker)
        self._ready = True

    def _identity(self) -> tuple:
        w = self.worker
        w.connection_id = self.connection.connection_id
        return (w.user, w.host, w.pid, w.connection_id, w.owner, w.pid_start, w.boot_id, w.sched_job_id,
                w.sched_task_id)

    # -------------------------------------------------------------- reserve
    def reserve(self, table_name: str, keys: list[dict], **options) -> list[Claim]:
        """Reserve as many of ``keys`` as possible in one round trip; the claims won (``ReserveRequest`` options)."""
        return self.take(ReserveRequest(table_name, keys, **options)).claims

    def take(self, request: ReserveRequest) -> Taken:
        """Reserve the keys of the request that nobody holds, in one round trip, and say why the others were not.

        Reservers of one table take turns (SQLite's write lock; on MySQL a named lock taken and released in
        the same packet), so a key is skipped because it was seen held or done, never lost in a race.
        ``Taken.tried`` says how many of the offered keys were looked at; the rest can be offered again.
        """
        if not request.keys:
            return Taken([], 0, 0, 0, self._read_each(request.then))
        self.ensure_table()
        self._start_liveness()
        token = secrets.token_hex(16)
        statement = self._reserve_statement(request, token)
        raced = 0
        if self.connection.is_sqlite:
            # one statement is one write transaction: it reads the latest state under the write lock
            won_count = self.connection.query(*statement, context="reserve").rowcount
            won, serialized = self._winners(request, token, won_count), True
            later = self._read_each(request.then)
        else:
            won, serialized, later, raced = self._reserve_in_turn(request, token, statement)
        return self._taken(request, token, won, serialized, later, raced)

    @staticmethod
    def _taken(request: ReserveRequest, token, won: set, serialized: bool, later: list, raced: int = 0) -> Taken:
        """``raced``: keys the statement found free in its view but another worker inserted first (INSERT
        IGNORE's skipped duplicates, possible only out of turn): lost in a race; the other keys missed were seen
        held or made."""
        tried = len(request.keys)
        limit = request.limit
        if limit is not None and won and (len(won) >= limit or not serialized):
            # the statement stopped at its limit: keys after the last one won were not looked at (without a
            # turn, a key may have been passed over for a race; it is offered again, and skipped if held)
            tried = 1 + max(i for i, h in enumerate(request.hashes) if h in won)
        claims = [Claim(request.table_name, k, h, token)
                  for k, h in zip(request.keys[:tried], request.hashes[:tried], strict=True) if h in won]
        missed = tried - len(claims)
        lost = 0 if serialized else min(raced, missed)
        return Taken(claims, missed - lost, lost, tried, later)

    def _reserve_statement(self, request: ReserveRequest, token) -> tuple[str, tuple]:
        """The named ``reserve`` statement for this many keys, and its parameters."""
        ncols = len(request.key_columns)
        returning = not self.connection.is_sqlite and self.connection.takes_returning
        shape = (len(request.keys), ncols, request.limit is not None, request.done_table or "", returning)
        sql = self._offers.get(shape)
        if sql is None:
            sql = self._reserve_text(request, shape)
            self._offers[shape] = sql
        params = [*self._identity(), token]
        for i, (h, p, enc) in enumerate(zip(request.hashes, request.packed, request.encoded, strict=True)):
            params += [request.table_name, h, p, i, *enc]
        if request.limit is not None:
            params.append(int(request.limit))
        return sql, tuple(params)

    def _reserve_text(self, request: ReserveRequest, shape) -> str:
        """Fill the slots of the ``reserve`` block: the offered rows (placeholders only) and quoted names."""
        d = self.connection.dialect
        n, ncols = shape[0], shape[1]
        offer = _offer_rows(d, ["_tn", "_kh", "_k", "_pos"] + [f"_c{j}" for j in range(ncols)], n)
        done = ""
        if request.done_table and ncols:
            match = _match_offered(d, request.key_columns)
            done = " " + d.queries["reserve_skip_done"].format(done=request.done_table, match=match)
        limit = d.queries["reserve_limit"] if request.limit is not None else ""
        returning = " " + d.queries["reserve_returning"] if shape[4] else ""
        return self._sql("reserve", offer=offer, skip_done=done, limit=limit, returning=returning)

    def _read_each(self, statements) -> list:
        """The rows of each read, one statement at a time (where they cannot ride in a reservation's packet)."""
        return [self.connection.query(sql, params, context="reserve").fetchall() for sql, params in statements]

    def _winners(self, request: ReserveRequest, token, won_count) -> set[str]:
        if won_count <= 0:
            return set()
        if won_count == len(request.hashes):
            return set(request.hashes)
        return {r[0] for r in self._run("winners", (request.table_name, token)).fetchall()}

    def _reserve_in_turn(self, request: ReserveRequest, token, statement):
        """MySQL: take the table's reservation lock, reserve, read the winners and drop the lock, in one packet
        (with the ``then`` reads after it). Returns (hashes won, whether it was in turn, rows of each read, keys
        lost in a race: the reservation's warnings).

        The lock is waited for at most RESERVE_LOCK_WAIT seconds; past that (a holder stuck mid-packet) the
        statement runs anyway, unserialized but still correct (INSERT IGNORE), and the lock is skipped for a
        while. The reservation reads committed rows, not locking ones, so it never deadlocks with completions.
        """
        lock = reserve_lock_name(self.schema, request.table_name)
        use_lock = self.in_turn and time.monotonic() >= self._lock_skip_until
        statements = [(self._sql("take_reserve_lock"), (lock, RESERVE_LOCK_WAIT))] if use_lock else []
        if self._read_committed:
            statements.append((self._sql("read_committed_next"), ()))
        reserve_at = len(statements)
        statements.append(statement)
        if not statement[0].rstrip().endswith("RETURNING `key_hash`"):  # else the reservation returns its winners
            statements.append((self._sql("winners"), (request.table_name, token)))
        winners_at = len(statements) - 1
        recheck = not self.in_turn and bool(request.done_table and request.key_columns)
        if recheck:  # beside reservers out of turn: a fresh read of keys made meanwhile, in the same packet
            statements.append(self._made_meanwhile(request, request.hashes, request.encoded))
        if use_lock:
            statements.append((self._sql("release_reserve_lock"), (lock,)))
        statements += list(request.then)
        try:
            results = self.connection.script(statements, begin_next=request.begin_next, context="reserve")
        except DatabaseError as e:
            if use_lock:
                self._drop_reserve_lock(lock)
            if e.code == 1665 and self._read_committed:
                # binlog_format=STATEMENT refuses READ COMMITTED writes: reserve with locking reads instead
                self._read_committed = False
                return self._reserve_in_turn(request, token, statement)
            raise
        got_lock = use_lock and results[0][1] and results[0][1][0][0] == 1
        if use_lock and not got_lock:
            log.warning("waited %ss for the reservation lock of %s: reserving without it for a minute",
                        RESERVE_LOCK_WAIT, request.table_name)
            self._lock_skip_until = time.monotonic() + 60
        then = request.then
        later = [rows for _, rows in results[len(results) - len(then):]] if then else []
        won = {r[0] for r in results[winners_at][1]}
        if won and recheck:
            won -= self._give_back_made(request, token, won, {r[0] for r in results[winners_at + 1][1]})
        elif won and not got_lock and request.done_table and request.key_columns:
            won -= self._give_back_made(request, token, won)
        raced = results.warnings[reserve_at]
        return won, got_lock, later, raced

    def _made_meanwhile(self, request: ReserveRequest, hashes, encoded) -> tuple[str, tuple]:
        """The read of which of these offered keys have their row in the target table now (``made_meanwhile``)."""
        d = self.connection.dialect
        offer = _offer_rows(d, ["_kh"] + [f"_c{j}" for j in range(len(request.key_columns))], len(hashes))
        sql = self._sql("made_meanwhile", offer=offer, done=request.done_table,
                        match=_match_offered(d, request.key_columns))
        return sql, tuple(p for h, enc in zip(hashes, encoded, strict=True) for p in (h, *enc))

    def _give_back_made(self, request: ReserveRequest, token, won: set, made: set | None = None) -> set:
        """Out of turn, the reservation read an older view of the tables: a key another
        worker reserved, made and committed within that view's lifetime looked free. Find such keys with a fresh
        read (or take ``made``, read in the same packet) and drop their reservations, so they are never made
        twice. Rare: only when the turn could not be had, or among many workers (who take no turns)."""
        if made is None:
            offered = [(h, enc) for h, enc in zip(request.hashes, request.encoded, strict=True) if h in won]
            sql, params = self._made_meanwhile(request, [h for h, _ in offered], [e for _, e in offered])
            made = {r[0] for r in self.connection.query(sql, params, context="reserve").fetchall()}
        made &= won
        for h in made:
            self._run("complete", (request.table_name, h, token))
        if made:
            log.info("%d key(s) of %s were made by another worker while this one reserved out of turn: given back",
                     len(made), request.table_name)
        return made

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
        if self.connection.query(self._sql("claim_pending", hashes=marks), params,
                                 context="claim_pending").rowcount == 0:
            return []
        claims = []
        for h, k, attempts, failures, deaths, history in self._run("claimed", (table_name, token)).fetchall():
            claims.append(Claim(table_name, blob.unpack(bytes(k)), h, token, attempts, failures, deaths,
                                json.loads(history) if history else []))
        return claims

    # -------------------------------------------------------------- finish
    def closing(self, claim: Claim | None, made: Made | None = None) -> Closing:
        """The statements that end make's transaction, the same on both dialects: the fenced DELETE, which must
        remove exactly this reservation, so a reclaimed key's make never commits. Run them with
        ``Connection.commit_with(closing.statements, one_row_at=closing.fence_at)`` and ask ``Closing.error``
        what became of the commit."""
        if claim is None:
            return Closing([], None)
        params = (claim.table_name, claim.key_hash, claim.token)
        if made is None or not made.key_columns:
            return Closing([(self._sql("complete"), params)], 0, claim)
        return Closing([(self._complete_made_sql(made), params + tuple(made.encoded))], 0, claim, made)

    def _complete_made_sql(self, made: Made) -> str:
        shape = ("complete_made", made.done_table, tuple(made.key_columns))
        sql = self._offers.get(shape)
        if sql is None:
            d = self.connection.dialect
            match = " AND ".join(f"t.{d.quote(c)} = {d.placeholder}" for c in made.key_columns)
            sql = self._offers[shape] = self._sql("complete_made", done=made.done_table, match=match)
        return sql

    def complete(self, claim: Claim):
        """Remove the reservation inside the caller's open transaction, just before its commit."""
        cur = self._run("complete", (claim.table_name, claim.key_hash, claim.token))
        if cur.rowcount != 1:
            raise ReservationLostError(
                f"reservation of {claim.table_name} {claim.key} was reclaimed by another worker: result rolled back"
            )

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

    def release_orphans(self, known_tokens=()) -> int:
        """Give back every reservation under this worker's owner id whose token it does not know: after a lost
        reply (the reservation may have committed) and at the end, so that no key stays held by a worker that
        does not know it holds it. Returns how many rows went back."""
        tokens = sorted(set(known_tokens)) or [""]
        marks = ", ".join([self.connection.dialect.placeholder] * len(tokens))
        params = (self.worker.owner, *tokens)
        freed = self.connection.query(self._sql("release_orphans", tokens=marks), params,
                                      context="release_orphans").rowcount
        freed += self.connection.query(self._sql("release_orphans_keep_history", tokens=marks), params,
                                       context="release_orphans").rowcount
        return freed

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

    def counts_within(self, table_name: str, count_keys) -> dict[str, int]:
        """Like ``counts``, of only the keys ``count_keys(keys)`` finds in a restricted key source (it returns how
        many of a list of keys it holds): progress under a restriction. Reads the key of each of the table's rows
        (its failures and the keys being made: few beside the key source)."""
        self.ensure_table()
        keys: dict[str, list] = {}
        for status, raw in self._run("keys_by_status", (table_name,)).fetchall():
            key = _safe_key(raw)
            if key:
                keys.setdefault(status, []).append(key)
        out = {"reserved": 0, "error": 0, "ignore": 0, "pending": 0}
        for status, found in keys.items():
            out[status] = sum(count_keys(found[i:i + KEYS_PER_COUNT]) for i in range(0, len(found), KEYS_PER_COUNT))
        return out

    def count_statement(self, table_name: str, status: str) -> tuple[str, tuple]:
        """(sql, params) counting one table's jobs rows of one status: sent along with other counts."""
        return self._sql("count_status"), (table_name, status)

    def held_and_holders_statement(self, table_name: str) -> tuple[str, tuple]:
        """(sql, params) counting the keys reserved and their holders: sent along with a reservation."""
        return self._sql("held_and_holders"), (table_name,)

    def heartbeat(self) -> int:
        """Renew the lease of every reservation of this worker."""
        return self._run("heartbeat", (self.worker.owner,)).rowcount

    # -------------------------------------------------------------- reclaim (see liveness.py for who is dead)
    def reserved_rows(self) -> list[ReservedRow]:
        self.ensure_table()
        out = []
        for r in self._run("reserved_rows").fetchall():
            out.append(ReservedRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), float(r[6]), r[7], r[8], r[9],
                                   int(r[10]), None if r[11] is None else float(r[11]), int(r[12]),
                                   json.loads(r[13]) if r[13] else [], _safe_key(r[14]), int(r[15])))
        return out

    def reclaim(self, row: ReservedRow, *, status: str, death: bool, history: list, message: str) -> bool:
        """Take a dead worker's reservation back (compare-and-set on its token); False if another was first."""
        cur = self._run("reclaim", (status, 1 if death else 0, json.dumps(history), message,
                                    row.table_name, row.key_hash, row.token))
        return cur.rowcount == 1

    def server_clock(self) -> tuple[float | None, float | None]:
        """(seconds since the database server started, its clock minus this process's) on MySQL; (None, None)
        on SQLite, which has no server."""
        if self.connection.is_sqlite:
            return None, None
        asked = time.time()
        uptime, now = self._run("server_uptime").fetchone()
        return float(uptime), float(now) - (asked + time.time()) / 2

    def free_session_locks(self, owners: list[str]) -> dict[str, bool]:
        """MySQL: whether each owner's session lock is free (its session is gone). Lease-only owners hold none:
        they are left out."""
        owners = [o for o in owners if not is_lease_only(o)]
        if not owners:
            return {}
        marks = ", ".join([self._sql("is_free_lock")] * len(owners))
        flags = self.connection.query(f"SELECT {marks}", [lock_name(o) for o in owners],
                                      context="is_free_lock").fetchone()
        return {o: bool(f) for o, f in zip(owners, flags, strict=True)}

    def session_of(self, owner: str) -> int | None:
        """MySQL: the connection id holding an owner's session lock, if any."""
        if is_lease_only(owner):
            return None
        holder = self._run("session_holder", (lock_name(owner),)).fetchone()[0]
        return int(holder) if holder else None

    # -------------------------------------------------------------- helpers
    def _attempt(self, outcome: str, message: str = "") -> dict:
        w = self.worker
        return {"at": _now_text(), "outcome": outcome, "host": w.host, "pid": w.pid, "job": w.sched_job_id,
                "task": w.sched_task_id, "message": message[:500]}

    def _scrub(self, text: str) -> str:
        return self.connection.url.scrub(text)


class Heartbeat:
    """Renews a worker's reservations from a thread (make holds the main connection), on a connection opened for
    each beat and closed after it: a worker holds one connection, not two, whatever its makes' length. With
    ``release_after`` it also gives the main connection back once a make has left it unused that long."""

    def __init__(self, reservations: Reservations, interval_seconds: float, *, release_after: float | None = None):
        self.res = reservations
        self.interval = interval_seconds
        self.release_after = release_after
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="djhpc-heartbeat", daemon=True)
            self._thread.start()

    def _loop(self):
        tick = self.interval if self.release_after is None else min(self.interval, max(self.release_after / 2, 0.05))
        next_beat = time.monotonic() + self.interval
        while not self._stop.wait(tick):
            if self.release_after is not None and self.res.connection.release_if_idle(self.release_after):
                log.debug("gave the database connection back while make runs")
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.interval
                self._beat()

    def _beat(self):
        connection = None
        try:
            connection = type(self.res.connection)(self.res.connection.url)
            mirror = Reservations(connection, self.res.schema, self.res.worker, jobs_table=self.res.jobs_table)
            mirror._ready = True
            mirror.heartbeat()
        except Exception as e:  # a missed beat is harmless if the next one lands within the lease
            log.info("heartbeat failed (%s); trying again", e)
        finally:
            if connection is not None:
                connection.close()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            try:
                self._thread.join(timeout=5)
            except RuntimeError:  # a stop signal cut its start short: it never ran, or ends by itself (_stop)
                pass
            self._thread = None
