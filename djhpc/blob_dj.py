"""DataJoint's blob format, read and written: the bytes ``datajoint.blob.pack`` writes (0.14 and 2.x alike).

The format (facts read from DataJoint's blob.py; the code is djhpc's own):

- A blob is ``b"mYm\\0"`` (MATLAB's mYm protocol) or ``b"dj0\\0"`` (a part needs a type MATLAB lacks), then one
  value. A blob longer than 1000 bytes is written as ``b"ZL123\\0"``, its length (uint64) and its zlib stream,
  when that is shorter.
- Numbers are little-endian; lengths, counts and dimensions are uint64. A value is a code byte and a payload;
  each item inside a container is framed by its length.
- ``A`` array: ndim, shape, uint32 type id, uint32 complex flag, then the data in Fortran order (the real parts,
  then the imaginary ones). Type ids: 3 logical, 4 char (uint16 code units), 5 object (framed items), 6 double,
  7 single, 8..15 int8, uint8, .. uint64, 65536 + i datetime64 of unit i in Y M W D h m s ms us ns ps fs as.
- ``S`` MATLAB struct array: ndim, shape, uint32 field count, NUL-terminated names, framed values (element by
  element in Fortran order, field by field). ``C`` cell array: ndim, shape, framed elements. ``F`` record array:
  uint32 field count, NUL-terminated names, each field's array unframed. ``P`` sparse: refused, as DataJoint does.
- dj0 scalars and containers: ``\\xff`` None, ``\\x01`` tuple, ``\\x02`` list, ``\\x03`` set, ``\\x04`` dict (count,
  framed items or key/value pairs), ``\\x05`` str (length, UTF-8), ``\\x06`` bytes, ``\\x0a`` int (uint16 length,
  signed bytes), ``\\x0b`` bool, ``\\x0c`` complex, ``\\x0d`` float, ``d`` Decimal (its text), ``t`` date/time/
  datetime (int32 yyyymmdd or -1, int64 hhmmssuuuuuu or -1), ``u`` UUID.

djhpc adds one code DataJoint lacks, ``\\xfe`` datetime.timedelta (int32 days, uint32 seconds, uint32 microseconds),
so that keys with a ``time`` column can still be stored; DataJoint refuses to read it ("Unknown data structure
code"), as it refuses to write a timedelta.

Decoding runs no code and imports nothing named by the data: every length is checked against the bytes left
before anything is allocated, a compressed blob may not claim more than zlib can expand to, and containers nest
at most ``MAX_DEPTH`` deep (below what DataJoint's own recursive reader manages).
"""

from __future__ import annotations

import collections.abc
import datetime as _dt
import decimal
import struct
import uuid
import zlib

import numpy as np

from djhpc.errors import BlobError

__all__ = ["COMPRESS_ABOVE", "DJ0", "MAX_DEPTH", "MYM", "ZL123", "MatCell", "MatStruct", "pack", "unpack"]

MYM, DJ0, ZL123 = b"mYm\0", b"dj0\0", b"ZL123\0"
MAX_DEPTH = 100  # containers nested at most this deep; DataJoint's recursive pack fails near 190
COMPRESS_ABOVE = 1000  # bytes: longer blobs are compressed when that makes them shorter, as DataJoint does
_MAX_NDIM = 64  # numpy's limit
_ZLIB_MAX_RATIO = 1032  # the most a zlib stream expands
_FRAME = 9  # the fewest bytes a framed item takes: its length and a code byte

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_F64 = struct.Struct("<d")
_C128 = struct.Struct("<dd")
_DATETIME = struct.Struct("<iq")
_TIMEDELTA = struct.Struct("<iII")
_TYPE_HEAD = struct.Struct("<II")

_NONE, _TUPLE, _LIST, _SET, _DICT, _STR, _BYTES = b"\xff", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x06"
_INT, _BOOL, _COMPLEX, _FLOAT = b"\x0a", b"\x0b", b"\x0c", b"\x0d"
_DECIMAL, _DATETIME_CODE, _UUID, _TIMEDELTA_CODE = b"d", b"t", b"u", b"\xfe"
_ARRAY, _STRUCT, _CELL, _RECARRAY, _SPARSE = b"A", b"S", b"C", b"F", b"P"

_CHAR, _OBJECT = 4, 5
_DATETIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")
_DTYPES = {
    3: np.dtype(np.bool_),
    6: np.dtype(np.float64),
    7: np.dtype(np.float32),
    8: np.dtype(np.int8),
    9: np.dtype(np.uint8),
    10: np.dtype(np.int16),
    11: np.dtype(np.uint16),
    12: np.dtype(np.int32),
    13: np.dtype(np.uint32),
    14: np.dtype(np.int64),
    15: np.dtype(np.uint64),
    **{65536 + i: np.dtype(f"datetime64[{unit}]") for i, unit in enumerate(_DATETIME_UNITS)},
}
_TYPE_IDS = {dtype: type_id for type_id, dtype in _DTYPES.items()}
_TYPE_IDS[np.dtype("S1")] = _CHAR
_TYPE_IDS[np.dtype(object)] = _OBJECT

_UNSUPPORTED = "use numbers, strings, bytes, lists, tuples, sets, dicts, datetimes, UUIDs, Decimals or numpy arrays"


class MatCell(np.ndarray):
    """A MATLAB cell array: an object array read from, and written as, the format's cell array."""


class MatStruct(np.recarray):
    """A MATLAB struct array: a record array of object fields read from, and written as, a struct array."""


def _fail(message: str) -> BlobError:
    return BlobError(" ".join(str(message).split()))


def _type_name(value: object) -> str:
    t = type(value)
    module = getattr(t, "__module__", "builtins")
    return t.__qualname__ if module == "builtins" else f"{module}.{t.__qualname__}"


def _refuse(value: object, why: str = _UNSUPPORTED) -> BlobError:
    return _fail(f"cannot store {_type_name(value)} in a blob: {why}")


def _too_deep() -> BlobError:
    return _fail(f"cannot store values nested deeper than {MAX_DEPTH} levels (or that contain themselves) in a blob")


# ----------------------------------------------------------------------------------------------- encoding


def _u64s(*numbers: int) -> bytes:
    return struct.pack(f"<{len(numbers)}Q", *numbers)


class _Packer:
    """Encodes one value; ``dj0`` turns true when a part needs the dj0 protocol, as in DataJoint's pack."""

    __slots__ = ("dj0",)

    def __init__(self):
        self.dj0 = False

    def value(self, v, depth: int) -> bytes:
        packer = _EXACT.get(type(v))
        if packer is not None:
            return packer(self, v, depth)
        return self.other(v, depth)

    def framed(self, v, depth: int) -> bytes:
        raw = self.value(v, depth)
        return _U64.pack(len(raw)) + raw

    def other(self, v, depth: int) -> bytes:
        """Anything not in the table of exact types, tried in the order DataJoint's pack tries them."""
        if isinstance(v, MatCell):
            return self.cell(v, depth)
        if isinstance(v, MatStruct):
            return self.struct(v, depth)
        if isinstance(v, np.ndarray):
            return self.ndarray(v, depth)
        self.dj0 = True
        for kind, packer in _BY_ISINSTANCE:
            if isinstance(v, kind):
                return packer(self, v, depth)
        raise _refuse(v)

    def ndarray(self, a, depth: int) -> bytes:
        if a.dtype.names is not None:
            self.dj0 = True
            return self.recarray(np.array(a), depth)
        return self.array(a, depth)

    def array(self, a, depth: int) -> bytes:
        """An array without fields: numeric, logical, datetime64, char (``S1``), str (``U``) or object."""
        dtype = a.dtype
        if dtype.kind == "M":
            self.dj0 = True
        if not dtype.isnative and dtype.kind in "biufcM":
            a = a.astype(dtype.newbyteorder("="))  # DataJoint refuses these; the values survive conversion
        is_complex = dtype.kind == "c"
        real = a.real if is_complex else a
        type_id = _OBJECT if dtype.kind == "U" else _TYPE_IDS.get(real.dtype)
        if type_id is None:
            raise _fail(
                f"cannot store a numpy array of dtype {dtype} in a blob: DataJoint's format has no such "
                f"type; convert it (e.g. .astype(numpy.float32) for float16, an object array for bytes)"
            )
        head = _ARRAY + _u64s(a.ndim, *a.shape) + _TYPE_HEAD.pack(type_id, is_complex)
        if type_id == _OBJECT:
            if depth > MAX_DEPTH:
                raise _too_deep()
            parts = [head]
            for item in a.flatten(order="F"):
                parts.append(self.framed(item, depth + 1))
            self.dj0 = True
            return b"".join(parts)
        if type_id == _CHAR:
            # MATLAB's chars are 16 bits; Fortran order, the order it is read in (DataJoint writes C order)
            return head + np.asarray(a).reshape(-1, order="F").view(np.uint8).astype("<u2").tobytes()
        if a.ndim == 0:
            self.dj0 = True
        if is_complex:
            return head + real.tobytes(order="F") + a.imag.tobytes(order="F")
        return head + a.tobytes(order="F")

    def recarray(self, a, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise _too_deep()
        names = a.dtype.names
        parts = [_RECARRAY, _U32.pack(len(names)), "\0".join(names).encode() + b"\0"]
        for name in names:
            field_dtype = a.dtype.fields[name][0]
            if field_dtype.subdtype is not None:
                raise _fail(
                    f"cannot store a record array whose field {name!r} is a subarray ({field_dtype}) in a "
                    "blob: DataJoint's format has no such field; make it an object field"
                )
            field = a[name]
            parts.append(self.recarray(field, depth + 1) if field_dtype.names else self.array(field, depth + 1))
        return b"".join(parts)

    def struct(self, a, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise _too_deep()
        names = a.dtype.names or ()
        parts = [_STRUCT, _u64s(a.ndim, *a.shape), _U32.pack(len(names)), "\0".join(names).encode() + b"\0"]
        for record in a.flatten(order="F"):
            for item in record:
                parts.append(self.framed(item, depth + 1))
        return b"".join(parts)

    def cell(self, a, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise _too_deep()
        parts = [_CELL, _u64s(a.ndim, *a.shape)]
        for item in a.flatten(order="F"):
            parts.append(self.framed(item, depth + 1))
        return b"".join(parts)

    def sequence(self, code: bytes, v, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise _too_deep()
        parts = [code, _U64.pack(len(v))]
        for item in v:
            parts.append(self.framed(item, depth + 1))
        return b"".join(parts)


def _pack_bool(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return b"\x0b\x01" if v else b"\x0b\x00"


def _pack_int(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    size = v.bit_length() // 8 + 1
    if size > 0xFFFF:
        raise _fail("cannot store an int of more than 65535 bytes in a blob: DataJoint's format has no room for it")
    return _INT + _U16.pack(size) + int.to_bytes(v, size, "little", signed=True)


def _pack_float(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return _FLOAT + _F64.pack(v)


def _pack_complex(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return _COMPLEX + _C128.pack(v.real, v.imag)


def _pack_str(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    try:
        raw = str.encode(v, "utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(
            "cannot store a string holding a lone surrogate in a blob: DataJoint's format is UTF-8; "
            "remove or replace it"
        ) from exc
    return _STR + _U64.pack(len(raw)) + raw


def _pack_bytes(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    raw = bytes(v)
    return _BYTES + _U64.pack(len(raw)) + raw


def _pack_none(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return _NONE


def _pack_list(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return p.sequence(_LIST, v, depth)


def _pack_tuple(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return p.sequence(_TUPLE, v, depth)


def _pack_set(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return p.sequence(_SET, v, depth)


def _pack_dict(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    if depth > MAX_DEPTH:
        raise _too_deep()
    parts = [_DICT, _U64.pack(len(v))]
    for key, item in v.items():
        parts.append(p.framed(key, depth + 1))
        parts.append(p.framed(item, depth + 1))
    return b"".join(parts)


def _date_number(d) -> int:
    return (d.year * 100 + d.month) * 100 + d.day


def _time_number(t) -> int:
    if t.tzinfo is not None:
        raise _fail(
            f"cannot store a {type(t).__name__} with a time zone in a blob: DataJoint's format drops it; "
            "convert it first, e.g. value.astimezone(datetime.timezone.utc).replace(tzinfo=None)"
        )
    return ((t.hour * 100 + t.minute) * 100 + t.second) * 1_000_000 + t.microsecond


def _pack_datetime(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    if isinstance(v, _dt.datetime):
        return _DATETIME_CODE + _DATETIME.pack(_date_number(v), _time_number(v))
    if isinstance(v, _dt.date):
        return _DATETIME_CODE + _DATETIME.pack(_date_number(v), -1)
    return _DATETIME_CODE + _DATETIME.pack(-1, _time_number(v))


def _pack_timedelta(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return _TIMEDELTA_CODE + _TIMEDELTA.pack(v.days, v.seconds, v.microseconds)


def _pack_decimal(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    text = str(v)
    return _DECIMAL + _U64.pack(len(text)) + text.encode()


def _pack_uuid(p: _Packer, v, depth: int) -> bytes:
    p.dj0 = True
    return _UUID + v.bytes


def _pack_numpy_scalar(p: _Packer, v, depth: int) -> bytes:
    """numpy numbers, bools and datetime64 are stored as 0-d arrays, as DataJoint does."""
    if isinstance(v, np.timedelta64):
        raise _fail(
            "cannot store numpy.timedelta64 in a blob: DataJoint's format has no such type; convert it, "
            "e.g. to a datetime.timedelta or a number of seconds"
        )
    return p.array(np.array(v), depth)


_EXACT = {
    bool: _pack_bool,
    int: _pack_int,
    float: _pack_float,
    complex: _pack_complex,
    str: _pack_str,
    bytes: _pack_bytes,
    bytearray: _pack_bytes,
    type(None): _pack_none,
    list: _pack_list,
    tuple: _pack_tuple,
    set: _pack_set,
    frozenset: _pack_set,
    dict: _pack_dict,
    _dt.datetime: _pack_datetime,
    _dt.date: _pack_datetime,
    _dt.time: _pack_datetime,
    _dt.timedelta: _pack_timedelta,
    decimal.Decimal: _pack_decimal,
    uuid.UUID: _pack_uuid,
    np.ndarray: _Packer.ndarray,
}

# DataJoint's order of isinstance tests, for subclasses and abstract types (numpy values before Python numbers:
# numpy.float64 is a float, and is stored as an array).
_BY_ISINSTANCE = (
    ((np.number, np.bool_, np.datetime64), _pack_numpy_scalar),
    (bool, _pack_bool),
    (int, _pack_int),
    (complex, _pack_complex),
    (float, _pack_float),
    ((_dt.datetime, _dt.date, _dt.time), _pack_datetime),
    (decimal.Decimal, _pack_decimal),
    (uuid.UUID, _pack_uuid),
    (collections.abc.Mapping, _pack_dict),
    (str, _pack_str),
    ((bytes, bytearray), _pack_bytes),
    (collections.abc.MutableSequence, _pack_list),
    (collections.abc.Sequence, _pack_tuple),
    (collections.abc.Set, _pack_set),
    (_dt.timedelta, _pack_timedelta),
)


def pack(value, compress: bool = True) -> bytes:
    """``value`` in DataJoint's blob format, byte for byte what DataJoint's pack writes; BlobError if it cannot."""
    p = _Packer()
    try:
        body = p.value(value, 1)
    except RecursionError as exc:  # MAX_DEPTH levels take ~400 frames: a caller deep in its own stack may lack them
        raise _fail(
            "cannot store a value this deeply nested from this deep in the call stack: the Python stack ran out"
        ) from exc
    blob = (DJ0 if p.dj0 else MYM) + body
    if compress and len(blob) > COMPRESS_ABOVE:
        compressed = ZL123 + _U64.pack(len(blob)) + zlib.compress(blob)
        if len(compressed) < len(blob):
            return compressed
    return blob


# ----------------------------------------------------------------------------------------------- decoding


class _Reader:
    """Cursor over the blob; ``end`` is the end of the innermost framed item, and every read checks it.

    ``lengths`` is how lengths, counts and dimensions are stored: uint64, or uint32 in the blobs of the 32-bit mYm
    for MATLAB. ``squeeze`` drops arrays' singleton dimensions, as DataJoint's ``unpack(squeeze=True)``.
    """

    __slots__ = ("data", "pos", "end", "lengths", "squeeze")

    def __init__(self, data: bytes, pos: int, lengths: struct.Struct = _U64, squeeze: bool = False):
        self.data, self.pos, self.end = data, pos, len(data)
        self.lengths, self.squeeze = lengths, squeeze

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            raise _fail(f"truncated blob: {what} needs {n} bytes at offset {self.pos}, {self.end - self.pos} left")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def unpack(self, s: struct.Struct, what: str) -> tuple:
        self.need(s.size, what)
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values

    def length(self, what: str) -> int:
        return self.unpack(self.lengths, what)[0]

    def count(self, what: str, unit: int) -> int:
        """A count of things that take at least ``unit`` bytes each; refused when the bytes left cannot hold them."""
        n = self.length(what)
        if n * unit > self.end - self.pos:
            raise _fail(
                f"corrupt blob: {what} of {n} at offset {self.pos - self.lengths.size} cannot fit in the "
                f"{self.end - self.pos} bytes left"
            )
        return n

    def name(self) -> str:
        stop = self.data.find(b"\0", self.pos, self.end)
        if stop < 0:
            raise _fail(f"truncated blob: a field name at offset {self.pos} has no terminating NUL")
        raw = self.data[self.pos : stop]
        self.pos = stop + 1
        return raw.decode("utf-8")

    def shape(self) -> tuple:
        width = self.lengths.size
        ndim = self.length("an array's dimension count")
        if ndim > _MAX_NDIM:
            raise _fail(
                f"corrupt blob: an array of {ndim} dimensions at offset {self.pos - width} (numpy allows {_MAX_NDIM})"
            )
        self.need(width * ndim, "an array's shape")
        shape = struct.unpack_from(f"<{ndim}{self.lengths.format[-1]}", self.data, self.pos)
        self.pos += width * ndim
        return shape


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _read_value(r: _Reader, depth: int):
    at = r.pos
    r.need(1, "a value")
    read = _READERS.get(r.data[at])
    if read is None:
        raise _fail(
            f"corrupt blob: unknown data structure code {bytes([r.data[at]])!r} at offset {at} (written "
            "by a newer DataJoint or another program?)"
        )
    r.pos = at + 1
    return read(r, depth)


def _read_framed(r: _Reader, depth: int):
    size = r.length("an item's length")
    r.need(size, "an item")
    outer_end = r.end
    r.end = r.pos + size
    value = _read_value(r, depth + 1)
    if r.pos != r.end:
        raise _fail(f"corrupt blob: an item ending at offset {r.end} has {r.end - r.pos} bytes left over")
    r.end = outer_end
    return value


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _fail(f"corrupt blob: values nested deeper than {MAX_DEPTH} levels")


def _object_array(items: list, shape: tuple):
    a = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        a[i] = item
    return a.reshape(shape, order="F")


def _read_array(r: _Reader, depth: int):
    shape = r.shape()
    n = _size(shape)
    type_id, is_complex = r.unpack(_TYPE_HEAD, "an array's type")
    if type_id == _OBJECT:
        _check_depth(depth)
        if n * _FRAME > r.end - r.pos:
            raise _fail(f"corrupt blob: an object array of {n} items cannot fit in the {r.end - r.pos} bytes left")
        return _squeezed(r, _object_array(_read_n_framed(r, depth, n), shape))
    if type_id == _CHAR:
        return _squeezed(r, _read_chars(r, shape, n))
    dtype = _DTYPES.get(type_id)
    if dtype is None:
        raise _fail(f"corrupt blob: unknown array type id {type_id} at offset {r.pos - 8}")
    nbytes = n * dtype.itemsize
    r.need(nbytes * (2 if is_complex else 1), f"an array of {n} {dtype} values")
    data = _read_numbers(r, dtype, n)
    if is_complex:
        data = _complex(data, _read_numbers(r, dtype, n))
    if not shape and not r.squeeze:
        return data.reshape(())[()]  # a 0-d array is read back as its numpy scalar, as DataJoint does
    return _squeezed(r, data.reshape(shape, order="F"))


def _squeezed(r: _Reader, a, to_scalar: bool = True):
    """``a`` without its singleton dimensions when the reader squeezes (a 0-d result as its Python value)."""
    if not r.squeeze:
        return a
    a = a.squeeze()
    return a.item() if to_scalar and a.ndim == 0 else a


def _complex(real, imag):
    """The complex array DataJoint makes of these parts (complex64 from single, else complex128), but built by
    assignment: DataJoint's ``real + 1j * imag`` turns an infinite imaginary part into a NaN real part."""
    if real.dtype.kind == "M":
        raise _fail("corrupt blob: a complex datetime64 array")
    out = np.empty(real.shape, np.complex64 if real.dtype == np.float32 else np.complex128)
    out.real = real
    out.imag = imag
    return out


def _read_numbers(r: _Reader, dtype, n: int):
    raw = r.take(n * dtype.itemsize, "array data")
    if dtype.kind == "b":
        return np.frombuffer(raw, np.uint8) != 0  # any nonzero byte is true
    return np.frombuffer(raw, dtype).copy()  # a writeable array, not a view of the blob


def _read_chars(r: _Reader, shape: tuple, n: int):
    """MATLAB char arrays: a row (or a vector) is one string; other shapes are arrays of single characters."""
    codes = r.take(2 * n, f"a char array of {n} characters")
    text = codes.decode("utf-16-le", "surrogatepass")
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
        return np.array([text])
    return np.array(list(text), dtype="U1").reshape(shape, order="F")


def _read_recarray(r: _Reader, depth: int):
    _check_depth(depth)
    (count,) = r.unpack(_U32, "a record array's field count")
    if not count:
        return np.array(None)
    if 2 * count > r.end - r.pos:
        raise _fail(f"corrupt blob: a record array of {count} fields cannot fit in the {r.end - r.pos} bytes left")
    names = [r.name() for _ in range(count)]
    fields = [_read_value(r, depth + 1) for _ in range(count)]
    if not all(isinstance(f, (np.ndarray, np.generic)) for f in fields):
        raise _fail("corrupt blob: a record array's field is not an array")
    rec = np.empty(np.shape(fields[0]), np.dtype([(name, f.dtype) for name, f in zip(names, fields, strict=True)]))
    for name, field in zip(names, fields, strict=True):
        rec[name] = field
    return rec.view(np.recarray)


def _read_struct(r: _Reader, depth: int):
    _check_depth(depth)
    shape = r.shape()
    n = _size(shape)
    (count,) = r.unpack(_U32, "a struct's field count")
    if not count:
        return np.array(None)
    if count > r.end - r.pos or n * count * _FRAME > r.end - r.pos:
        raise _fail(
            f"corrupt blob: a struct array of {n} elements and {count} fields cannot fit in the "
            f"{r.end - r.pos} bytes left"
        )
    names = [r.name() for _ in range(count)]
    data = np.empty(n, np.dtype([(name, object) for name in names]))
    columns = [data[name] for name in names]
    for i in range(n):
        for column in columns:
            column[i] = _read_framed(r, depth)
    return _squeezed(r, data.reshape(shape, order="F"), to_scalar=False).view(MatStruct)


def _read_cell(r: _Reader, depth: int):
    _check_depth(depth)
    shape = r.shape()
    n = _size(shape)
    if n * _FRAME > r.end - r.pos:
        raise _fail(f"corrupt blob: a cell array of {n} elements cannot fit in the {r.end - r.pos} bytes left")
    if not n:
        return np.empty(0, dtype=object).view(MatCell)  # as DataJoint 2 reads an empty cell array
    return _squeezed(r, _object_array(_read_n_framed(r, depth, n), shape), to_scalar=False).view(MatCell)


def _read_sparse(r: _Reader, depth: int):
    raise _fail(
        "cannot read a MATLAB sparse array from a blob: DataJoint does not support them either; store it "
        "full (full(x) in MATLAB)"
    )


def _read_n_framed(r: _Reader, depth: int, n: int) -> list:
    """``n`` framed items; a loop, not a comprehension, to spend one stack frame less per level of nesting."""
    items = []
    for _ in range(n):
        items.append(_read_framed(r, depth))
    return items


def _read_list(r: _Reader, depth: int):
    _check_depth(depth)
    return _read_n_framed(r, depth, r.count("a list", _FRAME))


def _read_tuple(r: _Reader, depth: int):
    _check_depth(depth)
    return tuple(_read_n_framed(r, depth, r.count("a tuple", _FRAME)))


def _read_set(r: _Reader, depth: int):
    _check_depth(depth)
    return set(_read_n_framed(r, depth, r.count("a set", _FRAME)))


def _read_dict(r: _Reader, depth: int):
    _check_depth(depth)
    n = r.count("a dict", 2 * _FRAME)
    result = {}
    for _ in range(n):
        key = _read_framed(r, depth)
        result[key] = _read_framed(r, depth)
    return result


def _read_text(r: _Reader, what: str) -> str:
    raw = r.take(r.length(f"{what}'s length"), what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"corrupt blob: {what} before offset {r.pos} is not valid UTF-8") from exc


def _read_int(r: _Reader, depth: int):
    (size,) = r.unpack(_U16, "an int's length")
    return int.from_bytes(r.take(size, "an int"), "little", signed=True)


def _read_datetime(r: _Reader, depth: int):
    date, time = r.unpack(_DATETIME, "a date or time")
    d = _dt.date(date // 10000, date // 100 % 100, date % 100) if date >= 0 else None
    if time < 0:
        return d
    t = _dt.time(time // 10**10 % 100, time // 10**8 % 100, time // 10**6 % 100, time % 10**6)
    return t if d is None else _dt.datetime.combine(d, t)


def _read_timedelta(r: _Reader, depth: int):
    days, seconds, micros = r.unpack(_TIMEDELTA, "a timedelta")
    if seconds >= 86400 or micros >= 10**6:
        raise _fail(f"corrupt blob: a timedelta of {seconds} seconds and {micros} microseconds")
    return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _read_decimal(r: _Reader, depth: int):
    text = _read_text(r, "a decimal")
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation as exc:
        raise _fail(f"corrupt blob: {text[:40]!r} is not a decimal") from exc


_READERS = {
    _ARRAY[0]: _read_array,
    _SPARSE[0]: _read_sparse,
    _STRUCT[0]: _read_struct,
    _CELL[0]: _read_cell,
    _RECARRAY[0]: _read_recarray,
    _NONE[0]: lambda r, depth: None,
    _TUPLE[0]: _read_tuple,
    _LIST[0]: _read_list,
    _SET[0]: _read_set,
    _DICT[0]: _read_dict,
    _STR[0]: lambda r, depth: _read_text(r, "a string"),
    _BYTES[0]: lambda r, depth: r.take(r.length("a bytes value's length"), "a bytes value"),
    _INT[0]: _read_int,
    _BOOL[0]: lambda r, depth: r.take(1, "a bool") != b"\0",
    _COMPLEX[0]: lambda r, depth: complex(*r.unpack(_C128, "a complex")),
    _FLOAT[0]: lambda r, depth: r.unpack(_F64, "a float")[0],
    _DECIMAL[0]: _read_decimal,
    _DATETIME_CODE[0]: _read_datetime,
    _UUID[0]: lambda r, depth: uuid.UUID(bytes=r.take(16, "a UUID")),
    _TIMEDELTA_CODE[0]: _read_timedelta,
}


def _decompress(data: bytes, lengths: struct.Struct) -> bytes:
    """The blob inside a ``ZL123`` header, its size bounded by what the compressed bytes can expand to."""
    if len(data) < len(ZL123) + lengths.size:
        raise _fail("truncated blob: a compressed blob ends inside its header")
    (size,) = lengths.unpack_from(data, len(ZL123))
    stream = data[len(ZL123) + lengths.size :]
    if size > _ZLIB_MAX_RATIO * len(stream) + 64:
        raise _fail(f"corrupt blob: a compressed blob of {len(stream)} bytes claims to hold {size} bytes")
    z = zlib.decompressobj()
    try:
        inner = z.decompress(stream, size + 1)
    except zlib.error as exc:
        raise _fail(f"corrupt blob: its compressed data is damaged ({exc})") from exc
    if len(inner) != size or not z.eof or z.unconsumed_tail or z.unused_data:
        raise _fail(f"corrupt blob: its compressed data does not hold the {size} bytes its header says")
    return inner


def unpack(data: bytes, squeeze: bool = False, dims32: bool = False):
    """Decode a DataJoint blob (``mYm``, ``dj0``, ``ZL123``); BlobError (one line) for anything else.

    ``squeeze`` as DataJoint's; ``dims32`` reads the blobs of the 32-bit mYm (DataJoint's ``use_32bit_dims``).
    """
    lengths = _U32 if dims32 else _U64
    if data.startswith(ZL123):
        data = _decompress(data, lengths)
    if not data.startswith((MYM, DJ0)):
        raise _fail("not a DataJoint blob: it starts with neither mYm nor dj0 (was it written by another program?)")
    r = _Reader(data, len(MYM), lengths, squeeze)
    try:
        value = _read_value(r, 1)
    except BlobError:
        raise
    except RecursionError as exc:
        raise _fail(
            "cannot read a blob this deeply nested from this deep in the call stack: the Python stack ran out"
        ) from exc
    except (ValueError, TypeError, ArithmeticError, LookupError, MemoryError) as exc:
        # constructor refusals (bad dates, unhashable keys, clashing field names) mean corrupt input
        raise _fail(f"corrupt blob: {type(exc).__name__}: {exc}") from exc
    if r.pos != len(data):
        raise _fail(f"corrupt blob: {len(data) - r.pos} trailing bytes after the value at offset {r.pos}")
    return value
