"""Tests of djhpc's own older blob format (djhpc/blob_v1.py), which djhpc.blob still reads: exact round trips,
numpy arrays, fuzzed input, limits and the no-pickle promise. The blobs are made with blob_v1.pack, as djhpc made
them before it wrote DataJoint's format (tests/test_blob_datajoint.py)."""

import ast
import builtins
import datetime as dt
import decimal
import math
import pickle
import struct
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djhpc import blob, blob_dj, blob_v1
from djhpc.blob import unpack
from djhpc.blob_v1 import MAGIC, MAX_DEPTH, VERSION, pack
from djhpc.errors import BlobError

HEADER = MAGIC + bytes([VERSION])
UNSUPPORTED = "in a blob: use numbers, strings, bytes, lists, dicts, datetimes or numpy arrays"
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(FAST, max_examples=100)

try:
    import numpy as np
except ImportError:  # pragma: no cover - the numpy tests skip themselves
    np = None


# ------------------------------------------------------------------------------------------- strict equality


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _le_bytes(a) -> bytes:
    """The C-order little-endian bytes of a numeric or record array (padding zeroed when converting)."""
    le = a.dtype.newbyteorder("<")
    if a.dtype != le:
        b = np.zeros(a.shape, le)
        b[...] = a
        a = b
    return np.ascontiguousarray(a).tobytes()


def same(a, b) -> bool:
    """Equal value AND equal type, all the way down; floats compared by bit pattern."""
    if type(a) is not type(b):
        return False
    t = type(a)
    if t is float:
        return _float_bits(a) == _float_bits(b)
    if t is complex:
        return _float_bits(a.real) == _float_bits(b.real) and _float_bits(a.imag) == _float_bits(b.imag)
    if t is decimal.Decimal:
        return str(a) == str(b)  # also exact for sNaN, which refuses ==
    if t in (dt.datetime, dt.time):
        return (
            a == b
            and a.fold == b.fold
            and (a.tzinfo is None) == (b.tzinfo is None)
            and a.utcoffset() == b.utcoffset()
            and a.tzname() == b.tzname()
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
        )
    if t in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if t is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if t in (set, frozenset):
        rest = list(b)
        for x in a:
            match = next((i for i, y in enumerate(rest) if same(x, y)), None)
            if match is None:
                return False
            rest.pop(match)
        return not rest
    if np is not None:
        if t is np.ndarray:
            if a.shape != b.shape or a.dtype.newbyteorder("<") != b.dtype.newbyteorder("<"):
                return False
            if a.dtype.kind == "O":
                return all(same(x, y) for x, y in zip(a.reshape(-1), b.reshape(-1), strict=True))
            return _le_bytes(a) == _le_bytes(b)
        if isinstance(a, np.generic):  # record scalars come back in native byte order, like arrays
            if a.dtype.newbyteorder("<") != b.dtype.newbyteorder("<"):
                return False
            if isinstance(a, (str, bytes)):
                return str.__eq__(a, b) if isinstance(a, str) else bytes.__eq__(a, b)
            return _le_bytes(np.asarray(a)) == _le_bytes(np.asarray(b))
    return a == b


def roundtrip(value):
    got = unpack(pack(value))
    assert same(value, got), (value, got)
    return got


# ----------------------------------------------------------------------------------------------- strategies

_MAX_OFFSET = dt.timedelta(hours=24) - dt.timedelta(microseconds=1)
offsets = st.timedeltas(min_value=-_MAX_OFFSET, max_value=_MAX_OFFSET)
fixed_zones = st.builds(dt.timezone, offsets) | st.builds(dt.timezone, offsets, st.text(max_size=6))
any_text = st.text() | st.text(st.characters(codec=None, exclude_categories=()), max_size=8)  # surrogates too

hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),
    st.complex_numbers(),
    any_text,
    st.binary(),
    st.datetimes(timezones=st.none() | fixed_zones),
    st.dates(),
    st.times(timezones=st.none() | fixed_zones),
    st.timedeltas(),
    st.decimals(allow_nan=True, allow_infinity=True).filter(lambda d: not d.is_snan()),
    st.uuids(),
)
scalars = hashable_scalars | st.binary().map(bytearray) | st.decimals(allow_nan=True)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(hashables, children, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=20,
)


# ------------------------------------------------------------------------------------------ round trips


@FAST
@given(values)
def test_any_supported_value_round_trips_exactly(value):
    roundtrip(value)


def test_bool_is_not_int():
    assert pack(True) != pack(1) and pack(False) != pack(0)
    assert unpack(pack(True)) is True and unpack(pack(False)) is False
    assert type(unpack(pack(1))) is int and type(unpack(pack(0))) is int
    got = roundtrip([True, 1, False, 0, {True: 1, 0: False}])
    assert [type(x) for x in got[:4]] == [bool, int, bool, int]


def test_floats_keep_sign_nan_and_infinities():
    assert math.copysign(1.0, unpack(pack(-0.0))) == -1.0
    for x in (float("nan"), -float("nan"), float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308):
        assert _float_bits(unpack(pack(x))) == _float_bits(x)
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_1234))[0]
    assert _float_bits(unpack(pack(payload_nan))) == _float_bits(payload_nan)
    roundtrip(complex(-0.0, float("nan")))


@pytest.mark.parametrize(
    "n",
    [0, 1, -1, 127, 128, -128, -129, 255, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 3**500, -(7**900)],
)
def test_ints_of_any_size(n):
    assert unpack(pack(n)) == n and type(unpack(pack(n))) is int


def test_small_ints_are_compact():
    assert len(pack(5)) - len(HEADER) <= 3
    assert len(pack(-100)) - len(HEADER) <= 3


def test_strings_bytes_and_bytearray():
    roundtrip("a\0b\U0010ffff\ud800 é 漢字 😀")
    roundtrip(b"\0\xff" * 10)
    assert type(roundtrip(bytearray(b"xyz"))) is bytearray


def test_containers_keep_type_and_order():
    got = roundtrip({"b": (1, [2]), "a": {3, 4}, (1, "x"): frozenset({5}), None: {}, 2.5: ()})
    assert list(got) == ["b", "a", (1, "x"), None, 2.5]
    assert type(got["b"]) is tuple and type(got[(1, "x")]) is frozenset


def test_datetimes_decimals_uuids():
    cet = dt.timezone(dt.timedelta(hours=1), "CET")
    for v in (
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=cet),
        dt.datetime(2024, 1, 1, tzinfo=dt.timezone(-dt.timedelta(hours=23, seconds=1, microseconds=7))),
        dt.date(9999, 12, 31),
        dt.time(23, 59, 59, 1, tzinfo=cet, fold=1),
        dt.timedelta(days=-999999999),
        dt.timedelta.max,
        decimal.Decimal("-0.000"),
        decimal.Decimal("1E+999999"),
        decimal.Decimal("-Infinity"),
        decimal.Decimal("NaN42"),
        decimal.Decimal("-sNaN"),
        uuid.UUID(int=0),
        uuid.uuid4(),
    ):
        roundtrip(v)
    assert unpack(pack(dt.datetime(2020, 1, 1, tzinfo=cet))).tzname() == "CET"
    assert unpack(pack(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))).tzinfo is dt.timezone.utc


class Opaque:
    pass


class LocalZone(dt.tzinfo):
    def utcoffset(self, when):
        return dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (Opaque(), "Opaque"),
        (lambda: 1, "function"),
        ([1, {"k": object()}], "object"),
        (iter([]), "list_iterator"),
        (memoryview(b"x"), "memoryview"),
        (True.__class__, "type"),
    ],
)
def test_unsupported_types_are_refused_with_a_clear_message(value, name):
    with pytest.raises(BlobError) as info:
        pack(value)
    message = str(info.value)
    assert message.startswith("cannot store ") and message.endswith(UNSUPPORTED) and name in message
    assert "\n" not in message


def test_subclasses_are_refused_not_silently_converted():
    class MyInt(int):
        pass

    with pytest.raises(BlobError, match="cannot store .*MyInt in a blob"):
        pack(MyInt(3))


def test_non_fixed_timezones_are_refused():
    with pytest.raises(BlobError, match="fixed offset"):
        pack(dt.datetime(2020, 1, 1, tzinfo=LocalZone()))


# ------------------------------------------------------------------------------------------------- limits


def _nest(levels: int, wrap):
    value = 0
    for _ in range(levels):
        value = wrap(value)
    return value


def _depth(value) -> int:
    levels = 0
    while isinstance(value, (list, tuple, dict)):
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        levels += 1
    assert value == 0
    return levels


@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: (v,), lambda v: {"k": v}])
def test_nesting_limit_on_pack(wrap):
    assert _depth(unpack(pack(_nest(MAX_DEPTH, wrap)))) == MAX_DEPTH
    with pytest.raises(BlobError, match="nested deeper than 1000"):
        pack(_nest(MAX_DEPTH + 1, wrap))


def test_self_containing_values_are_refused():
    loop = [1]
    loop.append(loop)
    with pytest.raises(BlobError, match="nested deeper"):
        pack(loop)
    d = {}
    d["d"] = d
    with pytest.raises(BlobError, match="nested deeper"):
        pack(d)


def test_nesting_limit_on_unpack():
    assert _depth(unpack(HEADER + b"l\x01" * MAX_DEPTH + b"i\x01\x00")) == MAX_DEPTH
    with pytest.raises(BlobError, match="nested deeper than 1000"):
        unpack(HEADER + b"l\x01" * (MAX_DEPTH + 1) + b"N")
    with pytest.raises(BlobError, match="nested deeper than 1000"):
        unpack(HEADER + b"l\x01" * 100_000 + b"N")


def test_unknown_version_is_named():
    for version in (0, 2, 255):
        with pytest.raises(BlobError, match=f"version {version} is not supported"):
            unpack(MAGIC + bytes([version]) + b"N")


@pytest.mark.parametrize("data", [b"", b"djhpc", MAGIC, b"\x80\x04\x95N.", b"NOTABLOB" * 3])
def test_not_a_blob(data):
    with pytest.raises(BlobError, match="not a (djhpc )?blob"):
        unpack(data)


def test_unpack_wants_bytes():
    with pytest.raises(BlobError, match="needs bytes"):
        unpack("djhpc")
    assert unpack(bytearray(pack([1]))) == [1] and unpack(memoryview(pack(2))) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"s" + b"\x80" * 9 + b"\x7f",  # 2**63-ish string length
        b"b\xff\xff\xff\xff\x0f",
        b"i\xff\xff\xff\xff\x0f\x01",
        b"l\xff\xff\xff\xff\xff\xff\x01",
        b"d\xff\xff\xff\xff\xff\xff\x01",
        b"s" + b"\xff" * 20,  # varint that never ends
        b"A\x00\x03<f8\x02\xff\xff\xff\xff\x0f\xff\xff\xff\xff\x0f",  # 2**64 doubles
        b"O\x01\xff\xff\xff\xff\xff\x01",
    ],
)
def test_absurd_lengths_fail_fast(body):
    with pytest.raises(BlobError):
        unpack(HEADER + body)


@pytest.mark.parametrize(
    "body",
    [
        b"N\x00",  # trailing byte
        b"?",  # unknown tag
        b"i\x02\x01\x00",  # non-canonical int
        b"i\x00",
        b"s\x02\xc3\x28",  # invalid UTF-8
        b"l\x02NN\x00",
        b"d\x01l\x00N",  # unhashable key
        b"d\x02i\x01\x01Ni\x01\x01N",  # duplicate key
        b"e\x02TT",  # duplicate set element
        b"a\x00\x00\x01\x01",  # year 0
        b"r" + struct.pack("<iII", 0, 86400, 0),  # non-canonical timedelta
        b"m\x03abc",  # bad decimal
        b"m\x03nan",  # non-canonical decimal
        b"D" + struct.pack("<HBBBBBIB", 2020, 1, 1, 0, 0, 0, 0, 0) + b"\x01" + struct.pack("<q", 86400 * 10**6),
    ],
)
def test_corrupt_blobs_are_refused(body):
    with pytest.raises(BlobError) as info:
        unpack(HEADER + body)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------- fuzzing


def _unpack_or_blob_error(data: bytes) -> None:
    try:
        unpack(data)
    except BlobError:
        pass


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_raise_blob_error_only(data):
    _unpack_or_blob_error(data)


@FAST
@given(st.binary(max_size=300))
def test_random_bodies_raise_blob_error_only(data):
    _unpack_or_blob_error(HEADER + data)


@FUZZ
@given(values, st.data())
def test_truncated_blobs_raise_blob_error(value, data):
    packed = pack(value)
    cut = data.draw(st.integers(0, len(packed) - 1))
    with pytest.raises(BlobError):
        unpack(packed[:cut])


@FUZZ
@given(values, st.binary(min_size=1, max_size=20))
def test_trailing_garbage_raises_blob_error(value, garbage):
    with pytest.raises(BlobError):
        unpack(pack(value) + garbage)


def _mutate(packed: bytes, data) -> bytes:
    buf = bytearray(packed)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if op == "flip":
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            buf[pos] = data.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=9))
        elif len(buf) > 1:
            del buf[pos]
    return bytes(buf)


@FUZZ
@given(values, st.data())
def test_mutated_blobs_raise_blob_error_only(value, data):
    _unpack_or_blob_error(_mutate(pack(value), data))


# -------------------------------------------------------------------------------------------- no code runs


def test_decoder_never_calls_pickle_eval_or_import(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the blob decoder must not call this")

    corpus = [
        None,
        [1, 2.5, "x", b"y", {"k": (True, frozenset({1}))}],
        dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        decimal.Decimal("1.5"),
        uuid.UUID(int=5),
    ]
    if np is not None:
        corpus += [
            np.arange(6.0).reshape(2, 3),
            np.zeros(2, dtype=[("a", "<i4"), ("b", "U2", (2,))]),
            np.array([1, "a", None], dtype=object),
            np.float32(1.5),
            np.datetime64("2020-01-01", "D"),
        ]
    blobs = [pack(v) for v in corpus]
    for name in ("loads", "load", "Unpickler", "dumps", "dump"):
        monkeypatch.setattr(pickle, name, forbidden)
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    imported = []
    real_import = builtins.__import__

    def spy(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spy)
    for value, data in zip(corpus, blobs, strict=True):
        assert same(value, unpack(data))
    monkeypatch.undo()
    assert all(name.split(".")[0] == "numpy" for name in imported), imported  # numpy's own lazy imports


@pytest.mark.parametrize("module", [blob, blob_dj, blob_v1], ids=lambda m: m.__name__)
def test_module_source_has_no_pickle_eval_or_dynamic_import(module):
    tree = ast.parse(Path(module.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module)
        elif isinstance(node, ast.Name):
            assert node.id not in {"eval", "exec", "compile", "__import__", "getattr_static"}, node.id
    assert modules <= {
        "__future__",
        "collections.abc",
        "datetime",
        "decimal",
        "re",
        "struct",
        "sys",
        "uuid",
        "zlib",
        "djhpc",
        "djhpc.blob_dj",
        "djhpc.errors",
        "numpy",
    }


# ----------------------------------------------------------------------------------------------------- numpy

if np is not None:
    from hypothesis.extra import numpy as hnp

    leaf_dtypes = st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(),
        hnp.unsigned_integer_dtypes(),
        hnp.floating_dtypes(sizes=(16, 32, 64)),
        hnp.complex_number_dtypes(sizes=(64, 128)),
        hnp.datetime64_dtypes(),
        hnp.timedelta64_dtypes(),
        hnp.unicode_string_dtypes(max_len=4),
        hnp.byte_string_dtypes(max_len=4),
    )
    all_dtypes = st.one_of(
        leaf_dtypes,
        hnp.array_dtypes(leaf_dtypes, max_size=3),
        hnp.array_dtypes(leaf_dtypes, max_size=2, allow_subarrays=True),
        hnp.nested_dtypes(leaf_dtypes, max_leaves=4).filter(lambda d: d.subdtype is None),
    )
    shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
    arrays = hnp.arrays(all_dtypes, shapes)
    layouts = st.sampled_from(["C", "F", "T", "step", "neg"])

    def _layout(a, how):
        if how == "F":
            return np.asfortranarray(a)
        if how == "T":
            return a.T
        if how == "step" and a.ndim:
            return a[::2]
        if how == "neg" and a.ndim:
            return a[::-1]
        return a
else:  # pragma: no cover
    arrays = layouts = all_dtypes = st.nothing()


needs_numpy = pytest.mark.skipif(np is None, reason="numpy is not installed")


@needs_numpy
@FAST
@given(arrays, layouts)
def test_numpy_arrays_round_trip(a, how):
    a = _layout(a, how)
    got = roundtrip(a)
    assert got.flags.writeable  # a copy, not a read-only view of the blob
    assert got.dtype.isnative


@needs_numpy
@FUZZ
@given(hnp.arrays(all_dtypes, ()) if np is not None else st.nothing())
def test_numpy_scalars_round_trip(a):
    scalar = a[()]
    got = roundtrip(scalar)
    assert type(got) is type(scalar)


@needs_numpy
@settings(FAST, max_examples=40)
@given(st.lists(values, max_size=4), st.sampled_from([(-1,), (1, -1), (-1, 1)]))
def test_object_arrays_round_trip_element_by_element(items, shape):
    a = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        a[i] = x
    roundtrip(a.reshape(shape))


@needs_numpy
def test_numpy_specifics():
    for value in (
        np.float32(1.5),
        np.int16(-3),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.float16(-0.0),
        np.complex64(1 - 2j),
        np.datetime64("2020-01-02T03:04:05.123456789", "ns"),
        np.datetime64("NaT"),
        np.timedelta64(-5, "ms"),
        np.str_("a\0"),
        np.bytes_(b"b\0"),
        np.void(b"abc"),
        np.array(7, dtype=">i8"),
        np.zeros((0, 3, 0)),
        np.zeros((2, 0), dtype="U3"),
        np.array([np.datetime64("NaT")]),
        np.arange(24, dtype=">f4").reshape(2, 3, 4).transpose(2, 0, 1)[:, ::2],
        np.array([[1, None], [np.arange(3), {"k": np.float64(2)}]], dtype=object),
        np.zeros(
            3,
            dtype=np.dtype({"names": ["a", "b"], "formats": ["<i2", ">f8"], "offsets": [0, 8], "itemsize": 24}),
        ),
        [np.int32(1), {"a": np.arange(3)}],
    ):
        roundtrip(value)
    assert type(unpack(pack(np.float64(2.0)))) is np.float64  # not a plain float
    assert type(unpack(pack(2.0))) is float


@needs_numpy
def test_numpy_arrays_are_little_endian_on_the_wire():
    assert pack(np.array([1], dtype=">u2")) == pack(np.array([1], dtype="<u2"))
    assert pack(np.array([1], dtype="<u2")).endswith(b"\x01\x00")


@needs_numpy
def test_large_arrays_are_fast():
    a = np.random.default_rng(0).random((2000, 1000))
    data = pack(a)
    assert len(data) < a.nbytes + 100
    assert np.array_equal(unpack(data), a)


@needs_numpy
def test_unsupported_numpy_dtypes_are_refused():
    with pytest.raises(BlobError, match="cannot store numpy dtype"):
        pack(np.zeros(2, dtype=[("a", "O")]))
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(BlobError, match="cannot store numpy dtype"):
            pack(np.zeros(2, dtype=np.longdouble))


@pytest.mark.parametrize(
    "body",
    [
        b"A\x00\x03>f8\x01\x01" + bytes(8),  # big-endian dtype string is not written by pack
        b"A\x00\x03|O8\x01\x01" + bytes(8),  # object dtype smuggled in as a plain dtype
        b"A\x00\x04<f16\x01\x01" + bytes(16),  # long double is not portable
        b"A\x00\x03|b1\x01\x01\x02",  # bool byte that is not 0/1
        b"A\x00\x03<U1\x01\x01\xff\xff\xff\xff",  # invalid code point
        b"A\x00\x03<M8\x01\x01\x01" + bytes(7),  # generic datetime that is not NaT
        b"A\x00\x03<f8\x41" + b"\x01" * 65 + bytes(8),  # too many dimensions
        b"A\x00\x03<f8\x01\x02" + bytes(8),  # truncated data
        b"A\x09",  # unknown dtype kind
        b"A\x01\x02\x01a\x00\x00\x00\x03<i4\x01a\x00\x00\x00\x03<i4\x04\x01\x00",  # duplicate field names
        b"g\x00\x03<U1" + bytes(4),  # string scalars have their own tag
    ],
)
@needs_numpy
def test_corrupt_array_blobs_are_refused(body):
    with pytest.raises(BlobError):
        unpack(HEADER + body)


@needs_numpy
@FUZZ
@given(arrays, st.data())
def test_mutated_array_blobs_raise_blob_error_only(a, data):
    packed = pack(a)
    _unpack_or_blob_error(_mutate(packed, data))
    with pytest.raises(BlobError):
        unpack(packed[: data.draw(st.integers(0, len(packed) - 1))])
