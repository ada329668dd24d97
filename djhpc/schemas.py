"""Schema: a database (MySQL) or a name prefix (SQLite) of a pipeline's tables, DataJoint-style.

A Schema decorates table classes (``@schema``) to declare them: it parses their definitions, creates
their tables and binds the classes to its connection. ``schema.jobs`` is its jobs table.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import types

from . import catalog, external, history, reservation, values
from .db.connection import Connection, conn
from .declare import SQL_NOW, create_table_sql, parse_definition, with_hidden_timestamp
from .dependencies import Dependencies, descendants, foreign_key_graph, topo_sort
from .errors import AccessError, DatabaseError, DataError, DefinitionError, MissingDefinitionError, UsageError
from .jobs import JobsTable
from .query import Query
from .tables import Computed, Imported, Log, Lookup, Manual, Part, Table, config
from .utils import confirm, to_camel_case

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
        self._log = None
        self._existing: set[str] | None = None
        self._waiting: list = []  # (class, its context's dicts): decorated before activate()
        if schema_name is not None:
            self.activate(schema_name)

    def __repr__(self):
        return f"Schema `{self.database}`\n"  # DataJoint's

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
        if self.connection.dependencies is None:
            self.connection.dependencies = Dependencies(self.connection)
        self.connection.register(self)
        waiting, self._waiting = self._waiting, []
        for cls, dicts in waiting:
            self._declare(cls, {k: v for d in dicts for k, v in d.items()} | self.add_objects)

    def _require_activated(self, what: str):
        if self.database is None:
            raise UsageError(f"{what}: the schema is not activated yet; call schema.activate('schema_name') first")

    def _activate(self, create_schema):
        c = self.connection
        if c.is_sqlite:
            if not create_schema and not self.table_names():
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
                if exc.code not in _ACCESS_DENIED:
                    raise
                raise UsageError(f"schema '{self.database}' does not exist and this user may not create it: ask "
                                 "for CREATE privilege on it, or name a schema that exists") from exc

    def list_tables(self) -> list[str]:
        """The schema's tables, as DataJoint lists them: without its own and djhpc's (``~log``, ``~jobs``, ...)."""
        return [t for t in self.table_names() if not t.startswith("~")]

    def table_names(self) -> list[str]:
        """Every table of the schema, ``~log``, ``~jobs`` and the like too, sorted."""
        self._require_activated("table_names()")
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
        try:
            spec = self._parse(cls, context, master)
        except DefinitionError:
            spec = self._existing_spec(name)  # as DataJoint: a table that exists is what it is
            if spec is None and not (isinstance(cls.definition, str) and cls.definition.strip()):
                raise MissingDefinitionError(f"{cls.__name__} has no definition (misspelt 'definition'?) and no "
                                             "table: write its definition = \"\"\"...\"\"\"") from None
            if spec is None:
                raise
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
        if isinstance(cls.definition, str) and "\nTable definition:\n" not in (cls.__doc__ or ""):
            cls.__doc__ = (cls.__doc__ or "") + "\nTable definition:\n\n" + cls.definition  # help() shows it
        if issubclass(cls, Lookup):  # before the parts, whose contents may refer to it
            _fill_lookup(cls, spec)
        for part in parts:
            self._declare(part, context, master=cls)

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
        return with_hidden_timestamp(spec, f"{self.database}.{cls._table_name()}")

    def parse_for(self, cls, context: dict):
        """The spec of ``cls``'s definition now, its names looked up in ``context`` and the schema's added
        objects, as at declaration (``alter`` compares it with the table)."""
        return self._parse(cls, {**context, **(self.add_objects or {})}, getattr(cls, "_master", None))

    def _existing_spec(self, name):
        """The attributes of table ``name`` as the database has it, or None when it does not exist."""
        if self._existing is None:
            self._existing = set(self.table_names())
        return catalog.read_spec(self.connection, self.database, name) if name in self._existing else None

    def _create_table(self, cls, spec, name):
        """Create the table of ``cls`` unless the schema has it already."""
        if self._existing is None:
            self._existing = set(self.table_names())
        if name not in self._existing:
            if not self.create_tables:
                raise UsageError(f"table {cls.__name__} does not exist and create_tables=False")
            statements = create_table_sql(self.connection.dialect, spec, self.database, name)
            try:
                with self.connection.transaction:
                    for sql in statements:
                        self.connection.query(sql, context=f"declare {cls.__name__}")
            except DatabaseError as exc:
                if exc.code not in _ACCESS_DENIED:
                    raise
                # as DataJoint: a user who may only read still imports the pipeline's module; using the table
                # fails later, on the server's own refusal
                log.warning("table %s not created: this user may not create tables in schema '%s' (%s); the "
                            "class is declared, its table is missing", cls.__name__, self.database, exc.code)
                return
            self._existing.add(name)
            self.log_event(f"Declared {self.connection.dialect.table(self.database, name)}")

    def log_event(self, event: str):
        """Add ``event`` to the schema's ``~log``, as DataJoint logs declarations; never inside an open
        transaction (creating ~log there would commit it on MySQL), and never an error."""
        if self._log is None and self.connection.in_transaction:
            return
        try:
            self.log(event)
        except DatabaseError as exc:  # e.g. a user who may not create ~log
            log.info("could not log %r in ~log: %s", event, exc)

    @property
    def exists(self) -> bool:
        """Whether the schema's database exists (SQLite: whether it has a table)."""
        self._require_activated("schema.exists")
        c = self.connection
        if c.is_sqlite:
            return bool(self.table_names())
        return bool(c.query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                            (self.database,)).fetchone()[0])

    @property
    def size_on_disk(self) -> int:
        """Bytes of data and indexes of the schema's tables (MySQL; SQLite: the pages of its tables, or 0)."""
        self._require_activated("schema.size_on_disk")
        c = self.connection
        if c.is_sqlite:
            return 0
        row = c.query("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                      (self.database,)).fetchone()
        return int(row[0] or 0)

    def spawn_missing_classes(self, context=None):
        """Make a class for each table of the schema that ``context`` (the caller's names when None) lacks, its
        heading read from the database (parts inside their masters), and add it to ``context``."""
        self._require_activated("spawn_missing_classes()")
        if context is None:
            frame = inspect.currentframe().f_back
            context = frame.f_locals if self.context is None else self.context
        known = {cls._table_name() for cls in context.values()
                 if isinstance(cls, type) and issubclass(cls, Table) and cls._declared_spec is not None
                 and cls.database == self.database}
        for name, cls in spawn_classes(self, [t for t in self.list_tables() if t not in known], context).items():
            if name not in context:
                context[name] = cls

    @property
    def code(self) -> str:
        """Python source declaring a class for each table of the schema, as read from the database."""
        return self.save()

    def save(self, python_filename=None) -> str:
        """DataJoint's ``schema.save``: the source of a module declaring the schema's tables (parts inside their
        masters, references as ``-> Parent`` lines), written to ``python_filename`` when given."""
        self._require_activated("schema.save()")
        deps = Dependencies(self.connection)
        deps.load()
        classes = spawn_classes(self, self.list_tables())
        by_table = {cls._table_name(): cls for cls in classes.values()}
        for cls in classes.values():
            by_table.update({p._table_name(): p for p in _parts_of(cls)})
        lines = ["import datajoint as dj", "", f"schema = dj.Schema({self.database!r})", ""]
        for name in topo_sort(deps._sub({self.connection.dialect.table(self.database, t) for t in by_table})):
            cls = by_table.get(catalog.split_full_name(self.connection.dialect, name)[1])
            if cls is None or issubclass(cls, Part):
                continue
            lines += ["", "@schema", *_class_source(cls, deps, by_table, "")]
            for part in _parts_of(cls):
                lines += [""] + _class_source(part, deps, by_table, "    ")
        text = "\n".join(lines) + "\n"
        if python_filename is not None:
            with open(python_filename, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    @property
    def jobs(self):
        """The schema's jobs table (created on first use)."""
        self._require_activated("schema.jobs")
        if self._jobs is None:
            self._jobs = JobsTable(self.connection, self.database)
        return self._jobs

    @property
    def log(self) -> Log:
        """The schema's ``~log`` table (created on first use): DataJoint's, a row per declared or altered table."""
        self._require_activated("schema.log")
        if self._log is None:
            self._log = Log(self.connection, self.database)
        return self._log

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
        if not self.exists:
            log.info("schema %s does not exist: nothing to drop", self.database)
            return
        if not force and config["safemode"]:
            question = f"Proceed to delete entire schema `{self.database}`?"
            if confirm(question, "schema.drop()", "use force=True") != "yes":
                return
        c = self.connection
        if c.is_sqlite:
            graph = foreign_key_graph(c)
            order: list = []
            for t in self.table_names():
                descendants(graph, (self.database, t), order)
            for s, t in order:
                c.query(f"DROP TABLE IF EXISTS {c.dialect.table(s, t)}")
        else:
            try:
                c.query(f"DROP DATABASE IF EXISTS {c.dialect.quote(self.database)}")
            except DatabaseError as exc:
                if exc.code not in _ACCESS_DENIED:
                    raise
                raise AccessError(f"this user may not drop schema '{self.database}': ask for the DROP privilege on "
                                  "it", code=exc.code) from exc
        if c.dependencies is not None:
            c.dependencies.clear()
        self._existing = None
        self._jobs = None
        self._log = None
        reservation.forget_tables(c)  # the jobs and history tables went with the schema: make them again
        history.forget_tables(c)


_ACCESS_DENIED = (1044, 1142, 1227)  # MySQL's access denied: to the database, the command, a privilege
_TIERS = ((re.compile(r"#\w+"), Lookup), (re.compile(r"__\w+"), Computed), (re.compile(r"_\w+"), Imported),
          (re.compile(r"[a-z]\w*"), Manual))


def spawn_classes(schema: Schema, tables, context=None) -> dict:
    """Class name -> a table class for each of ``tables`` (names in ``schema``), declared from the catalog; a part
    (``master__part``) becomes an attribute of its master's class, which is made too when missing. The attribute
    adapters that ``<name>`` types name are looked up in ``context``, then in the schema's ``add_objects``."""
    context = {**(schema.add_objects or {}), **(context or {})}
    made: dict[str, type] = {}
    masters: dict[str, type] = {}
    for table in sorted(tables, key=lambda t: ("__" in t.lstrip("_#"), t)):
        if table.startswith("~"):
            continue
        stem = table.lstrip("_#")
        if "__" in stem:
            master_table = table[: len(table) - len(stem)] + stem.split("__")[0]
            master = masters.get(master_table) or _spawn_one(schema, master_table, None, context)
            if master is None:
                continue
            masters[master_table] = master
            made.setdefault(master.__name__, master)
            part = _spawn_one(schema, table, master, context)
            if part is not None:
                setattr(master, part.__name__, part)
            continue
        cls = masters.get(table) or _spawn_one(schema, table, None, context)
        if cls is not None:
            masters[table] = cls
            made[cls.__name__] = cls
    return made


def _spawn_one(schema: Schema, table: str, master, context):
    tier = Part if master is not None else next((t for rx, t in _TIERS if rx.fullmatch(table)), None)
    if tier is None:
        return None
    stem = table.lstrip("_#").split("__")[-1]
    cls = type(to_camel_case(stem), (tier,), {"definition": "", "__module__": __name__})
    cls.database, cls._connection, cls._schema = schema.database, schema.connection, schema
    if master is not None:
        cls._master = master
    cls._declared_spec = spec = catalog.read_spec(schema.connection, schema.database, table, context)
    for a in spec.attributes:  # external and adapted attributes store through the schema (its stores are made
        if a.codec is not None:  # on first use: reading other attributes needs no dj.config['stores'])
            a.codec.runtime = external.mapping_of(schema)
    return cls


def _class_source(cls, deps, by_table, indent) -> list[str]:
    """A spawned class as source: its tier, and a definition whose references are ``-> Parent`` lines."""
    c = cls._connection
    spec = cls._declared_spec
    tier = "Part" if issubclass(cls, Part) else next(t.__name__ for _, t in _TIERS if issubclass(cls, t))
    full = c.dialect.table(cls.database, cls._table_name())
    lines = [f"# {spec.comment}"] if spec.comment else []
    covered: set = set()
    refs = {True: [], False: []}
    for parent, props in deps.parents(full).items():
        ptable = catalog.split_full_name(c.dialect, parent)[1]
        pcls = by_table.get(ptable)
        pname = ptable if pcls is None else (f"{pcls._master.__name__}.{pcls.__name__}" if issubclass(pcls, Part)
                                             else pcls.__name__)
        renames = ", ".join(f"{k}='{v}'" for k, v in props["attr_map"].items() if k != v)
        refs[props["primary"]].append(f"-> {pname}" + (f".proj({renames})" if renames else ""))
        covered |= set(props["attr_map"])
    for in_key in (True, False):
        lines += refs[in_key]
        for a in spec.attributes:
            if a.in_key == in_key and a.name not in covered:
                default = "" if not a.has_default else " = null" if a.default is None else f" = {a.default!r}"
                lines.append(f"{a.name}{default} : {a.type}" + (f"  # {a.comment}" if a.comment else ""))
        if in_key:
            lines.append("---")
    body = [f"{indent}class {cls.__name__}(dj.{tier}):", f'{indent}    definition = """']
    return body + [f"{indent}    {line}" for line in lines] + [f'{indent}    """']


def list_schemas(connection: Connection | None = None) -> list[str]:
    """The schemas of the database this user may see (MySQL's system schemas left out; on SQLite, the prefixes of
    its tables)."""
    c = connection or conn()
    if c.is_sqlite:
        rows = c.query("SELECT name FROM sqlite_master WHERE type='table' AND instr(name, '.') > 0").fetchall()
        return sorted({r[0].split(".", 1)[0] for r in rows})
    rows = c.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN "
                   "('information_schema', 'performance_schema', 'mysql', 'sys')").fetchall()
    return [r[0] for r in rows]


class VirtualModule(types.ModuleType):
    """A module holding a class for each table of an existing schema, read from the database (DataJoint's
    ``dj.VirtualModule`` / ``dj.create_virtual_module``): ``module.Session & key``, ``module.schema``."""

    def __init__(self, module_name: str, schema_name: str, *, create_schema=False, create_tables=False,
                 connection: Connection | None = None, add_objects=None):
        super().__init__(module_name)
        schema = Schema(schema_name, connection=connection, create_schema=create_schema,
                        create_tables=create_tables, add_objects=add_objects)
        if add_objects:
            self.__dict__.update(add_objects)
        self.__dict__["schema"] = schema
        schema.spawn_missing_classes(context=self.__dict__)


create_virtual_module = VirtualModule


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
