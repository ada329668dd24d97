"""djhpc: DataJoint-style tables and distributed populate for HPC clusters.

``import djhpc as dj`` reads like DataJoint: ``dj.Schema``, ``dj.Manual``, ``dj.Computed``, ...
"""

from . import settings
from .blob import MatCell, MatStruct
from .db.connection import Connection, conn
from .errors import (
    BlobError,
    ConfigError,
    ConnectError,
    DatabaseError,
    DataError,
    DefinitionError,
    DjhpcError,
    DuplicateError,
    KeyNotMadeError,
    LostConnectionError,
    MakeTimeout,
    MissingError,
    QueryError,
    ReservationLostError,
    SchedulerError,
    TransientError,
    UsageError,
)
from .jobs import JobsTable
from .populate import Interrupted, PopulateResult
from .query import SQL, AndList, Not
from .reservation import Claim, Reservations, key_hash
from .schemas import Schema, schema
from .tables import Computed, Imported, Lookup, Manual, Part, Table, config

__version__ = "0.1.0"

DataJointError = DjhpcError  # code written for DataJoint catches this name

__all__ = [
    "SQL", "AndList", "BlobError", "Claim", "Computed", "ConfigError", "ConnectError", "Connection",
    "DataError", "DataJointError", "DatabaseError", "DefinitionError", "DjhpcError", "DuplicateError",
    "Imported", "Interrupted", "JobsTable", "KeyNotMadeError", "Lookup", "LostConnectionError", "MakeTimeout",
    "Manual", "MatCell", "MatStruct", "MissingError", "Not",
    "Part", "PopulateResult", "QueryError", "ReservationLostError", "Reservations", "SchedulerError", "Schema",
    "Table", "TransientError", "UsageError", "config", "conn", "key_hash", "schema", "settings",
]
