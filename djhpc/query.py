"""Lazy query expressions: restrict (&, -), join (*), proj, fetch; each runs as one SQL statement.

A query is a FROM clause, a WHERE list and an expression for each output attribute. Operations build
new queries; nothing runs until ``fetch``, ``len``, ``in`` or iteration. When an operand cannot be
merged flat (clashing aliases, renamed attributes under an SQL-string condition) it is wrapped as a
subquery with a fresh alias.
"""

from __future__ import annotations

import decimal
import itertools
import re
from collections.abc import Mapping

from . import values
from .declare import Attribute
from .errors import MissingError, QueryError

_alias_counter = itertools.count()


def keyset_condition(columns: list[str], row: list, op: str, inclusive: bool,
                     placeholder: str = "%s") -> tuple[str, tuple]:
    """(sql, params): the tuple of ``columns`` compared with ``row`` by ``op`` ('>' or '<'; '>=' or '<=' on the
    last column with ``inclusive``), expanded into ORs of ANDs so every database uses the index: keyset paging."""
    ors, params = [], []
    for i in range(len(columns)):
        parts = [f"{columns[j]} = {placeholder}" for j in range(i)]
        params += row[:i]
        last_op = op + ("=" if inclusive and i == len(columns) - 1 else "")
        parts.append(f"{columns[i]} {last_op} {placeholder}")
        params.append(row[i])
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(ors) + ")", tuple(params)


def new_alias() -> str:
    """A table alias no other part of any query uses (``_t1``, ``_t2``, ...), for a subquery or a self-join."""
    return f"_t{next(_alias_counter)}"


class Heading:
    """The attributes of a query's output, primary key first."""

    def __init__(self, attributes):
        self.attributes: list[Attribute] = list(attributes)
        self._by_name = {a.name: a for a in self.attributes}

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @property
    def primary_key(self) -> list[str]:
        return [a.name for a in self.attributes if a.in_key]

    @property
    def secondary_attributes(self) -> list[str]:
        return [a.name for a in self.attributes if not a.in_key]

    def __contains__(self, name):
        return name in self._by_name

    def __getitem__(self, name) -> Attribute:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.attributes)

    def __repr__(self):
        lines = []
        for a in self.attributes:
            lines.append(f"{a.name:<20} : {a.type}" + (f"  # {a.comment}" if a.comment else ""))
            if a.in_key and (a is self.attributes[-1] or not self._next_in_key(a)):
                lines.append("---")
        return "\n".join(lines)

    def _next_in_key(self, a):
        i = self.attributes.index(a)
        return i + 1 < len(self.attributes) and self.attributes[i + 1].in_key


class AndList(list):
    """Conditions that must all hold (a plain list means OR, as in DataJoint)."""


class Not:
    """The negation of a restriction: ``table & dj.Not(cond)`` equals ``table - cond``."""

    def __init__(self, restriction):
        self.restriction = restriction


class SQL:
    """An SQL condition over the query's attribute names with its own parameters: ``SQL("a > %s", (5,))``.

    Write the placeholder as ``%s``; it becomes ``?`` on SQLite.
    """

    def __init__(self, text: str, params=()):
        self.text = text
        self.params = tuple(params)


# One function per kind of restriction: (query, restriction, negate) -> (sql, params, query-to-restrict), or
# None for 'no restriction'. Query._condition looks the exact type up in _CONDITIONS; other types (tables and
# other queries, subclasses) go through _condition_kind, which keeps the order of precedence.


def _cond_not(query, restriction, negate):
    return query._condition(restriction.restriction, not negate)


def _cond_none(query, restriction, negate):
    return ("0=1", (), query) if negate else None


def _cond_bool(query, restriction, negate):
    if restriction:  # True restricts nothing, like None
        return ("0=1", (), query) if negate else None
    return None if negate else ("0=1", (), query)


def _cond_query(query, restriction, negate):
    return query._semijoin(restriction, negate)


def _cond_mapping(query, restriction, negate):
    return query._wrap_neg(query._dict_condition(restriction), negate)


def _cond_str(query, restriction, negate):
    target = query if query._flat_names else query.as_subquery()
    return query._wrap_neg((*_string_condition(query._dialect, restriction), target), negate)


def _string_condition(dialect, text: str) -> tuple[str, tuple]:
    """An SQL-string restriction as (sql, params). PyMySQL %-formats a statement that has parameters, so on MySQL
    a literal % (LIKE 'a%') is doubled, as DataJoint does, and a parameter (1 AND ...) makes every statement
    holding the condition one that is formatted, with or without other parameters: %% is % again."""
    if "%" not in text or dialect.name != "mysql":
        return text, ()
    return f"{dialect.placeholder} AND ({text.replace('%', '%%')})", (1,)


def _cond_sql(query, restriction, negate):
    target = query if query._flat_names else query.as_subquery()
    text = restriction.text.replace("%s", query._dialect.placeholder)
    params = restriction.params
    if query._dialect.name == "sqlite":  # its driver takes no Decimal; a decimal is a number there (see values)
        params = tuple(float(p) if isinstance(p, decimal.Decimal) else p for p in params)
    return query._wrap_neg((text, params, target), negate)


def _has_text(restriction) -> bool:
    """Whether a restriction holds an SQL string anywhere: its bare names need a query whose names are flat."""
    if isinstance(restriction, (str, SQL)):
        return True
    if isinstance(restriction, Not):
        return _has_text(restriction.restriction)
    if isinstance(restriction, (list, tuple, set)):
        return any(_has_text(r) for r in restriction)
    return False


def _flat_target(query, restriction):
    """The query the parts of a list are written against: wrapped once, up front, when an SQL string among them
    needs flat names, so that every part names the same columns (and a NOT covers all of them)."""
    return query if query._flat_names or not _has_text(restriction) else query.as_subquery()


def _cond_and(query, restriction, negate):
    target, parts = _flat_target(query, restriction), []
    for r in restriction:
        c = target._condition(r)
        if c is None:
            continue
        parts.append(c[:2])  # a flat target stays the target of every part
    if not parts:
        return ("0=1", (), query) if negate else None
    sql = " AND ".join(f"({s})" for s, _ in parts)
    return query._wrap_neg((sql, tuple(p for _, ps in parts for p in ps), target), negate)


def _cond_or(query, restriction, negate):
    items = list(restriction)
    if not items:
        return None if negate else ("0=1", (), query)
    target = _flat_target(query, items)
    parts = []
    for r in items:
        c = target._condition(r)
        if c is None:
            return ("0=1", (), target) if negate else None
        parts.append(c[:2])
    sql = " OR ".join(f"({s})" for s, _ in parts)
    return query._wrap_neg((sql, tuple(p for _, ps in parts for p in ps), target), negate)


def _cond_other(query, restriction, negate):
    if hasattr(restriction, "dtype") and getattr(restriction.dtype, "names", None):  # a numpy record array
        return query._condition([dict(zip(restriction.dtype.names, r, strict=True)) for r in restriction], negate)
    raise QueryError(
        f"cannot restrict by {type(restriction).__name__}: use a dict, a list of dicts, an SQL string or a query"
    )


_CONDITIONS = {
    Not: _cond_not,
    type(None): _cond_none,
    bool: _cond_bool,
    dict: _cond_mapping,
    str: _cond_str,
    SQL: _cond_sql,
    AndList: _cond_and,
    list: _cond_or,
    tuple: _cond_or,
    set: _cond_or,
}
# for the types not in _CONDITIONS, in this order: AndList is a list; Query is checked first (see below)
_CONDITION_KINDS = ((Not, _cond_not), (Mapping, _cond_mapping), (str, _cond_str), (SQL, _cond_sql),
                    (AndList, _cond_and), ((list, tuple, set), _cond_or))


def _condition_kind(restriction):
    if isinstance(restriction, Query):  # tables and other queries: a semijoin
        return _cond_query
    for kind, handler in _CONDITION_KINDS:
        if isinstance(restriction, kind):
            return handler
    return _cond_other


class Query:
    """A lazy query over one connection."""

    # an SQL-string condition in its WHERE names columns bare: joined as it is, a name both operands have would be
    # ambiguous, so join() wraps such an operand as a subquery first
    _bare_where = False

    def __init__(self, connection, heading: Heading, from_sql: str, from_params: tuple, columns: dict,
                 where=(), aliases=frozenset(), flat_names=False):
        self._connection = connection
        self._heading = heading
        self._from = from_sql
        self._from_params = tuple(from_params)
        self._columns = dict(columns)  # output name -> SQL expression
        self._where = list(where)  # [(sql, params)]
        self._aliases = frozenset(aliases)
        self._flat_names = flat_names  # bare column names resolve unambiguously (single table, no renames)

    # -------------------------------------------------------------- basics
    @property
    def connection(self):
        return self._connection

    @property
    def heading(self) -> Heading:
        return self._heading

    @property
    def primary_key(self) -> list[str]:
        return self._heading.primary_key

    @property
    def _dialect(self):
        return self._connection.dialect

    def _copy(self, **changes) -> Query:
        q = object.__new__(type(self))  # a restricted table stays a table (delete, insert, ...)
        q.__dict__.update(self.__dict__)
        q._where = list(self._where)
        q._columns = dict(self._columns)
        q.__dict__.update({f"_{k}": v for k, v in changes.items()})
        return q

    def _select_list(self, names, *, for_output=True) -> str:
        q = self._dialect.quote
        parts = []
        for n in names:
            expr = self._columns[n]
            attr = self._heading[n]
            if for_output and self._dialect.name == "mysql" and attr.category == "float" and not attr.double:
                expr = f"CAST({expr} AS DOUBLE)"  # the text protocol prints FLOAT to 6 digits only
            parts.append(f"{expr} AS {q(n)}")
        return ", ".join(parts) or "1"

    def _where_sql(self) -> tuple[str, tuple]:
        if not self._where:
            return "", ()
        params = tuple(p for _, ps in self._where for p in ps)
        return " WHERE " + " AND ".join(f"({s})" for s, _ in self._where), params

    def make_sql(self, names=None, *, for_output=False) -> tuple[str, tuple]:
        """``SELECT names FROM ... WHERE ...`` and its parameters."""
        names = self._heading.names if names is None else names
        where, wparams = self._where_sql()
        sql = f"SELECT {self._select_list(names, for_output=for_output)} FROM {self._from}{where}"
        return sql, self._from_params + wparams

    def as_subquery(self) -> Query:
        """This query wrapped as ``(SELECT ...) AS alias``: a flat operand for any other operation."""
        sql, params = self.make_sql()
        alias = new_alias()
        q = self._dialect.quote
        cols = {n: f"{alias}.{q(n)}" for n in self._heading.names}
        return Query(self._connection, self._heading, f"({sql}) AS {alias}", params, cols,
                     aliases={alias}, flat_names=True)

    # -------------------------------------------------------------- restriction
    def __and__(self, restriction) -> Query:
        return self.restrict(restriction)

    def __sub__(self, restriction) -> Query:
        return self.restrict(Not(restriction))

    def restrict(self, restriction) -> Query:
        cond = self._condition(restriction)
        if cond is None:
            return self
        sql, params, query = cond
        q = query._copy()
        q._where.append((sql, tuple(params)))
        if _has_text(restriction):
            q._bare_where = True
        return q

    def _condition(self, restriction, negate=False):
        """(sql, params, query-to-restrict) or None for 'no restriction'."""
        if isinstance(restriction, type) and hasattr(restriction, "_make_query"):
            restriction = restriction()
        kind = _CONDITIONS.get(type(restriction)) or _condition_kind(restriction)
        return kind(self, restriction, negate)

    @staticmethod
    def _wrap_neg(cond, negate):
        sql, params, query = cond
        return (f"NOT ({sql})", params, query) if negate else cond

    def _dict_condition(self, mapping):
        known = [k for k in mapping if k in self._heading]
        if mapping and not known:
            raise QueryError(
                f"restriction names unknown attribute '{next(iter(mapping))}' "
                f"(known: {', '.join(self._heading.names)})"
            )
        parts, params = [], []
        for k in known:
            v = mapping[k]
            attr = self._heading[k]
            if v is None:
                parts.append(f"{self._columns[k]} IS NULL")
                continue
            parts.append(f"{self._columns[k]} = {self._dialect.placeholder}")
            params.append(v if attr.category == "expression" else values.encode(attr, v, self._dialect.name))
        return (" AND ".join(parts) or "1=1"), params, self

    def _semijoin(self, other: Query, negate: bool):
        if other._aliases & self._aliases:
            other = other.as_subquery()
        common = [n for n in self._heading.names if n in other._heading]
        where, wparams = other._where_sql()
        conds = [f"{other._columns[n]} = {self._columns[n]}" for n in common]
        if where:
            conds.insert(0, where[len(" WHERE "):])
        sql = f"EXISTS (SELECT 1 FROM {other._from}" + (" WHERE " + " AND ".join(conds) if conds else "") + ")"
        if negate:
            sql = "NOT " + sql
        return sql, other._from_params + wparams, self

    # -------------------------------------------------------------- join and projection
    def __mul__(self, other) -> Query:
        return self.join(other)

    def join(self, other) -> Query:
        if isinstance(other, type) and hasattr(other, "_make_query"):
            other = other()
        if not isinstance(other, Query):
            raise QueryError(f"cannot join with {type(other).__name__}: join two tables or queries")
        left = self.as_subquery() if self._bare_where else self
        if other._aliases & left._aliases or other._bare_where:
            other = other.as_subquery()
        common = [n for n in left._heading.names if n in other._heading]
        on = " AND ".join(f"{left._columns[n]} = {other._columns[n]}" for n in common) or "1=1"
        attrs = []
        for a in left._heading.attributes:
            attrs.append(a)
        for a in other._heading.attributes:
            if a.name not in left._heading:
                attrs.append(a)
        # key of the join: union of both keys
        key = set(left.primary_key) | set(other.primary_key)
        attrs = [_with_key(a, a.name in key) for a in attrs]
        attrs.sort(key=lambda a: not a.in_key)
        columns = {**other._columns, **left._columns}
        # other's WHERE goes into the ON clause so that the parameters stay in textual order
        owhere, oparams = other._where_sql()
        if owhere:
            on = f"{on} AND {owhere[len(' WHERE '):]}"
        from_sql = f"{left._from} JOIN {other._from} ON {on}"
        q = Query(self._connection, Heading(attrs), from_sql, left._from_params + other._from_params + oparams,
                  columns, aliases=left._aliases | other._aliases, flat_names=False)
        if left._where:
            q._where = list(left._where)
        return q

    def proj(self, *attributes, **renames) -> Query:
        """Primary key plus the named attributes; ``new='old'`` renames, ``new='expr'`` computes."""
        keep = list(self.primary_key)
        for a in attributes:
            if a is Ellipsis:
                keep += [n for n in self._heading.secondary_attributes if n not in keep]
            elif a not in self._heading:
                raise QueryError(f"proj names unknown attribute '{a}' (known: {', '.join(self._heading.names)})")
            elif a not in keep:
                keep.append(a)
        base = self
        needs_expr = any(v not in self._heading for v in renames.values())
        if needs_expr and not self._flat_names:
            base = self.as_subquery()
        attrs, cols = [], {}
        renamed_from = {old for old in renames.values() if old in self._heading}
        for n in keep:
            if n in renamed_from and n not in renames:
                continue
            attrs.append(base._heading[n])
            cols[n] = base._columns[n]
        for new, old in renames.items():
            if old in base._heading:
                src = base._heading[old]
                attr = _renamed(src, new)
                if new in cols:
                    idx = [a.name for a in attrs].index(new)
                    attrs[idx] = attr
                else:
                    attrs.append(attr)
                cols[new] = base._columns[old]
            else:
                attrs.append(Attribute(name=new, type="expression", category="expression"))
                cols[new] = old  # an SQL expression over base's column names (base is flat)
        attrs.sort(key=lambda a: not a.in_key)
        q = Query(self._connection, Heading(attrs), base._from, base._from_params, cols, base._where,
                  base._aliases, flat_names=base._flat_names and not renames)
        q._bare_where = base._bare_where
        # a computed attribute is SQL over bare column names: joined or nested, those names would be ambiguous
        # or bind to the other operand's columns, so the result is wrapped and its columns become plain
        return q.as_subquery() if any(a.category == "expression" for a in attrs) else q

    # -------------------------------------------------------------- fetching
    def _order_sql(self, order_by) -> str:
        if order_by is None:
            return ""
        items = [order_by] if isinstance(order_by, str) else list(order_by)
        out = []
        for item in items:
            if item == "KEY":
                out += [self._columns[n] for n in self.primary_key]
                continue
            m = re.fullmatch(r"\s*(\w+)(?:\s+(ASC|DESC))?\s*", item, re.I)
            if not m or m.group(1) not in self._heading:
                raise QueryError(f"order_by names unknown attribute '{item}' (known: {', '.join(self._heading.names)})")
            # the column's expression, not its output name: an attribute that is not fetched is no alias,
            # and its bare name would be ambiguous in a join
            out.append(self._columns[m.group(1)] + (f" {m.group(2).upper()}" if m.group(2) else ""))
        return " ORDER BY " + ", ".join(out)

    def select_sql(self, names=None, order_by=None, limit=None, offset=None) -> tuple[str, tuple]:
        """The SELECT that fetch() sends, with its parameters, to send it yourself (``decode_rows`` reads it)."""
        names = self._heading.names if names is None else names
        sql, params = self.make_sql(names, for_output=True)
        sql += self._order_sql(order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
            if offset:
                sql += f" OFFSET {int(offset)}"
        elif offset:
            raise QueryError("offset needs a limit: pass limit= as well")
        return sql, params

    def cursor(self, names=None, order_by=None, limit=None, offset=None):
        names = self._heading.names if names is None else names
        sql, params = self.select_sql(names, order_by, limit, offset)
        return self._connection.query(sql, params, context="fetch"), names

    def decode_rows(self, rows, names) -> list[dict]:
        """Rows of ``select_sql(names)``, as fetch(as_dict=True) returns them."""
        attrs = [self._heading[n] for n in names]
        dialect = self._dialect.name
        return [
            {n: (values.decode(a, v, dialect) if a.category != "expression" else v)
             for n, a, v in zip(names, attrs, row, strict=True)}
            for row in rows
        ]

    def fetch(self, *attributes, as_dict=None, order_by=None, limit=None, offset=None, format=None,
              download_path=None):
        """Rows as a list of dicts; ``fetch("KEY")``; ``fetch("a", "b")`` -> lists; ``as_dict=True``."""
        if not attributes:
            names = self._heading.names
            cur, names = self.cursor(names, order_by, limit, offset)
            return self.decode_rows(cur.fetchall(), names)
        names = []
        for a in attributes:
            if a == "KEY":
                names += [n for n in self.primary_key if n not in names]
            elif a not in self._heading:
                raise QueryError(f"fetch names unknown attribute '{a}' (known: {', '.join(self._heading.names)})")
            elif a not in names:
                names.append(a)
        cur, names = self.cursor(names, order_by, limit, offset)
        rows = self.decode_rows(cur.fetchall(), names)
        if as_dict:
            return rows
        out = []
        for a in attributes:
            if a == "KEY":
                out.append([{k: r[k] for k in self.primary_key} for r in rows])
            else:
                out.append([r[a] for r in rows])
        return out[0] if len(out) == 1 else tuple(out)

    def fetch1(self, *attributes):
        """Exactly one row: a dict, one value, or a tuple of values."""
        names = self._heading.names if not attributes else None
        if attributes:
            rows = self.fetch(*attributes, as_dict=True, limit=2)
        else:
            rows = self.fetch(limit=2)
        if len(rows) != 1:
            what = "no row" if not rows else "more than one row"
            raise MissingError(f"fetch1 found {what}: restrict the query to exactly one row first")
        row = rows[0]
        if names is not None:
            return row
        vals = [{k: row[k] for k in self.primary_key} if a == "KEY" else row[a] for a in attributes]
        return vals[0] if len(vals) == 1 else tuple(vals)

    def keys(self, **kwargs):
        return self.fetch("KEY", **kwargs)

    def count_sql(self) -> tuple[str, tuple]:
        """``SELECT COUNT(*)`` of this query and its parameters, to send with other statements."""
        where, params = self._where_sql()
        return f"SELECT COUNT(*) FROM {self._from}{where}", self._from_params + params

    def key_range(self, names: list[str], *, after: dict | None = None, after_inclusive: bool = False,
                  before: dict | None = None, descending: bool = False) -> Query:
        """Rows whose ``names`` tuple comes after ``after`` (and before ``before``) in the order of ``names``
        (reversed with ``descending``): keyset pagination, expanded into ORs so every database uses the index."""
        q = self
        gt, lt = ("<", ">") if descending else (">", "<")
        if after is not None:
            q = q._copy()
            q._where.append(self._tuple_condition(names, after, gt, after_inclusive))
        if before is not None:
            q = q._copy()
            q._where.append(self._tuple_condition(names, before, lt, False))
        return q

    def _tuple_condition(self, names, key: dict, op: str, inclusive: bool) -> tuple[str, tuple]:
        d = self._dialect
        return keyset_condition([self._columns[n] for n in names],
                                [values.encode(self._heading[n], key[n], d.name) for n in names], op, inclusive,
                                d.placeholder)

    def __len__(self):
        sql, params = self.count_sql()
        return int(self._connection.query(sql, params, context="count").fetchone()[0])

    def __bool__(self):
        """True if the query has rows, as in DataJoint: ``if Table & key:`` asks the database (one EXISTS)."""
        return self._exists()

    def __contains__(self, item):
        return self.restrict(item)._exists()

    def _exists(self) -> bool:
        where, params = self._where_sql()
        sql = f"SELECT EXISTS (SELECT 1 FROM {self._from}{where})"
        return bool(self._connection.query(sql, self._from_params + params, context="exists").fetchone()[0])

    def __iter__(self):
        return iter(self.fetch())

    def __repr__(self):
        try:
            n = len(self)
        except Exception:  # repr must never raise
            return f"<{type(self).__name__}>"
        rows = self.fetch(limit=10)
        names = self._heading.names
        lines = ["  ".join(f"*{n}" if n in self.primary_key else n for n in names)]
        for r in rows:
            lines.append("  ".join(_short(r[n]) for n in names))
        if n > len(rows):
            lines.append("...")
        lines.append(f" ({n} tuples)")
        return "\n".join(lines)


def _short(v) -> str:
    s = "=BLOB=" if isinstance(v, (bytes, bytearray)) else str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def _with_key(a: Attribute, in_key: bool) -> Attribute:
    from dataclasses import replace

    return a if a.in_key == in_key else replace(a, in_key=in_key)


def _renamed(a: Attribute, new: str) -> Attribute:
    from dataclasses import replace

    return replace(a, name=new)
