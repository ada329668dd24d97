"""Exceptions of djhpc: one base class, a few subclasses, each with a CLI exit code.

Messages are one line that name the problem and the fix. They never contain a password.

DataJoint's names are here too, for code written for DataJoint (``dj.errors.DataJointError``, ``AccessError``,
``MissingAttributeError``, ...): each is djhpc's error of that meaning or a subclass of it.
"""

import os
import sys

#: environment variables that switch on DataJoint 0.14's experimental features (djhpc reads them as DataJoint)
ADAPTED_TYPE_SWITCH = "DJ_SUPPORT_ADAPTED_TYPES"
FILEPATH_FEATURE_SWITCH = "DJ_SUPPORT_FILEPATH_MANAGEMENT"


class PluginWarning(Exception):
    """The cause given to every error while a DataJoint plugin that is not verified is loaded (djhpc.plugin)."""


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
        if _unverified_plugins():  # as DataJoint: the error says an unverified plugin is loaded
            self.__cause__ = PluginWarning("Unverified DataJoint plugin detected.")

    def suggest(self, *args):
        """The same error with ``args`` added to its arguments (DataJoint's ``suggest``)."""
        return type(self)(*(self.args + args), code=self.code, context=self.context)


#: DataJoint's name of the base error: ``except dj.DataJointError`` catches every djhpc error
DataJointError = DjhpcError


def _unverified_plugins() -> bool:
    """Whether djhpc.plugin, once imported (by whoever uses DataJoint's plugins), found a plugin not verified.
    Read from sys.modules: importing it here would scan every installed package at the first error."""
    plugin = sys.modules.get(__package__ + ".plugin")
    if plugin is None:
        return False
    return any(not p["verified"] for group in (plugin.connection_plugins, plugin.type_plugins) if group
               for p in group.values())


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


class UnknownAttributeError(QueryError):
    """A query or a restriction names an attribute the heading lacks (DataJoint's name)."""


class QuerySyntaxError(QueryError):
    """The database could not parse a statement (DataJoint's name)."""


class MissingAttributeError(DataError):
    """An insert lacks a value for an attribute that has no default (DataJoint's name)."""


class ExtraFieldError(DataError, KeyError):
    """A row to insert names an attribute the table lacks; a KeyError too, as DataJoint raises one."""

    __str__ = Exception.__str__  # the message as written, not KeyError's quoted repr


class MissingDefinitionError(DefinitionError, NotImplementedError):
    """A table class has no ``definition`` (misspelt?) and no table yet; a NotImplementedError too, as DataJoint's."""


class IntegrityError(DataError):
    """A foreign key refuses the change: the parent row is missing, or children still refer to it."""


class DatabaseError(DjhpcError):
    """The database refused or failed; keeps the driver's exception as __cause__ and its number as ``code``."""

    exit_code = 1


class AccessError(DatabaseError):
    """The database refused a statement for lack of privilege (MySQL 1044, 1142, 1227, ...)."""

    exit_code = 2


class MissingTableError(DatabaseError):
    """A query names a table the database does not have: declare it first."""


class ConnectError(DatabaseError):
    """The database cannot be reached or refuses the credentials."""

    exit_code = 2


class UnreachableError(ConnectError):
    """The database server does not answer (down, restarting, or a wrong host or port): a worker that stays
    without it exits 69 (EX_UNAVAILABLE), which a scheduler may retry."""

    exit_code = 69


class ServerFullError(UnreachableError):
    """The server answers but has no free connection (max_connections reached): a task of a large array waits
    for one instead of failing."""


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


class MissingExternalFile(DjhpcError):
    """A file of an external store that a row refers to is gone (DataJoint's name)."""


class BucketInaccessible(DjhpcError):
    """An S3 bucket of an external store cannot be reached (DataJoint's name)."""


class BlobError(DataError):
    """A value cannot be encoded as a blob, or stored bytes are not a valid blob."""


class SchedulerError(DjhpcError):
    """A scheduler command is missing, failed, or printed something unexpected."""

    exit_code = 2


def _switch_adapted_types(on: bool) -> None:
    """Switch DataJoint's attribute adapters on or off for this process (DataJoint's helper)."""
    _switch(ADAPTED_TYPE_SWITCH, on)


def _support_adapted_types() -> bool:
    return os.getenv(ADAPTED_TYPE_SWITCH, "FALSE").upper() == "TRUE"


def _switch_filepath_types(on: bool) -> None:
    """Switch DataJoint's filepath attributes on or off for this process (DataJoint's helper)."""
    _switch(FILEPATH_FEATURE_SWITCH, on)


def _support_filepath_types() -> bool:
    return os.getenv(FILEPATH_FEATURE_SWITCH, "FALSE").upper() == "TRUE"


def _switch(name: str, on: bool) -> None:
    if on:
        os.environ[name] = "TRUE"
    else:
        os.environ.pop(name, None)
