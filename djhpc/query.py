"""Lazy query expressions: restrict (&, -), join (*), proj, fetch; each runs as one SQL statement.

A query is a FROM clause, a WHERE list and an expression for each output attribute. Operations build
new queries; nothing runs until ``fetch``, ``len``, ``in`` or iteration. When an operand cannot be
merged flat (clashing aliases, renamed attributes under an SQL-string condition) it is wrapped as a
subquery with a fresh alias.
"""

from __future__ import annotations

import decimal
import hashlib
import html
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as _replace

import numpy as np

from . import fetch as shaping
from . import settings, values
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


def table_alias(full_table_name: str) -> str:
    """A table's alias, the same for every query of it (so equal queries have equal SQL, as in DataJoint); two
    uses of one table in a statement are told apart by join and restriction, which wrap one as a subquery."""
    return "_" + hashlib.blake2s(full_table_name.encode(), digest_size=5).hexdigest()


def new_alias() -> str:
    """A table alias no other part of any query uses (``_t1``, ``_t2``, ...), for a subquery or a self-join."""
    return f"_t{next(_alias_counter)}"


class Heading:
    """The attributes of a query's output, primary key first, as DataJoint's heading: ``attributes`` maps each
    name to its Attribute; ``_attributes`` adds the hidden ones (names starting with ``_``, such as the
    ``add_hidden_timestamp`` column), which a query never selects."""

    def __init__(self, attributes):
        self._attributes: dict[str, Attribute] = {a.name: a for a in attributes}
        self._visible = {n: a for n, a in self._attributes.items() if not a.is_hidden}

    @property
    def attributes(self) -> dict[str, Attribute]:
        return dict(self._visible)

    @property
    def names(self) -> list[str]:
        return list(self._visible)

    @property
    def primary_key(self) -> list[str]:
        return [n for n, a in self._visible.items() if a.in_key]

    @property
    def secondary_attributes(self) -> list[str]:
        return [n for n, a in self._visible.items() if not a.in_key]

    @property
    def blobs(self) -> list[str]:
        return [n for n, a in self._visible.items() if a.is_blob]

    @property
    def non_blobs(self) -> list[str]:
        return [n for n, a in self._visible.items() if not (a.is_blob or a.is_attachment or a.is_filepath or a.json)]

    @property
    def new_attributes(self) -> list[str]:
        """The attributes a projection computed."""
        return [n for n, a in self._visible.items() if a.category == "expression"]

    @property
    def has_autoincrement(self) -> bool:
        return any(a.auto_increment for a in self._visible.values())

    @property
    def as_dtype(self) -> np.dtype:
        """The numpy dtype of the rows fetch() returns."""
        return shaping.record_dtype(self._visible.values())

    def __len__(self):
        return len(self._visible)

    def __contains__(self, name):
        return name in self._visible

    def __getitem__(self, name) -> Attribute:
        return self._visible[name]

    def __iter__(self):
        """The attribute names, as iterating DataJoint's heading gives them."""
        return iter(self._visible)

    def __repr__(self):
        lines = []
        attributes = list(self._visible.values())
        for i, a in enumerate(attributes):
            lines.append(f"{a.name:<20} : {a.type}" + (f"  # {a.comment}" if a.comment else ""))
            if a.in_key and (i + 1 == len(attributes) or not attributes[i + 1].in_key):
                lines.append("---")
        return "\n".join(lines)


class AndList(list):
    """Conditions that must all hold (a plain list means OR, as in DataJoint)."""


class Not:
    """The negation of a restriction: ``table & dj.Not(cond)`` equals ``table - cond``."""

    def __init__(self, restriction):
        self.restriction = restriction


@dataclass
class Top:
    """A restriction to the first ``limit`` rows in ``order_by`` order after ``offset`` (ORDER BY ... LIMIT), as
    DataJoint's ``dj.Top``; ``order_by`` names attributes, ``"KEY"`` or ``"KEY DESC"``. Later operations see
    only those rows."""

    limit: int | None = 1
    order_by: str | list = "KEY"
    offset: int = 0

    def __post_init__(self):
        self.order_by = self.order_by or ["KEY"]
        self.offset = self.offset or 0
        # TypeError, as DataJoint raises for these
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool)):
            raise TypeError("Top limit must be an integer")
        if not isinstance(self.order_by, (str, Sequence)) or not all(isinstance(r, str) for r in self.order_by):
            raise TypeError("Top order_by attributes must all be strings")
        if not isinstance(self.offset, int):
            raise TypeError("The offset argument must be an integer")
        if self.offset and self.limit is None:
            self.limit = 999999999999  # an offset needs a LIMIT in MySQL: this one holds every row
        if isinstance(self.order_by, str):
            self.order_by = [self.order_by]
        else:
            self.order_by = list(self.order_by)


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
    check_join_compatibility(query, restriction)
    return query._semijoin(restriction, negate)


class _Promiscuous:
    """A query restricting another without the check of their common attributes (``q1 ^ q2``)."""

    def __init__(self, operand):
        self.operand = operand


def _cond_promiscuous(query, restriction, negate):
    return query._semijoin(restriction.operand, negate)


def _cond_mapping(query, restriction, negate):
    if not any(k in query._heading for k in restriction):  # no attribute in common: restricts nothing
        return ("0=1", (), query) if negate else None
    return query._wrap_neg(query._dict_condition(restriction), negate)


def _cond_top(query, restriction, negate):
    # DataJoint's words (its suite compares them): a dj.Top restricts alone, never inside a list or an AndList
    raise QueryError(f"Invalid restriction type {restriction!r}")


def _cond_universal(query, restriction, negate):
    return ("0=1", (), query) if negate else None  # dj.U(...) holds every value: it restricts nothing


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
    if isinstance(restriction, np.void) and restriction.dtype.names:  # one record of a fetched array
        return query._condition(dict(zip(restriction.dtype.names, restriction.tolist(), strict=True)), negate)
    if isinstance(restriction, np.ndarray) and restriction.dtype.names:  # a fetched record array: OR of rows
        names = restriction.dtype.names
        return query._condition([dict(zip(names, r, strict=True)) for r in restriction.tolist()], negate)
    if hasattr(restriction, "to_records") and hasattr(restriction, "columns"):  # a pandas DataFrame
        return query._condition(restriction.to_records(), negate)
    if getattr(restriction, "_universal_set", False):
        return _cond_universal(query, restriction, negate)
    try:
        items = list(restriction)
    except TypeError:
        raise QueryError(
            f"Invalid restriction type {type(restriction).__name__}: use a dict, a list of dicts, an SQL string, "
            "a query, dj.AndList or dj.Not"
        ) from None
    return _cond_or(query, items, negate)


_CONDITIONS = {
    Not: _cond_not,
    Top: _cond_top,
    _Promiscuous: _cond_promiscuous,
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
    if isinstance(restriction, Top):
        return _cond_top
    for kind, handler in _CONDITION_KINDS:
        if isinstance(restriction, kind):
            return handler
    return _cond_other


def check_join_compatibility(a, b) -> None:
    """DataJoint's semantic check: two operands may match only on attributes that are in the primary key of one
    of them; a secondary attribute of both is a coincidence of names (``q1 @ q2`` and ``q1 ^ q2`` skip it)."""
    if getattr(a, "_universal_set", False) or getattr(b, "_universal_set", False):
        return
    shared = [n for n in a.heading.secondary_attributes if n in set(b.heading.secondary_attributes)]
    if shared:
        raise QueryError(f"Cannot join query expressions on dependent attribute `{shared[0]}`: it is a secondary "
                         "attribute of both; rename it in one of them with proj(), or use @ (join) or ^ (restrict) "
                         "to match on it anyway")


def _as_query(other, what: str):
    if isinstance(other, type) and hasattr(other, "_make_query"):
        other = other()
    if not isinstance(other, Query):
        raise QueryError(f"cannot {what} {type(other).__name__}: give a table or a query")
    return other


class Query:
    """A lazy query over one connection."""

    # an SQL-string condition in its WHERE names columns bare: joined as it is, a name both operands have would be
    # ambiguous, so join() wraps such an operand as a subquery first
    _bare_where = False
    _top: Top | None = None  # ORDER BY ... LIMIT of the query's own rows: wrapped before any other operation

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

    def make_sql(self, names=None, *, for_output=False, distinct=False) -> tuple[str, tuple]:
        """``SELECT names FROM ... WHERE ...`` (``ORDER BY ... LIMIT`` under a dj.Top) and its parameters."""
        names = self._heading.names if names is None else names
        where, wparams = self._where_sql()
        select = "SELECT DISTINCT" if distinct else "SELECT"
        sql = f"{select} {self._select_list(names, for_output=for_output)} FROM {self._from}{where}"
        if self._top is not None:
            sql += self._order_sql(self._top.order_by)
            if self._top.limit is not None:
                sql += f" LIMIT {int(self._top.limit)}" + (f" OFFSET {int(self._top.offset)}" if self._top.offset
                                                           else "")
        return sql, self._from_params + wparams

    def as_subquery(self) -> Query:
        """This query wrapped as ``(SELECT ...) AS alias``: a flat operand for any other operation."""
        sql, params = self.make_sql()
        return derived(self._connection, self._heading, sql, params)

    def _settled(self) -> Query:
        """This query, or, under a dj.Top, its rows wrapped as a subquery: what other operations build on."""
        return self.as_subquery() if self._top is not None else self

    # -------------------------------------------------------------- restriction
    def __and__(self, restriction) -> Query:
        return self.restrict(restriction)

    def __sub__(self, restriction) -> Query:
        return self.restrict(Not(restriction))

    def __xor__(self, restriction) -> Query:
        """Restriction by a query without the check of common secondary attributes, as DataJoint's ``^``."""
        if isinstance(restriction, type) and hasattr(restriction, "_make_query"):
            restriction = restriction()
        if isinstance(restriction, Not):
            return self.restrict(Not(_Promiscuous(restriction.restriction)))
        return self.restrict(_Promiscuous(restriction))

    def restrict(self, restriction) -> Query:
        if isinstance(restriction, Top):
            q = self.as_subquery() if self._top is not None and self._top != restriction else self._copy()
            q._top = restriction
            return q
        cond = self._settled()._condition(restriction)
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
        if getattr(other, "_universal_set", False):
            return _cond_universal(self, other, negate)
        other = _as_query(other, "restrict by")._settled()
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

    def __matmul__(self, other) -> Query:
        """Join without the check of common secondary attributes, as DataJoint's ``@``."""
        return self.join(other, semantic_check=False)

    def join(self, other, semantic_check=True, left=False) -> Query:
        """The rows of both that agree on their common attributes; ``left=True`` keeps every row of this one."""
        if getattr(other, "_universal_set", False):
            return other.join(self)
        if isinstance(other, type) and hasattr(other, "_make_query"):
            other = other()
        if not isinstance(other, Query):
            raise QueryError(f"cannot join with {type(other).__name__}: join two tables or queries")
        if semantic_check:
            check_join_compatibility(self, other)
        left_q = self.as_subquery() if self._bare_where or self._top is not None else self
        if other._aliases & left_q._aliases or other._bare_where or other._top is not None:
            other = other.as_subquery()
        return left_q._join(other, left)

    def _join(self, other, outer: bool) -> Query:
        left = self
        common = [n for n in left._heading.names if n in other._heading]
        on = " AND ".join(f"{left._columns[n]} = {other._columns[n]}" for n in common) or "1=1"
        attrs = []
        for a in left._heading.attributes.values():
            attrs.append(a)
        for a in other._heading.attributes.values():
            if a.name not in left._heading:
                attrs.append(_replace(a, nullable=True) if outer else a)  # NULL where a left row matches none
        # key of the join: union of both keys
        key = set(left.primary_key) | set(other.primary_key)
        attrs = [_with_key(a, a.name in key) for a in attrs]
        attrs.sort(key=lambda a: not a.in_key)
        columns = {**other._columns, **left._columns}
        # other's WHERE goes into the ON clause so that the parameters stay in textual order
        owhere, oparams = other._where_sql()
        if owhere:
            on = f"{on} AND {owhere[len(' WHERE '):]}"
        from_sql = f"{left._from} {'LEFT JOIN' if outer else 'JOIN'} {other._from} ON {on}"
        q = Query(self._connection, Heading(attrs), from_sql, left._from_params + other._from_params + oparams,
                  columns, aliases=left._aliases | other._aliases, flat_names=False)
        if left._where:
            q._where = list(left._where)
        return q

    def proj(self, *attributes, **named) -> Query:
        """Primary key plus the named attributes, as DataJoint's: ``...`` adds every secondary attribute and
        ``"-attr"`` leaves one out; ``new="old"`` renames, ``new="(old)"`` copies, ``new="expr"`` computes (SQL)."""
        base = self._settled()
        heading = base._heading
        renames, copies, computed = _split_named(heading, named)
        selected = _selected(heading, attributes, renames) | {n for n, old in copies.items() if n == old}
        renames.update((n, old) for n, old in copies.items() if n != old)
        for new in list(renames) + list(computed):
            if new in selected:
                raise QueryError(f"proj: attribute `{new}` already exists: choose another name")
        if computed and not base._flat_names:
            base = base.as_subquery()
        attrs, cols = [], {}
        for a in heading.attributes.values():
            if a.name in selected:
                attrs.append(a)
                cols[a.name] = base._columns[a.name]
            for new, old in renames.items():
                if old == a.name:
                    attrs.append(_replace(a, name=new))
                    cols[new] = base._columns[old]
        for new, expr in computed.items():
            attrs.append(Attribute(name=new, type="expression", category="expression"))
            cols[new] = expr  # an SQL expression over base's column names (base is flat)
        attrs.sort(key=lambda a: not a.in_key)
        q = Query(self._connection, Heading(attrs), base._from, base._from_params, cols, base._where,
                  base._aliases, flat_names=base._flat_names and not renames)
        q._bare_where = base._bare_where
        # a computed attribute is SQL over bare column names: joined or nested, those names would be ambiguous
        # or bind to the other operand's columns, so the result is wrapped and its columns become plain
        return q.as_subquery() if computed else q

    # -------------------------------------------------------------- aggregation, union, universal sets
    def aggr(self, group, *attributes, keep_all_rows=False, **named) -> Query:
        """One row per row of this query, with ``named`` computed over its matching rows of ``group`` (SQL
        aggregates: ``n="count(*)"``, ``m="max(x)"``); ``keep_all_rows=True`` keeps rows that match none."""
        group = _as_query(group, "aggregate")
        if Ellipsis in attributes:  # ... names this query's own secondary attributes
            attributes = [a for a in attributes if a is not Ellipsis] + self._heading.secondary_attributes
        joined = self.join(group, left=keep_all_rows)
        return aggregation(joined, self.primary_key, attributes, named)

    aggregate = aggr

    def __add__(self, other) -> Query:
        """The union of two queries with the same primary key and no secondary attribute in common."""
        return union(self, _as_query(other, "take the union with"))

    def distinct(self, names) -> Query:
        """The distinct values of ``names``, which become the primary key (``dj.U(*names) & query``)."""
        missing = [n for n in names if n not in self._heading]
        if missing:
            raise QueryError(f"dj.U: attribute `{missing[0]}` is not in the query (known: "
                             f"{', '.join(self._heading.names)})")
        q = self._settled()
        sql, params = q.make_sql(list(names), distinct=True)
        return derived(self._connection, Heading([_with_key(q._heading[n], True) for n in names]), sql, params)

    def with_primary_key(self, names) -> Query:
        """The same rows with ``names`` as the primary key, in that order (``query * dj.U(...)``)."""
        missing = [n for n in names if n not in self._heading]
        if missing:
            raise QueryError(f"dj.U: attribute `{missing[0]}` not found (known: {', '.join(self._heading.names)})")
        attrs = [_with_key(self._heading[n], True) for n in names]
        attrs += [_with_key(a, False) for a in self._heading.attributes.values() if a.name not in names]
        return self._copy(heading=Heading(attrs))

    # -------------------------------------------------------------- fetching
    def _order_sql(self, order_by) -> str:
        if order_by is None:
            return ""
        items = [order_by] if isinstance(order_by, str) else list(order_by)
        out = []
        for item in items:
            if not isinstance(item, str):
                raise QueryError(f"order_by takes attribute names (got {item!r})")
            m = re.fullmatch(r"\s*KEY(?:\s+((?i:asc|desc)))?\s*", item)  # KEY in capitals: `key` may be a name
            if m:
                out += [self._columns[n] + (f" {m.group(1).upper()}" if m.group(1) else "") for n in self.primary_key]
                continue
            m = re.fullmatch(r"\s*`?(\w+)`?(?:\s+(ASC|DESC))?\s*", item, re.I)
            if not m or m.group(1) not in self._heading:
                raise QueryError(f"order_by names unknown attribute '{item}' (known: {', '.join(self._heading.names)})")
            # the column's expression, not its output name: an attribute that is not fetched is no alias,
            # and its bare name would be ambiguous in a join
            out.append(self._columns[m.group(1)] + (f" {m.group(2).upper()}" if m.group(2) else ""))
        return " ORDER BY " + ", ".join(out) if out else ""

    def _topped(self, order_by, limit, offset) -> Query:
        """fetch's order_by/limit/offset as DataJoint applies them: a dj.Top restriction (KEY order by default)."""
        return self.restrict(Top(limit, order_by, offset)) if (offset or order_by or limit) else self

    def select_sql(self, names=None, order_by=None, limit=None, offset=None) -> tuple[str, tuple]:
        """The SELECT that fetch() sends, with its parameters, to send it yourself (``decode_rows`` reads it)."""
        return self._topped(order_by, limit, offset).make_sql(names, for_output=True)

    def cursor(self, names=None, order_by=None, limit=None, offset=None):
        names = self._heading.names if names is None else names
        sql, params = self.select_sql(names, order_by, limit, offset)
        return self._connection.query(sql, params, context="fetch"), names

    def decode_rows(self, rows, names, squeeze=False, download_path=".") -> list[dict]:
        """Rows of ``select_sql(names)``, as fetch(as_dict=True) returns them."""
        return [dict(zip(names, r, strict=True)) for r in self._decoded(rows, names, squeeze, download_path)]

    def _decoded(self, rows, names, squeeze=False, download_path=".") -> list[tuple]:
        decoders = [self._decoder(self._heading[n], squeeze, download_path) for n in names]
        return [tuple(f(v) for f, v in zip(decoders, row, strict=True)) for row in rows]

    def _decoder(self, attr, squeeze, download_path="."):
        if attr.category == "expression":
            return lambda v: v
        dialect = self._dialect.name
        return lambda v: values.decode(attr, v, dialect, squeeze=squeeze, download_path=download_path)

    def _records(self, names, squeeze=False, download_path=".") -> np.ndarray:
        cur, names = self.cursor(names)
        rows = self._decoded(cur.fetchall(), names, squeeze, download_path)
        return shaping.to_records([self._heading[n] for n in names], rows)

    def _fetch_names(self, attributes) -> list[str]:
        """The columns that fetching ``attributes`` reads, in the heading's order."""
        wanted = set()
        for a in attributes:
            if shaping.is_key(a):
                wanted.update(self.primary_key)
            elif not isinstance(a, str) or a not in self._heading:
                raise QueryError(f"fetch names unknown attribute {a!r} (known: {', '.join(self._heading.names)})")
            else:
                wanted.add(a)
        return [n for n in self._heading.names if n in wanted]

    def fetch(self, *attributes, offset=None, limit=None, order_by=None, format=None, as_dict=None, squeeze=False,
              download_path="."):
        """As DataJoint's: a numpy structured array of whole rows (``format="frame"`` or ``dj.config["fetch_format"]``:
        a pandas DataFrame indexed by the primary key), ``fetch("a")`` an array, ``fetch("a", "b")`` a list of
        arrays, ``fetch("KEY")`` a list of key dicts, ``as_dict=True`` a list of dicts."""
        q = self._topped(order_by, limit, offset)
        fmt = shaping.check_format(format, as_dict, attributes, settings.config["fetch_format"])
        if not attributes:
            if as_dict:
                return q.decode_rows(q.cursor()[0].fetchall(), q._heading.names, squeeze, download_path)
            records = q._records(q._heading.names, squeeze, download_path)
            return shaping.to_frame(records, q.primary_key) if fmt == "frame" else records
        names = q._fetch_names(attributes)
        if as_dict:
            cur, names = q.cursor(names)
            return q.decode_rows(cur.fetchall(), names, squeeze, download_path)
        records = q._records(names, squeeze, download_path)
        out = [shaping.key_dicts(records, q.primary_key) if shaping.is_key(a) else records[a] for a in attributes]
        return out[0] if len(out) == 1 else out

    def fetch1(self, *attributes, squeeze=False, download_path="."):
        """Exactly one row, as DataJoint's: a dict; ``fetch1("a")`` its value; ``fetch1("a", "b")`` a tuple."""
        q = self._settled()
        names = q._fetch_names(attributes) if attributes else q._heading.names
        sql, params = q.make_sql(names, for_output=True)
        rows = q._decoded(q._connection.query(sql + " LIMIT 2", params, context="fetch").fetchall(), names, squeeze,
                          download_path)
        if len(rows) != 1:
            what = "no row" if not rows else "more than one row"
            raise MissingError(f"fetch1 found {what}: restrict the query to exactly one row first")
        if not attributes:
            return dict(zip(names, rows[0], strict=True))
        records = shaping.to_records([q._heading[n] for n in names], rows)
        out = tuple(shaping.key_dicts(records, q.primary_key)[0] if shaping.is_key(a) else records[a][0]
                    for a in attributes)
        return out[0] if len(out) == 1 else out

    def keys(self, order_by=None, limit=None, offset=None, **kwargs):
        """The primary keys as a list of dicts (DataJoint 2.x; ``fetch("KEY")`` in 0.14)."""
        return self.fetch("KEY", order_by=order_by, limit=limit, offset=offset, **kwargs)

    def to_dicts(self, order_by=None, limit=None, offset=None, squeeze=False, download_path="."):
        """Every row as a dict (DataJoint 2.x; ``fetch(as_dict=True)`` in 0.14)."""
        return self.fetch(as_dict=True, order_by=order_by, limit=limit, offset=offset, squeeze=squeeze)

    def to_arrays(self, *attributes, include_key=False, order_by=None, limit=None, offset=None, squeeze=False):
        """A structured array of whole rows, or a tuple of one array per attribute (``include_key=True``: the key
        dicts first), as DataJoint 2.x's."""
        q = self._topped(order_by, limit, offset)
        if not attributes:
            return q._records(q._heading.names, squeeze)
        names = q._fetch_names([*attributes, *(["KEY"] if include_key else [])])
        records = q._records(names, squeeze)
        arrays = [records[a] for a in attributes]
        if include_key:
            return (shaping.key_dicts(records, q.primary_key), *arrays)
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    def to_pandas(self, order_by=None, limit=None, offset=None, squeeze=False):
        """A pandas DataFrame indexed by the primary key (DataJoint 2.x; ``fetch(format="frame")`` in 0.14)."""
        q = self._topped(order_by, limit, offset)
        return shaping.to_frame(q._records(q._heading.names, squeeze), q.primary_key)

    def head(self, limit=25, **fetch_kwargs):
        """The first ``limit`` rows in key order, as fetch gives them."""
        return self.fetch(order_by="KEY", limit=limit, **fetch_kwargs)

    def tail(self, limit=25, **fetch_kwargs):
        """The last ``limit`` rows in key order, as fetch gives them."""
        return self.fetch(order_by="KEY DESC", limit=limit, **fetch_kwargs)[::-1]

    def count_sql(self) -> tuple[str, tuple]:
        """``SELECT COUNT(*)`` of this query and its parameters, to send with other statements."""
        q = self._settled()
        where, params = q._where_sql()
        return f"SELECT COUNT(*) FROM {q._from}{where}", q._from_params + params

    def key_range(self, names: list[str], *, after: dict | None = None, after_inclusive: bool = False,
                  before: dict | None = None, descending: bool = False) -> Query:
        """Rows whose ``names`` tuple comes after ``after`` (and before ``before``) in the order of ``names``
        (reversed with ``descending``): keyset pagination, expanded into ORs so every database uses the index."""
        q = self._settled()
        gt, lt = ("<", ">") if descending else (">", "<")
        if after is not None:
            q = q._copy()
            q._where.append(q._tuple_condition(names, after, gt, after_inclusive))
        if before is not None:
            q = q._copy()
            q._where.append(q._tuple_condition(names, before, lt, False))
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
        q = self._settled()
        where, params = q._where_sql()
        sql = f"SELECT EXISTS (SELECT 1 FROM {q._from}{where})"
        return bool(self._connection.query(sql, q._from_params + params, context="exists").fetchone()[0])

    def __iter__(self):
        """Each row as a dict, as DataJoint's iteration gives them."""
        return iter(self.fetch(as_dict=True))

    def preview(self, limit=None, width=None) -> str:
        """The first ``limit`` rows (``display.limit``) as text in DataJoint's layout: key names starred, columns
        at most ``width`` (``display.width``) wide, blobs shown as =BLOB=, then the count of rows."""
        width = settings.config["display.width"] if width is None else width
        names = self._heading.names
        rows, more = self._preview_rows(limit)
        widths = {n: min(max([len(n)] + [len(r[n]) for r in rows]) + 4, width) for n in names}
        lines = [" ".join(f"{'*' + n if n in self.primary_key else n:<{widths[n]}.{widths[n]}}" for n in names),
                 " ".join("+" + "-" * (widths[n] - 2) + "+" for n in names)]
        lines += [" ".join(f"{r[n]:<{widths[n]}.{widths[n]}}" for n in names) for r in rows]
        out = "\n".join(lines) + ("\n   ...\n" if more else "\n")
        return out + (f" (Total: {len(self)})\n" if settings.config["display.show_tuple_count"] else "")

    def _preview_rows(self, limit=None) -> tuple[list[dict], bool]:
        """The first ``limit`` rows (``display.limit``) in key order as texts, blobs as =BLOB=; and whether more
        rows follow."""
        limit = settings.config["display.limit"] if limit is None else limit
        shown = self.proj(*[n for n in self._heading.secondary_attributes if not self._heading[n].is_blob])
        records = shown._topped("KEY", limit + 1, None)._records(shown._heading.names)
        rows = [{n: str(r[n]) if n in shown._heading else "=BLOB=" for n in self._heading.names}
                for r in records[:limit]]
        return rows, len(records) > limit

    def _repr_html_(self) -> str:
        """The preview as an HTML table, for Jupyter (DataJoint's: a style block, then the table; key names bold,
        comments as tooltips)."""
        rows, more = self._preview_rows()
        heading = self._heading
        head = "".join(f'<th class="{"primary_key" if heading[n].in_key else "attribute"}" '
                       f'title="{html.escape(heading[n].comment)}">{html.escape(n)}</th>' for n in heading.names)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(r[n])}</td>" for n in heading.names) + "</tr>"
                       for r in rows)
        count = f"<p>Total: {len(self)}</p>" if settings.config["display.show_tuple_count"] else ""
        return (f"<style>{_HTML_STYLE}</style>\n<div class=\"djhpc-table\"><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>{'<p>...</p>' if more else ''}{count}</div>")

    def __repr__(self):
        try:
            n = len(self)
        except Exception:  # repr must never raise
            return f"<{type(self).__name__}>"
        rows = self.fetch(as_dict=True, limit=10)
        names = self._heading.names
        lines = ["  ".join(f"*{n}" if n in self.primary_key else n for n in names)]
        for r in rows:
            lines.append("  ".join(_short(r[n]) for n in names))
        if n > len(rows):
            lines.append("...")
        lines.append(f" ({n} tuples)")
        return "\n".join(lines)


_HTML_STYLE = (".djhpc-table table {border-collapse: collapse; font-size: 80%} "
               ".djhpc-table th, .djhpc-table td {padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left} "
               ".djhpc-table th.primary_key {font-weight: bold; color: #000}")


def derived(connection, heading: Heading, sql: str, params) -> Query:
    """A flat query over the rows of ``sql`` (``(SELECT ...) AS alias``), whose columns are ``heading``'s names."""
    alias = new_alias()
    q = connection.dialect.quote
    cols = {n: f"{alias}.{q(n)}" for n in heading.names}
    return Query(connection, heading, f"({sql}) AS {alias}", params, cols, aliases={alias}, flat_names=True)


def aggregation(source: Query, key: list, attributes, named) -> Query:
    """``source`` grouped by ``key`` (no key: one row of the whole), keeping ``attributes`` and computing
    ``named`` (DataJoint's proj spellings) over each group. An attribute outside the key is read through MIN(),
    which gives the one value it has in a group, so that the statement holds under ONLY_FULL_GROUP_BY."""
    flat = source.as_subquery()
    attrs = [_with_key(a, a.name in key) for a in flat._heading.attributes.values()]
    heading = Heading(sorted(attrs, key=lambda a: not a.in_key))
    renames, copies, computed = _split_named(heading, named)
    selected = _selected(heading, attributes, renames) | {n for n, old in copies.items() if n == old}
    renames.update((n, old) for n, old in copies.items() if n != old)
    for new in list(renames) + list(computed):
        if new in selected:
            raise QueryError(f"aggr: attribute `{new}` already exists: choose another name")
    quote = source._dialect.quote
    out, parts = [], []
    for a in heading.attributes.values():
        column = flat._columns[a.name] if a.in_key else f"MIN({flat._columns[a.name]})"
        if a.name in selected:
            out.append(a)
            parts.append(f"{column} AS {quote(a.name)}")
        for new, old in renames.items():
            if old == a.name:
                out.append(_replace(a, name=new))
                parts.append(f"{column} AS {quote(new)}")
    for new, expr in computed.items():
        out.append(Attribute(name=new, type="expression", category="expression"))
        parts.append(f"{expr} AS {quote(new)}")
    group_by = f" GROUP BY {', '.join(flat._columns[n] for n in key)}" if key else ""
    sql = f"SELECT {', '.join(parts) or '1'} FROM {flat._from}{group_by}"
    return derived(source._connection, Heading(sorted(out, key=lambda a: not a.in_key)), sql, flat._from_params)


def union(a: Query, b: Query) -> Query:
    """Rows of either operand; a secondary attribute of one is NULL in rows only the other has."""
    if set(a.primary_key) != set(b.primary_key):
        raise QueryError("The operands of a union must share the same primary key "
                         f"({', '.join(a.primary_key)} vs {', '.join(b.primary_key)})")
    shared = set(a._heading.secondary_attributes) & set(b._heading.secondary_attributes)
    if shared:
        raise QueryError(f"The operands of a union must not share any secondary attributes (both have "
                         f"{sorted(shared)[0]}): rename one with proj()")
    a, b = a._settled(), b._settled()
    key = a.primary_key
    attrs = [a._heading[n] for n in key]
    attrs += [_replace(x, nullable=True) for q in (a, b) for x in q._heading.attributes.values() if not x.in_key]
    names = [x.name for x in attrs]
    if len(names) == len(key):
        first, second = a.make_sql(key), b.make_sql(key)
    else:
        first = a.join(b, semantic_check=False, left=True).make_sql(names)
        only_b = (b - a).proj(..., **{n: "NULL" for n in a._heading.secondary_attributes})
        second = only_b.make_sql(names)
    sql = f"{first[0]} UNION {second[0]}"
    return derived(a._connection, Heading(attrs), sql, first[1] + second[1])


_COPY = re.compile(r"\s*\(\s*([A-Za-z_]\w*)\s*\)\s*")


def _split_named(heading, named) -> tuple[dict, dict, dict]:
    """proj's keyword arguments as (renames: new -> old, copies: new -> old, computations: new -> SQL)."""
    renames, copies, computed = {}, {}, {}
    for new, value in named.items():
        if not isinstance(value, str):
            raise QueryError(f"proj: {new}= must be an attribute name or an SQL expression (got {value!r})")
        copied = _COPY.fullmatch(value)
        if value.strip() == new and new in heading:
            copies[new] = new  # name='name' keeps it as it is
        elif value.strip() in heading:
            renames[new] = value.strip()
        elif copied and copied.group(1) in heading:
            copies[new] = copied.group(1)
        else:
            computed[new] = value
    return renames, copies, computed


def _selected(heading, attributes, renames) -> set:
    """The names proj keeps as they are: the primary key (but for renamed attributes) and those listed."""
    moved = {old for new, old in renames.items() if new != old}
    selected = {n for n in heading.primary_key if n not in moved}
    excluded = set()
    for a in attributes:
        if a is Ellipsis:
            selected.update(n for n in heading.secondary_attributes if n not in moved)
        elif not isinstance(a, str):
            raise QueryError(f"proj: {a!r} is not an attribute name")
        elif a.strip().startswith("-"):
            excluded.add(a.strip()[1:].strip())
        elif a not in heading:
            raise QueryError(f"proj names unknown attribute '{a}' (known: {', '.join(heading.names)})")
        else:
            selected.add(a)
    for a in excluded:
        if a in heading and heading[a].in_key:
            raise QueryError(f"proj cannot leave out primary key attribute '{a}'")
    return selected - excluded


def _short(v) -> str:
    s = "=BLOB=" if isinstance(v, (bytes, bytearray)) else str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def _with_key(a: Attribute, in_key: bool) -> Attribute:
    from dataclasses import replace

    return a if a.in_key == in_key else replace(a, in_key=in_key)


def _renamed(a: Attribute, new: str) -> Attribute:
    from dataclasses import replace

    return replace(a, name=new)
