"""Schema: a database (MySQL) or a name prefix (SQLite) of a pipeline's tables, DataJoint-style.

A Schema decorates table classes (``@schema``) to declare them: it parses their definitions, creates
their tables and binds the classes to its connection. ``schema.jobs`` is its jobs table.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
import types

from . import external, history, reservation, values
from .db.connection import Connection, conn
from .declare import SQL_NOW, create_table_sql, parse_definition
from .dependencies import descendants, foreign_key_graph
from .errors import DatabaseError, DataError, DefinitionError, UsageError
from .jobs import JobsTable
from .query import Query
from .tables import Lookup, Manual, Part, Table, config

log = logging.getLogger(__name__)


class Schema:
    """A database (MySQL) or a name prefix (SQLite) holding a pipeline's tables; used as a class decorator."""

    def __init__(self, schema_name: str | None = None, context: dict | None = None, *,
                 connection: Connection | None = None, create_schema=True, create_tables=True, add_objects=None):
        """Without a name, as every DataJoint Element starts, the schema is activated later by ``activate``, and
        the tables decorated before are declared then."""
        self.database: str | None = None
        self.context = context
        self.connection = connection
        self.create_schema = create_schema
        self.create_tables = create_tables
        self.add_objects = add_objects
        self._jobs = None
        self._existing: set[str] | None = None
        self._waiting: list = []  # (class, its context's dicts): decorated before activate()
        if schema_name is not None:
            self.activate(schema_name)

    def __repr__(self):
        return f"Schema({self.database!r})"

    def is_activated(self) -> bool:
        return self.database is not None

    def activate(self, schema_name: str | None = None, *, connection: Connection | None = None,
                 create_schema=None, create_tables=None, add_objects=None, linking_module=None):
        """Bind the schema to database ``schema_name`` (created unless ``create_schema=False``) and declare the
        tables decorated so far; ``add_objects`` (or ``linking_module``, a module or its name, as the Elements'
        activate() takes) adds names their ``-> Parent`` lines may use. Activating again with the same name does
        nothing; without a name it checks that the schema is activated."""
        if schema_name is None:
            self._require_activated("activate() without a name")
            return
        _check_name(schema_name)
        if self.database is not None:
            if schema_name == self.database:
                return
            raise UsageError(f"the schema is already activated for '{self.database}': make another dj.Schema() "
                             f"for '{schema_name}'")
        if connection is not None:
            self.connection = connection
        if self.connection is None:
            self.connection = conn()
        self.create_schema = self.create_schema if create_schema is None else create_schema
        self.create_tables = self.create_tables if create_tables is None else create_tables
        self.add_objects = {**(self.add_objects or {}), **_objects_of(linking_module), **(add_objects or {})}
        self.database = schema_name
        try:
            self._activate(self.create_schema)
        except BaseException:
            self.database = None  # not activated: activate() may be called again
            raise
        waiting, self._waiting = self._waiting, []
        for cls, dicts in waiting:
            self._declare(cls, {k: v for d in dicts for k, v in d.items()} | self.add_objects)

    def _require_activated(self, what: str):
        if self.database is None:
            raise UsageError(f"{what}: the schema is not activated yet; call schema.activate('schema_name') first")

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
            try:
                c.query(f"CREATE DATABASE IF NOT EXISTS {c.dialect.quote(self.database)} CHARACTER SET utf8mb4")
            except DatabaseError as exc:
                if exc.code not in (1044, 1142, 1227):  # access denied: to the database, the command, a privilege
                    raise
                raise UsageError(f"schema '{self.database}' does not exist and this user may not create it: ask "
                                 "for CREATE privilege on it, or name a schema that exists") from exc

    def list_tables(self) -> list[str]:
        self._require_activated("list_tables()")
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
        frame = inspect.currentframe().f_back
        dicts = [context] if context is not None else [self.context] if self.context is not None else [
            frame.f_globals, frame.f_locals]
        if self.database is None:  # declared by activate(), with the names its module has then (DataJoint's way)
            _check_table_class(cls, None)
            self._waiting.append((cls, dicts))
            return cls
        self._declare(cls, {k: v for d in dicts for k, v in d.items()} | (self.add_objects or {}))
        return cls

    def _declare(self, cls, context, master=None, parse_only=False):
        _check_table_class(cls, master)
        cls.database = self.database
        cls._connection = self.connection
        cls._schema = self
        cls._declared_spec = None
        if master is not None:
            cls._master = master
        name = cls._table_name()
        spec = self._parse(cls, context, master)
        if parse_only:
            cls._declared_spec = spec  # a later sibling part may reference it; the master's caller resets it
            return
        parts = _parts_of(cls)
        if parts:  # parse the parts first: a bad part must not leave its master's table behind
            cls._declared_spec = spec
            try:
                for part in parts:
                    self._declare(part, context, master=cls, parse_only=True)
            finally:
                for table in (cls, *parts):
                    table._declared_spec = None
        self._create_table(cls, spec, name)
        cls._declared_spec = spec
        for part in parts:
            self._declare(part, context, master=cls)
        if issubclass(cls, Lookup):
            _fill_lookup(cls, spec)

    def _parse(self, cls, context, master):
        """The parsed definition of ``cls``, its ``-> Parent`` references looked up in ``context``, where, as in
        DataJoint, ``self`` is the class (``-> self.source``), and in a part ``master`` and the master's name are
        the master (``-> master.Sibling``, ``-> Master.Sibling``)."""
        owner = cls if master is None else master  # not `master or cls`: a table class has a len()
        context = {**context, owner.__name__: owner, "self": cls}
        if master is not None:
            context["master"] = master
        try:
            spec = external.bind(parse_definition(cls.definition, _resolver(cls, context, master), context), self)
        except DefinitionError as e:
            raise DefinitionError(f"{cls.__name__}: {e}") from e
        for a in spec.attributes:  # a default that cannot be stored fails here, alike on both backends
            if a.has_default and a.default is not None and a.default is not SQL_NOW:
                try:
                    values.encode(a, a.default, self.connection.dialect.name)
                except DataError as e:
                    raise DefinitionError(f"{cls.__name__}: the default of '{a.name}' does not fit: {e}") from e
        return spec

    def _create_table(self, cls, spec, name):
        """Create the table of ``cls`` unless the schema has it already."""
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

    @property
    def jobs(self):
        """The schema's jobs table (created on first use)."""
        self._require_activated("schema.jobs")
        if self._jobs is None:
            self._jobs = JobsTable(self.connection, self.database)
        return self._jobs

    @property
    def external(self):
        """The tracking table of each external store the schema uses: ``schema.external["store"]``, as DataJoint's."""
        self._require_activated("schema.external")
        return external.mapping_of(self)

    def drop(self, force=False):
        """Drop every table of the schema (and, on MySQL, the database); nothing if it was never activated."""
        if self.database is None:  # e.g. a test's teardown after an activate() that failed
            log.warning("schema.drop(): the schema is not activated, so there is nothing to drop")
            return
        if not force and config["safemode"]:
            if not sys.stdin.isatty():
                raise UsageError("schema.drop() asks for confirmation but stdin is not a terminal: use force=True")
            if input(f"Drop schema '{self.database}' and all its tables? [yes, No]: ").strip().lower() != "yes":
                return
        c = self.connection
        if c.is_sqlite:
            graph = foreign_key_graph(c)
            order: list = []
            for t in self.list_tables():
                descendants(graph, (self.database, t), order)
            for s, t in order:
                c.query(f"DROP TABLE IF EXISTS {c.dialect.table(s, t)}")
        else:
            c.query(f"DROP DATABASE IF EXISTS {c.dialect.quote(self.database)}")
        self._existing = None
        self._jobs = None
        reservation.forget_tables(c)  # the jobs and history tables went with the schema: make them again
        history.forget_tables(c)


def _parts_of(cls) -> list:
    """The part classes of a master, inherited ones too (a subclass of a master has its parts), base classes'
    first and each in the order written, as DataJoint declares them."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        names.update(dict.fromkeys(n for n in vars(klass) if n[0].isupper()))
    found = (next(vars(k)[n] for k in cls.__mro__ if n in vars(k)) for n in names)
    return [m for m in found if isinstance(m, type) and issubclass(m, Part)]


def _fill_lookup(cls, spec):
    """Insert a Lookup's contents (read once, from an instance: it may be a property), skipping rows it has, when
    it has more rows than the table. With an auto_increment key, as DataJoint: never (rows without the key would
    be added again at every import); a warning says so."""
    table = cls()
    contents = getattr(table, "contents", None)
    if contents is None:
        return
    try:
        rows = list(contents)
    except TypeError as exc:
        raise DefinitionError(f"{cls.__name__}.contents must be rows (a list, or a property giving them), not "
                              f"{type(contents).__name__}") from exc
    if len(rows) <= len(table):
        return
    if not any(a.auto_increment for a in spec.attributes):
        table.insert(rows, skip_duplicates=True)
    else:
        log.warning("%s: contents has rows the table lacks, but are not inserted: the table has an auto_increment "
                    "key; insert them yourself", cls.__name__)


def _check_name(schema_name):
    if not isinstance(schema_name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", schema_name):
        raise UsageError(f"schema name {schema_name!r} is not valid: use letters, digits and underscores (at most 64)")


def _check_table_class(cls, master):
    if not (isinstance(cls, type) and issubclass(cls, Table)) or cls in (Table, Manual, Lookup, Part):
        raise DefinitionError(f"{getattr(cls, '__name__', cls)} is not a table class: subclass dj.Manual, "
                              "dj.Lookup, dj.Imported, dj.Computed or dj.Part")
    if issubclass(cls, Part) and master is None:
        raise DefinitionError(f"part table {cls.__name__} must be declared inside its master class")


def _objects_of(linking_module) -> dict:
    """The names of ``linking_module`` (a module, or its name to import) that table definitions may use."""
    if linking_module is None:
        return {}
    if isinstance(linking_module, str):
        try:
            linking_module = importlib.import_module(linking_module)
        except ImportError as exc:
            raise UsageError(f"linking_module {linking_module!r} cannot be imported ({exc}): name a module on "
                             "sys.path, or pass the module itself") from exc
    if not isinstance(linking_module, types.ModuleType):
        raise UsageError(f"linking_module must be a module or a module's name, not {type(linking_module).__name__}: "
                         "pass add_objects= for a dict of names")
    return dict(vars(linking_module))


def _resolver(cls, context, master):
    """The lookup of the names a definition's ``-> Parent`` lines give, in ``context`` (``master`` in a part)."""

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

    return resolve


def schema(schema_name=None, context=None, **kwargs) -> Schema:
    """DataJoint's older spelling: ``dj.schema("name", locals())``."""
    return Schema(schema_name, context, **kwargs)
