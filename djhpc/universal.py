"""dj.U: the universal set of its attributes' values, for distinct values, promoting attributes to the key, and
aggregating over a whole query or by attributes that are not a key.

``dj.U("a", "b") & q`` is the distinct (a, b) of q; ``q * dj.U("a")`` is q with a added to its primary key;
``dj.U("a").aggr(q, n="count(*)")`` groups q by a; ``dj.U().aggr(q, n="count(*)")`` is one row over all of q.
"""

from __future__ import annotations

from .errors import QueryError
from .query import Query, aggregation


def _query(other, what: str) -> Query:
    if isinstance(other, type) and hasattr(other, "_make_query"):
        other = other()
    if not isinstance(other, Query):
        raise QueryError(f"dj.U can only be {what} a table or a query (got {type(other).__name__})")
    return other


class U:
    """The set of every combination of values of ``primary_key``; it holds no rows of its own."""

    _universal_set = True  # what djhpc.query recognises it by (it cannot import this module)

    def __init__(self, *primary_key):
        for name in primary_key:
            if not isinstance(name, str):
                raise QueryError(f"dj.U takes attribute names (got {name!r})")
        self._primary_key = list(primary_key)

    @property
    def primary_key(self) -> list[str]:
        return list(self._primary_key)

    def __and__(self, other) -> Query:
        return _query(other, "restricted with").distinct(self._primary_key)

    def join(self, other, left=False) -> Query:
        """``other`` with this set's attributes added to its primary key (``left`` is ignored, as DataJoint's)."""
        other = _query(other, "joined with")
        return other.with_primary_key(other.primary_key + [k for k in self._primary_key if k not in other.primary_key])

    def __mul__(self, other) -> Query:
        return self.join(other)

    def aggr(self, group, **named) -> Query:
        """``group`` grouped by this set's attributes, with ``named`` computed over each group."""
        if named.pop("keep_all_rows", False):
            raise QueryError("Cannot set keep_all_rows=True when aggregating on a universal set (dj.U)")
        group = _query(group, "aggregated over")
        missing = [k for k in self._primary_key if k not in group.heading]
        if missing:
            raise QueryError(f"dj.U: attribute `{missing[0]}` is not in the query aggregated")
        return aggregation(group, self._primary_key, (), named)

    aggregate = aggr

    def __repr__(self):
        return f"U({', '.join(map(repr, self._primary_key))})"
