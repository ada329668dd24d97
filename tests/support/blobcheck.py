"""Blob values described exactly, in any interpreter: DataJoint's (numpy only, no djhpc) and the tests' own.

``describe(value)`` is JSON: type names, dtypes, shapes and raw bytes, all the way down, so that two processes
compare what they read without pickle. ``namespace(MatCell, MatStruct)`` is what the tests' value expressions are
evaluated in, on either side.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import struct
import uuid

import numpy as np


def _array(a) -> list:
    kind = type(a).__name__
    if a.dtype.names is not None:
        fields = [[name, describe(np.asarray(a[name]))] for name in a.dtype.names]
        return [kind, "fields", list(a.dtype.names), list(a.shape), fields]
    if a.dtype.kind == "O":
        return [kind, "O", list(a.shape), [describe(x) for x in a.reshape(-1)]]
    return [kind, a.dtype.str, list(a.shape), np.ascontiguousarray(a).tobytes().hex()]


def describe(v):
    """A JSON value equal for two values exactly when they are of the same types and hold the same bits."""
    if v is None or type(v) in (bool, int, str):
        return [type(v).__name__, v]
    if type(v) is float:
        return ["float", struct.pack("<d", v).hex()]
    if type(v) is complex:
        return ["complex", struct.pack("<dd", v.real, v.imag).hex()]
    if type(v) in (bytes, bytearray):
        return [type(v).__name__, bytes(v).hex()]
    if type(v) in (list, tuple):
        return [type(v).__name__, [describe(x) for x in v]]
    if type(v) in (set, frozenset):
        return [type(v).__name__, sorted((describe(x) for x in v), key=json.dumps)]
    if type(v) is dict:
        return ["dict", [[describe(k), describe(x)] for k, x in v.items()]]
    if type(v) in (dt.datetime, dt.date, dt.time, dt.timedelta, decimal.Decimal, uuid.UUID):
        return [type(v).__name__, repr(v)]
    if isinstance(v, np.ndarray):
        return _array(v)
    if isinstance(v, np.generic):
        return ["numpy scalar", type(v).__name__, v.dtype.str, np.asarray(v).tobytes().hex()]
    return ["unknown", type(v).__qualname__, repr(v)]


def namespace(mat_cell, mat_struct) -> dict:
    """Names the value expressions use: numpy, datetime, uuid, Decimal, and builders of MATLAB cells/structs."""

    def obj(items, shape=None):
        """An object array of ``items`` (numpy would make nested lists into more dimensions)."""
        a = np.empty(len(items), dtype=object)
        for i, x in enumerate(items):
            a[i] = x
        return a if shape is None else a.reshape(shape, order="F")

    def cell(items, shape):
        return obj(items, shape).view(mat_cell)

    def struct_array(fields: dict, shape):
        names = list(fields)
        count = len(next(iter(fields.values())))
        a = np.empty(count, dtype=[(name, object) for name in names])
        for name in names:
            for i, x in enumerate(fields[name]):
                a[name][i] = x
        return a.reshape(shape, order="F").view(mat_struct)

    return {
        "np": np,
        "dt": dt,
        "uuid": uuid,
        "Decimal": decimal.Decimal,
        "obj": obj,
        "cell": cell,
        "struct": struct_array,
    }
