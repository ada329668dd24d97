"""Reading query results in a form that compares easily."""

from __future__ import annotations


def key_set(query):
    """The primary keys of a query's rows as sorted tuples of their values."""
    return sorted(tuple(k.values()) for k in query.fetch("KEY"))
