"""A table's attributes read back from the database's catalog, for tables no class here declares (DataJoint's
FreeTable, virtual modules, spawned classes).

MariaDB/MySQL keep each column's type, default, key and comment; a DataJoint type that is not SQL's (uuid,
blob@store, attach, ...) is read from the ``:type:`` its comment starts with, as DataJoint writes it. SQLite keeps
only storage affinities: its columns come back as int, double, blob or text attributes.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .declare import Attribute, TableSpec, parse_default, parse_type
from .errors import DefinitionError, MissingTableError

_SPECIAL = re.compile(r"^:(?P<type>[^:]+):(?P<comment>.*)$", re.S)
_SQLITE_TYPES = {"INTEGER": "bigint", "REAL": "double", "NUMERIC": "decimal(65,15)", "BLOB": "longblob"}


def split_full_name(dialect, full_table_name: str) -> tuple[str, str]:
    """(schema, table) of a full name as the dialect writes it: ```s`.`t``` on MySQL, ``"s.t"`` on SQLite."""
    text = full_table_name.strip()
    m = re.fullmatch(r"`((?:[^`]|``)+)`\.`((?:[^`]|``)+)`", text) if dialect.name == "mysql" else \
        re.fullmatch(r'"([^".]+)\.([^"]+)"', text)
    if not m:
        example = "`schema`.`table`" if dialect.name == "mysql" else '"schema.table"'
        raise DefinitionError(f"full table name {full_table_name!r} must read {example}")
    return m.group(1).replace("``", "`"), m.group(2).replace("``", "`")


def read_spec(connection, schema: str, table: str, context=None) -> TableSpec:
    """The attributes (primary key first, as declared) and comment of ``schema``.``table``. ``context`` holds the
    attribute adapters a ``<name>`` type names (a virtual module's ``add_objects``); without the adapter, such an
    attribute reads as a string attribute of that type. Special attributes come with a codec not bound to a schema
    yet (schemas binds them)."""
    if connection.is_sqlite:
        spec = _read_sqlite(connection, schema, table)
    else:
        spec = _read_mysql(connection, schema, table, context)
    if not spec.attributes:
        raise MissingTableError(f"table {connection.dialect.table(schema, table)} does not exist: declare it first, "
                                "or name a table of the schema")
    return spec


def _read_mysql(connection, schema, table, context) -> TableSpec:
    rows = connection.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY, EXTRA, COLUMN_COMMENT "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
        (schema, table)).fetchall()
    comment = connection.query("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND "
                               "TABLE_NAME=%s", (schema, table)).fetchone()
    spec = TableSpec(comment=(comment[0] or "") if comment else "")
    for name, kind, nullable, default, key, extra, note in rows:
        special = _SPECIAL.match(note or "")
        fields = _type_fields(special.group("type") if special else kind, context)
        attr = Attribute(name=name, in_key=key == "PRI", nullable=nullable == "YES",
                         comment=special.group("comment") if special else (note or ""),
                         auto_increment="auto_increment" in (extra or "").lower(), **fields)
        spec.attributes.append(_with_default(attr, default))
    return spec


def _read_sqlite(connection, schema, table) -> TableSpec:
    name = connection.dialect.quote(f"{schema}.{table}")
    rows = connection.query(f"PRAGMA table_info({name})").fetchall()
    spec = TableSpec()
    for _cid, column, kind, notnull, default, pk in sorted(rows, key=lambda r: (r[5] == 0, r[5], r[0])):
        fields = _type_fields(_SQLITE_TYPES.get((kind or "").upper(), "varchar(16383)"))
        attr = Attribute(name=column, in_key=pk > 0, nullable=not notnull and pk == 0, **fields)
        spec.attributes.append(_with_default(attr, default))
    return spec


def _type_fields(kind: str, context=None) -> dict:
    try:
        fields = parse_type(kind, context=context)
    except DefinitionError:  # a type djhpc does not declare (text, binary(n), ...; <adapter> the context lacks):
        # kept as a string attribute
        fields = {"category": "string", "type": kind.lower(), "length": None}
    fields.pop("auto_increment", None)
    return fields


def _with_default(attr: Attribute, default) -> Attribute:
    if default is None or str(default).upper() == "NULL":
        return replace(attr, has_default=attr.nullable)
    try:
        value, _ = parse_default(str(default), attr.name)
    except DefinitionError:
        value = str(default)
    return replace(attr, default=value, has_default=True)
