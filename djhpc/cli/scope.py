"""What a reporting command looks at: one table (TARGET, or djhpc.yaml's target), a whole pipeline (TARGET a
module or module:schema, limited by --tables/--downstream-of) or a whole schema (--schema).

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
from ..pipeline import Pipeline
from ..reservation import JOBS_TABLE
from .common import target_or_pipeline


@dataclass
class Scope:
    connection: object
    schema: str
    table: type | None = None  # the table class when TARGET names one (djhpc or DataJoint)
    target: object | None = None  # its populate target (target.TableTarget or djtarget.DataJointTarget)
    jobs_table: str = JOBS_TABLE
    history_table: str = HISTORY_TABLE
    pipeline: object | None = None  # pipeline.Pipeline when TARGET names a module (or module:schema)
    targets: dict | None = None  # with a pipeline: table class -> populate target (of every table of ``whole``)
    whole: object | None = None  # the pipeline before --tables/--downstream-of limited it

    @property
    def table_name(self) -> str | None:
        return self.target.table_name if self.target is not None else None

    @property
    def label(self) -> str:
        if self.pipeline is not None:
            return f"pipeline {self.pipeline.label}"
        return self.target.name if self.target is not None else f"schema {self.schema}"


def resolve_scope(args, *, allow_schema: bool = True, allow_pipeline: bool = False) -> Scope:
    """TARGET (imported: its table and schema, or with ``allow_pipeline`` the pipeline and its tables' targets)
    or --schema NAME (database only, checked to exist)."""
    target, schema = getattr(args, "target", None), getattr(args, "schema", None)
    tables, downstream_of = getattr(args, "tables", None), getattr(args, "downstream_of", None)
    if target and schema:
        raise UsageError("give TARGET or --schema, not both")
    if schema and (tables or downstream_of):
        raise UsageError("--tables and --downstream-of go with a pipeline TARGET (a module, or module:schema), "
                         "not with --schema")
    if schema:
        if not allow_schema:
            raise UsageError("this command needs TARGET (module:Class), not --schema")
        from ..db.connection import conn
        from ..progress import bookkeeping_tables, schema_tables

        connection = conn()
        jobs, history = bookkeeping_tables(connection, schema, schema_tables(connection, schema))
        return Scope(connection, schema, jobs_table=jobs, history_table=history)
    loaded = _load(target)
    if isinstance(loaded, Pipeline):
        if not allow_pipeline:
            raise UsageError(f"this command takes one table: TARGET as module:Class, not the pipeline "
                             f"{loaded.name} (its tables: {', '.join(c.__name__ for c in loaded.tables)})")
        pipeline = loaded.restrict(tables, downstream_of) if tables or downstream_of else loaded
        targets = _targets(loaded)
        first = targets[pipeline.tables[0]]
        return Scope(first.connection, first.database, jobs_table=first.jobs_table,
                     history_table=first.history_table, pipeline=pipeline, targets=targets, whole=loaded)
    if tables or downstream_of:
        raise UsageError(f"--tables and --downstream-of go with a pipeline TARGET (a module, or module:schema), "
                         f"not with one table ({target or 'the target of djhpc.yaml'})")
    cls, t = loaded
    return Scope(t.connection, t.database, cls, t, t.jobs_table, t.history_table)


def _targets(pipeline) -> dict:
    from ..pipework import targets_for

    with contextlib.redirect_stdout(sys.stderr):
        return targets_for(pipeline)


def _load(target):
    """The Pipeline, or the table class and its populate target. Standard output is the command's (--json must
    stay JSON): what importing the pipeline prints goes to stderr, and so does DataJoint's log (2.x logs to
    stdout)."""
    from ..progress import as_target

    with contextlib.redirect_stdout(sys.stderr):
        loaded = target_or_pipeline(target)
        result = loaded if isinstance(loaded, Pipeline) else (loaded, as_target(loaded))
    if "datajoint" in sys.modules:
        for handler in logging.getLogger("datajoint").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
                handler.setStream(sys.stderr)
    return result
