"""DataJoint's blob format in djhpc.blob, checked against real DataJoint 0.14.10 and 2.3.5.

One subprocess per DataJoint version packs every value of ``CASES`` with ``datajoint.blob.pack``, unpacks its own
bytes and djhpc's, and describes what it read (tests/support/blobcheck.py: types, dtypes, shapes, raw bytes; no
pickle). Here: (1) djhpc reads DataJoint's bytes as DataJoint does, (2) DataJoint reads djhpc's bytes as djhpc
does, (3) djhpc writes DataJoint 0.14's bytes exactly. Then rows written through each library into MariaDB are read
through the other, and hostile blobs (truncated, mutated, absurd sizes, deep nesting) fail fast with BlobError.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import struct
import subprocess
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from support.blobcheck import describe, namespace
from support.cluster import root_query
from support.datajoint import datajoint_pythons
from support.env import ROOT, mysql_available, unavailable

from djhpc import blob, blob_v1
from djhpc.blob import MAX_DEPTH, MatCell, MatStruct, pack, unpack
from djhpc.errors import BlobError

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NS = namespace(MatCell, MatStruct)

_NUMERIC = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64",
            "complex64", "complex128"]  # fmt: skip
_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]

# Value expressions, evaluated on both sides (tests/support/blobcheck.py's namespace). A case's flags:
# "order": a set whose order of iteration differs between processes (its bytes may differ);
# "dj2": DataJoint 0.14 cannot read it (its cell arrays are built with np.array, which refuses ragged items);
# "charorder": a char matrix, which DataJoint writes in C order but reads in Fortran order (djhpc writes Fortran).
# fmt: off
CASES: list[tuple[str, str]] = [
    # Python scalars
    *[(e, "") for e in ["0", "1", "-1", "127", "128", "-128", "-129", "255", "2**63", "-(2**63) - 1", "3**500",
                        "-(7**300)", "True", "False", "None", "1.5", "-0.0", "float('inf')", "float('nan')",
                        "5e-324", "complex(1, -2)", "complex(-0.0, float('nan'))", "''", "'text'",
                        "'ünïcödé ✓ 漢字 😀'", "'a\\x00b'", "b''", "b'\\x00\\xff' * 10", "bytearray(b'xyz')"]],
    # containers
    *[(e, "") for e in ["[]", "()", "set()", "{}", "[1, 'two', [3.0, None]]", "(1, (2, 3))", "{1, 2, 3}",
                        "{(1, 2), None, 2.5}", "{'a': 1, 'nested': {'b': [1, 2]}, 't': (1,)}",
                        "{1: 'int key', (1, 'x'): 'tuple key', None: 0, 2.5: [], dt.date(2020, 1, 1): b'd'}",
                        "[[[[[]]]]]", "range(3)", "[{'k': ({'j': [1]},)}]"]],
    ("{'a', 'b', 'c'}", "order"),
    ("frozenset({'x', 'y'})", "order"),
    # dates, decimals, UUIDs
    *[(e, "") for e in ["dt.datetime(2024, 2, 29, 12, 30, 1, 5)", "dt.datetime(1, 1, 1)",
                        "dt.datetime(9999, 12, 31, 23, 59, 59, 999999)", "dt.datetime(2020, 1, 1, 0, 0)",
                        "dt.date(1999, 12, 31)", "dt.date(1, 1, 1)", "dt.time(0, 0)", "dt.time(23, 59, 59, 999999)",
                        "Decimal('1.50')", "Decimal('-0.000')", "Decimal('1E+999')", "Decimal('NaN')",
                        "Decimal('-Infinity')", "uuid.UUID(int=0)", "uuid.UUID('12345678-1234-5678-1234-567812345678')",
                        "[dt.date(2020, 1, 2), uuid.UUID(int=7), Decimal('3.14159')]"]],
    # numpy scalars
    *[(f"np.{t}(1)", "") for t in _NUMERIC],
    *[(e, "") for e in ["np.float64(-2.5)", "np.int64(-(2**63))", "np.uint64(2**64 - 1)", "np.bool_(False)",
                        "np.complex64(1 - 2j)", "np.complex128(3 + 4j)", "np.float32('nan')",
                        "np.datetime64('2020-01-02', 'D')", "np.datetime64('2020-01-02T03:04:05.123456789', 'ns')",
                        "np.datetime64('NaT', 's')", "np.str_('np str')", "np.bytes_(b'np bytes')"]],
    # numeric arrays of every dtype and shape, C and Fortran order
    *[(f"np.arange({n}).astype('{t}').reshape({s})", "") for t in _NUMERIC
      for n, s in [(1, "()"), (0, "(0,)"), (5, "(5,)"), (6, "(2, 3)"), (0, "(2, 0, 3)"), (1, "(1, 1)")]],
    *[(f"np.asfortranarray((np.arange(24) - 7).astype('{t}').reshape(2, 3, 4))", "") for t in _NUMERIC],
    *[(e, "") for e in ["np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1)[:, ::2]", "np.array(7)",
                        "np.array([], dtype='f4')", "np.zeros((3, 0))", "np.array([1 + 2j, -0.0 - 1j])",
                        "np.array([[np.nan, -np.inf], [np.inf, -0.0]])", "np.array([True, False, True])"]],
    # datetime64 arrays of every unit
    *[(f"np.array([0, 1, -5], dtype='i8').astype('M8[{u}]')", "") for u in _UNITS],
    *[(f"np.array(['NaT', '1970-01-02'], dtype='M8[{u}]')", "") for u in ["D", "s", "ns"]],
    # str arrays (object arrays of str in DataJoint's format), char arrays (MATLAB chars)
    *[(e, "") for e in ["np.array(['a', 'bc', 'ünï'])", "np.array([['a', 'b'], ['c', 'd']])", "np.array('single')",
                        "np.array([], dtype='U3')", "np.array([b'a', b'b', b'c'], dtype='S1')",
                        "np.array(b'x', dtype='S1')", "np.array([[b'a', b'b', b'c']], dtype='S1')",
                        "np.array([[b'a'], [b'b']], dtype='S1')", "np.array([], dtype='S1')"]],
    ("np.array([[b'a', b'b', b'c'], [b'd', b'e', b'f']], dtype='S1')", "charorder"),
    # object arrays
    *[(e, "") for e in ["obj([1, 'a', None, [1, 2]])", "obj([1, 'x', 2.5, {'k': 1}], (2, 2))",
                        "obj([np.arange(3), np.zeros((2, 2)), 'z'])", "obj([])", "obj([obj([1, 2]), None])"]],
    # structured and record arrays
    *[(e, "") for e in ["np.zeros(3, dtype=[('a', '<i4'), ('b', '<f8')])",
                        "np.array([(1, 2.5, 'x'), (2, -1.0, 'yz')], dtype=[('a', 'i2'), ('b', 'f4'), ('c', 'U2')])",
                        "np.rec.fromrecords([(1, 'one'), (2, 'two')], names='n,s')",
                        "np.zeros(2, dtype=[('p', [('x', 'f8'), ('y', 'f8')]), ('n', 'i4')])",
                        "np.zeros((2, 3), dtype=[('a', 'i4'), ('b', 'c16')])",
                        "np.zeros((), dtype=[('a', 'i4'), ('b', 'f4')])",
                        "np.array([(obj([1, 2]),), ('s',)], dtype=[('o', object)])"]],
    # MATLAB cells and structs (the mYm protocol when every part is MATLAB's)
    ("cell([1.0, 'two', np.arange(3.0)], (1, 3))", "dj2"),
    ("cell([np.array([[1.0]]), np.array([[2.0, 3.0]])], (2, 1))", "dj2"),
    ("cell([], (0, 0))", "dj2"),
    ("cell([np.array([[1.0]]), np.array([[2.0]])], (1, 2))", "dj2"),
    ("struct({'a': [np.array([[1.0]]), np.array([[2.0]])], 'b': [np.array([b'x'], 'S1'), np.zeros((0, 0))]},"
     " (1, 2))", ""),
    ("struct({'a': ['one'], 'b': [[1, 2]]}, (1, 1))", ""),
    ("struct({'v': [cell([np.array([[1.0]])], (1, 1))]}, (1, 1))", "dj2"),
    # big values: compressed when that makes them shorter, as DataJoint does
    *[(e, "") for e in ["np.zeros(10000)", "np.arange(100000, dtype='i4')", "['x' * 2000]",
                        "{'k': np.ones((100, 100))}", "np.random.default_rng(0).random(1000)",
                        "np.random.default_rng(1).integers(0, 4, 5000).astype('u1')", "'é' * 600", "b'\\x00' * 1001",
                        "list(range(300))"]],
]
# fmt: on

# What DataJoint refuses to write, and djhpc writes in a form it reads (DataJoint's reading checked in test 2).
DJHPC_ONLY = ["np.array([1, 2], dtype='>i4')", "np.array([1.5], dtype='>f8')", "dt.timedelta(days=-1, seconds=5)",
              "[dt.timedelta(microseconds=1)]"]  # fmt: skip

_DATAJOINT_SIDE = r"""
import json, sys
import numpy as np
from datajoint import blob
from support import blobcheck

ns = blobcheck.namespace(blob.MatCell, blob.MatStruct)


def described(call, result, name):
    try:
        result[name] = blobcheck.describe(call())
    except Exception as e:
        result[name + "_error"] = f"{type(e).__name__}: {e}"


out = []
for case in json.load(open(sys.argv[1])):
    result = {}
    if "dims32_hex" in case:  # a blob of the 32-bit mYm, read with DataJoint's use_32bit_dims
        data = bytes.fromhex(case["dims32_hex"])
        blob.use_32bit_dims = True
        described(lambda: blob.unpack(data), result, "dj_back")
        described(lambda: blob.unpack(data, squeeze=True), result, "dj_squeezed")
        blob.use_32bit_dims = False
        out.append(result)
        continue
    value = eval(case["expr"], ns)  # the tests' own expressions
    try:
        packed = blob.pack(value)
        result["dj_hex"] = packed.hex()
    except Exception as e:
        result["dj_error"] = f"{type(e).__name__}: {e}"
    else:
        described(lambda: blob.unpack(packed), result, "dj_back")
        described(lambda: blob.unpack(packed, squeeze=True), result, "dj_squeezed")
    described(lambda: blob.unpack(bytes.fromhex(case["djhpc_hex"])), result, "from_djhpc")
    out.append(result)
json.dump(out, open(sys.argv[2], "w"))
"""


def _u32(*n: int) -> bytes:
    return struct.pack(f"<{len(n)}I", *n)


def _array32(shape: tuple, type_id: int, data: bytes) -> bytes:
    """An array as the 32-bit mYm for MATLAB writes it: dimensions as uint32."""
    return b"A" + _u32(len(shape), *shape) + _u32(type_id, 0) + data


def _framed32(item: bytes) -> bytes:
    return _u32(len(item)) + item


_ROW32 = _array32((1, 3), 6, struct.pack("<3d", 1.5, float("nan"), -2.0))
_TEXT32 = _array32((1, 5), 4, "hello".encode("utf-16-le"))
_STRUCT32 = b"S" + _u32(2, 1, 1, 2) + b"hits\0stage\0" + _framed32(_ROW32) + _framed32(_TEXT32)
DIMS32 = {  # blobs of the 32-bit mYm (no DataJoint writes them: DataJoint reads them with use_32bit_dims)
    "row": b"mYm\0" + _ROW32,
    "text": b"mYm\0" + _TEXT32,
    "struct": b"mYm\0" + _STRUCT32,
    "cell": b"mYm\0C" + _u32(2, 2, 1) + _framed32(_ROW32) + _framed32(_TEXT32),
    "matrix": b"mYm\0" + _array32((2, 2, 1), 12, struct.pack("<4i", 1, 2, 3, 4)),
    "compressed": b"ZL123\0" + _u32(len(b"mYm\0" + _STRUCT32)) + zlib.compress(b"mYm\0" + _STRUCT32),
}


def _dj_python(version: str) -> str:
    path = datajoint_pythons().get(version)
    if not path or not Path(path).exists():
        unavailable(
            f"no interpreter with DataJoint {version} (run tests/cluster/ensure-datajoint.sh and set "
            "DJHPC_DATAJOINT_PYTHONS)"
        )
    return path


def _dj_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env["PYTHONPATH"] = str(ROOT / "tests")  # support.blobcheck; not tests/support, whose datajoint.py shadows
    env.update(extra)
    return env


def _run_datajoint(python: str, code: str, tmp: Path, *args: str, **env) -> None:
    done = subprocess.run([python, "-c", code, *args], env=_dj_env(**env), capture_output=True, text=True,
                          timeout=300, cwd=tmp)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _value(expr: str):
    return eval(expr, NS)  # the tests' own expressions, as on DataJoint's side


@pytest.fixture(scope="module", params=["0.14", "2"])
def datajoint(request, tmp_path_factory):
    """(version, {expression: what DataJoint made of it}), for CASES and DJHPC_ONLY, in one subprocess."""
    python = _dj_python(request.param)
    tmp = tmp_path_factory.mktemp(f"dj{request.param}")
    exprs = [e for e, _ in CASES] + DJHPC_ONLY
    cases = [{"expr": e, "djhpc_hex": pack(_value(e)).hex()} for e in exprs]
    cases += [{"dims32_hex": data.hex()} for data in DIMS32.values()]
    (tmp / "in.json").write_text(json.dumps(cases))
    _run_datajoint(python, _DATAJOINT_SIDE, tmp, str(tmp / "in.json"), str(tmp / "out.json"))
    results = json.loads((tmp / "out.json").read_text())
    return request.param, dict(zip(exprs + [f"dims32:{name}" for name in DIMS32], results, strict=True))


def _flags(expr: str) -> str:
    return dict(CASES).get(expr, "")


def _readable_by(version: str, expr: str) -> bool:
    return not (version == "0.14" and "dj2" in _flags(expr))


def test_djhpc_reads_what_datajoint_writes_as_datajoint_does(datajoint):
    version, results = datajoint
    mismatches = []
    for expr, _ in CASES:
        got = results[expr]
        if "dj_hex" not in got:
            mismatches.append(f"{expr}: DataJoint {version} cannot pack it: {got['dj_error']}")
            continue
        if not _readable_by(version, expr):
            continue
        for squeeze, name in ((False, "dj_back"), (True, "dj_squeezed")):
            try:
                mine = describe(unpack(bytes.fromhex(got["dj_hex"]), squeeze=squeeze))
            except BlobError as e:
                mine = f"BlobError: {e}"
            if name + "_error" in got and mine.startswith("BlobError"):
                continue  # DataJoint cannot read it either (a squeezed record field is no array)
            if mine != got.get(name):
                mismatches.append(f"{expr} (squeeze={squeeze}): djhpc {mine} != DataJoint {got.get(name)}")
    assert not mismatches, "\n".join(mismatches)


def test_datajoint_reads_what_djhpc_writes_as_djhpc_does(datajoint):
    version, results = datajoint
    mismatches = []
    for expr in [e for e, _ in CASES] + DJHPC_ONLY:
        got = results[expr]
        if not _readable_by(version, expr):
            continue
        if expr.startswith("dt.timedelta") or "timedelta" in expr:
            assert "Unknown data structure code" in got.get("from_djhpc_error", ""), got
            continue
        if "from_djhpc_error" in got:
            mismatches.append(f"{expr}: DataJoint {version} cannot read djhpc's blob: {got['from_djhpc_error']}")
            continue
        mine = describe(unpack(pack(_value(expr))))
        if got["from_djhpc"] != mine:
            mismatches.append(f"{expr}: DataJoint {got['from_djhpc']} != djhpc {mine}")
        if "dj_back" in got and got["dj_back"] != got["from_djhpc"] and "charorder" not in _flags(expr):
            mismatches.append(
                f"{expr}: DataJoint reads djhpc's blob as {got['from_djhpc']}, its own as {got['dj_back']}"
            )
    assert not mismatches, "\n".join(mismatches)


def test_djhpc_writes_datajoints_bytes(datajoint):
    version, results = datajoint
    different = [
        expr
        for expr, flags in CASES
        if flags not in ("order", "charorder") and pack(_value(expr)).hex() != results[expr]["dj_hex"]
    ]
    assert not different, f"djhpc's bytes differ from DataJoint {version}'s for {different}"


def test_32bit_mym_blobs_read_as_datajoint_reads_them(datajoint, monkeypatch):
    version, results = datajoint
    monkeypatch.setattr(blob, "use_32bit_dims", True)
    for name, data in DIMS32.items():
        got = results[f"dims32:{name}"]
        if name == "cell" and version == "0.14":
            continue  # DataJoint 0.14 builds cell arrays with np.array, which refuses ragged items
        assert describe(unpack(data)) == got["dj_back"], name
        assert describe(unpack(data, squeeze=True)) == got["dj_squeezed"], name
    monkeypatch.setattr(blob, "use_32bit_dims", False)
    with pytest.raises(BlobError):
        unpack(DIMS32["struct"])  # without the setting, the same bytes do not parse


def test_djhpc_only_values_are_refused_by_datajoint(datajoint):
    """The values of DJHPC_ONLY are ones DataJoint cannot write: djhpc's handling of them is an addition."""
    _, results = datajoint
    assert all("dj_error" in results[e] for e in DJHPC_ONLY), {e: results[e].get("dj_error") for e in DJHPC_ONLY}


# ------------------------------------------------------------------------------- in this process alone


def test_protocols_and_compression_are_chosen_as_datajoint_does():
    assert pack(np.arange(3.0)).startswith(b"mYm\0")  # MATLAB's types only
    assert pack(NS["cell"]([np.zeros((1, 1))], (1, 1))).startswith(b"mYm\0")
    assert pack([1]).startswith(b"dj0\0") and pack(np.float64(1)).startswith(b"dj0\0")  # 0-d: not MATLAB's
    assert pack(NS["cell"](["s"], (1, 1))).startswith(b"dj0\0")  # a str inside a cell
    assert pack(np.zeros(10000)).startswith(b"ZL123\0")
    assert pack(np.zeros(10000), compress=False).startswith(b"mYm\0")
    noise = np.random.default_rng(0).integers(0, 256, 2000, dtype="u1")
    assert pack(noise).startswith(b"mYm\0")  # compressing would make it longer
    assert len(pack(b"\0" * 900)) < 1000 and pack(b"\0" * 900).startswith(b"dj0\0")


def test_matlab_chars_keep_their_order_and_code_points():
    matrix = np.array([[b"a", b"b", b"c"], [b"d", b"e", b"f"]], dtype="S1")
    assert unpack(pack(matrix)).tolist() == [["a", "b", "c"], ["d", "e", "f"]]
    text = "é漢 x"  # MATLAB writes UTF-16 code units; DataJoint keeps only their low bytes
    row = b"mYm\0A" + _u64(2, 1, len(text)) + struct.pack("<II", 4, 0) + text.encode("utf-16-le")
    assert unpack(row).tolist() == [text]


def test_types_come_back_as_datajoint_gives_them():
    assert type(unpack(pack(frozenset({1})))) is set
    assert type(unpack(pack(bytearray(b"x")))) is bytes
    assert type(unpack(pack(np.float32(1)))) is np.float32
    assert type(unpack(pack(np.array(5)))) is np.int64
    assert unpack(pack(np.array(["a", "bc"]))).dtype == object
    rec = unpack(pack(np.zeros(2, dtype=[("a", "i4")])))
    assert type(rec) is np.recarray and rec.dtype.names == ("a",)
    assert type(unpack(pack(NS["struct"]({"a": [1]}, (1, 1))))) is MatStruct
    assert type(unpack(pack(NS["cell"]([1], (1, 1))))) is MatCell
    assert unpack(pack(np.array([b"a", b"b"], dtype="S1"))).tolist() == ["ab"]  # a MATLAB char row is a string
    assert unpack(pack(np.arange(4.0))).flags.writeable  # a copy, not a read-only view of the blob
    assert unpack(pack(dt.timedelta(days=-3, microseconds=5))) == dt.timedelta(days=-3, microseconds=5)


def _no_fold(t):
    return t.replace(fold=0)  # DataJoint's format keeps no fold (which matters only with a time zone)


_hashable = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**300), 2**300), st.floats(), st.complex_numbers(),
    st.text(), st.binary(), st.datetimes().map(_no_fold), st.dates(), st.times().map(_no_fold), st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=True).filter(lambda d: not d.is_snan()),
)  # fmt: skip
_values = st.recursive(
    _hashable,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple), st.sets(_hashable, max_size=3),
        st.dictionaries(_hashable, inner, max_size=3),
    ),
    max_leaves=15,
)  # fmt: skip


@FAST
@given(_values)
def test_python_values_round_trip_exactly(value):
    assert describe(unpack(pack(value))) == describe(value)


REFUSED = [
    (object(), "cannot store object in a blob"),
    (iter([]), "cannot store list_iterator"),
    (dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), "time zone"),
    (dt.time(1, tzinfo=dt.timezone.utc), "time zone"),
    (np.zeros(2, dtype=np.float16), "dtype float16"),
    (np.zeros(2, dtype="S3"), "dtype |S3"),
    (np.zeros(2, dtype="m8[s]"), "dtype timedelta64"),
    (np.timedelta64(5, "s"), "numpy.timedelta64"),
    (np.zeros(2, dtype="M8"), "dtype datetime64"),
    (np.void(b"ab"), "numpy.void"),
    ("a\ud800", "lone surrogate"),
    (2 ** (8 * 70000), "65535 bytes"),
    (np.zeros(2, dtype=[("a", "i4", (3,))]), "subarray"),
]


_array_dtypes = st.sampled_from([np.dtype(t) for t in _NUMERIC] + [np.dtype(f"M8[{u}]") for u in _UNITS])


@settings(FAST, max_examples=100)
@given(
    hnp.arrays(_array_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
    st.sampled_from(["C", "F", "T", "step"]),
)
def test_numpy_arrays_round_trip_with_their_dtype_shape_and_bits(a, layout):
    a = {"F": np.asfortranarray(a), "T": a.T, "step": a[::2] if a.ndim else a}.get(layout, a)
    got = unpack(pack(a))
    if a.ndim == 0:
        assert type(got) is a.dtype.type  # a 0-d array comes back as its numpy scalar, as DataJoint reads it
        got = np.asarray(got)
    assert got.dtype == a.dtype and got.shape == a.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(("value", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_what_datajoints_format_cannot_hold_is_refused_in_one_line(value, message):
    with pytest.raises(BlobError, match=message.replace("|", "\\|")) as info:
        pack(value)
    assert "\n" not in str(info.value)


def _nest(levels: int, wrap):
    value = 0
    for _ in range(levels):
        value = wrap(value)
    return value


@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: (v,), lambda v: {"k": v}, lambda v: NS["obj"]([v])])
def test_nesting_is_limited_both_ways(wrap):
    assert describe(unpack(pack(_nest(MAX_DEPTH, wrap)))) == describe(_nest(MAX_DEPTH, wrap))
    with pytest.raises(BlobError, match=f"nested deeper than {MAX_DEPTH}"):
        pack(_nest(MAX_DEPTH + 1, wrap))
    loop = [1]
    loop.append(loop)
    with pytest.raises(BlobError, match="nested deeper"):
        pack(loop)


def _u64(*n: int) -> bytes:
    return struct.pack(f"<{len(n)}Q", *n)


def _deep_list(levels: int) -> bytes:
    """``levels`` lists one inside the other, framed as DataJoint frames them, around None."""
    heads = [b"\x02" + _u64(1, 1 + 17 * inner) for inner in reversed(range(levels))]  # 17: a list's head
    return b"dj0\0" + b"".join(heads) + b"\xff"


def test_deep_nesting_in_a_blob_is_refused_fast():
    expected = None
    for _ in range(MAX_DEPTH):
        expected = [expected]
    assert unpack(_deep_list(MAX_DEPTH)) == expected
    start = time.perf_counter()
    for levels in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(BlobError, match="nested deeper"):
            unpack(_deep_list(levels))
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(
    "data",
    [
        b"dj0\0\x05" + _u64(2**63),  # a string of 2**63 bytes
        b"dj0\0\x06" + _u64(2**64 - 1),
        b"dj0\0\x02" + _u64(2**62),  # a list of 2**62 items
        b"dj0\0\x04" + _u64(2**40) + _u64(1) + b"\xff",
        b"dj0\0\x02" + _u64(1, 2**63) + b"\xff",  # an item longer than the blob
        b"mYm\0A" + _u64(2, 2**32, 2**32) + struct.pack("<II", 6, 0),  # 2**64 doubles
        b"mYm\0A" + _u64(1, 2**61) + struct.pack("<II", 6, 1) + bytes(16),
        b"mYm\0A" + _u64(2**60),  # 2**60 dimensions
        b"mYm\0A" + _u64(1, 2**40) + struct.pack("<II", 5, 0),  # 2**40 framed items
        b"mYm\0A" + _u64(1, 2**40) + struct.pack("<II", 4, 0),  # 2**40 chars
        b"mYm\0C" + _u64(3, 2**30, 2**30, 2**30),
        b"mYm\0S" + _u64(1, 2**40) + struct.pack("<I", 2**31) + b"a\0",
        b"dj0\0F" + struct.pack("<I", 2**32 - 1) + b"a\0",
        b"dj0\0\x0a" + struct.pack("<H", 65535),
        b"dj0\0d" + _u64(2**50),
        b"ZL123\0" + _u64(2**62) + zlib.compress(b"mYm\0\xff"),  # more than the stream can expand to
        b"ZL123\0" + _u64(5) + zlib.compress(b"dj0\0\xff" + bytes(100)),  # fewer bytes than the stream holds
        b"ZL123\0" + _u64(100) + b"not zlib at all",
        b"ZL123\0" + _u64(3),
    ],
)
def test_absurd_sizes_fail_fast_without_allocating(data):
    start = time.perf_counter()
    with pytest.raises(BlobError) as info:
        unpack(data)
    assert time.perf_counter() - start < 1 and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"dj0\0",  # no value
        b"dj0\0?",  # unknown code
        b"dj0\0\xff\xff",  # trailing bytes
        b"dj0\0\x05" + _u64(2) + b"\xc3\x28",  # invalid UTF-8
        b"dj0\0t" + struct.pack("<iq", 20201301, -1),  # month 13
        b"dj0\0t" + struct.pack("<iq", -1, 25 * 10**10),  # hour 25
        b"dj0\0d" + _u64(3) + b"abc",  # not a decimal
        b"dj0\0\x04" + _u64(1) + _u64(19) + b"\x02" + _u64(1) + _u64(1) + b"\xff" + _u64(1) + b"\xff",  # list key
        b"dj0\0\x02" + _u64(1, 2) + b"\xff",  # a frame longer than its item
        b"dj0\0\x02" + _u64(1, 1) + b"\x0b\x01",  # a frame shorter than its item
        b"mYm\0A" + _u64(1, 1) + struct.pack("<II", 99, 0) + bytes(8),  # unknown array type
        b"mYm\0A" + _u64(1, 1) + struct.pack("<II", 65536, 1) + bytes(16),  # complex datetimes
        b"mYm\0P",  # MATLAB sparse
        b"mYm\0S" + _u64(1, 1) + struct.pack("<I", 2) + b"a\0a\0" + (_u64(1) + b"\xff") * 2,  # duplicate fields
        b"mYm\0S" + _u64(1, 1) + struct.pack("<I", 1) + b"abc",  # an unterminated field name
        b"dj0\0F" + struct.pack("<I", 1) + b"a\0\xff",  # a record field that is no array
        b"dj0\0\xfe" + struct.pack("<iII", 0, 86400, 0),  # a timedelta's seconds out of range
        b"djhpc",  # djhpc's own magic, cut short
        b"\x80\x04\x95N.",  # a pickle
        b"",
    ],
)
def test_corrupt_blobs_are_refused_in_one_line(data):
    with pytest.raises(BlobError) as info:
        unpack(data)
    assert "\n" not in str(info.value)


HOSTILE_SEEDS = [
    [1, "two", {"three": (3.0, None, b"4")}, {5, 6}],
    {"when": dt.datetime(2020, 1, 2, 3, 4, 5), "id": uuid.UUID(int=9), "d": decimal.Decimal("1.5")},
    np.arange(12, dtype="i2").reshape(3, 4),
    np.array([1 + 2j, 3 - 4j], dtype="c8"),
    np.array(["a", "bc"]),
    np.zeros(2, dtype=[("a", "i4"), ("b", [("c", "f8")])]),
    NS["cell"]([np.array([[1.0]]), "x"], (1, 2)),
    NS["struct"]({"a": [np.zeros((1, 1)), None], "b": ["s", [1]]}, (2, 1)),
    np.array([b"a", b"b"], dtype="S1"),
    np.array(["2020-01-01"], dtype="M8[D]"),
    list(range(400)),  # compressed
    np.zeros(2000),  # compressed
]


@pytest.mark.parametrize("value", HOSTILE_SEEDS, ids=lambda v: type(v).__name__)
def test_every_truncation_raises_blob_error(value):
    data = pack(value)
    start = time.perf_counter()
    for cut in range(len(data)):
        with pytest.raises(BlobError):
            unpack(data[:cut])
    assert time.perf_counter() - start < 10


def _mutate(data: bytes, draw) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif len(buf) > 1:
            del buf[pos]
    return bytes(buf)


def _unpack_or_blob_error(data: bytes) -> None:
    try:
        unpack(data)
    except BlobError:
        pass


@FAST
@given(st.sampled_from(range(len(HOSTILE_SEEDS))), st.booleans(), st.data())
def test_mutated_blobs_raise_blob_error_only(seed, compress, data):
    packed = pack(HOSTILE_SEEDS[seed], compress=compress)
    _unpack_or_blob_error(_mutate(packed, data.draw))


@FAST
@given(st.sampled_from([b"mYm\0", b"dj0\0"]), st.binary(max_size=200))
def test_random_bodies_raise_blob_error_only(head, body):
    _unpack_or_blob_error(head + body)


@FAST
@given(st.binary(max_size=300))
def test_random_compressed_blobs_raise_blob_error_only(body):
    inner = b"dj0\0" + body
    _unpack_or_blob_error(b"ZL123\0" + _u64(len(inner)) + zlib.compress(inner))


def test_bypass_serialization_hands_blobs_through_as_datajoints(monkeypatch):
    data = pack({"k": [1, 2]})
    monkeypatch.setattr(blob, "bypass_serialization", True)
    assert unpack(data) is data and pack(data) is data
    with pytest.raises(BlobError, match="bypass_serialization is set, so pack takes the bytes of a blob"):
        pack({"k": 1})
    with pytest.raises(BlobError, match="bypass_serialization is set"):
        unpack(b"not a blob")


def test_djhpcs_older_blobs_stay_readable():
    value = {"k": [1, 2.5, "x", np.arange(3), dt.timedelta(seconds=1)]}
    old = blob_v1.pack(value)
    assert old.startswith(b"djhpc\0") and not pack(value).startswith(b"djhpc")
    got = unpack(old)
    assert got["k"][:3] == [1, 2.5, "x"] and np.array_equal(got["k"][3], np.arange(3))


def test_decoding_runs_no_pickle_or_eval(monkeypatch):
    import builtins
    import pickle

    blobs = [pack(v) for v in HOSTILE_SEEDS]

    def forbidden(*args, **kwargs):
        raise AssertionError("the blob decoder must not call this")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    imported = []
    real_import = builtins.__import__

    def spy(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spy)
    try:
        for data in blobs:
            unpack(data)
    finally:
        monkeypatch.undo()
    assert all(name.split(".")[0] == "numpy" for name in imported), imported  # numpy's own lazy imports


def test_reading_big_arrays_is_fast():
    a = np.random.default_rng(0).random((1000, 1000))
    data = pack(a, compress=False)
    start = time.perf_counter()
    assert np.array_equal(unpack(data), a)
    assert time.perf_counter() - start < 2


# ------------------------------------------------------------------------------------- through MariaDB

_STORE_014 = """
@schema
class Store(dj.Manual):
    definition = '''
    id : int
    ---
    value : longblob
    '''
"""
_STORE_2 = _STORE_014.replace("longblob", "<blob>")

_DATAJOINT_DB_SIDE = r"""
import json, sys
import datajoint as dj
from support import blobcheck
from datajoint.blob import MatCell, MatStruct

ns = blobcheck.namespace(MatCell, MatStruct)
if dj.__version__.startswith("0."):
    dj.config["database.use_tls"] = False  # the test server has no TLS; 0.14 would insist on it
schema = dj.Schema(sys.argv[1])
exec(sys.argv[2])  # the table's class, declared with this DataJoint's syntax
if sys.argv[3] == "insert":
    exprs = json.load(open(sys.argv[4]))
    Store.insert([(i, eval(e, ns)) for i, e in enumerate(exprs)])
    rows = Store.fetch(order_by="id", as_dict=True)
else:
    rows = (Store & "id >= 1000").fetch(order_by="id", as_dict=True)
json.dump([[r["id"], blobcheck.describe(r["value"])] for r in rows], open(sys.argv[5], "w"))
"""

DB_CASES = ["[1, 'two', {'three': 3.0}]", "np.arange(6.0).reshape(2, 3)", "np.zeros(20000)",
            "np.array(['a', 'bc'])", "dt.datetime(2024, 2, 29, 12, 30)", "uuid.UUID(int=5)",
            "np.zeros(2, dtype=[('a', 'i4'), ('b', 'f8')])", "{'k': (1, None, b'x')}", "np.float32(2.5)",
            "struct({'a': ['one']}, (1, 1))"]  # fmt: skip


@pytest.mark.mysql
@pytest.mark.parametrize("version", ["0.14", "2"])
def test_rows_written_by_datajoint_are_read_by_djhpc_and_back(version, tmp_path):
    import djhpc as dj

    python = _dj_python(version)
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    name = "djhpc_blob_" + uuid.uuid4().hex[:10]
    env = {"DJ_HOST": "127.0.0.1", "DJ_USER": "root", "DJ_PASS": ""}
    table = _STORE_014 if version == "0.14" else _STORE_2
    (tmp_path / "in.json").write_text(json.dumps(DB_CASES))
    connection = dj.conn("mysql://root@127.0.0.1:3306", reset=True)
    try:
        _run_datajoint(python, _DATAJOINT_DB_SIDE, tmp_path, name, table, "insert", str(tmp_path / "in.json"),
                       str(tmp_path / "dj.json"), **env)  # fmt: skip
        written = json.loads((tmp_path / "dj.json").read_text())

        schema = dj.Schema(name, connection=connection)

        @schema
        class Store(dj.Manual):
            definition = "id : int\n---\nvalue : longblob\n"

        ids, values = Store.fetch("id", "value", order_by="id")
        assert [[int(i), describe(v)] for i, v in zip(ids, values, strict=True)] == written

        Store.insert([(1000 + i, _value(e)) for i, e in enumerate(DB_CASES)])
        _run_datajoint(python, _DATAJOINT_DB_SIDE, tmp_path, name, table, "fetch", "-", str(tmp_path / "back.json"),
                       **env)  # fmt: skip
        back = json.loads((tmp_path / "back.json").read_text())
        assert back == [[1000 + i, describe(unpack(pack(_value(e))))] for i, e in enumerate(DB_CASES)]
        assert [d for _, d in back] == [d for _, d in written]  # the same values, whoever wrote them
    finally:
        connection.close()
        root_query(f"DROP DATABASE IF EXISTS `{name}`")
