"""djhpc: DataJoint-style tables and distributed populate for HPC clusters.

``import djhpc as dj`` reads like DataJoint: ``dj.Schema``, ``dj.Manual``, ``dj.Computed``, ...
"""

import importlib
import logging

from . import errors, hash, settings  # noqa: A004 (dj.hash: DataJoint's content hashes, of external storage)
from .adapters import AttributeAdapter
from .admin import kill, kill_quick, set_password
from .blob import MatCell, MatStruct
from .db.connection import Connection, conn
from .errors import (
    AccessError,
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
from .query import SQL, AndList, Not, Top
from .reservation import Claim, Reservations, key_hash
from .schemas import Schema, VirtualModule, create_virtual_module, list_schemas, schema
from .tables import Computed, FreeTable, Imported, Lookup, Manual, Part, Table, config
from .universal import U

__version__ = "0.1.0"

DataJointError = DjhpcError  # code written for DataJoint catches this name (errors.DataJointError too)
key = "KEY"  # DataJoint's dj.key: fetch(dj.key) gives the primary keys
logger = logging.getLogger("djhpc")  # DataJoint's dj.logger: djhpc's library logger

# Loaded at first use, so that ``import djhpc`` (every worker's first line) stays light: dj.Diagram brings networkx
_LAZY = {"Diagram": "diagram", "ERD": "diagram", "Di": "diagram"}
# DataJoint's submodules, reached as attributes (``dj.user_tables.TableMeta`` annotates an Element's function):
# DataJoint's name -> djhpc's module that holds the same things
_DATAJOINT_MODULES = {
    "diagram": "diagram",
    "cli": "cli",
    "plugin": "plugin",
    "user_tables": "tables",
    "table": "tables",
    "expression": "query",
    "condition": "query",
    "connection": "db.connection",
    "attribute_adapter": "adapters",
}


def __getattr__(name):
    """``dj.Diagram`` (``dj.ERD``, ``dj.Di``), ``dj.cli`` (the ``djhpc.cli`` package, callable as DataJoint's
    ``dj.cli(args)`` console) and DataJoint's submodules by DataJoint's names (``dj.user_tables``,
    ``dj.connection``...). Each is imported when first asked for (importlib, not ``from . import``, which would
    ask this function again)."""
    if name in _DATAJOINT_MODULES:
        module = importlib.import_module(f"{__name__}.{_DATAJOINT_MODULES[name]}")
        globals()[name] = module  # a renamed one is not set on the package by its import
        return module
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SQL", "AccessError", "AndList", "BlobError", "Claim", "Computed", "ConfigError", "ConnectError", "Connection",
    "DataError", "DataJointError", "DatabaseError", "DefinitionError", "DjhpcError", "DuplicateError",
    "Imported", "Interrupted", "JobsTable", "KeyNotMadeError", "Lookup", "LostConnectionError", "MakeTimeout",
    "Manual", "MatCell", "MatStruct", "MissingError", "Not",
    "Part", "PopulateResult", "QueryError", "ReservationLostError", "Reservations", "SchedulerError", "Schema",
    "Table", "TransientError", "UsageError", "config", "conn", "errors", "key", "key_hash", "kill", "kill_quick",
    "logger", "schema", "set_password", "settings", "FreeTable", "VirtualModule", "create_virtual_module",
    "list_schemas",
    "Top", "U", "AttributeAdapter", "hash", "Diagram", "ERD", "Di",
]
