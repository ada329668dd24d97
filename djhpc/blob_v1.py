"""djhpc's own blob format of version 1, which djhpc wrote before it wrote DataJoint's: kept so those blobs stay
readable. djhpc.blob reads it by its magic prefix and never writes it; ``pack`` stays for the tests, which make
such blobs with it.

Why not pickle: unpickling runs code chosen by whoever wrote the bytes, and pickles break when classes
move. This codec only knows a fixed list of plain types, so decoding never executes or imports anything
named by the data. Every blob starts with a magic prefix and a format version byte, so old blobs stay
readable and newer formats are refused with a clear message.

Wire format (version 1): ``b"djhpc\\0"``, one version byte, then exactly one encoded value. A value is
a one-byte tag and a payload. Lengths and counts are unsigned LEB128 varints, checked against the bytes
that remain before anything is allocated. Numbers and array data are little-endian.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
import struct
import sys
import uuid

from djhpc.errors import BlobError

__all__ = ["MAGIC", "MAX_DEPTH", "VERSION", "pack", "unpack"]

MAGIC = b"djhpc\0"
VERSION = 1
MAX_DEPTH = 1000  # containers (list, tuple, dict, set, object array) nested at most this deep
_HEADER = MAGIC + bytes([VERSION])
_MAX_DTYPE_DEPTH = 32  # structured dtypes nested in structured dtypes
_MAX_NDIM = 64
_MAX_DIM = 2**62

_UNSUPPORTED = "use numbers, strings, bytes, lists, dicts, datetimes or numpy arrays"

# Tags of version 1.
_NONE, _TRUE, _FALSE = b"N", b"T", b"F"
_INT, _FLOAT, _COMPLEX = b"i", b"f", b"c"
_STR, _BYTES, _BYTEARRAY = b"s", b"b", b"B"
_LIST, _TUPLE, _SET, _FROZENSET, _DICT = b"l", b"t", b"e", b"E", b"d"
_DATETIME, _DATE, _TIME, _TIMEDELTA = b"D", b"a", b"h", b"r"
_DECIMAL, _UUID = b"m", b"u"
_ARRAY, _OBJARRAY, _NPSCALAR, _NPSTR, _NPBYTES = b"A", b"O", b"g", b"y", b"z"

_SEQUENCE_TAGS = {list: _LIST, tuple: _TUPLE, set: _SET, frozenset: _FROZENSET}
_INT_CODE, _FLOAT_CODE, _STR_CODE = _INT[0], _FLOAT[0], _STR[0]
_NUMPY_TAGS = frozenset(b"AOgyz")

_F64 = struct.Struct("<d")
_FLOAT_S = struct.Struct("<cd")
_C128 = struct.Struct("<dd")
_DATE_S = struct.Struct("<HBB")
_DATETIME_S = struct.Struct("<HBBBBBIB")  # year month day hour minute second microsecond fold
_TIME_S = struct.Struct("<BBBIB")  # hour minute second microsecond fold
_TIMEDELTA_S = struct.Struct("<iII")  # days seconds microseconds
_OFFSET_S = struct.Struct("<q")  # utc offset in microseconds

# Simple dtypes as written: byte order ('<' or '|' only), kind, size, optional datetime unit.
_DTYPE_STR = re.compile(r"[<|][biufcmMUSV][0-9]{1,9}(\[[0-9]{0,9}[A-Za-z]{1,2}\])?")
_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16), "m": (8,), "M": (8,)}


def _fail(message: str) -> BlobError:
    return BlobError(" ".join(str(message).split()))


def _type_name(value: object) -> str:
    t = type(value)
    module = getattr(t, "__module__", "builtins")
    name = getattr(t, "__qualname__", t.__name__)
    return name if module == "builtins" else f"{module}.{name}"


def _unsupported(value: object) -> BlobError:
    return _fail(f"cannot store {_type_name(value)} in a blob: {_UNSUPPORTED}")


def _numpy():
    """numpy, imported on first need; BlobError when it is not installed."""
    np = sys.modules.get("numpy")
    if np is not None:
        return np
    try:
        import numpy as np
    except ImportError as exc:
        raise _fail("this blob holds a numpy array: install numpy to read arrays") from exc
    return np


# ----------------------------------------------------------------------------------------------- encoding


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_INT_HEADS = [_INT + bytes([n]) for n in range(128)]
_STR_HEADS = [_STR + bytes([n]) for n in range(128)]


def _len_bytes(raw: bytes) -> list:
    return [_varint(len(raw)), raw]


def _int_bytes(x: int) -> bytes:
    size = ((x if x >= 0 else ~x).bit_length() + 8) // 8
    return x.to_bytes(size, "little", signed=True)


def _str_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _tz_bytes(tz, what: str) -> list:
    if tz is None:
        return [b"\0"]
    if type(tz) is not _dt.timezone:
        raise _fail(
            f"cannot store a {what} with tzinfo {_type_name(tz)} in a blob: "
            "convert it to a fixed offset (datetime.timezone)"
        )
    offset = tz.utcoffset(None)
    micros = (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds
    name = tz.tzname(None)
    if name == _dt.timezone(offset).tzname(None):
        return [b"\1", _OFFSET_S.pack(micros)]
    return [b"\2", _OFFSET_S.pack(micros), *_len_bytes(_str_bytes(name))]


def _encode_dtype(np, dt, depth: int = 0) -> list:
    """Chunks describing a little-endian version of dtype ``dt`` (no object fields)."""
    if depth > _MAX_DTYPE_DEPTH:
        raise _fail(f"cannot store numpy dtype nested deeper than {_MAX_DTYPE_DEPTH} levels in a blob")
    if dt.itemsize == 0:
        raise _fail(f"cannot store numpy dtype {dt} of size 0 in a blob: {_UNSUPPORTED}")
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return [b"\2", *_encode_dtype(np, base, depth + 1), _varint(len(shape)), *map(_varint, shape)]
    if dt.names is not None:
        chunks = [b"\1", _varint(len(dt.names))]
        for name in dt.names:
            field = dt.fields[name]
            title = field[2] if len(field) > 2 else None
            if title is not None and type(title) is not str:
                raise _fail(f"cannot store numpy dtype with a {_type_name(title)} field title in a blob")
            chunks += _len_bytes(_str_bytes(name))
            chunks += [b"\0"] if title is None else [b"\1", *_len_bytes(_str_bytes(title))]
            chunks.append(_varint(field[1]))
            chunks += _encode_dtype(np, field[0], depth + 1)
        chunks.append(_varint(dt.itemsize))
        return chunks
    if dt.kind not in "biufcmMUSV" or (dt.kind in _SIZES and dt.itemsize not in _SIZES[dt.kind]):
        raise _fail(f"cannot store numpy dtype {dt} in a blob: {_UNSUPPORTED}")
    return [b"\0", *_len_bytes(dt.newbyteorder("<").str.encode("ascii"))]


def _array_data(np, a):
    """The C-order little-endian bytes of numeric/record array ``a``, as a buffer (no extra copy)."""
    le = a.dtype.newbyteorder("<")
    if a.dtype != le:
        if le.names is None:
            a = a.astype(le)
        else:  # zero-filled copy so padding bytes never carry uninitialised memory
            b = np.zeros(a.shape, le)
            b[...] = a
            a = b
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _array_header(tag: bytes, a, dtype_chunks: list) -> list:
    return [tag, *dtype_chunks, _varint(a.ndim), *map(_varint, a.shape)]


# One packer per exact type: (value, chunks, depth) -> None after appending the value's chunks, or, for a
# container, an iterator over the items that follow its header. Exact types only, as before: a subclass
# (bool is not int here, an IntEnum is not an int) is refused or goes to the numpy fallback.


def _pack_int(v: int, chunks: list, depth: int):
    raw = v.to_bytes(((v if v >= 0 else ~v).bit_length() + 8) // 8, "little", signed=True)
    n = len(raw)
    chunks.append(_INT_HEADS[n] if n < 128 else _INT + _varint(n))
    chunks.append(raw)


def _pack_float(v: float, chunks: list, depth: int):
    chunks.append(_FLOAT_S.pack(_FLOAT, v))


def _pack_str(v: str, chunks: list, depth: int):
    raw = v.encode("utf-8", "surrogatepass")
    n = len(raw)
    chunks.append(_STR_HEADS[n] if n < 128 else _STR + _varint(n))
    chunks.append(raw)


def _pack_none(v, chunks: list, depth: int):
    chunks.append(_NONE)


def _pack_bool(v: bool, chunks: list, depth: int):
    chunks.append(_TRUE if v else _FALSE)


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _fail(f"cannot store values nested deeper than {MAX_DEPTH} levels (or contain themselves)")


def _pack_sequence(v, chunks: list, depth: int):
    """list, tuple, set, frozenset: the tag, the count, then the items."""
    _check_depth(depth)
    items = tuple(v)
    chunks.append(_SEQUENCE_TAGS[type(v)] + _varint(len(items)))
    return iter(items)


def _pack_dict(v: dict, chunks: list, depth: int):
    _check_depth(depth)
    items = []  # key, value, key, value, ...
    for kv in v.items():
        items += kv
    chunks.append(_DICT + _varint(len(v)))
    return iter(items)


def _pack_bytes(v, chunks: list, depth: int):
    chunks.append(_BYTES if type(v) is bytes else _BYTEARRAY)
    chunks.extend(_len_bytes(bytes(v)))


def _pack_complex(v: complex, chunks: list, depth: int):
    chunks += (_COMPLEX, _C128.pack(v.real, v.imag))


def _pack_datetime(v: _dt.datetime, chunks: list, depth: int):
    chunks += (_DATETIME, _DATETIME_S.pack(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, v.fold))
    chunks.extend(_tz_bytes(v.tzinfo, "datetime"))


def _pack_date(v: _dt.date, chunks: list, depth: int):
    chunks += (_DATE, _DATE_S.pack(v.year, v.month, v.day))


def _pack_time(v: _dt.time, chunks: list, depth: int):
    chunks += (_TIME, _TIME_S.pack(v.hour, v.minute, v.second, v.microsecond, v.fold))
    chunks.extend(_tz_bytes(v.tzinfo, "time"))


def _pack_timedelta(v: _dt.timedelta, chunks: list, depth: int):
    chunks += (_TIMEDELTA, _TIMEDELTA_S.pack(v.days, v.seconds, v.microseconds))


def _pack_decimal(v: decimal.Decimal, chunks: list, depth: int):
    chunks.append(_DECIMAL)
    chunks.extend(_len_bytes(str(v).encode("ascii")))


def _pack_uuid(v: uuid.UUID, chunks: list, depth: int):
    chunks += (_UUID, v.bytes)


def _pack_other(v, chunks: list, depth: int):
    """numpy values (a numpy value implies numpy is imported already); anything else is refused."""
    np = sys.modules.get("numpy")
    if np is None:
        raise _unsupported(v)
    t = type(v)
    if t is np.ndarray:
        return _pack_ndarray(np, v, chunks, depth)
    if t is np.str_:
        chunks.append(_NPSTR)
        chunks.extend(_len_bytes(_str_bytes(str.__str__(v))))  # str() would drop trailing NULs
    elif t is np.bytes_:
        chunks.append(_NPBYTES)
        chunks.extend(_len_bytes(bytes(v)))
    elif isinstance(v, np.generic) and t is v.dtype.type and v.dtype.kind != "O":
        a = np.asarray(v)
        chunks.append(_NPSCALAR)
        chunks.extend(_encode_dtype(np, a.dtype))
        chunks.append(_array_data(np, a))
    else:
        raise _unsupported(v)
    return None


def _pack_ndarray(np, v, chunks: list, depth: int):
    if v.dtype.kind == "O":  # an object array is a container of its items, in C order
        if depth > MAX_DEPTH:
            raise _fail(f"cannot store values nested deeper than {MAX_DEPTH} levels")
        chunks.extend(_array_header(_OBJARRAY, v, []))
        return iter(list(v.reshape(-1)))
    chunks.extend(_array_header(_ARRAY, v, _encode_dtype(np, v.dtype)))
    chunks.append(_array_data(np, v))
    return None


_PACKERS = {
    int: _pack_int,
    float: _pack_float,
    str: _pack_str,
    type(None): _pack_none,
    bool: _pack_bool,
    list: _pack_sequence,
    tuple: _pack_sequence,
    set: _pack_sequence,
    frozenset: _pack_sequence,
    dict: _pack_dict,
    bytes: _pack_bytes,
    bytearray: _pack_bytes,
    complex: _pack_complex,
    _dt.datetime: _pack_datetime,
    _dt.date: _pack_date,
    _dt.time: _pack_time,
    _dt.timedelta: _pack_timedelta,
    decimal.Decimal: _pack_decimal,
    uuid.UUID: _pack_uuid,
}


def pack(value) -> bytes:
    """Encode ``value`` as a self-describing blob; BlobError for unsupported types or nesting too deep."""
    chunks = [_HEADER]
    packers = _PACKERS
    stack = [iter((value,))]  # one iterator per open container; len(stack) - 1 == current depth
    while stack:
        depth = len(stack)
        for v in stack[-1]:
            items = packers.get(type(v), _pack_other)(v, chunks, depth)
            if items is not None:  # a container: its items come next
                stack.append(items)
                break
        else:
            stack.pop()
    return b"".join(chunks)


# ----------------------------------------------------------------------------------------------- decoding


class _Reader:
    """Cursor over the blob; every read checks the bytes that remain."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int):
        self.data = data
        self.pos = pos
        self.end = len(data)

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise _fail(f"truncated blob: needs {n} more bytes at offset {self.pos}, has {self.end - self.pos}")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def byte(self) -> int:
        if self.pos >= self.end:
            raise _fail(f"truncated blob: ends at offset {self.pos} where a value should start")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        n = shift = 0
        for _ in range(10):
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and shift:
                    raise _fail(f"corrupt blob: non-canonical length at offset {self.pos - 1}")
                return n
            shift += 7
        raise _fail(f"corrupt blob: length field too long at offset {self.pos}")

    def length(self, unit: int = 1) -> int:
        """A count of items that need at least ``unit`` bytes each; refused when the blob is too short."""
        n = self.varint()
        if n * unit > self.end - self.pos:
            raise _fail(f"truncated blob: length {n} at offset {self.pos} exceeds the {self.remaining()} bytes left")
        return n

    def text(self) -> str:
        raw = self.take(self.length())
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise _fail(f"corrupt blob: invalid UTF-8 in a string before offset {self.pos}") from exc

    def unpack(self, s: struct.Struct) -> tuple:
        return s.unpack(self.take(s.size))


def _read_tz(r: _Reader):
    kind = r.byte()
    if kind == 0:
        return None
    if kind not in (1, 2):
        raise _fail(f"corrupt blob: bad timezone flag {kind} at offset {r.pos - 1}")
    (micros,) = r.unpack(_OFFSET_S)
    offset = _dt.timedelta(microseconds=micros)
    if kind == 1:
        return _dt.timezone(offset)
    return _dt.timezone(offset, r.text())


def _read_dtype(np, r: _Reader, depth: int = 0):
    if depth > _MAX_DTYPE_DEPTH:
        raise _fail(f"corrupt blob: numpy dtype nested deeper than {_MAX_DTYPE_DEPTH} levels")
    kind = r.byte()
    if kind == 0:
        s = r.take(r.length()).decode("ascii", "replace")
        if not _DTYPE_STR.fullmatch(s):
            raise _fail(f"corrupt blob: bad numpy dtype {s!r}")
        dt = np.dtype(s)
        if dt.str != s or (dt.kind in _SIZES and dt.itemsize not in _SIZES[dt.kind]):
            raise _fail(f"corrupt blob: bad numpy dtype {s!r}")
    elif kind == 1:
        count = r.length(4)
        names, titles, formats, offsets = [], [], [], []
        for _ in range(count):
            names.append(r.text())
            has_title = r.byte()
            if has_title > 1:
                raise _fail(f"corrupt blob: bad numpy field title flag at offset {r.pos - 1}")
            titles.append(r.text() if has_title else None)
            offsets.append(r.varint())
            formats.append(_read_dtype(np, r, depth + 1))
        spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": r.varint()}
        if any(t is not None for t in titles):
            spec["titles"] = titles
        dt = np.dtype(spec)
    elif kind == 2:
        base = _read_dtype(np, r, depth + 1)
        shape = tuple(r.varint() for _ in range(r.length()))
        if len(shape) > _MAX_NDIM or any(n > _MAX_DIM for n in shape):
            raise _fail("corrupt blob: bad numpy subarray shape")
        dt = np.dtype((base, shape))
    else:
        raise _fail(f"corrupt blob: bad numpy dtype kind {kind} at offset {r.pos - 1}")
    if dt.itemsize == 0:
        raise _fail("corrupt blob: numpy dtype of size 0")
    return dt


def _check_leaves(np, a) -> None:
    """Refuse array data numpy would choke on later: bools other than 0/1, bad code points, generic NaT."""
    dt = a.dtype
    if dt.names is not None:
        for name in dt.names:
            _check_leaves(np, a[name])
        return
    if a.size == 0:
        return
    flat = np.ascontiguousarray(a).reshape(-1)
    if dt.kind == "b":
        if (flat.view(np.uint8) > 1).any():
            raise _fail("corrupt blob: numpy bool array holds values other than 0 and 1")
    elif dt.kind == "U":
        if (flat.view("<u4") > 0x10FFFF).any():
            raise _fail("corrupt blob: numpy unicode array holds invalid code points")
    elif dt.kind in "mM" and np.datetime_data(dt)[0] == "generic":
        if (flat.view("<i8") != np.iinfo(np.int64).min).any():
            raise _fail("corrupt blob: numpy datetime array without unit holds values other than NaT")


def _read_shape(r: _Reader) -> tuple:
    ndim = r.varint()
    if ndim > _MAX_NDIM:
        raise _fail(f"corrupt blob: numpy array with {ndim} dimensions")
    shape = tuple(r.varint() for _ in range(ndim))
    if any(n > _MAX_DIM for n in shape):
        raise _fail("corrupt blob: numpy array dimension too large")
    return shape


def _read_array_data(np, r: _Reader, dt, shape: tuple):
    size = 1
    for n in shape:
        size *= n
    nbytes = size * dt.itemsize
    if nbytes > r.remaining():
        raise _fail(f"truncated blob: array needs {nbytes} bytes at offset {r.pos}, has {r.remaining()}")
    if size == 0:
        return np.empty(shape, dt)
    a = np.frombuffer(r.data, dtype=dt, count=size, offset=r.pos)
    r.pos += nbytes
    _check_leaves(np, a)
    if sys.byteorder != "little":
        return a.astype(dt.newbyteorder("=")).reshape(shape)
    return a.reshape(shape).copy()


def _build(kind: bytes, items: list, extra):
    if kind == _LIST:
        return items
    if kind == _TUPLE:
        return tuple(items)
    if kind == _DICT:
        d = dict(zip(items[::2], items[1::2], strict=True))
        if len(d) * 2 != len(items):
            raise _fail("corrupt blob: dict with duplicate keys")
        return d
    if kind == _OBJARRAY:
        np, shape = extra
        a = np.empty(len(items), dtype=object)
        for i, x in enumerate(items):
            a[i] = x
        return a.reshape(shape)
    s = set(items) if kind == _SET else frozenset(items)
    if len(s) != len(items):
        raise _fail("corrupt blob: set with duplicate elements")
    return s


# One reader per tag byte: (reader, offset of the tag) -> the value, with the reader just past the tag on
# entry and just past the value on return. Containers have openers instead: (reader, offset) ->
# (tag, number of items that follow, extra for _build); the items are read by the loop in _decode.


def _read_int(r: _Reader, at: int):
    data, end = r.data, r.end
    size = data[at + 1] if at + 1 < end else 0x80
    if 0 < size < 0x80 and at + 2 + size <= end:  # fast path: a short int, all there
        r.pos = at + 2 + size
        value = int.from_bytes(data[at + 2 : r.pos], "little", signed=True)
        if size != ((value if value >= 0 else ~value).bit_length() + 8) // 8:
            raise _fail(f"corrupt blob: non-canonical int at offset {at}")
        return value
    raw = r.take(r.length())
    value = int.from_bytes(raw, "little", signed=True)
    if not raw or len(raw) != len(_int_bytes(value)):
        raise _fail(f"corrupt blob: non-canonical int at offset {at}")
    return value


def _read_float(r: _Reader, at: int):
    if at + 9 <= r.end:
        r.pos = at + 9
        return _F64.unpack_from(r.data, at + 1)[0]
    return r.unpack(_F64)[0]


def _read_str(r: _Reader, at: int):
    data = r.data
    size = data[at + 1] if at + 1 < r.end else 0x80
    if size < 0x80 and at + 2 + size <= r.end:  # fast path: a short string, all there
        r.pos = at + 2 + size
        try:
            return data[at + 2 : r.pos].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise _fail(f"corrupt blob: invalid UTF-8 in a string at offset {at}") from exc
    return r.text()


def _read_timedelta(r: _Reader, at: int):
    days, seconds, micros = r.unpack(_TIMEDELTA_S)
    value = _dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if (value.days, value.seconds, value.microseconds) != (days, seconds, micros):
        raise _fail(f"corrupt blob: non-canonical timedelta at offset {at}")
    return value


def _read_datetime(r: _Reader, at: int):
    *fields, fold = r.unpack(_DATETIME_S)
    return _dt.datetime(*fields, tzinfo=_read_tz(r), fold=fold)


def _read_time(r: _Reader, at: int):
    *fields, fold = r.unpack(_TIME_S)
    return _dt.time(*fields, tzinfo=_read_tz(r), fold=fold)


def _read_decimal(r: _Reader, at: int):
    text = r.take(r.length()).decode("ascii", "replace")
    with decimal.localcontext(decimal.Context()):
        value = decimal.Decimal(text)
    if str(value) != text:
        raise _fail(f"corrupt blob: bad decimal {text[:40]!r} at offset {at}")
    return value


def _read_array(r: _Reader, at: int):
    np = _numpy()
    dt = _read_dtype(np, r)
    return _read_array_data(np, r, dt, _read_shape(r))


def _read_npscalar(r: _Reader, at: int):
    np = _numpy()
    dt = _read_dtype(np, r)
    if dt.kind in "OUS":
        raise _fail(f"corrupt blob: bad numpy scalar dtype {dt} at offset {at}")
    return _read_array_data(np, r, dt, ())[()]


def _read_npstr(r: _Reader, at: int):
    return _numpy().str_(r.text())


def _read_npbytes(r: _Reader, at: int):
    return _numpy().bytes_(r.take(r.length()))


_READERS = {
    _INT[0]: _read_int,
    _FLOAT[0]: _read_float,
    _STR[0]: _read_str,
    _NONE[0]: lambda r, at: None,
    _TRUE[0]: lambda r, at: True,
    _FALSE[0]: lambda r, at: False,
    _COMPLEX[0]: lambda r, at: complex(*r.unpack(_C128)),
    _BYTES[0]: lambda r, at: r.take(r.length()),
    _BYTEARRAY[0]: lambda r, at: bytearray(r.take(r.length())),
    _DATETIME[0]: _read_datetime,
    _DATE[0]: lambda r, at: _dt.date(*r.unpack(_DATE_S)),
    _TIME[0]: _read_time,
    _TIMEDELTA[0]: _read_timedelta,
    _DECIMAL[0]: _read_decimal,
    _UUID[0]: lambda r, at: uuid.UUID(bytes=r.take(16)),
    _ARRAY[0]: _read_array,
    _NPSCALAR[0]: _read_npscalar,
    _NPSTR[0]: _read_npstr,
    _NPBYTES[0]: _read_npbytes,
}


def _open_sequence(tag: bytes):
    def opener(r: _Reader, at: int):
        return tag, r.length(), None

    return opener


def _open_dict(r: _Reader, at: int):
    return _DICT, r.length(2) * 2, None


def _open_objarray(r: _Reader, at: int):
    np = _numpy()
    shape = _read_shape(r)
    count = 1
    for n in shape:
        count *= n
    if count > r.remaining():
        raise _fail(f"truncated blob: object array of {count} items at offset {at}")
    return _OBJARRAY, count, (np, shape)


_OPENERS = {
    _LIST[0]: _open_sequence(_LIST),
    _TUPLE[0]: _open_sequence(_TUPLE),
    _SET[0]: _open_sequence(_SET),
    _FROZENSET[0]: _open_sequence(_FROZENSET),
    _DICT[0]: _open_dict,
    _OBJARRAY[0]: _open_objarray,
}


def _decode(r: _Reader):
    """One value at the reader's position; iterative, so nesting never hits the recursion limit."""
    stack = []  # frames: [tag, items still expected, items, extra]
    data, end = r.data, r.end
    readers, openers = _READERS, _OPENERS
    while True:
        at = r.pos
        code = data[at] if at < end else r.byte()  # r.byte() raises: the blob ends where a value should start
        r.pos = at + 1
        read = readers.get(code)
        if read is not None:
            value = read(r, at)
        else:
            open_ = openers.get(code)
            if open_ is None:
                raise _fail(f"corrupt blob: unknown tag {bytes([code])!r} at offset {at}")
            frame, count, extra = open_(r, at)
            if len(stack) >= MAX_DEPTH:
                raise _fail(f"corrupt blob: values nested deeper than {MAX_DEPTH} levels")
            if count:
                stack.append([frame, count, [], extra])
                continue
            value = _build(frame, [], extra)
        while stack:  # hand the finished value to its container, closing containers that are full
            top = stack[-1]
            top[2].append(value)
            top[1] -= 1
            if top[1]:
                break
            stack.pop()
            value = _build(top[0], top[2], top[3])
        else:
            return value


def unpack(data: bytes):
    """Decode a blob made by :func:`pack`; BlobError (one line) for anything that is not a valid blob."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise _fail(f"unpack needs bytes, got {_type_name(data)}")
    if data[: len(MAGIC)] != MAGIC or len(data) <= len(MAGIC):
        raise _fail("not a djhpc blob: the magic prefix is missing (was it written by another program?)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise _fail(
            f"blob format version {version} is not supported: this djhpc reads version {VERSION}; "
            "upgrade djhpc to read it"
        )
    r = _Reader(data, len(_HEADER))
    try:
        value = _decode(r)
    except BlobError:
        raise
    except (ValueError, TypeError, ArithmeticError, LookupError, MemoryError, RecursionError) as e:
        # constructor refusals (bad dates, unhashable keys, numpy dtype errors) mean corrupt input
        raise _fail(f"corrupt blob: {type(e).__name__}: {e}") from e
    if r.pos != len(data):
        raise _fail(f"corrupt blob: {len(data) - r.pos} trailing bytes after the value at offset {r.pos}")
    return value
