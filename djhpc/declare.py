"""Definition text -> table spec -> CREATE TABLE, one parser for both dialects.

The definition syntax is DataJoint's: an optional ``# comment`` line, primary attributes above
``---``, ``-> Parent`` references (``-> [nullable] Parent`` in the secondary part), attribute lines
``name [= default] : type [# comment]`` and ``[unique] index(attr, ...)`` lines.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace

import numpy as np

from . import settings
from .adapters import parse_special
from .errors import DefinitionError

INT_TYPES = {
    "tinyint": (8, "tinyint"),
    "smallint": (16, "smallint"),
    "mediumint": (24, "mediumint"),
    "int": (32, "int"),
    "integer": (32, "int"),
    "bigint": (64, "bigint"),
}
BLOB_TYPES = ("tinyblob", "blob", "mediumblob", "longblob", "attach")
SIMPLE_TYPES = {
    "float": "float",
    "double": "float",
    "real": "float",
    "bool": "bool",
    "boolean": "bool",
    "date": "date",
    "year": "year",
    "uuid": "uuid",
    "json": "json",
}
KNOWN_TYPES = (
    "tinyint smallint mediumint int bigint [unsigned] [auto_increment], float, double, decimal(p,s), varchar(n), "
    "char(n), bool, date, datetime, timestamp, time, year, enum(...), uuid, json, blob, mediumblob, longblob"
)
SQL_NOW = "CURRENT_TIMESTAMP"
# the categories DataJoint counts as strings (its ENUM, TEMPORAL and STRING types)
_STRING_CATEGORIES = ("string", "enum", "date", "datetime", "timestamp", "time", "year")


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str  # as written, normalised to lower case, e.g. "int unsigned", "varchar(32)"
    category: str  # int float decimal string bool date datetime timestamp time year enum uuid json blob
    in_key: bool = False
    nullable: bool = False
    default: object = None  # python value, or SQL_NOW
    has_default: bool = False
    comment: str = ""
    unsigned: bool = False
    sql_int: str = ""
    length: int | None = None  # varchar/char length
    fixed: bool = False  # char(n)
    precision: int | None = None  # decimal digits, or fractional seconds of datetime/time
    scale: int | None = None
    enum_values: tuple = ()
    double: bool = False  # float: double precision
    auto_increment: bool = False  # int ... auto_increment: the database numbers rows inserted without it
    codec: object = field(default=None, compare=False)  # adapters.Codec of blob@store, attach, <adapter>, ...

    @property
    def int_range(self) -> tuple[int, int]:
        bits = INT_TYPES[self.sql_int][0]
        if self.unsigned:
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    @property
    def is_blob(self) -> bool:
        return self.category == "blob"

    # DataJoint's flags of its special types (djhpc/adapters.py's Codec)
    @property
    def is_external(self) -> bool:
        return self.codec is not None and self.codec.store is not None

    @property
    def is_attachment(self) -> bool:
        return self.codec is not None and self.codec.kind == "attach"

    @property
    def is_filepath(self) -> bool:
        return self.codec is not None and self.codec.kind == "filepath"

    @property
    def store(self) -> str | None:
        return self.codec.store if self.codec is not None else None

    @property
    def adapter(self):
        return self.codec.adapter if self.codec is not None else None

    # the rest of DataJoint's attribute fields, read from djhpc's
    @property
    def autoincrement(self) -> bool:
        return self.auto_increment

    @property
    def numeric(self) -> bool | None:
        return None if self.category == "expression" else self.category in ("int", "bool", "float", "decimal")

    @property
    def string(self) -> bool | None:
        return None if self.category == "expression" else self.category in _STRING_CATEGORIES

    @property
    def uuid(self) -> bool:
        return self.category == "uuid"

    @property
    def json(self) -> bool | None:
        return None if self.category == "expression" else self.category == "json"

    @property
    def is_hidden(self) -> bool:
        """A name starting with ``_`` is hidden, as in DataJoint: queries and fetch leave it out."""
        return self.name.startswith("_")

    @property
    def unsupported(self) -> bool:
        return False

    @property
    def attribute_expression(self) -> None:
        return None

    @property
    def sql_type(self) -> str:
        return "binary(16)" if self.uuid else self.type

    @property
    def dtype(self):
        """The numpy dtype DataJoint gives the attribute's column in fetch: float64 for floats, int64 for integers
        that cannot be null, object for everything else."""
        if self.category == "float":
            return np.float64
        if self.category in ("int", "bool") and not self.nullable:
            return np.int64
        return object

    def todict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ForeignKey:
    parent: object  # the parent table (class or instance with .heading and .full_table_name)
    attributes: list  # names in the child
    parent_attributes: list  # names in the parent
    nullable: bool = False
    in_key: bool = False
    line: str = ""  # the definition line, for describe()


@dataclass
class TableSpec:
    comment: str = ""
    attributes: list = field(default_factory=list)
    foreign_keys: list = field(default_factory=list)
    indexes: list = field(default_factory=list)  # (unique: bool, [names])

    @property
    def primary_key(self) -> list:
        return [a.name for a in self.attributes if a.in_key]


_ATTR = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*)\s*(?:=\s*(?P<default>\"[^\"]*\"|'[^']*'|[^\"':][^:]*?))?\s*:"
    r"\s*(?P<type>[^#]+?)\s*(?:#\s*(?P<comment>.*))?$"
)
_INDEX = re.compile(r"^(?P<unique>unique\s+)?index\s*\((?P<attrs>[^)]*)\)\s*$", re.I)
_FK = re.compile(r"^->\s*(?:\[(?P<opts>[^\]]*)\]\s*)?(?P<ref>[\w.]+)(?:\s*\.proj\((?P<proj>[^)]*)\))?\s*(?:#.*)?$")


def parse_type(text: str, line: str = "", context=None) -> dict:
    """Type text -> the Attribute fields that describe it; raises DefinitionError naming the line. ``context``
    holds the attribute adapters a ``<name>`` type names."""
    t = " ".join(text.strip().split())
    low = t.lower()
    where = f" in line '{line}'" if line else ""
    special = parse_special(t, where, context)  # blob@store, attach, filepath@store, <adapter>: adapters.py
    if special is not None:
        return {**parse_type(special[0], line), "codec": special[1]}
    m = re.fullmatch(r"(tinyint|smallint|mediumint|int|integer|bigint)(\s*\(\d+\))?(\s+unsigned)?"
                     r"(\s+auto_increment)?", low)
    if m:
        return dict(
            category="int", sql_int=INT_TYPES[m.group(1)][1], unsigned=bool(m.group(3)),
            type=INT_TYPES[m.group(1)][1] + (" unsigned" if m.group(3) else ""), auto_increment=bool(m.group(4)),
        )
    if re.search(r"\sauto_increment$", low):
        raise DefinitionError(f"auto_increment{where} needs an integer type: write 'id : int auto_increment'")
    if low in ("float", "real", "double"):
        return dict(category="float", double=low != "float", type="double" if low != "float" else "float")
    m = re.fullmatch(r"(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)(\s+unsigned)?", low)
    if m:
        p, s = int(m.group(1)), int(m.group(2) or 0)
        if not (1 <= p <= 65 and 0 <= s <= min(p, 30)):
            raise DefinitionError(f"decimal({p},{s}){where} is out of range: use 1 <= precision <= 65, scale <= 30")
        return dict(category="decimal", precision=p, scale=s, unsigned=bool(m.group(3)), type=f"decimal({p},{s})")
    m = re.fullmatch(r"(varchar|char)\s*\(\s*(\d+)\s*\)", low)
    if m:
        n = int(m.group(2))
        limit = 255 if m.group(1) == "char" else 16383
        if not 1 <= n <= limit:
            raise DefinitionError(f"{m.group(1)}({n}){where}: length must be between 1 and {limit}")
        return dict(category="string", length=n, fixed=m.group(1) == "char", type=f"{m.group(1)}({n})")
    m = re.fullmatch(r"(datetime|timestamp|time)(?:\s*\(\s*(\d)\s*\))?", low)
    if m:
        prec = int(m.group(2) or 0)
        if prec > 6:
            raise DefinitionError(f"{low}{where}: fractional seconds precision must be 0 to 6")
        return dict(category=m.group(1), precision=prec, type=low.replace(" ", ""))
    if low in SIMPLE_TYPES:
        kind = SIMPLE_TYPES[low]
        return dict(category=kind, type={"boolean": "bool", "real": "double"}.get(low, low),
                    double=low in ("double", "real"))
    if low in BLOB_TYPES:
        return dict(category="blob", type="longblob" if low == "attach" else low)
    m = re.fullmatch(r"enum\s*\((.*)\)", t, re.I | re.S)
    if m:
        values = re.findall(r"""\s*(?:'((?:[^'\\]|\\.|'')*)'|"((?:[^"\\]|\\.)*)")\s*(?:,|$)""", m.group(1))
        vals = tuple(_unescape(a.replace("''", "'")) if a or not b else _unescape(b) for a, b in values)
        if not vals:
            raise DefinitionError(f"enum{where} lists no values: write enum('a', 'b')")
        return dict(category="enum", enum_values=vals, type="enum(" + ",".join(repr(v) for v in vals) + ")")
    raise DefinitionError(f"unknown type '{t}'{where}: use one of {KNOWN_TYPES}")


def _unescape(text: str) -> str:
    """An SQL string literal's body without its backslash escapes."""
    return re.sub(r"\\(.)", r"\1", text)


def parse_default(text: str, line: str):
    """Default literal -> (python value | SQL_NOW, nullable)."""
    s = text.strip()
    low = s.lower()
    if low == "null":
        return None, True
    if low in ("current_timestamp", "current_timestamp()", "now()"):
        return SQL_NOW, False
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1], False
    if low in ("true", "false"):
        return low == "true", False
    try:
        return (int(s) if re.fullmatch(r"[+-]?\d+", s) else float(s)), False
    except ValueError as exc:
        raise DefinitionError(
            f"default '{s}' in line '{line}' is not a literal: quote strings (\"text\"), or use null "
            "or CURRENT_TIMESTAMP"
        ) from exc


def parse_definition(definition: str, resolve, context=None) -> TableSpec:
    """Parse a definition; ``resolve(name)`` returns the referenced table or raises DefinitionError; ``context``
    holds the attribute adapters it names."""
    if not isinstance(definition, str):
        raise DefinitionError("definition must be a string")
    spec = TableSpec()
    in_key = True
    seen: dict[str, Attribute] = {}
    lines = [ln.strip() for ln in definition.strip().splitlines()]
    for n, line in enumerate(lines):
        if not line:
            continue
        if line.startswith("#"):
            if n == 0 or not spec.comment and not seen:
                spec.comment = spec.comment or line.lstrip("#").strip()
            continue
        if re.fullmatch(r"-{3,}|={3,}", line):
            if not in_key:
                raise DefinitionError(f"a second '---' divider in line '{line}': keep one between key and rest")
            in_key = False
            continue
        if line.startswith("->"):
            _add_foreign_key(spec, line, in_key, resolve, seen)
            continue
        m = _INDEX.match(line)
        if m:
            names = [a.strip() for a in m.group("attrs").split(",") if a.strip()]
            spec.indexes.append((bool(m.group("unique")), names))
            continue
        if re.match(r"(unique\s+)?index\b", line, re.I):  # as DataJoint: 'index' starts an index, never a name
            raise DefinitionError(f"cannot parse index '{line}': write 'index(attr, ...)'; an attribute cannot be "
                                  "named index")
        m = _ATTR.match(line)
        if not m:
            raise DefinitionError(
                f"cannot parse line '{line}': write 'name : type', 'name = default : type', '-> Parent' or '---'"
            )
        fields = parse_type(m.group("type"), line, context)
        nullable, default, has_default = False, None, False
        if m.group("default") is not None:
            default, nullable = parse_default(m.group("default"), line)
            has_default = True
            if nullable and in_key:
                raise DefinitionError(f"primary key attribute '{m.group('name')}' cannot default to null")
        attr = Attribute(
            name=m.group("name"), in_key=in_key, nullable=nullable, default=default, has_default=has_default,
            comment=(m.group("comment") or "").strip(), **fields,
        )
        if (attr.is_blob or attr.codec is not None and attr.codec.kind) and in_key:
            raise DefinitionError(f"blob attribute '{attr.name}' cannot be in the primary key: move it below ---")
        _add_attribute(spec, attr, seen, line)
    if not spec.primary_key:
        raise DefinitionError("the primary key is empty: put at least one attribute or -> Parent above ---")
    _check_auto_increment(spec)
    for _unique, names in spec.indexes:
        for name in names:
            if name not in seen:
                raise DefinitionError(f"index names unknown attribute '{name}' (known: {', '.join(seen)})")
    return spec


def _check_auto_increment(spec: TableSpec):
    """MySQL's rule, on both dialects: one auto_increment attribute, the first of the primary key, no default."""
    autos = [a for a in spec.attributes if a.auto_increment]
    if len(autos) > 1:
        raise DefinitionError(f"two auto_increment attributes ('{autos[0].name}', '{autos[1].name}'): "
                              "a table numbers one attribute; remove auto_increment from the other")
    for a in autos:
        if not a.in_key or spec.primary_key[0] != a.name:
            raise DefinitionError(f"auto_increment attribute '{a.name}' must be the first attribute of the "
                                  "primary key: move it to the first line above ---")
        if a.has_default:
            raise DefinitionError(f"auto_increment attribute '{a.name}' cannot have a default: the database "
                                  "numbers it; remove '= ...'")


def _add_attribute(spec: TableSpec, attr: Attribute, seen: dict, line: str):
    if attr.name in seen:
        raise DefinitionError(f"attribute '{attr.name}' is declared twice (line '{line}'): rename one")
    seen[attr.name] = attr
    spec.attributes.append(attr)


def _add_foreign_key(spec: TableSpec, line: str, in_key: bool, resolve, seen: dict):
    m = _FK.match(line)
    if not m:
        raise DefinitionError(f"cannot parse reference '{line}': write '-> Parent' or '-> [nullable] Parent'")
    opts = {o.strip().lower() for o in (m.group("opts") or "").split(",") if o.strip()}
    unknown = opts - {"nullable", "unique"}
    if unknown:
        raise DefinitionError(f"unknown option '{sorted(unknown)[0]}' in '{line}': use [nullable] or [unique]")
    nullable = "nullable" in opts
    if nullable and in_key:
        raise DefinitionError(f"'{line}': a primary-key reference cannot be [nullable]; move it below ---")
    parent = resolve(m.group("ref"))
    renames = {}
    if m.group("proj"):
        for part in m.group("proj").split(","):
            new, _, old = part.partition("=")
            renames[old.strip().strip("'\"")] = new.strip()
    parent_key = [a for a in parent.heading.attributes.values() if a.in_key]
    child_names, parent_names = [], []
    for a in parent_key:
        name = renames.get(a.name, a.name)
        child_names.append(name)
        parent_names.append(a.name)
        if name in seen:
            if seen[name].type != a.type:
                raise DefinitionError(f"attribute '{name}' from '{line}' clashes with one of another type")
            continue  # shared ancestor attribute: already present
        copied = replace(a, name=name, in_key=in_key, nullable=nullable, default=None, has_default=nullable,
                         comment=a.comment, auto_increment=False)
        _add_attribute(spec, copied, seen, line)
    text = line.split("#")[0].strip()
    spec.foreign_keys.append(ForeignKey(parent, child_names, parent_names, nullable, in_key, text))
    if "unique" in opts:
        spec.indexes.append((True, child_names))


# ---------------------------------------------------------------------------- DDL
def literal(dialect, value) -> str:
    """A default value as an SQL literal (DDL cannot take parameters)."""
    if value is None:
        return "NULL"
    if value is SQL_NOW:
        return "CURRENT_TIMESTAMP"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if dialect.name == "mysql":
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"


def _column_sql(dialect, attr: Attribute) -> str:
    q = dialect.quote
    if attr.auto_increment and dialect.name == "sqlite":
        # SQLite numbers only a lone INTEGER PRIMARY KEY; AUTOINCREMENT never reuses a number, as MySQL does not
        return f"{q(attr.name)} INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL"
    parts = [q(attr.name), dialect.column_type(attr)]
    if not attr.nullable:
        parts.append("NOT NULL")
    if attr.auto_increment:
        parts.append("AUTO_INCREMENT")
    if attr.has_default and not attr.is_blob:
        if attr.default is SQL_NOW:
            if dialect.name == "mysql" and attr.category in ("datetime", "timestamp") and attr.precision:
                parts.append(f"DEFAULT CURRENT_TIMESTAMP({attr.precision})")
            elif attr.precision:
                # the text values.encode writes (6 fractional digits), so that restricting by it matches
                parts.append("DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
            else:
                parts.append("DEFAULT CURRENT_TIMESTAMP")
        elif attr.default is None:
            parts.append("DEFAULT NULL")
        elif dialect.name == "mysql" and attr.category in ("json", "blob"):
            pass  # MariaDB forbids literal defaults on text/blob columns: djhpc fills them at insert
        elif attr.category in ("string", "enum", "decimal", "date", "datetime", "timestamp", "int", "float",
                               "bool", "year"):
            parts.append("DEFAULT " + literal(dialect, attr.default))
    # DataJoint's special types are in the comment (':blob@store:...'), where DataJoint reads them back
    special = attr.codec.text if attr.codec is not None else "uuid" if attr.category == "uuid" else ""
    comment = f":{special}:{attr.comment}" if special else attr.comment
    if comment and dialect.name == "mysql":
        parts.append("COMMENT " + literal(dialect, comment[:1024]))
    return " ".join(parts)


def with_hidden_timestamp(spec: TableSpec, full_name: str) -> TableSpec:
    """``spec`` with DataJoint's hidden insert-time column when ``dj.config["add_hidden_timestamp"]`` is on: a
    timestamp named ``_<sha1 of "schema.table">_timestamp``, which queries and fetch leave out."""
    if not settings.config["add_hidden_timestamp"]:
        return spec
    name = f"_{hashlib.sha1(full_name.encode()).hexdigest()}_timestamp"
    hidden = Attribute(name, "timestamp", "timestamp", default=SQL_NOW, has_default=True, precision=0)
    return replace(spec, attributes=[*spec.attributes, hidden])


def create_table_sql(dialect, spec: TableSpec, schema: str, table: str) -> list[str]:
    """CREATE TABLE (and, on SQLite, CREATE INDEX) statements for a spec."""
    q = dialect.quote
    full = dialect.table(schema, table)
    cols = [_column_sql(dialect, a) for a in spec.attributes]
    auto = [a.name for a in spec.attributes if a.auto_increment]
    if auto and dialect.name == "sqlite" and spec.primary_key != auto:
        raise DefinitionError(f"auto_increment attribute '{auto[0]}' with other primary-key attributes needs "
                              "MariaDB/MySQL: on SQLite make it the whole primary key")
    if not (auto and dialect.name == "sqlite"):  # SQLite's INTEGER PRIMARY KEY column is the key
        cols.append("PRIMARY KEY (" + ", ".join(q(n) for n in spec.primary_key) + ")")
    for fk in spec.foreign_keys:
        cols.append(
            "FOREIGN KEY (" + ", ".join(q(n) for n in fk.attributes) + ") REFERENCES "
            + fk.parent.full_table_name + " (" + ", ".join(q(n) for n in fk.parent_attributes) + ")"
            + " ON UPDATE CASCADE ON DELETE RESTRICT"
        )
    for a in spec.attributes:  # an external attribute refers to its store's tracking table, as DataJoint's
        if a.codec is not None and a.codec.store:
            tracking = dialect.table(schema, f"~external_{a.codec.store}")
            cols.append(f"FOREIGN KEY ({q(a.name)}) REFERENCES {tracking} ({q('hash')}) "
                        "ON UPDATE RESTRICT ON DELETE RESTRICT")
    extra = []
    for i, (unique, names) in enumerate(spec.indexes):
        if dialect.name == "mysql":
            cols.append(("UNIQUE " if unique else "") + "INDEX (" + ", ".join(q(n) for n in names) + ")")
        else:
            iname = q(f"{schema}.{table}__idx{i}")
            extra.append(
                f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {iname} ON {full} ("
                + ", ".join(q(n) for n in names) + ")"
            )
    body = ",\n  ".join(cols)
    if dialect.name == "mysql":
        tail = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT=" + literal(dialect, spec.comment[:2048])
    else:
        tail = ""
    return [f"CREATE TABLE IF NOT EXISTS {full} (\n  {body}\n){tail}", *extra]


# ---------------------------------------------------------------------------- DataJoint's declare()
#: MySQL's limit on a table's name
MAX_TABLE_NAME_LENGTH = 64


def declare(full_table_name: str, definition: str, context: dict) -> tuple[str, list]:
    """DataJoint's ``declare``: the MySQL ``CREATE TABLE`` statement of ``definition`` for ``full_table_name``
    (```schema`.`table```), its ``-> Parent`` names looked up in ``context``, and the external stores it uses."""
    from .db.dialects import DIALECTS

    m = re.fullmatch(r"`([^`]+)`\.`([^`]+)`", full_table_name or "")
    if not m:
        raise DefinitionError(f"full table name {full_table_name!r} must read `schema`.`table`")
    schema, table = m.groups()
    if len(table) > MAX_TABLE_NAME_LENGTH:
        raise DefinitionError(f"table name `{table}` is longer than {MAX_TABLE_NAME_LENGTH} characters: shorten "
                              "its class name (or, for a part, its master's)")
    spec = with_hidden_timestamp(parse_definition(definition, context_resolver(context)), f"{schema}.{table}")
    statements = create_table_sql(DIALECTS["mysql"], spec, schema, table)
    return statements[0], []


def context_resolver(context: dict):
    """The ``resolve`` of parse_definition for names of ``context`` (``Parent``, ``module.Parent``,
    ``Master.Part``): a table class becomes an instance."""

    def resolve(ref: str):
        head, *rest = ref.split(".")
        target = context.get(head)
        for name in rest:
            target = getattr(target, name, None)
        if isinstance(target, type):
            target = target()
        if target is None or not hasattr(target, "full_table_name"):
            raise DefinitionError(f"'-> {ref}': no table named {ref} is in the context given")
        return target

    return resolve


# ---------------------------------------------------------------------------- DataJoint's alter()
def alter_clauses(dialect, old: TableSpec, new: TableSpec) -> list[str]:
    """The clauses of MySQL's ``ALTER TABLE`` that make table ``old`` (as read from the database) into ``new``:
    secondary attributes dropped, added, changed (``# {old_name} ...`` in a comment renames old_name), or moved
    to their new place, and the table's comment, as DataJoint's alter does. The primary key cannot change."""
    if old.primary_key != new.primary_key:
        raise DefinitionError("table.alter cannot alter the primary key (yet): declare a new table and copy the "
                              f"rows (primary key now: {', '.join(old.primary_key)})")
    clauses = [f"DROP {dialect.quote(n)}" for n in _dropped(old, new)]
    clauses += _changed_columns(dialect, old, new)
    if old.comment != new.comment:
        clauses.append("COMMENT=" + literal(dialect, new.comment[:2048]))
    return clauses


_RENAME = re.compile(r"^\{\s*(\w+)\s*\}")


def renamed_from(attr: Attribute) -> str | None:
    """The old name a new attribute takes over (its comment starts with ``{old_name}``), else None."""
    m = _RENAME.match(attr.comment)
    return m.group(1) if m else None


def _renames(old: TableSpec, new: TableSpec) -> dict:
    found: dict = {}
    old_names = {a.name for a in old.attributes}
    for a in new.attributes:
        source = renamed_from(a)
        if source is None:
            continue
        if source in found.values():
            raise DefinitionError(f"alter renames attribute {source} twice: rename it once")
        if source not in old_names:
            raise DefinitionError(f"alter renames attribute {source}, which the table does not have: check "
                                  f"'{{{source}}}' in the comment of {a.name}")
        found[a.name] = source
    return found


def _dropped(old: TableSpec, new: TableSpec) -> list[str]:
    keep = {a.name for a in new.attributes} | set(_renames(old, new).values())
    return [a.name for a in old.attributes if a.name not in keep]


def _changed_columns(dialect, old: TableSpec, new: TableSpec) -> list[str]:
    """ADD, MODIFY or CHANGE of each secondary attribute that is new, different, or out of its place."""
    q = dialect.quote
    renames = _renames(old, new)
    dropped = set(_dropped(old, new))
    old_names = [a.name for a in old.attributes if a.name not in dropped]
    old_sql = {_column_sql(dialect, a) for a in old.attributes}
    clauses, prev = [], None
    for a in new.attributes:
        source = renames.get(a.name)
        if not a.in_key:
            after = None
            if prev is not None:
                here = old_names.index(source or a.name) if (source or a.name) in old_names else None
                if here is None or (here >= 1 and old_names[here - 1] != (prev[1] or prev[0])):
                    after = prev[0]
            sql = _column_sql(dialect, a)
            if sql not in old_sql or after:
                verb = ("ADD" if (source or a.name) not in old_names else
                        f"CHANGE {q(source)}" if source else "MODIFY")
                clauses.append(f"{verb} {sql}" + (f" AFTER {q(after)}" if after else ""))
        prev = a.name, source
    return clauses
