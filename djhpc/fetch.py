"""Decoded rows -> what DataJoint's fetch returns: a numpy structured array, arrays per attribute, key dicts, or a
pandas DataFrame indexed by the primary key.

Pure: it gets the heading's attributes and rows already decoded by djhpc.values, and shapes them. The dtypes are
DataJoint's: float and double are float64, integers that cannot be null are int64, everything else (strings,
decimals, dates, uuids, json, blobs, nullable integers, computed attributes) is an object column.
"""

from __future__ import annotations

import numpy as np

from .errors import QueryError, UsageError


def is_key(name) -> bool:
    """``fetch("KEY")`` (``dj.key``) asks for the primary key as a list of dicts."""
    return isinstance(name, str) and name == "KEY"


def dtype_of(attr) -> object:
    """The numpy dtype DataJoint gives an attribute's column (declare.Attribute.dtype)."""
    return attr.dtype


def record_dtype(attributes) -> np.dtype:
    return np.dtype([(a.name, dtype_of(a)) for a in attributes])


def to_records(attributes, rows) -> np.ndarray:
    """A structured array of ``rows`` (sequences in the order of ``attributes``); None is NaN in a float column."""
    out = np.empty(len(rows), dtype=record_dtype(attributes))
    for i, a in enumerate(attributes):
        column = out[a.name]
        if column.dtype == object:
            for j, row in enumerate(rows):  # one by one: an array value must not be broadcast into the column
                column[j] = row[i]
        elif column.dtype.kind == "f":
            column[:] = [np.nan if row[i] is None else row[i] for row in rows]
        else:
            column[:] = [row[i] for row in rows]
    return out


def key_dicts(records: np.ndarray, primary_key) -> list[dict]:
    """The primary key of each record as a dict of Python values."""
    return [dict(zip(primary_key, r, strict=True)) for r in records[list(primary_key)].tolist()] \
        if len(primary_key) else [{} for _ in range(len(records))]


def to_frame(records: np.ndarray, primary_key):
    """A pandas DataFrame of ``records`` indexed by the primary key."""
    try:
        import pandas
    except ImportError as exc:
        raise UsageError("fetch(format='frame') needs pandas, an optional dependency: pip install pandas") from exc
    frame = pandas.DataFrame(records)
    return frame.set_index(list(primary_key)) if len(primary_key) else frame


def check_format(format, as_dict, attributes, default) -> str | None:
    """The output format asked for ('array', 'frame', or None when attributes or dicts are fetched)."""
    if format is not None and (as_dict or attributes):
        raise QueryError("fetch: format= applies to fetch() of whole rows only: drop it, or drop as_dict and the "
                         "attribute names")
    if format not in (None, "array", "frame"):
        raise QueryError(f"fetch: format must be 'array' or 'frame' (got {format!r})")
    if attributes or as_dict:
        return None
    return format or default
