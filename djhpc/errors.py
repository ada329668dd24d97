"""Exceptions of djhpc: one base class, a few subclasses, each with a CLI exit code.

Messages are one line that name the problem and the fix. They never contain a password.
"""


class DjhpcError(Exception):
    """Base of every error djhpc raises on purpose.

    ``code`` is the database driver's error number (MySQL's error code, SQLite's extended result code;
    0 when there is none) and ``context`` what djhpc was doing when it failed ("insert", "commit", ...;
    "" when not said). Both are keyword-only, so ``str(error)`` stays the one-line message.
    """

    exit_code = 1
    code: int = 0
    context: str = ""

    def __init__(self, *args, code: int = 0, context: str = ""):
        super().__init__(*args)
        self.code = code
        self.context = context


class UsageError(DjhpcError):
    """The caller asked for something that cannot work (bad argument, bad option)."""

    exit_code = 2


class ConfigError(DjhpcError):
    """A configuration file, URL or profile is wrong."""

    exit_code = 2


class DefinitionError(DjhpcError):
    """A table definition does not parse or refers to something that does not exist."""

    exit_code = 2


class DataError(DjhpcError):
    """A value does not fit its attribute (type, range, missing, duplicate)."""

    exit_code = 2


class DuplicateError(DataError):
    """A row with the same primary key exists already."""


class MissingError(DjhpcError):
    """fetch1 or a lookup found no row where exactly one was expected."""

    exit_code = 2


class QueryError(DjhpcError):
    """A query names an unknown attribute or combines incompatible operands."""

    exit_code = 2


class DatabaseError(DjhpcError):
    """The database refused or failed; keeps the driver's exception as __cause__ and its number as ``code``."""

    exit_code = 1


class ConnectError(DatabaseError):
    """The database cannot be reached or refuses the credentials."""

    exit_code = 2


class UnreachableError(ConnectError):
    """The database server does not answer (down, restarting, or a wrong host or port): a worker that stays
    without it exits 69 (EX_UNAVAILABLE), which a scheduler may retry."""

    exit_code = 69


class LostConnectionError(DatabaseError):
    """The connection dropped inside a transaction: the transaction is lost and must be retried."""


class TransientError(DatabaseError):
    """Deadlock, lock-wait timeout or busy database: the whole transaction may be retried."""


class DiskFullError(TransientError):
    """The disk holding the database file is full (SQLite): waited for, within DJHPC_RECONNECT_SECONDS."""


class FenceError(DatabaseError):
    """A statement that had to change exactly one row did not: the transaction was rolled back."""


class KeyMadeElsewhere(DjhpcError):
    """The key's row was found in the table when its make was about to run: another worker made it."""


class KeyNotMadeError(DataError):
    """make() ended without inserting its key's row into the table (nothing, or another key's row)."""

    exit_code = 1


class MakeTimeout(DjhpcError):
    """make() ran past its time limit (--make-timeout, or the table's ``make_timeout``) and was stopped."""


class ReservationLostError(DjhpcError):
    """This worker's reservation was reclaimed by another: its result must not be committed."""


class BlobError(DataError):
    """A value cannot be encoded as a blob, or stored bytes are not a valid blob."""


class SchedulerError(DjhpcError):
    """A scheduler command is missing, failed, or printed something unexpected."""

    exit_code = 2
