"""What a reporting command looks at: one table (TARGET, or djhpc.yaml's target) or a whole schema (--schema).

TARGET may be a djhpc table or one written with DataJoint: the scope carries its populate target (its connection,
schema, table name) and the names of the jobs and history tables djhpc keeps for it (``~jobs``/``~history``, or
``~djhpc_jobs``/``~djhpc_history`` in a DataJoint pipeline's schema). With --schema they are told from the
tables the schema has.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass

from ..errors import UsageError
from ..history import HISTORY_TABLE
from ..reservation import JOBS_TABLE
from .common import table_class


@dataclass
class Scope:
    connection: object
    schema: str
    table: type | None = None  # the table class when TARGET names one (djhpc or DataJoint)
    target: object | None = None  # its populate target (target.TableTarget or djtarget.DataJointTarget)
    jobs_table: str = JOBS_TABLE
    history_table: str = HISTORY_TABLE

    @property
    def table_name(self) -> str | None:
        return self.target.table_name if self.target is not None else None

    @property
    def label(self) -> str:
        return self.target.name if self.target is not None else f"schema {self.schema}"


def resolve_scope(args, *, allow_schema: bool = True) -> Scope:
    """TARGET (imported: its table and schema) or --schema NAME (database only, checked to exist)."""
    target, schema = getattr(args, "target", None), getattr(args, "schema", None)
    if target and schema:
        raise UsageError("give TARGET or --schema, not both")
    if schema:
        if not allow_schema:
            raise UsageError("this command needs TARGET (module:Class), not --schema")
        from ..db.connection import conn
        from ..progress import bookkeeping_tables, schema_tables

        connection = conn()
        jobs, history = bookkeeping_tables(connection, schema, schema_tables(connection, schema))
        return Scope(connection, schema, jobs_table=jobs, history_table=history)
    cls, t = _load(target)
    return Scope(t.connection, t.database, cls, t, t.jobs_table, t.history_table)


def _load(target):
    """The table class and its populate target. Standard output is the command's (--json must stay JSON):
    what importing the pipeline prints goes to stderr, and so does DataJoint's log (2.x logs to stdout)."""
    from ..progress import as_target

    with contextlib.redirect_stdout(sys.stderr):
        cls = table_class(target)
        t = as_target(cls)
    if "datajoint" in sys.modules:
        for handler in logging.getLogger("datajoint").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
                handler.setStream(sys.stderr)
    return cls, t
