"""``schema.jobs``: the reservation library's jobs table, seen as a table like any other."""

from __future__ import annotations

from .declare import parse_definition
from .query import SQL, Heading, Query, new_alias
from .reservation import ERROR_MESSAGE_LIMIT, JOBS_TABLE, Reservations, key_hash, truncate_message

#: DataJoint's names: error messages are cut to this length, ending with the appendix
ERROR_MESSAGE_LENGTH = ERROR_MESSAGE_LIMIT
TRUNCATION_APPENDIX = truncate_message("-" * (ERROR_MESSAGE_LIMIT + 1)).lstrip("-")

# The columns of the jobs table, as the table layer reads them (the DDL lives in db/*.sql).
JOBS_DEFINITION = """
# djhpc jobs: reserved, failed and ignored keys
table_name : varchar(255)
key_hash : char(32)
---
status : enum('reserved','error','ignore','pending')
key = null : longblob
error_message = "" : varchar(2047)
error_stack = null : varchar(16383)
user = "" : varchar(255)
host = "" : varchar(255)
pid = 0 : int unsigned
connection_id = 0 : bigint unsigned
timestamp = CURRENT_TIMESTAMP : timestamp(6)
token = "" : char(32)
owner = "" : char(32)
pid_start = 0 : double
boot_id = "" : varchar(64)
sched_job_id = "" : varchar(64)
sched_task_id = "" : varchar(64)
attempts = 0 : smallint unsigned
failures = 0 : smallint unsigned
deaths = 0 : smallint unsigned
position = 0 : smallint unsigned
heartbeat_at = null : datetime(6)
retry_after = null : datetime(6)
history = null : varchar(16383)
"""

_SPEC = parse_definition(JOBS_DEFINITION, lambda name: None)


class JobsTable(Query):
    """Rows of keys reserved now, failed, ignored or waiting for a retry; supports fetch, &, delete, len."""

    def __init__(self, connection, database: str, jobs_table: str = JOBS_TABLE):
        self.database = database
        self.jobs_table = jobs_table  # a DataJoint pipeline's is ~djhpc_jobs (djtarget.DJHPC_JOBS)
        self.reservations = Reservations(connection, database, jobs_table=jobs_table)
        self.reservations.ensure_table()
        self._claims: dict = {}  # (table_name, key_hash) -> Claim, of the keys reserve() took
        alias = new_alias()
        q = connection.dialect.quote
        heading = Heading(_SPEC.attributes)
        cols = {a.name: f"{alias}.{q(a.name)}" for a in heading.attributes.values()}
        full = connection.dialect.table(database, jobs_table)
        super().__init__(connection, heading, f"{full} AS {alias}", (), cols,
                         aliases={alias}, flat_names=True)

    @property
    def table_name(self) -> str:
        return self.jobs_table

    @property
    def full_table_name(self) -> str:
        return self.connection.dialect.table(self.database, self.jobs_table)

    @staticmethod
    def _target_name(table) -> str:
        if isinstance(table, str):
            return table
        if isinstance(table, type):
            return table._table_name()
        return table.table_name

    # DataJoint's jobs-table API, for code that reserves keys by hand: reserve, then complete or error
    def reserve(self, table, key: dict) -> bool:
        """Reserve ``key`` of ``table`` for this process: False when it is reserved, failed or ignored already."""
        claims = self.reservations.reserve(self._target_name(table), [dict(key)])
        for claim in claims:
            self._claims[(claim.table_name, claim.key_hash)] = claim
        return bool(claims)

    def complete(self, table, key: dict) -> None:
        """Remove the job row of ``key`` (done): its reservation, or whatever status it had."""
        name = self._target_name(table)
        self._claims.pop((name, key_hash(dict(key))), None)
        _delete_rows(self, self & {"table_name": name, "key_hash": key_hash(dict(key))})
        self._rest()

    def error(self, table, key: dict, error_message: str, error_stack: str | None = None) -> None:
        """Record that ``key`` of ``table`` failed (message cut to ERROR_MESSAGE_LENGTH): populate skips it until
        the row is deleted. The key need not be reserved by this process first: its row is replaced."""
        name, key = self._target_name(table), dict(key)
        claim = self._claims.pop((name, key_hash(key)), None)
        if claim is None:
            _delete_rows(self, self & {"table_name": name, "key_hash": key_hash(key)})
            claims = self.reservations.reserve(name, [key])
            claim = claims[0] if claims else None
        if claim is not None:
            self.reservations.fail(claim, str(error_message), error_stack or "")
        self._rest()

    def _rest(self):
        """Stop renewing leases once this process holds no reservation made here."""
        if not self._claims:
            self.reservations.close()

    def ignore(self, table, key: dict):
        """Make populate skip ``key`` of ``table`` until this row is removed."""
        self.reservations.ignore(self._target_name(table), dict(key))

    def clear_errors(self, table=None, message: str | None = None) -> int:
        """Delete error rows (of one table, optionally whose message contains ``message``): they run again."""
        query = self & {"status": "error"}
        if table is not None:
            query = query & {"table_name": self._target_name(table)}
        if message:
            query = query.restrict(_like(self.connection, "error_message", message))
        return _delete_rows(self, query)

    def delete(self, safemode=None) -> int:
        """Delete the selected job rows without asking, as DataJoint's jobs table does (0.14 and 2.x): clearing
        errors is routine, and a script run without a terminal must be able to. Returns how many were deleted;
        ``safemode`` is accepted and ignored."""
        return _delete_rows(self, self)

    def delete_quick(self, get_count=False):
        n = _delete_rows(self, self)
        return n if get_count else None

    def key_hash(self, key) -> str:
        return key_hash(dict(key))


def _like(connection, column: str, text: str) -> SQL:
    """``column LIKE %text%`` with the text as a parameter (``!`` escapes the wildcards on both dialects)."""
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return SQL(f"{connection.dialect.quote(column)} LIKE %s ESCAPE '!'", (f"%{escaped}%",))


def _delete_rows(jobs: JobsTable, query: Query) -> int:
    d = jobs.connection.dialect
    sub, params = query.make_sql(["table_name", "key_hash"])
    sql = (f"DELETE FROM {jobs.full_table_name} WHERE ({d.quote('table_name')}, {d.quote('key_hash')}) IN "
           f"(SELECT {d.quote('table_name')}, {d.quote('key_hash')} FROM ({sub}) AS _j)")
    return jobs.connection.query(sql, params, context="delete jobs").rowcount
