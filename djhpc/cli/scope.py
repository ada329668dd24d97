"""What a reporting command looks at: one table (TARGET, or djhpc.yaml's target) or a whole schema (--schema)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .common import table_class


@dataclass
class Scope:
    connection: object
    schema: str
    table: type | None = None  # the table class when TARGET names one

    @property
    def table_name(self) -> str | None:
        return self.table._table_name() if self.table is not None else None

    @property
    def label(self) -> str:
        return self.table.__name__ if self.table is not None else f"schema {self.schema}"


def resolve_scope(args, *, allow_schema: bool = True) -> Scope:
    """TARGET (imported: its table and schema) or --schema NAME (database only, checked to exist)."""
    target, schema = getattr(args, "target", None), getattr(args, "schema", None)
    if target and schema:
        raise UsageError("give TARGET or --schema, not both")
    if schema:
        if not allow_schema:
            raise UsageError("this command needs TARGET (module:Class), not --schema")
        from ..db.connection import conn
        from ..progress import schema_tables

        connection = conn()
        schema_tables(connection, schema)
        return Scope(connection, schema)
    cls = table_class(target)
    return Scope(cls().connection, cls.database, cls)
