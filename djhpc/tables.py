"""Schema and the table tiers (Manual, Lookup, Imported, Computed, Part), DataJoint-style.

A table class is declared by decorating it with a Schema; its instances are queries over the whole
table. As in DataJoint, many methods also work on the class itself (``Subject.insert1(...)``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import sys
from collections.abc import Mapping

from . import values
from .db.connection import Connection, conn
from .declare import SQL_NOW, TableSpec, create_table_sql, parse_definition
from .errors import DataError, DefinitionError, DjhpcError, QueryError, UsageError
from .populate import AutoPopulate
from .query import Heading, Query, _new_alias

log = logging.getLogger(__name__)

#: settings that change table behaviour, DataJoint-style (``dj.config["safemode"] = False``)
config = {"safemode": os.environ.get("DJHPC_SAFEMODE", "1").lower() not in ("0", "false", "no")}


@functools.lru_cache(maxsize=1024)  # asked for at every insert
def to_snake_case(name: str) -> str:
    """CamelCase -> snake_case, as DataJoint names tables."""
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise DefinitionError(f"table class name '{name}' must be CamelCase (letters and digits, capital first)")
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# Methods that DataJoint lets you call on the class itself; they run on a fresh instance.
_CLASS_PROXIED = {
    "insert", "insert1", "fetch", "fetch1", "delete", "delete_quick", "drop", "drop_quick", "describe",
    "heading", "primary_key", "proj", "populate", "progress", "key_source", "parpopulate", "join", "restrict",
    "keys", "full_table_name",
}


class TableMeta(type):
    def __getattribute__(cls, name):
        if name in _CLASS_PROXIED and type.__getattribute__(cls, "_declared_spec") is not None:
            return getattr(cls(), name)
        return type.__getattribute__(cls, name)

    def __and__(cls, other):
        return cls() & other

    def __sub__(cls, other):
        return cls() - other

    def __mul__(cls, other):
        return cls() * other

    def __rmul__(cls, other):
        return other * cls()

    def __len__(cls):
        return len(cls())

    def __iter__(cls):
        return iter(cls())

    def __contains__(cls, item):
        return item in cls()


class Table(Query, metaclass=TableMeta):
    """Base of every declared table: an instance is a query over all of the table's rows."""

    definition = ""
    tier_prefix = ""
    database: str | None = None
    _connection: Connection | None = None
    _declared_spec: TableSpec | None = None
    _schema: Schema | None = None  # the Schema that declared the class: its table cache forgets drops
    _allow_insert = False  # set by populate around make()

    def __init__(self):
        cls = type(self)
        if cls._declared_spec is None:
            raise UsageError(f"{cls.__name__} is not declared: decorate it with a dj.Schema (@schema)")
        alias = _new_alias()
        q = cls._connection.dialect.quote
        heading = Heading(cls._declared_spec.attributes)
        cols = {a.name: f"{alias}.{q(a.name)}" for a in heading.attributes}
        super().__init__(cls._connection, heading, f"{self.full_table_name} AS {alias}", (), cols,
                         aliases={alias}, flat_names=True)

    # ---------------------------------------------------------------- names
    @classmethod
    def _table_name(cls) -> str:
        return cls.tier_prefix + to_snake_case(cls.__name__)

    @property
    def table_name(self) -> str:
        return type(self)._table_name()

    @property
    def full_table_name(self) -> str:
        cls = type(self)
        return cls._connection.dialect.table(cls.database, cls._table_name())

    @property
    def class_name(self) -> str:
        return type(self).__name__

    @classmethod
    def _make_query(cls):
        return cls()

    # ---------------------------------------------------------------- definition
    def describe(self, printout=False) -> str:
        spec = type(self)._declared_spec
        lines = [f"# {spec.comment}"] if spec.comment else []
        fk_attrs = {n for fk in spec.foreign_keys for n in fk.attributes}
        done_fk = set()
        divider_written = False
        for a in spec.attributes:
            if not a.in_key and not divider_written:
                lines.append("---")
                divider_written = True
            if a.name in fk_attrs:
                fk = next(f for f in spec.foreign_keys if a.name in f.attributes)
                if id(fk) not in done_fk:
                    done_fk.add(id(fk))
                    lines.append(fk.line)
                continue
            default = ""
            if a.has_default:
                d = a.default
                default = " = " + ("null" if d is None else "CURRENT_TIMESTAMP" if d is SQL_NOW
                                   else f'"{d}"' if isinstance(d, str) else str(d))
            lines.append(f"{a.name}{default} : {a.type}" + (f"  # {a.comment}" if a.comment else ""))
        if not divider_written:
            lines.append("---")
        # the unique index of '-> [unique] Parent' is written by that line already
        from_references = [fk.attributes for fk in spec.foreign_keys
                           if re.search(r"\[[^\]]*\bunique\b", fk.line, re.I)]
        for unique, names in spec.indexes:
            if unique and names in from_references:
                from_references.remove(names)
                continue
            lines.append(("unique " if unique else "") + "index(" + ", ".join(names) + ")")
        text = "\n".join(lines) + "\n"
        if printout:
            print(text)
        return text

    # ---------------------------------------------------------------- insert
    def insert1(self, row, **kwargs):
        self.insert([row], **kwargs)

    def insert(self, rows, *, skip_duplicates=False, ignore_extra_fields=False, replace=False,
               allow_direct_insert=None):
        """Insert rows (dicts, tuples in heading order, or a query); all land or none."""
        cls = type(self)
        if getattr(cls, "_auto_populated", False) and not (allow_direct_insert or cls._allow_insert):
            raise DataError(
                f"{cls.__name__} is filled by populate(): insert inside make(), or pass allow_direct_insert=True"
            )
        if isinstance(rows, Query) or (isinstance(rows, type) and issubclass(rows, Query)):
            rows = rows.fetch()
        if isinstance(rows, Mapping):
            raise DataError("insert takes a list of rows: use insert1(row) for a single dict")
        heading = self.heading
        dialect = self.connection.dialect
        groups: dict[tuple, list] = {}
        for row in rows:
            record = self._as_record(row, heading, ignore_extra_fields)
            names, encoded = [], []
            for a in heading.attributes:
                if a.name in record:
                    value = record[a.name]
                    if value is SQL_NOW:
                        continue
                    names.append(a.name)
                    encoded.append(values.encode(a, value, dialect.name))
                elif a.has_default:
                    if a.default is SQL_NOW:
                        continue
                    names.append(a.name)
                    encoded.append(values.encode(a, a.default, dialect.name) if a.default is not None else None)
                elif a.nullable:
                    continue
                else:
                    raise DataError(
                        f"{cls.__name__}: attribute '{a.name}' is missing and has no default: give a value for it"
                    )
            groups.setdefault(tuple(names), []).append(encoded)
        if not groups:
            return
        connection = self.connection
        with connection.transaction:
            for names, batch in groups.items():
                sql = self._insert_sql(names, skip_duplicates, replace)
                connection.query(sql, batch, many=True, context=f"insert into {cls.__name__}")

    def _insert_sql(self, names, skip_duplicates, replace):
        d = self.connection.dialect
        cols = ", ".join(d.quote(n) for n in names)
        marks = ", ".join([d.placeholder] * len(names))
        verb = "INSERT"
        if replace:
            verb = "REPLACE" if d.name == "mysql" else "INSERT OR REPLACE"
        sql = f"{verb} INTO {self.full_table_name} ({cols}) VALUES ({marks})"
        if skip_duplicates and not replace:
            if d.name == "mysql":
                k = d.quote(self.primary_key[0])
                sql += f" ON DUPLICATE KEY UPDATE {k}={k}"
            else:
                sql += " ON CONFLICT DO NOTHING"
        return sql

    def _as_record(self, row, heading, ignore_extra_fields) -> dict:
        if isinstance(row, Mapping):
            record = dict(row)
        elif hasattr(row, "dtype") and getattr(row.dtype, "names", None):
            record = dict(zip(row.dtype.names, row.tolist(), strict=True))
        elif isinstance(row, (tuple, list)):
            if len(row) != len(heading.attributes):
                raise DataError(
                    f"{type(self).__name__}: a row of {len(row)} values does not match the "
                    f"{len(heading.attributes)} attributes ({', '.join(heading.names)})"
                )
            return dict(zip(heading.names, row, strict=True))
        else:
            raise DataError(f"cannot insert a {type(row).__name__}: give dicts or tuples")
        extra = [k for k in record if k not in heading]
        if extra:
            if not ignore_extra_fields:
                raise DataError(
                    f"{type(self).__name__} has no attribute '{extra[0]}': remove it or pass ignore_extra_fields=True"
                )
            for k in extra:
                del record[k]
        return record

    # ---------------------------------------------------------------- delete and drop
    def delete_quick(self, get_count=False):
        """Delete the rows of this query, without cascading or asking."""
        sql, params = self._delete_sql()
        cur = self.connection.query(sql, params, context=f"delete from {self.class_name}")
        return cur.rowcount if get_count else None

    def _delete_sql(self):
        d = self.connection.dialect
        pk = self.primary_key
        key_cols = ", ".join(d.quote(n) for n in pk)
        sub, params = self.make_sql(pk)
        lhs = key_cols if len(pk) == 1 else f"({key_cols})"
        inner = f"SELECT {key_cols} FROM ({sub}) AS _del"
        return f"DELETE FROM {self.full_table_name} WHERE {lhs} IN ({inner})", params

    def delete(self, safemode=None, transaction=True) -> int:
        """Delete these rows and every row that depends on them, in one transaction; asks first in safemode."""
        safemode = config["safemode"] if safemode is None else safemode
        connection = self.connection
        if safemode and not sys.stdin.isatty():
            raise UsageError("delete() asks for confirmation but stdin is not a terminal: pass safemode=False")
        counts: list[tuple[str, int]] = []
        connection.start_transaction()
        try:
            graph = _foreign_key_graph(connection)
            sql, params = self.make_sql()
            _cascade_delete(connection, graph, self._split_name(), sql, params, counts, depth=0)
            total = sum(n for _, n in counts)
            if safemode and total:
                for name, n in counts:
                    if n:
                        print(f"Deleting {n} rows from {name}")
                answer = input("Commit deletes? [yes, No]: ").strip().lower()
                if answer != "yes":
                    connection.rollback()
                    print("Deletes cancelled")
                    return 0
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        return total

    def _split_name(self) -> tuple[str, str]:
        return type(self).database, type(self)._table_name()

    def drop_quick(self):
        self.connection.query(f"DROP TABLE IF EXISTS {self.full_table_name}", context="drop")
        self._forget_declaration()

    def _forget_declaration(self):
        cls = type(self)
        cls._declared_spec = None
        if cls._schema is not None:
            cls._schema._existing = None  # declaring the class again must create the table again

    def drop(self, safemode=None):
        """Drop this table and the tables that depend on it (children first)."""
        safemode = config["safemode"] if safemode is None else safemode
        connection = self.connection
        graph = _foreign_key_graph(connection)
        order: list[tuple[str, str]] = []
        _descendants(graph, self._split_name(), order)
        if safemode:
            if not sys.stdin.isatty():
                raise UsageError("drop() asks for confirmation but stdin is not a terminal: pass safemode=False")
            for s, t in order:
                print(f"Dropping {s}.{t}")
            if input("Proceed? [yes, No]: ").strip().lower() != "yes":
                return
        for s, t in order:
            connection.query(f"DROP TABLE IF EXISTS {connection.dialect.table(s, t)}", context="drop")
        self._forget_declaration()


def _foreign_key_graph(connection) -> dict:
    """parent (schema, table) -> [(child (schema, table), child columns, parent columns)] from the catalog."""
    graph: dict = {}
    if connection.is_sqlite:
        names = [r[0] for r in connection.query(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'").fetchall()]
        for name in names:
            rows = connection.query(f"PRAGMA foreign_key_list({connection.dialect.quote(name)})").fetchall()
            fks: dict = {}
            for r in rows:
                fks.setdefault(r[0], []).append((r[2], r[3], r[4]))
            for items in fks.values():
                parent = tuple(items[0][0].split(".", 1))
                child = tuple(name.split(".", 1))
                graph.setdefault(parent, []).append((child, [i[1] for i in items], [i[2] for i in items]))
        return graph
    rows = connection.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
        "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, "
        "ORDINAL_POSITION").fetchall()
    fks: dict = {}
    for s, t, c, col, ps, pt, pcol in rows:
        fks.setdefault((s, t, c), {"parent": (ps, pt), "cols": [], "pcols": []})
        fks[(s, t, c)]["cols"].append(col)
        fks[(s, t, c)]["pcols"].append(pcol)
    for (s, t, _), fk in fks.items():
        graph.setdefault(fk["parent"], []).append(((s, t), fk["cols"], fk["pcols"]))
    return graph


def _cascade_delete(connection, graph, name, select_sql, params, counts, depth):
    """Delete children first, then the rows of ``name`` selected by ``select_sql``."""
    if depth > 50:
        raise DjhpcError("foreign keys nest deeper than 50 levels: is there a cycle?")
    d = connection.dialect
    q = d.quote
    for child, cols, pcols in graph.get(name, []):
        alias = _new_alias()
        cond = " AND ".join(f"{alias}.{q(pc)} = _c.{q(c)}" for c, pc in zip(cols, pcols, strict=True))
        child_sql = (f"SELECT * FROM {d.table(*child)} AS _c WHERE EXISTS "
                     f"(SELECT 1 FROM ({select_sql}) AS {alias} WHERE {cond})")
        _cascade_delete(connection, graph, child, child_sql, params, counts, depth + 1)
    pk = _primary_key_columns(connection, name)
    key_cols = ", ".join(q(n) for n in pk)
    lhs = key_cols if len(pk) == 1 else f"({key_cols})"
    sql = f"DELETE FROM {d.table(*name)} WHERE {lhs} IN (SELECT {key_cols} FROM ({select_sql}) AS _d)"
    cur = connection.query(sql, params, context=f"delete from {name[1]}")
    counts.append((f"{name[0]}.{name[1]}", cur.rowcount))


def _primary_key_columns(connection, name) -> list[str]:
    if connection.is_sqlite:
        rows = connection.query(f"PRAGMA table_info({connection.dialect.quote(name[0] + '.' + name[1])})").fetchall()
        return [r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5]]
    rows = connection.query(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
        "AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION", name).fetchall()
    return [r[0] for r in rows]


def _descendants(graph, name, order, seen=None):
    seen = set() if seen is None else seen
    if name in seen:
        return
    seen.add(name)
    for child, _, _ in graph.get(name, []):
        _descendants(graph, child, order, seen)
    order.append(name)


# -------------------------------------------------------------------- tiers
class Manual(Table):
    """Rows entered by hand or by scripts."""


class Lookup(Table):
    """Small reference tables; ``contents`` are inserted when the table is declared."""

    tier_prefix = "#"
    contents: list = []


class Part(Table):
    """A part of a master table, declared inside it; filled in the master's make()."""

    _master = None

    @classmethod
    def _table_name(cls) -> str:
        if cls._master is None:
            raise DefinitionError(f"part table {cls.__name__} must be declared inside its master class")
        return cls._master._table_name() + "__" + to_snake_case(cls.__name__)

    @property
    def master(self):
        return type(self)._master

    @classmethod
    def _auto(cls):
        return getattr(cls._master, "_auto_populated", False)

    def insert(self, rows, **kwargs):
        master = type(self)._master
        if getattr(master, "_auto_populated", False) and not (kwargs.get("allow_direct_insert")
                                                             or master._allow_insert):
            raise DataError(
                f"{type(self).__name__} is filled by {master.__name__}.populate(): insert inside make(), "
                "or pass allow_direct_insert=True"
            )
        kwargs["allow_direct_insert"] = True
        return Table.insert(self, rows, **kwargs)


class Imported(AutoPopulate, Table):
    """Filled by populate() from data outside the database."""

    tier_prefix = "_"


class Computed(AutoPopulate, Table):
    """Filled by populate() from other tables."""

    tier_prefix = "__"


# -------------------------------------------------------------------- schema
class Schema:
    """A database (MySQL) or a name prefix (SQLite) holding a pipeline's tables; used as a class decorator."""

    def __init__(self, schema_name: str, context: dict | None = None, *, connection: Connection | None = None,
                 create_schema=True, create_tables=True):
        if not isinstance(schema_name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", schema_name):
            raise UsageError(
                f"schema name {schema_name!r} is not valid: use letters, digits and underscores (at most 64)"
            )
        self.database = schema_name
        self.context = context
        self.connection = connection or conn()
        self.create_tables = create_tables
        self._jobs = None
        self._existing: set[str] | None = None
        self._activate(create_schema)

    def __repr__(self):
        return f"Schema({self.database!r})"

    def _activate(self, create_schema):
        c = self.connection
        if c.is_sqlite:
            if not create_schema and not self.list_tables():
                raise UsageError(f"schema '{self.database}' does not exist: pass create_schema=True to create it")
            return
        exists = c.query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                         (self.database,)).fetchone()[0]
        if not exists:
            if not create_schema:
                raise UsageError(f"schema '{self.database}' does not exist: pass create_schema=True to create it")
            c.query(f"CREATE DATABASE IF NOT EXISTS {c.dialect.quote(self.database)} CHARACTER SET utf8mb4")

    def list_tables(self) -> list[str]:
        c = self.connection
        if c.is_sqlite:
            prefix = self.database + "."
            rows = c.query("SELECT name FROM sqlite_master WHERE type='table' AND substr(name, 1, ?) = ?",
                           (len(prefix), prefix)).fetchall()
            return sorted(r[0][len(prefix):] for r in rows)
        rows = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                       (self.database,)).fetchall()
        return sorted(r[0] for r in rows)

    def __call__(self, cls, *, context=None):
        if context is None:
            frame = inspect.currentframe().f_back
            context = {**frame.f_globals, **frame.f_locals} if self.context is None else self.context
        self._declare(cls, context)
        return cls

    def _declare(self, cls, context, master=None, parse_only=False):
        if not (isinstance(cls, type) and issubclass(cls, Table)) or cls in (Table, Manual, Lookup, Part):
            raise DefinitionError(f"{getattr(cls, '__name__', cls)} is not a table class: subclass dj.Manual, "
                                  "dj.Lookup, dj.Imported, dj.Computed or dj.Part")
        if issubclass(cls, Part) and master is None:
            raise DefinitionError(f"part table {cls.__name__} must be declared inside its master class")
        cls.database = self.database
        cls._connection = self.connection
        cls._schema = self
        cls._declared_spec = None
        if master is not None:
            cls._master = master
        name = cls._table_name()

        def resolve(ref: str):
            if ref == "master" and master is not None:
                return master()
            target = None
            parts = ref.split(".")
            if parts[0] in context:
                target = context[parts[0]]
                for p in parts[1:]:
                    target = getattr(target, p, None)
            if target is None:
                raise DefinitionError(f"'-> {ref}' in {cls.__name__}: no table named {ref} is defined before it")
            if isinstance(target, type) and issubclass(target, Table):
                if type.__getattribute__(target, "_declared_spec") is None:
                    raise DefinitionError(f"'-> {ref}' in {cls.__name__}: {ref} is not declared in a schema yet")
                return target()
            if isinstance(target, Query):
                return target
            raise DefinitionError(f"'-> {ref}' in {cls.__name__}: {ref} is not a table")

        try:
            spec = parse_definition(cls.definition, resolve)
        except DefinitionError as e:
            raise DefinitionError(f"{cls.__name__}: {e}") from None
        for a in spec.attributes:  # a default that cannot be stored fails here, alike on both backends
            if a.has_default and a.default is not None and a.default is not SQL_NOW:
                try:
                    values.encode(a, a.default, self.connection.dialect.name)
                except DataError as e:
                    raise DefinitionError(f"{cls.__name__}: the default of '{a.name}' does not fit: {e}") from None
        if parse_only:
            return
        parts = [m for n, m in vars(cls).items() if isinstance(m, type) and issubclass(m, Part) and n[0].isupper()]
        if parts:  # parse the parts first: a bad part must not leave its master's table behind
            cls._declared_spec = spec
            try:
                for part in parts:
                    self._declare(part, context, master=cls, parse_only=True)
            finally:
                cls._declared_spec = None
        if self._existing is None:
            self._existing = set(self.list_tables())
        if name not in self._existing:
            if not self.create_tables:
                raise UsageError(f"table {cls.__name__} does not exist and create_tables=False")
            statements = create_table_sql(self.connection.dialect, spec, self.database, name)
            with self.connection.transaction:
                for sql in statements:
                    self.connection.query(sql, context=f"declare {cls.__name__}")
            self._existing.add(name)
        cls._declared_spec = spec
        for part in parts:
            self._declare(part, context, master=cls)
        if issubclass(cls, Lookup) and cls.contents:
            cls().insert(list(cls.contents), skip_duplicates=True)

    @property
    def jobs(self):
        """The schema's jobs table (created on first use)."""
        if self._jobs is None:
            from .jobs import JobsTable

            self._jobs = JobsTable(self.connection, self.database)
        return self._jobs

    def drop(self, force=False):
        """Drop every table of the schema (and, on MySQL, the database)."""
        if not force and config["safemode"]:
            if not sys.stdin.isatty():
                raise UsageError("schema.drop() asks for confirmation but stdin is not a terminal: use force=True")
            if input(f"Drop schema '{self.database}' and all its tables? [yes, No]: ").strip().lower() != "yes":
                return
        c = self.connection
        if c.is_sqlite:
            graph = _foreign_key_graph(c)
            order: list = []
            for t in self.list_tables():
                _descendants(graph, (self.database, t), order)
            for s, t in order:
                c.query(f"DROP TABLE IF EXISTS {c.dialect.table(s, t)}")
        else:
            c.query(f"DROP DATABASE IF EXISTS {c.dialect.quote(self.database)}")
        self._existing = None
        self._jobs = None


def schema(schema_name, context=None, **kwargs) -> Schema:
    """DataJoint's older spelling: ``dj.schema("name", locals())``."""
    return Schema(schema_name, context, **kwargs)


def check_restriction_attributes(query: Query, names) -> None:
    for n in names:
        if n not in query.heading:
            raise QueryError(f"unknown attribute '{n}' (known: {', '.join(query.heading.names)})")
