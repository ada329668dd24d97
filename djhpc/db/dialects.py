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
    AccessError,
    ConnectError,
    DatabaseError,
    DataError,
    DiskFullError,
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
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if isinstance(exc, pymysql.err.InterfaceError):  # the driver's socket is gone (closed after a failure)
            return _caused(LostConnectionError(f"{context + ': ' if context else ''}lost the connection to the "
                                               "database server: the next statement reconnects",
                                               code=code, context=context), exc)
        msg = " ".join((str(exc.args[1]) if len(exc.args) > 1 else str(exc)).split())  # messages are one line
        cls, text = _MYSQL_ERRORS.get(code, (DatabaseError, "{where}database error {code}: {msg}"))
        where = f"{context}: " if context else ""
        return _caused(cls(text.format(where=where, msg=msg, code=code), code=code, context=context), exc)


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
        if c == "decimal":
            # numeric affinity: the text values.encode sends is stored as a number, so that comparisons and
            # ORDER BY are numeric (as text, BETWEEN 0.0 AND 9.0 matched '101.0000'); values.decode makes it a
            # Decimal of the declared scale again
            return "NUMERIC"
        if c in ("blob", "uuid"):
            return "BLOB"
        return "TEXT"

    def translate(self, exc, *, context=""):
        if not isinstance(exc, sqlite3.Error):
            return exc
        code = getattr(exc, "sqlite_errorcode", 0)  # Python 3.11+
        msg = " ".join(str(exc).split())  # messages are one line
        cls, text = next(((cls, text) for words, cls, text in _SQLITE_ERRORS if any(w in msg for w in words)),
                         (DatabaseError, "{where}SQLite error: {msg}"))
        where = f"{context}: " if context else ""
        return _caused(cls(text.format(where=where, msg=msg), code=code, context=context), exc)


def _caused(err: Exception, exc: Exception) -> Exception:
    """``err`` with the driver's ``exc`` as its __cause__, kept even where it is raised later or ``from None``."""
    err.__cause__ = exc
    return err


# MySQL error number -> (djhpc error, message); {where} is "context: " or "", {msg} the server's words, one line.
_MYSQL_ERRORS = {code: (cls, text) for codes, cls, text in (
    ((1062,), DuplicateError, "{where}duplicate primary key ({msg}): use skip_duplicates=True to skip it"),
    ((1452,), DataError, "{where}no matching row in the referenced table: insert the parent row first"),
    ((1451,), DataError,
     "{where}rows of another table refer to this row: delete() cascades, delete_quick() does not"),
    ((1048, 1364), DataError, "{where}a value is missing ({msg}): give every attribute without a default"),
    ((1264, 1265, 1292, 1366, 1406, 1411), DataError, "{where}a value does not fit its attribute ({msg})"),
    ((1213, 1205, 1020, 1180), TransientError,
     "{where}transient database failure ({code}): the transaction may be retried"),
    ((2006, 2013, 2014, 2055, 4031, 1927), LostConnectionError,
     "{where}lost the connection to the database server ({code})"),
    ((1045, 1698), ConnectError,
     "the database refused the user name or password: check DJ_USER/DJ_PASS or the URL"),
    ((1044, 1142, 1143, 1227, 1370), AccessError,
     "{where}the database user may not do this ({msg}): ask its administrator for the privilege, or use another "
     "user"),
    ((2003, 2005), ConnectError,
     "cannot reach the database server: check the host and port, and that the server runs"),
    ((1054,), QueryError, "{where}{msg}: name only attributes of the query (see its heading)"),
    ((1146,), DatabaseError, "{where}table does not exist ({msg}): declare it first"),
) for code in codes}

# SQLite message words -> (djhpc error, message), the first rule whose words occur in the message wins.
_SQLITE_ERRORS = (
    (("UNIQUE constraint failed", "PRIMARY KEY"), DuplicateError,
     "{where}duplicate primary key ({msg}): use skip_duplicates=True to skip it"),
    (("FOREIGN KEY constraint failed",), DataError,
     "{where}a foreign key does not match (missing parent row, or child rows still refer to it): "
     "insert the parent first, or delete() to cascade"),
    (("NOT NULL constraint failed",), DataError,
     "{where}a value is missing ({msg}): give every attribute without a default"),
    (("CHECK constraint failed",), DataError, "{where}a value does not fit its attribute ({msg})"),
    (("database is locked", "database is busy"), TransientError,
     "{where}the SQLite file stayed locked past the busy timeout"),
    (("database or disk is full",), DiskFullError,
     "{where}the disk holding the SQLite file is full: free space there (djhpc waits for it, then tries again)"),
    (("no such column",), QueryError, "{where}{msg}: name only attributes of the query (see its heading)"),
    (("no such table",), DatabaseError, "{where}{msg}: declare the table first"),
    (("unable to open database",), ConnectError, "cannot open the SQLite file: {msg}: check the path and its folder"),
)


def _mysql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


DIALECTS = {"mysql": MySQLDialect(), "sqlite": SQLiteDialect()}
