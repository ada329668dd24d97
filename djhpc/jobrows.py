"""Reading and tidying a schema's jobs table for people: select rows, group errors, find a key, delete.

``djhpc jobs``, ``status`` and ``report`` stand on this; it prints nothing. Deleting an error row is
what makes a key run again: populate reserves every key of the key source that has no jobs row and no
result (a ``pending`` row would be taken only by a populate without restrictions).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from . import blob
from .errors import UsageError
from .jobs import JobsTable
from .keytext import EXAMPLE as KEY_EXAMPLE
from .keytext import format_key, looks_like_key_text, parse_key_text
from .query import SQL
from .reservation import JOBS_TABLE, Reservations, key_hash

STATUSES = ("reserved", "error", "ignore", "pending")
LIST_COLUMNS = ["table_name", "key_hash", "status", "key", "error_message", "user", "host", "pid", "timestamp",
                "sched_job_id", "sched_task_id", "attempts", "failures", "deaths", "heartbeat_at"]
_HASH = re.compile(r"[0-9a-f]{6,32}")
_TYPE = re.compile(r"^([A-Za-z_][\w.]*)\s*:\s")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class JobRow:
    table_name: str
    key_hash: str
    status: str
    key: dict
    error_message: str = ""
    user: str = ""
    host: str = ""
    pid: int = 0
    timestamp: dt.datetime | None = None  # UTC
    sched_job_id: str = ""
    sched_task_id: str = ""
    attempts: int = 0
    failures: int = 0
    deaths: int = 0
    heartbeat_at: dt.datetime | None = None  # UTC
    error_stack: str | None = None
    retry_after: dt.datetime | None = None
    history: list = field(default_factory=list)

    @classmethod
    def from_fetch(cls, row: dict) -> JobRow:
        row = dict(row)
        if isinstance(row.get("history"), str):
            try:
                row["history"] = json.loads(row["history"]) if row["history"] else []
            except ValueError:
                row["history"] = []
        elif row.get("history") is None:
            row["history"] = []
        if not isinstance(row.get("key"), dict):
            row["key"] = {}
        return cls(**{k: v for k, v in row.items() if k in cls.__dataclass_fields__})

    @property
    def task(self) -> str:
        """JOBID_TASK as schedulers name array tasks, or the job id alone."""
        if not self.sched_job_id:
            return ""
        return f"{self.sched_job_id}_{self.sched_task_id}" if self.sched_task_id else self.sched_job_id


@dataclass
class ErrorGroup:
    table_name: str
    error_type: str
    message: str  # the pattern: numbers shown as <n> unless grouped exactly
    count: int
    example_hash: str
    example_message: str
    example_key: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- selecting
def jobs_table(connection, schema: str, name: str = JOBS_TABLE) -> JobsTable:
    """The jobs table ``name`` of a schema: ``~jobs`` of a djhpc pipeline, ``~djhpc_jobs`` of a DataJoint one."""
    return JobsTable(connection, schema, name)


def select(connection, schema: str, *, table_name=None, statuses=None, host: str | None = None,
           job_id: str | None = None, older_than_seconds: float | None = None, match: str | None = None,
           jobs_table_name: str = JOBS_TABLE):
    """The jobs rows that pass every filter given, as a restricted JobsTable (count it, fetch it, delete it).

    ``table_name``: one table's name, or a list of them (a pipeline's tables)."""
    q = jobs_table(connection, schema, jobs_table_name)
    quote = connection.dialect.quote
    if isinstance(table_name, str) and table_name:
        q = q & {"table_name": table_name}
    elif table_name is not None and not isinstance(table_name, str):
        q = q & [{"table_name": n} for n in table_name]  # an empty list matches no row
    if statuses:
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise UsageError(f"unknown job status '{bad[0]}' (choose {', '.join(STATUSES)})")
        q = q & [{"status": s} for s in statuses]
    if host:
        q = q & {"host": host}
    if job_id:
        job, _, task = str(job_id).partition("_")
        q = q & ({"sched_job_id": job, "sched_task_id": task} if task else {"sched_job_id": job})
    if older_than_seconds is not None:
        cutoff = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=older_than_seconds)
        q = q & SQL(f"{quote('timestamp')} < %s", (cutoff.strftime("%Y-%m-%d %H:%M:%S.%f"),))
    if match:
        escaped = match.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        q = q & SQL(f"{quote('error_message')} LIKE %s ESCAPE '!'", (f"%{escaped}%",))
    return q


def fetch_rows(query, *, limit: int | None = None, full: bool = False) -> list[JobRow]:
    """Rows of a selection, oldest first; ``full`` adds the stack, retry time and attempt history."""
    names = LIST_COLUMNS + (["error_stack", "retry_after", "history"] if full else [])
    rows = query.fetch(*names, as_dict=True, order_by=["timestamp", "table_name", "key_hash"], limit=limit)
    return [JobRow.from_fetch(r) for r in rows]


def delete(query) -> int:
    """Delete the selected rows; returns how many went."""
    return query.delete_quick(get_count=True)


# ---------------------------------------------------------------------------- keys
def parse_key(text: str, table=None) -> tuple[dict | None, str]:
    """A key as djhpc prints it (``item=3, session='a'``), as JSON (``{"item": 3}``), a key_hash, or a unique
    prefix of one: (key or None, hash or prefix).

    With the table class (or a populate target, whose ``typed_key`` does it), the key's values are converted
    to its attribute types (so a date given as text hashes as the date it is) and must name exactly its
    primary key.
    """
    t = str(text).strip()
    if t.startswith("{"):
        key = _json_key(t)
    elif looks_like_key_text(t):
        key = parse_key_text(t)
    elif _HASH.fullmatch(t.lower()):
        return None, t.lower()
    else:
        raise UsageError(f"{t!r} is neither a key ({KEY_EXAMPLE}) nor a key_hash: copy one from djhpc jobs")
    if table is not None:
        key = table.typed_key(key) if hasattr(table, "typed_key") else typed_key(_table_of(table), key)
    return key, key_hash(key)


def _json_key(t: str) -> dict:
    try:
        key = json.loads(t)
    except ValueError as e:
        raise UsageError(f"key {t!r} is not valid JSON ({e.msg}): write it as {KEY_EXAMPLE}") from e
    if not isinstance(key, dict) or not key:
        raise UsageError(f"key {t!r} must be a JSON object of attribute values: write it as {KEY_EXAMPLE}")
    for name, value in key.items():
        if value is None:
            raise UsageError(f"key value {name}=None: a primary-key attribute is never NULL: give its value")
    return key


def _table_of(table):
    """The djhpc table a populate target (target.TableTarget) fills; a table class or instance as it is."""
    from .progress import is_target

    return table.table if is_target(table) else table


def typed_key(table, key: dict) -> dict:
    from . import values

    instance = table() if isinstance(table, type) else table
    names = list(instance.primary_key)
    if sorted(key) != sorted(names):
        raise UsageError(f"key names {', '.join(sorted(key))} but {type(instance).__name__}'s primary key is "
                         f"{', '.join(names)}: give exactly those")
    dialect = instance.connection.dialect.name
    out = {}
    for name in names:
        attr = instance.heading[name]
        try:
            out[name] = values.decode(attr, values.encode(attr, key[name], dialect), dialect)
        except Exception as e:
            raise UsageError(f"key value {name}={key[name]!r} does not fit {attr.type}: {e}") from e
    return out


def find(connection, schema: str, key_or_hash: str, *, table=None, table_name: str | None = None,
         jobs_table_name: str = JOBS_TABLE) -> list[JobRow]:
    """The jobs rows of one key (full detail): by key JSON, key_hash, or a unique hash prefix."""
    key, h = parse_key(key_or_hash, table)
    rows = hash_rows(connection, schema, h, table_name=table_name, jobs_table_name=jobs_table_name)
    if len({r.key_hash for r in rows}) > 1 and key is None:
        raise UsageError(f"key_hash prefix {h!r} matches {len(rows)} keys: give more of it")
    if not rows:
        where = f" of {table_name}" if table_name else ""
        raise UsageError(f"no jobs row for {key_or_hash}{where} in schema {schema}: it is not reserved, failed or "
                         "ignored (list rows with djhpc jobs)")
    return rows


def hash_rows(connection, schema: str, h: str, *, table_name=None, jobs_table_name: str = JOBS_TABLE) -> list[JobRow]:
    """The jobs rows (full detail, at most 50) whose key_hash is ``h``, or starts with it; ``table_name`` as in
    select."""
    q = select(connection, schema, table_name=table_name, jobs_table_name=jobs_table_name)
    if len(h) == 32:
        q = q & {"key_hash": h}
    else:
        q = q & SQL(f"{connection.dialect.quote('key_hash')} LIKE %s", (h + "%",))
    return fetch_rows(q, limit=50, full=True)


def ignore(connection, schema: str, table_name: str, key: dict, *, jobs_table_name: str = JOBS_TABLE) -> str:
    """Make populate skip a key; returns the row's status after (``reserved`` if it runs right now)."""
    Reservations(connection, schema, jobs_table=jobs_table_name).ignore(table_name, key)
    q = jobs_table(connection, schema, jobs_table_name) & {"table_name": table_name, "key_hash": key_hash(key)}
    return q.fetch1("status")


# ---------------------------------------------------------------------------- errors
def error_type(message: str) -> str:
    m = _TYPE.match(message or "")
    if m:
        return m.group(1)
    if (message or "").startswith("worker died"):
        return "(worker died)"
    return "—"


def message_pattern(message: str) -> str:
    """The message with numbers as <n>: 'bad item 3' and 'bad item 5' are one kind of error."""
    body = _TYPE.sub("", message or "", count=1)
    return _NUMBER.sub("<n>", body)


def error_groups(connection, schema: str, *, table_name: str | None = None, exact: bool = False,
                 jobs_table_name: str = JOBS_TABLE) -> list[ErrorGroup]:
    """Failed keys grouped by exception type and message (numbers masked unless ``exact``), largest first.

    One GROUP BY in the database, then one fetch of the example keys.
    """
    jobs = jobs_table(connection, schema, jobs_table_name)
    rows = connection.run("error_groups", (table_name or "", table_name or ""),
                          jobs=jobs.full_table_name).fetchall()
    groups: dict[tuple, ErrorGroup] = {}
    for tname, message, n, example in rows:
        message = message or ""
        kind = error_type(message)
        pattern = _TYPE.sub("", message, count=1) if exact else message_pattern(message)
        g = groups.get((tname, kind, pattern))
        if g is None:
            groups[(tname, kind, pattern)] = ErrorGroup(tname, kind, pattern, int(n), example, message)
        else:
            g.count += int(n)
            if example < g.example_hash:
                g.example_hash, g.example_message = example, message
    out = sorted(groups.values(), key=lambda g: (-g.count, g.table_name, g.error_type, g.message))
    if out:
        keys = (jobs & [{"table_name": g.table_name, "key_hash": g.example_hash} for g in out]).fetch(
            "table_name", "key_hash", "key", as_dict=True)
        by = {(r["table_name"], r["key_hash"]): r["key"] for r in keys}
        for g in out:
            g.example_key = by.get((g.table_name, g.example_hash)) or {}
    return out


def key_text(key: dict) -> str:
    """item=3, session='a': the one printed form (keytext), which every command that takes a key reads."""
    return format_key(key)


def unpack_key(raw) -> dict:
    try:
        return blob.unpack(bytes(raw)) if raw is not None else {}
    except Exception:  # a damaged key must not stop a listing
        return {}
