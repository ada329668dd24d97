"""The table tiers (Manual, Lookup, Imported, Computed, Part) and their base Table, DataJoint-style.

A table class is declared by decorating it with a Schema (djhpc.schemas); its instances are queries over
the whole table. As in DataJoint, many methods also work on the class itself (``Subject.insert1(...)``).
"""

from __future__ import annotations

import csv
import decimal
import functools
import importlib.metadata
import inspect
import logging
import platform
import re
from collections.abc import Mapping
from pathlib import PurePath

from . import catalog, settings, values
from .autopopulate import AutoPopulate
from .db.connection import Connection
from .declare import SQL_NOW, TableSpec, alter_clauses, create_table_sql, parse_definition
from .dependencies import cascade_delete, descendants, foreign_key_graph, master_of
from .errors import (
    DatabaseError,
    DataError,
    DefinitionError,
    DjhpcError,
    ExtraFieldError,
    MissingAttributeError,
    QueryError,
    UsageError,
)
from .query import Heading, Query, table_alias
from .utils import confirm

log = logging.getLogger(__name__)

#: settings that change table behaviour, DataJoint-style (``dj.config["safemode"] = False``): djhpc/settings.py
config = settings.config


@functools.lru_cache(maxsize=1024)  # asked for at every insert
def to_snake_case(name: str) -> str:
    """CamelCase -> snake_case, as DataJoint names tables."""
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise DefinitionError(f"table class name '{name}' must be alphanumeric in CamelCase (ASCII letters and "
                              "digits, a capital first, no underscores): rename the class")
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# Methods that DataJoint lets you call on the class itself; they run on a fresh instance.
_CLASS_PROXIED = {
    "insert", "insert1", "fetch", "fetch1", "delete", "delete_quick", "drop", "drop_quick", "describe",
    "heading", "primary_key", "proj", "populate", "progress", "key_source", "parpopulate", "join", "restrict",
    "keys", "full_table_name", "connection", "table_name", "parents", "children", "descendants", "ancestors",
    "parts", "update1", "alter", "size_on_disk", "master",
    "aggr", "aggregate", "head", "tail", "to_dicts", "to_arrays", "to_pandas",
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

    def __xor__(cls, other):
        return cls() ^ other

    def __matmul__(cls, other):
        return cls() @ other

    def __add__(cls, other):
        return cls() + other

    def __rmul__(cls, other):
        return other * cls()

    def __len__(cls):
        return len(cls())

    def __bool__(cls):
        return True  # a class is true, as in DataJoint (else `if Table:` would count its rows); `Table()` asks

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
    _schema = None  # the Schema (djhpc.schemas) that declared the class: its table cache forgets drops
    _allow_insert = False  # set by populate around make()
    _inserted_keys: list | None = None  # populate's list of the primary keys make() inserts here, while it runs

    def __init__(self):
        if type(self)._declared_spec is not None:
            self._bind()
        # else, as in DataJoint, an instance of a class not declared yet (a default argument made at import) is
        # bound at its first use after the class is declared: see __getattr__

    def _bind(self):
        cls = type(self)
        alias = table_alias(self.full_table_name)
        q = cls._connection.dialect.quote
        heading = Heading(cls._declared_spec.attributes)
        cols = {a.name: f"{alias}.{q(a.name)}" for a in heading.attributes.values()}
        super().__init__(cls._connection, heading, f"{self.full_table_name} AS {alias}", (), cols,
                         aliases={alias}, flat_names=True)

    def __getattr__(self, name):
        """A query's own state, missing on an instance made before its class was declared: bound now."""
        if "_heading" in self.__dict__ or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if type(self)._declared_spec is None:
            raise UsageError(f"{type(self).__name__} is not declared: decorate it with a dj.Schema (@schema)")
        self._bind()
        return getattr(self, name)

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

    @property
    def size_on_disk(self) -> int:
        """Bytes of the table's data and indexes (MySQL's TABLE STATUS; SQLite: its pages, 0 without dbstat)."""
        c, name = self.connection, type(self)._table_name()
        if c.is_sqlite:
            prefix = f"{type(self).database}.{name}"
            try:
                # the table and its indexes
                row = c.query("SELECT SUM(pgsize) FROM dbstat WHERE name = ? OR substr(name, 1, ?) = ?",
                              (prefix, len(prefix) + 5, prefix + "__idx"), context="size_on_disk").fetchone()
            except DatabaseError:  # an SQLite built without the dbstat table
                return 0
            return int(row[0] or 0)
        row = c.query("SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                      "AND TABLE_NAME=%s", (type(self).database, name), context="size_on_disk").fetchone()
        return int(row[0] or 0) if row else 0

    @property
    def external(self):
        """The external-store tracking tables of the table's schema (``table.external[store]``), as DataJoint's."""
        return type(self)._schema.external

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
            kind = (a.codec.text if a.codec is not None else a.type) + (" auto_increment" if a.auto_increment else "")
            lines.append(f"{a.name}{default} : {kind}" + (f"  # {a.comment}" if a.comment else ""))
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

    def alter(self, prompt=True, context=None):
        """DataJoint's alter: make the table's secondary attributes and comment those of the class's definition
        now (``ALTER TABLE``; ``# {old_name} ...`` in an attribute's comment renames old_name), asking first when
        ``prompt``. The primary key, foreign keys and indexes cannot change; on SQLite, whose ALTER TABLE cannot
        change or reorder columns, only the comment can (djhpc keeps it in the class)."""
        cls = type(self)
        connection = self.connection
        if connection.in_transaction:
            raise UsageError("alter() cannot run inside a transaction (e.g. from make()): call it outside")
        if context is None:
            frame = inspect.currentframe().f_back
            context = dict(frame.f_globals, **frame.f_locals)
            del frame
        new = cls._schema.parse_for(cls, context)
        old = catalog.read_spec(connection, cls.database, cls._table_name())
        _check_alter_keeps(self, new, old)
        clauses = alter_clauses(connection.dialect, old, new)
        if connection.is_sqlite:
            clauses = _sqlite_alter(cls, clauses)
        if not clauses:
            if prompt:
                log.warning("Nothing to alter.")
            cls._declared_spec = new
            return
        sql = f"ALTER TABLE {self.full_table_name}\n\t" + ",\n\t".join(clauses)
        if prompt and confirm(sql + "\n\nExecute?", "alter()", "pass prompt=False") != "yes":
            return
        connection.query(sql, context=f"alter {cls.__name__}")
        cls._declared_spec = new
        self._bind()
        if prompt:
            log.info("Table altered")
        cls._schema.log_event(f"Altered {self.full_table_name}")

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
        rows = _csv_rows(rows, self.heading) if isinstance(rows, PurePath) else _rows_of(rows)
        if isinstance(rows, Mapping):
            raise DataError("insert takes a list of rows: use insert1(row) for a single dict")
        heading = self.heading
        dialect = self.connection.dialect
        groups: dict[tuple, list] = {}
        made = cls._inserted_keys if cls._allow_insert else None
        attributes = list(heading.attributes.values())
        for row in rows:
            record = self._as_record(row, heading, ignore_extra_fields)
            if made is not None:
                made.append({k: record.get(k) for k in self.primary_key})
            names, encoded = [], []
            for a in attributes:
                # None (and NaN or '' in a number) stands for the default (the next number), as in DataJoint
                if a.name in record and not (values.is_missing(a, record[a.name])
                                             and (a.has_default or a.auto_increment)):
                    value = record[a.name]
                    if value is SQL_NOW:
                        continue
                    names.append(a.name)
                    if a.codec is not None and value is not None:  # stored first: external.ExternalMapping.put
                        value = a.codec.put(value)
                    encoded.append(values.encode(a, None if values.is_missing(a, value) else values.cast(a, value),
                                                 dialect.name))
                elif a.has_default:
                    if a.default is SQL_NOW:
                        continue
                    names.append(a.name)
                    encoded.append(values.encode(a, a.default, dialect.name) if a.default is not None else None)
                elif a.nullable or a.auto_increment:  # the database fills them: NULL, the next number
                    continue
                else:
                    raise MissingAttributeError(
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

    def update1(self, row: Mapping) -> None:
        """Change the secondary attributes of one existing row, named by the primary key in ``row`` (DataJoint's
        update1, for corrections: a row others were computed from is better deleted and made again)."""
        cls = type(self)
        if not isinstance(row, Mapping):
            raise DataError(f"update1 takes a dict of one row, not a {type(row).__name__}")
        missing = [k for k in self.primary_key if k not in row]
        if missing:
            raise DataError(f"update1 needs the whole primary key: give {', '.join(missing)}")
        unknown = [k for k in row if k not in self.heading]
        if unknown:
            raise QueryError(f"{cls.__name__} has no attribute '{unknown[0]}' (known: {', '.join(self.heading.names)})")
        if self._where:
            raise UsageError("update1 works on the table itself, not a restricted table: call it on the table")
        key = {k: row[k] for k in self.primary_key}
        if len(self & key) != 1:
            raise DataError(f"update1 changes one existing row: {cls.__name__} has no row {key}")
        d = self.connection.dialect
        sets, params = [], []
        for name, value in row.items():
            a = self.heading[name]
            if a.in_key:
                continue
            if value is SQL_NOW:
                sets.append(f"{d.quote(name)} = CURRENT_TIMESTAMP")
                continue
            if values.is_missing(a, value):  # DataJoint's: the attribute's default (null when nullable)
                if not a.has_default and not a.nullable:
                    raise DataError(f"{cls.__name__}: attribute '{name}' has no default and cannot be null: give a "
                                    "value")
                value = a.default
                if value is SQL_NOW:
                    sets.append(f"{d.quote(name)} = CURRENT_TIMESTAMP")
                    continue
            if a.codec is not None and value is not None:
                value = a.codec.put(value)
            sets.append(f"{d.quote(name)} = {d.placeholder}")
            params.append(None if value is None else values.encode(a, values.cast(a, value), d.name))
        if not sets:
            return
        where = " AND ".join(f"{d.quote(k)} = {d.placeholder}" for k in key)
        params += [values.encode(self.heading[k], v, d.name) for k, v in key.items()]
        self.connection.query(f"UPDATE {self.full_table_name} SET {', '.join(sets)} WHERE {where}", tuple(params),
                              context=f"update1 of {cls.__name__}")

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
                raise ExtraFieldError(
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

    def delete(self, transaction=True, safemode=None, force_parts=False, force_masters=False) -> int:
        """Delete these rows and every row that depends on them, children first, in one transaction; returns how
        many rows of this table went (DataJoint's count). In safemode (``dj.config["safemode"]``) it asks before
        committing. Rows of a part table may go only with their master's (else an error, unless ``force_parts``);
        ``force_masters`` takes the masters of the part rows reached along, with all their parts. Inside an open
        transaction it joins that transaction (committed by its owner), unless in safemode, which refuses."""
        safemode = config["safemode"] if safemode is None else safemode
        connection = self.connection
        if transaction and connection.in_transaction:
            if safemode:
                raise UsageError("delete() in safemode cannot run inside an open transaction (its answer could not "
                                 "be committed alone): pass transaction=False or safemode=False")
            transaction = False
        counts: list[tuple[tuple[str, str], int]] = []
        if transaction:
            connection.start_transaction()
        try:
            graph = foreign_key_graph(connection)
            sql, params = self.make_sql()
            top = self._split_name()
            deleted = cascade_delete(connection, graph, top, sql, params, counts, depth=0,
                                     masters=set() if force_masters else None)
            if not force_parts:
                _check_parts_with_masters(top, counts)
            if not transaction:
                return deleted
            total = sum(n for _, n in counts)
            if safemode and total:
                for (s, t), n in counts:
                    if n:
                        print(f"Deleting {n} rows from {connection.dialect.table(s, t)}")
                if confirm("Commit deletes?", "delete()", "pass safemode=False") != "yes":
                    connection.rollback()
                    print("Deletes cancelled")
                    return 0
            elif safemode:
                log.warning("Nothing to delete.")
            connection.commit()
        except BaseException:
            if transaction:
                connection.rollback()
            raise
        return deleted

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
        """Drop this table and the tables that depend on it (children first); in safemode (``dj.config``) asks
        first. A part table goes only with its master: drop the master."""
        safemode = config["safemode"] if safemode is None else safemode
        if self._where:
            raise UsageError("a restricted table cannot be dropped: call drop() on the table itself")
        connection = self.connection
        graph = foreign_key_graph(connection)
        order: list[tuple[str, str]] = []
        descendants(graph, self._split_name(), order)
        for name in order:
            master = master_of(name)
            if master is not None and master not in order:
                raise UsageError(f"cannot drop part table {connection.dialect.table(*name)} before its master: drop "
                                 f"{connection.dialect.table(*master)} instead")
        if safemode:
            for s, t in order:
                print(f"Dropping {connection.dialect.table(s, t)}")
            if confirm("Proceed?", "drop()", "pass safemode=False") != "yes":
                return
        for s, t in order:
            connection.query(f"DROP TABLE IF EXISTS {connection.dialect.table(s, t)}", context="drop")
        self._forget_declaration()

    # ---------------------------------------------------------------- dependencies (DataJoint's)
    def _dependencies(self):
        deps = self.connection.dependencies
        deps.load(force=False)
        return deps

    def _as_tables(self, names, as_objects):
        return [FreeTable(self.connection, n) for n in names] if as_objects else list(names)

    def parents(self, primary=None, as_objects=False, foreign_key_info=False):
        """The tables this one refers to (full names; ``primary``: through its primary key only (True) or not
        (False)); ``as_objects`` gives FreeTables, ``foreign_key_info`` (name, properties) pairs."""
        return self._related(self._dependencies().parents(self.full_table_name, primary), as_objects,
                             foreign_key_info)

    def children(self, primary=None, as_objects=False, foreign_key_info=False):
        """The tables that refer to this one, as ``parents`` gives them."""
        return self._related(self._dependencies().children(self.full_table_name, primary), as_objects,
                             foreign_key_info)

    def _related(self, found: dict, as_objects, foreign_key_info):
        names = self._as_tables(found, as_objects)
        return list(zip(names, found.values(), strict=True)) if foreign_key_info else names

    def descendants(self, as_objects=False):
        """This table and every table that depends on it, in topological order."""
        return self._as_tables(self._dependencies().descendants(self.full_table_name), as_objects)

    def ancestors(self, as_objects=False):
        """This table and every table it depends on, this one first."""
        return self._as_tables(self._dependencies().ancestors(self.full_table_name), as_objects)

    def parts(self, as_objects=False):
        """The full names (or FreeTables) of this table's part tables."""
        stem = self.full_table_name[:-1] + "__"
        return self._as_tables([n for n in self._dependencies().nodes if n.startswith(stem)], as_objects)


class FreeTable(Table):
    """A table named by its full name (```schema`.`table```; ``"schema.table"`` on SQLite), its heading read from
    the database: DataJoint's FreeTable, for tables no class here declares. Queries, insert, delete and drop work
    as on any table."""

    def __new__(cls, connection, full_table_name: str):
        if not isinstance(connection, Connection):
            raise UsageError(f"FreeTable(connection, full_table_name) takes a connection first, not "
                             f"{type(connection).__name__}")
        schema, table = catalog.split_full_name(connection.dialect, full_table_name)
        spec = catalog.read_spec(connection, schema, table)
        bound = type("FreeTable", (cls,), {"database": schema, "_connection": connection, "_declared_spec": spec,
                                           "_free_name": table, "__module__": cls.__module__})
        return object.__new__(bound)

    def __init__(self, connection, full_table_name: str):
        super().__init__()

    @classmethod
    def _table_name(cls) -> str:
        return cls._free_name

    def __repr__(self):
        return f"FreeTable({self.full_table_name})\n" + super().__repr__()


def _check_alter_keeps(table, new: TableSpec, old: TableSpec):
    """alter() changes attributes only: the same references (to the same tables by the same attributes), the same
    indexes as declared, no attribute stored in an external store added or changed."""
    deps = table._dependencies()
    deps.load()
    had = {(p, tuple(sorted(props["attr_map"].items()))) for p, props in deps.parents(table.full_table_name).items()
           if not catalog.split_full_name(table.connection.dialect, p)[1].startswith("~")}
    has = {(fk.parent.full_table_name, tuple(sorted(zip(fk.attributes, fk.parent_attributes, strict=True))))
           for fk in new.foreign_keys}
    if had != has:
        raise DefinitionError("table.alter cannot alter foreign keys (yet): keep the table's -> references as they "
                              "are")
    declared = type(table)._declared_spec
    if declared is not None and sorted(declared.indexes) != sorted(new.indexes):
        raise DefinitionError("table.alter cannot alter indexes (yet): keep the table's index lines as they are")
    before = {a.name: a for a in old.attributes}
    for a in new.attributes:
        was = before.get(a.name)
        if a.store and (was is None or was.store != a.store):
            raise DefinitionError(f"table.alter cannot add or change attribute '{a.name}' stored in external store "
                                  f"'{a.store}': declare a new table")


def _sqlite_alter(cls, clauses: list[str]) -> list[str]:
    """What SQLite can do of ``clauses``: the comment lives in the class, not the database; columns cannot change
    in place, so that is refused (rebuilding the table would hand its rows and references to a copy)."""
    columns = [c for c in clauses if not c.startswith("COMMENT=")]
    if columns:
        raise UsageError(f"alter() of {cls.__name__} on SQLite cannot change its attributes (SQLite's ALTER TABLE "
                         "cannot modify or reorder columns): declare a new table and copy the rows, or use MariaDB")
    return []


LOG_TABLE = "~log"
LOG_DEFINITION = """
# event logging table
id : int unsigned auto_increment  # event order id
---
timestamp = CURRENT_TIMESTAMP : timestamp  # event timestamp
version : varchar(12)  # datajoint version
user : varchar(255)  # user@host
host = "" : varchar(255)  # system hostname
event = "" : varchar(255)  # event message
"""
_LOG_SPEC = parse_definition(LOG_DEFINITION, lambda name: None)


class Log(Table):
    """A schema's ``~log`` table, DataJoint's ``schema.log``: one row per declared, altered or dropped table
    (``Declared `s`.`t```), made with the schema's first table. Calling it, ``log(event)``, adds a row; a failure
    to log (a user who may not write it) is logged, never raised."""

    def __new__(cls, connection, database: str, skip_logging=False):
        bound = type("Log", (cls,), {"database": database, "_connection": connection, "_declared_spec": _LOG_SPEC,
                                     "__module__": cls.__module__})
        return object.__new__(bound)

    def __init__(self, connection, database: str, skip_logging=False):
        self.skip_logging = skip_logging
        for sql in create_table_sql(connection.dialect, _LOG_SPEC, database, LOG_TABLE):
            connection.query(sql, context="declare ~log")
        super().__init__()

    @classmethod
    def _table_name(cls) -> str:
        return LOG_TABLE

    def __call__(self, event: str, skip_logging=None):
        if self.skip_logging if skip_logging is None else skip_logging:
            return
        try:
            self.insert1(dict(user=self.connection.get_user()[:255], version=_VERSION, host=platform.node()[:255],
                              event=event[:255]))
        except DjhpcError as exc:
            log.info("could not log %r in ~log: %s", event, exc)

    def delete(self, **kwargs):
        """All (or the restricted) rows, without asking: a log has no dependents."""
        return self.delete_quick(get_count=True)

    def drop(self, **kwargs):
        self.drop_quick()


def _djhpc_version() -> str:
    try:
        return "djhpc " + importlib.metadata.version("djhpc")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        return "djhpc"


_VERSION = _djhpc_version()[:12]


def _check_parts_with_masters(top, counts):
    """DataJoint's rule: rows of a part table go only with rows of its master (issue #151 of DataJoint)."""
    gone = {name for name, n in counts if n} | {top}
    for name in gone:
        master = master_of(name)
        if master is not None and master not in gone:
            raise UsageError(f"cannot delete from part table {name[1]} before deleting from its master {master[1]}: "
                             "delete from the master, or pass force_parts=True (force_masters=True takes the masters "
                             "along)")


# -------------------------------------------------------------------- tiers
UserTable = Table  # DataJoint's name of the tiers' base (``datajoint.user_tables.UserTable``)


# DataJoint's patterns of each tier's table names (``tier_regexp``): its prefix, then snake_case words
_NAME_REGEXP = r"[a-z][a-z0-9]*(_[a-z][a-z0-9]*)*"


class Manual(Table):
    """Rows entered by hand or by scripts."""

    tier_regexp = r"(?P<manual>" + _NAME_REGEXP + ")"


class Lookup(Table):
    """Small reference tables; ``contents`` are inserted when the table is declared."""

    tier_prefix = "#"
    tier_regexp = r"(?P<lookup>#" + _NAME_REGEXP + ")"
    contents: list = []


class Part(Table):
    """A part of a master table, declared inside it; filled in the master's make(). As in DataJoint, it is deleted
    and dropped with its master: ``delete(force=True)``/``drop(force=True)`` do it alone."""

    _master = None
    tier_regexp = r"(?P<master>(#|_|__)?" + _NAME_REGEXP + r")__(?P<part>" + _NAME_REGEXP + ")"

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

    def delete(self, force=False, **kwargs):
        if not force:
            raise UsageError(f"cannot delete from part table {type(self).__name__} alone: delete from its master "
                             f"{type(self)._master.__name__}, or pass force=True")
        return Table.delete(self, force_parts=True, **kwargs)

    def drop(self, force=False, **kwargs):
        if not force:
            raise UsageError(f"cannot drop part table {type(self).__name__} alone: drop its master "
                             f"{type(self)._master.__name__}, or pass force=True")
        return Table.drop(self, **kwargs)

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
    tier_regexp = r"(?P<imported>_" + _NAME_REGEXP + ")"


class Computed(AutoPopulate, Table):
    """Filled by populate() from other tables."""

    tier_prefix = "__"
    tier_regexp = r"(?P<computed>__" + _NAME_REGEXP + ")"


_FROM_TEXT = {"int": int, "float": float, "decimal": decimal.Decimal, "year": int,
              "bool": lambda t: t.strip().lower() in ("1", "true", "yes")}


def _csv_rows(path, heading) -> list[dict]:
    """The rows of a CSV file (its first line names the attributes), each text made the attribute's number type,
    as the server would read it; an empty field of a nullable attribute is null."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UsageError(f"cannot read the CSV file {path} to insert: {exc.strerror}") from exc
    for row in rows:
        for name, text in row.items():
            if name not in heading or not isinstance(text, str):
                continue
            a = heading[name]
            if text == "" and a.nullable:
                row[name] = None
            elif a.category in _FROM_TEXT:
                try:
                    row[name] = _FROM_TEXT[a.category](text.strip())
                except (ValueError, decimal.InvalidOperation) as exc:
                    raise DataError(f"{path}: attribute '{name}' ({a.type}) cannot take {text!r}") from exc
    return rows


def _rows_of(rows):
    """The rows an insert was given, as DataJoint takes them: a query's (or table class's) rows, a CSV file's (a
    ``pathlib.Path``; the first line names the attributes), a pandas DataFrame's (its index too when it is named),
    or the iterable itself (dicts, sequences, numpy records)."""
    if isinstance(rows, Query) or (isinstance(rows, type) and issubclass(rows, Query)):
        return rows.fetch(as_dict=True)
    if type(rows).__name__ == "DataFrame" and hasattr(rows, "to_records"):  # pandas, without importing it
        names = list(rows.index.names)
        keep_index = not (len(names) == 1 and not names[0])
        return rows.reset_index(drop=not keep_index).to_records(index=False)
    if isinstance(rows, (str, bytes)):
        raise DataError(f"cannot insert a {type(rows).__name__}: give dicts, sequences, or a pathlib.Path of a CSV "
                        "file")
    return rows


def check_restriction_attributes(query: Query, names) -> None:
    for n in names:
        if n not in query.heading:
            raise QueryError(f"unknown attribute '{n}' (known: {', '.join(query.heading.names)})")
