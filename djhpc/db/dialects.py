"""What differs between MySQL/MariaDB and SQLite: quoting, column types, named queries, error translation.

Everything dialect-specific lives here and in the two ``.sql`` files beside it; the rest of djhpc
writes portable SQL through these helpers.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from importlib import resources

import pymysql

from ..errors import (
    ConnectError,
    DatabaseError,
    DataError,
    DuplicateError,
    LostConnectionError,
    QueryError,
    TransientError,
)

_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)
_ONLY = re.compile(r"^--\s*only:\s*(\w+)", re.M)


@cache
def load_queries(filename: str) -> dict[str, str]:
    """Named SQL blocks: each starts with a line ``-- name: NAME``."""
    text = resources.files("djhpc.db").joinpath(filename).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


@cache
def one_dialect_names(filename: str) -> dict[str, str]:
    """Names whose block says ``-- only: DIALECT``: statements that exist in that dialect alone."""
    text = resources.files("djhpc.db").joinpath(filename).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    out = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        m = _ONLY.search(body)
        if m:
            out[name] = m.group(1)
    return out


class Dialect:
    name = ""
    sql_file = ""
    placeholder = "%s"
    #: SQL snippet for "now" in UTC with sub-second precision
    now = ""

    @property
    def queries(self) -> dict[str, str]:
        return load_queries(self.sql_file)

    def quote(self, identifier: str) -> str:
        raise NotImplementedError

    def table(self, schema: str, table: str) -> str:
        """The full, quoted name of a table of a schema."""
        raise NotImplementedError

    def column_type(self, attr) -> str:
        raise NotImplementedError

    def translate(self, exc: Exception, *, context: str = "") -> Exception:
        raise NotImplementedError


class MySQLDialect(Dialect):
    name = "mysql"
    sql_file = "mysql.sql"
    now = "UTC_TIMESTAMP(6)"

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def table(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"

    def column_type(self, attr) -> str:
        c = attr.category
        if c == "int":
            return attr.sql_int + (" unsigned" if attr.unsigned else "")
        if c == "bool":
            return "tinyint(1)"
        if c == "uuid":
            return "binary(16)"
        if c == "json":
            return "longtext"
        if c == "blob":
            return attr.type  # tinyblob/blob/mediumblob/longblob
        if c == "enum":
            return "enum(" + ",".join(_mysql_literal(v) for v in attr.enum_values) + ")"
        if c in ("datetime", "timestamp", "time") and attr.precision:
            return f"{c}({attr.precision})"
        return attr.type

    def translate(self, exc, *, context=""):
        if not isinstance(exc, pymysql.err.Error):
            return exc
        if isinstance(exc, pymysql.err.InterfaceError):  # the driver's socket is gone (closed after a failure)
            return LostConnectionError(f"{context + ': ' if context else ''}lost the connection to the database "
                                       "server: the next statement reconnects")
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        msg = " ".join((str(exc.args[1]) if len(exc.args) > 1 else str(exc)).split())  # messages are one line
        where = f"{context}: " if context else ""
        if code == 1062:
            return DuplicateError(f"{where}duplicate primary key ({msg}): use skip_duplicates=True to skip it")
        if code == 1452:
            return DataError(f"{where}no matching row in the referenced table: insert the parent row first")
        if code == 1451:
            return DataError(
                f"{where}rows of another table refer to this row: delete() cascades, delete_quick() does not"
            )
        if code in (1048, 1364):
            return DataError(f"{where}a value is missing ({msg}): give every attribute without a default")
        if code in (1264, 1265, 1292, 1366, 1406, 1411):
            return DataError(f"{where}a value does not fit its attribute ({msg})")
        if code in (1213, 1205, 1020, 1180):
            return TransientError(f"{where}transient database failure ({code}): the transaction may be retried")
        if code in (2006, 2013, 2014, 2055, 4031, 1927):
            return LostConnectionError(f"{where}lost the connection to the database server ({code})")
        if code in (1045, 1044, 1698):
            return ConnectError("the database refused the user name or password: check DJ_USER/DJ_PASS or the URL")
        if code in (2003, 2005):
            return ConnectError(
                "cannot reach the database server: check the host and port, and that the server runs"
            )
        if code == 1054:
            return QueryError(f"{where}{msg}: name only attributes of the query (see its heading)")
        if code == 1146:
            return DatabaseError(f"{where}table does not exist ({msg}): declare it first")
        err = DatabaseError(f"{where}database error {code}: {msg}")
        err.code = code
        return err


class SQLiteDialect(Dialect):
    name = "sqlite"
    sql_file = "sqlite.sql"
    placeholder = "?"
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def table(self, schema: str, table: str) -> str:
        # SQLite has one namespace per file: a schema's tables are named "schema.table"
        return self.quote(f"{schema}.{table}")

    def column_type(self, attr) -> str:
        c = attr.category
        if c == "int":
            # unsigned bigint does not fit SQLite's int64: no affinity, large values stored as padded text
            return "BLOB" if attr.sql_int == "bigint" and attr.unsigned else "INTEGER"
        if c in ("bool", "year", "time"):
            return "INTEGER"
        if c == "float":
            return "REAL"
        if c in ("blob", "uuid"):
            return "BLOB"
        return "TEXT"

    def translate(self, exc, *, context=""):
        if not isinstance(exc, sqlite3.Error):
            return exc
        msg = " ".join(str(exc).split())  # messages are one line
        where = f"{context}: " if context else ""
        if "UNIQUE constraint failed" in msg or "PRIMARY KEY" in msg:
            return DuplicateError(f"{where}duplicate primary key ({msg}): use skip_duplicates=True to skip it")
        if "FOREIGN KEY constraint failed" in msg:
            return DataError(
                f"{where}a foreign key does not match (missing parent row, or child rows still refer to it): "
                "insert the parent first, or delete() to cascade"
            )
        if "NOT NULL constraint failed" in msg:
            return DataError(f"{where}a value is missing ({msg}): give every attribute without a default")
        if "CHECK constraint failed" in msg:
            return DataError(f"{where}a value does not fit its attribute ({msg})")
        if "database is locked" in msg or "database is busy" in msg:
            return TransientError(f"{where}the SQLite file stayed locked past the busy timeout")
        if "no such column" in msg:
            return QueryError(f"{where}{msg}: name only attributes of the query (see its heading)")
        if "no such table" in msg:
            return DatabaseError(f"{where}{msg}: declare the table first")
        if "unable to open database" in msg:
            return ConnectError(f"cannot open the SQLite file: {msg}: check the path and its folder")
        return DatabaseError(f"{where}SQLite error: {msg}")


def _mysql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


DIALECTS = {"mysql": MySQLDialect(), "sqlite": SQLiteDialect()}
