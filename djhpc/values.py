"""Python value <-> stored value, per attribute and dialect, with validation before anything is written.

Validation happens here, in Python, so that both backends reject the same bad values with the same
one-line message (SQLite would otherwise store almost anything).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import struct
import uuid

from . import blob
from .declare import SQL_NOW, Attribute
from .errors import BlobError, DataError

_BIG = 2**63


def _bad(attr: Attribute, value, why: str) -> DataError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return DataError(f"attribute '{attr.name}' ({attr.type}) cannot take {shown}: {why}")


def encode(attr: Attribute, value, dialect_name: str):
    """Validate ``value`` for ``attr`` and return what the driver should send."""
    if value is None:
        if attr.nullable:
            return None
        if attr.in_key:
            raise _bad(attr, value, "primary key attributes cannot be null")
        raise _bad(attr, value, "the attribute is not nullable: give a value, or declare '= null'")
    return _ENCODERS.get(attr.category, _encode_unsupported)(attr, value, dialect_name == "sqlite")


# One encoder per attribute category: (attr, value that is not None, sqlite?) -> what the driver sends.


def _encode_int(attr: Attribute, value, sqlite: bool):
    if isinstance(value, bool) or _is_numpy_number(value) and value.dtype.kind == "b":
        value = int(value)  # True/False into an int (a tinyint flag, say) is 1/0, as DataJoint and MySQL take it
    if type(value) is not int and not _is_integral(value):
        raise _bad(attr, value, "expected an integer")
    v = int(value)
    lo, hi = attr.int_range
    if not lo <= v <= hi:
        raise _bad(attr, value, f"out of range {lo}..{hi}")
    if sqlite and v >= _BIG:
        return f"{v:020d}"  # no-affinity column; zero padding keeps the order among large values
    return v


def _encode_bool(attr: Attribute, value, sqlite: bool):
    numpy_bool = _is_numpy_number(value) and value.dtype.kind == "b"
    if isinstance(value, bool) or numpy_bool or (_is_integral(value) and int(value) in (0, 1)):
        return int(bool(value))
    raise _bad(attr, value, "expected True or False")


def _encode_float(attr: Attribute, value, sqlite: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        raise _bad(attr, value, "expected a number")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise _bad(attr, value, "nan and infinity cannot be stored; use null for a missing value")
    if not attr.double:
        try:
            v = struct.unpack("f", struct.pack("f", v))[0]
        except OverflowError:
            v = math.inf
        if math.isinf(v):  # struct rounds a too large value to infinity instead of raising
            raise _bad(attr, value, "out of range for a single-precision float; use double")
    return v


def _encode_decimal(attr: Attribute, value, sqlite: bool):
    try:
        d = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
    except decimal.InvalidOperation as exc:
        raise _bad(attr, value, "expected a decimal number") from exc
    if isinstance(value, bool) or not d.is_finite():
        raise _bad(attr, value, "expected a finite decimal number")
    if isinstance(value, float) or _is_numpy_number(value) and value.dtype.kind == "f":
        # a float has no digits after the point of its own: rounded to the scale, as MySQL (and so DataJoint)
        # stores it; a Decimal or a text with more digits than the scale is still refused
        with decimal.localcontext() as context:
            context.prec = 2 * attr.precision + 2
            d = d.quantize(decimal.Decimal(1).scaleb(-attr.scale), rounding=decimal.ROUND_HALF_UP)
    if d and d.adjusted() >= attr.precision - attr.scale:
        raise _bad(attr, value, f"more than {attr.precision - attr.scale} digits before the point")
    with decimal.localcontext() as context:
        context.prec = 2 * attr.precision + 2  # decimal(65,30) needs more than the default 28 digits
        q = d.quantize(decimal.Decimal(1).scaleb(-attr.scale), rounding=decimal.ROUND_HALF_EVEN)
    if q != d:
        raise _bad(attr, value, f"more than {attr.scale} digits after the point")
    if len(q.as_tuple().digits) > attr.precision or q.adjusted() >= attr.precision - attr.scale:
        raise _bad(attr, value, f"more than {attr.precision - attr.scale} digits before the point")
    if attr.unsigned and q < 0:
        raise _bad(attr, value, "negative value for an unsigned decimal")
    if sqlite and len("".join(map(str, q.as_tuple().digits)).strip("0")) > _SQLITE_DECIMAL_DIGITS:
        raise _bad(attr, value, f"SQLite stores a decimal as a number of {_SQLITE_DECIMAL_DIGITS} significant "
                                "digits (so that it compares as one): round it, or use MariaDB/MySQL")
    return str(q)


# a double holds any 15-digit decimal exactly enough to give it back (DBL_DIG): SQLite's NUMERIC column stores
# a decimal as one, and decode() quantizes it to the declared scale
_SQLITE_DECIMAL_DIGITS = 15


def _encode_string(attr: Attribute, value, sqlite: bool):
    if not isinstance(value, str):
        raise _bad(attr, value, "expected a string")
    if len(value) > attr.length:
        raise _bad(attr, value, f"longer than {attr.length} characters")
    if "\x00" in value:
        raise _bad(attr, value, "strings cannot contain NUL characters")
    if not value.isascii() and not _is_text(value):
        raise _bad(attr, value, "holds a lone surrogate (U+D800-DFFF), which is no text: decode the bytes it came "
                                "from with errors='replace'")
    if attr.fixed and value != value.rstrip(" "):
        raise _bad(attr, value, "char(n) drops trailing spaces: use varchar(n) to keep them")
    return str(value)  # numpy.str_ is a str the MySQL driver does not know


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encode_enum(attr: Attribute, value, sqlite: bool):
    if value not in attr.enum_values:
        raise _bad(attr, value, f"not one of {', '.join(attr.enum_values)}")
    return value


_TIMESTAMP_FIRST = dt.datetime(1970, 1, 1, 0, 0, 1)
_TIMESTAMP_END = dt.datetime(2038, 1, 19, 3, 14, 8)


def _encode_datetime(attr: Attribute, value, sqlite: bool):
    """datetime and timestamp."""
    if value is SQL_NOW:
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise _bad(attr, value, "expected a datetime or 'YYYY-MM-DD HH:MM:SS'") from exc
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise _bad(attr, value, "expected a datetime")
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    value = _truncate_microseconds(value, attr.precision)
    if attr.category == "timestamp" and not _TIMESTAMP_FIRST <= value < _TIMESTAMP_END:
        raise _bad(attr, value, "timestamp covers 1970-01-01 00:00:01 .. 2038-01-19 03:14:07; use datetime")
    if value.year < 1000:
        raise _bad(attr, value, "years before 1000 are not supported")
    return value.isoformat(sep=" ", timespec="microseconds" if attr.precision else "seconds")


def _encode_date(attr: Attribute, value, sqlite: bool):
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError as exc:
            raise _bad(attr, value, "expected a date or 'YYYY-MM-DD'") from exc
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise _bad(attr, value, "expected a date")
    if value.year < 1000:
        raise _bad(attr, value, "years before 1000 are not supported")
    return value.isoformat()


_TIME_TEXT = re.compile(r"(-?)(\d+):([0-5]\d):([0-5]\d)(?:\.(\d{1,6}))?")
_TIME_LIMIT = (838 * 3600 + 59 * 60 + 59) * 1_000_000  # microseconds


def _encode_time(attr: Attribute, value, sqlite: bool):
    if isinstance(value, str):  # as a default in a definition is written: "-01:30:00"
        m = _TIME_TEXT.fullmatch(value.strip())
        if not m:
            raise _bad(attr, value, "expected a datetime.timedelta or 'HH:MM:SS'")
        sign = -1 if m.group(1) else 1
        value = sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)), seconds=int(m.group(4)),
                                    microseconds=int((m.group(5) or "0").ljust(6, "0")))
    if not isinstance(value, dt.timedelta):
        raise _bad(attr, value, "expected a datetime.timedelta or 'HH:MM:SS'")
    micro = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if abs(micro) > _TIME_LIMIT:
        raise _bad(attr, value, "time covers -838:59:59 .. 838:59:59")
    unit = 10 ** (6 - attr.precision)
    micro = int(micro / unit) * unit  # truncate toward zero, as MySQL stores it
    if sqlite:
        return micro
    sign = "-" if micro < 0 else ""
    s, us = divmod(abs(micro), 1_000_000)
    text = f"{sign}{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{us:06d}" if us else "")


def _encode_year(attr: Attribute, value, sqlite: bool):
    if isinstance(value, bool) or not _is_integral(value) or not (1901 <= int(value) <= 2155):
        raise _bad(attr, value, "year covers 1901..2155")
    return int(value)


def _encode_uuid(attr: Attribute, value, sqlite: bool):
    if isinstance(value, str):
        try:
            value = uuid.UUID(value)
        except ValueError as exc:
            raise _bad(attr, value, "expected a UUID") from exc
    if not isinstance(value, uuid.UUID):
        raise _bad(attr, value, "expected a uuid.UUID")
    return value.bytes


def _encode_json(attr: Attribute, value, sqlite: bool):
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise _bad(attr, value, f"not JSON-serialisable ({exc})") from exc


def _encode_blob(attr: Attribute, value, sqlite: bool):
    if attr.codec is not None and attr.codec.kind == "attach":  # name and content, as the codec put them
        if not isinstance(value, bytes):
            raise _bad(attr, value, "an attachment is stored from a file's path: insert the path")
        return value
    try:
        return blob.pack(value)
    except BlobError as exc:
        raise BlobError(f"attribute '{attr.name}' ({attr.type}): {exc}") from exc


def _encode_unsupported(attr: Attribute, value, sqlite: bool):
    raise _bad(attr, value, "unsupported attribute type")


_ENCODERS = {
    "int": _encode_int,
    "bool": _encode_bool,
    "float": _encode_float,
    "decimal": _encode_decimal,
    "string": _encode_string,
    "enum": _encode_enum,
    "datetime": _encode_datetime,
    "timestamp": _encode_datetime,
    "date": _encode_date,
    "time": _encode_time,
    "year": _encode_year,
    "uuid": _encode_uuid,
    "json": _encode_json,
    "blob": _encode_blob,
}


# ---------------------------------------------------------------- what MySQL makes of a value of another type
# DataJoint sends numbers as text and lets MySQL (STRICT_ALL_TABLES) convert what it stores; insert and update1
# do the same conversions here, so that SQLite stores what MariaDB does. encode() stays strict: a restriction
# compares values, and 2.5 must not find the row of 3.

_NUMERIC = ("int", "bool", "float", "decimal")


def is_missing(attr: Attribute, value) -> bool:
    """True for a value DataJoint stores as the attribute's default (NULL when nullable): None, and in a numeric
    attribute NaN or the empty text."""
    if value is None:
        return True
    if attr.category not in _NUMERIC:
        return False
    if isinstance(value, str):
        return value == ""
    return _is_float(value) and math.isnan(value)


def cast(attr: Attribute, value):
    """``value`` converted as MySQL converts it into ``attr``'s column: a number rounded to an integer or to a
    decimal's scale (half away from zero), a numeric text read as a number, a number written as text into a
    string. A value MySQL would refuse comes back as it is, for encode() to refuse with its message."""
    caster = _CASTS.get(attr.category)
    return value if caster is None else caster(attr, value)


def _is_float(value) -> bool:
    return isinstance(value, float) or _is_numpy_number(value) and value.dtype.kind == "f"


def _as_decimal(value) -> decimal.Decimal | None:
    """A number or a numeric text as the exact decimal DataJoint's text of it is (None: no finite number)."""
    if isinstance(value, bool) or _is_numpy_number(value) and value.dtype.kind == "b":
        return None
    if not isinstance(value, (int, float, str, decimal.Decimal)) and not _is_numpy_number(value):
        return None
    try:
        d = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    return d if d.is_finite() else None


def _cast_int(attr: Attribute, value):
    if isinstance(value, int) or _is_integral(value):
        return value
    d = _as_decimal(value)
    return value if d is None else int(d.to_integral_value(rounding=decimal.ROUND_HALF_UP))


def _cast_float(attr: Attribute, value):
    if not isinstance(value, (str, decimal.Decimal)):
        return value
    d = _as_decimal(value)
    return value if d is None else float(d)


def _cast_decimal(attr: Attribute, value):
    d = _as_decimal(value)
    if d is None:
        return value
    with decimal.localcontext() as context:
        context.prec = max(2 * attr.precision + 2, len(d.as_tuple().digits) + 2)
        return d.quantize(decimal.Decimal(1).scaleb(-attr.scale), rounding=decimal.ROUND_HALF_UP)


def _cast_string(attr: Attribute, value):
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or _is_numpy_number(value) and value.dtype.kind == "b":
        return "1" if value else "0"
    if isinstance(value, int) or _is_integral(value):
        return str(int(value))
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return str(value)
    if _is_float(value) and math.isfinite(value):
        return float_text(float(str(value)), attr.length)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def float_text(v: float, width: int) -> str:
    """A float as MySQL writes it into a string column of ``width`` characters: its shortest digits, fixed-point
    from 1e-15 to below 1e15 and as ``1.5e20`` beyond, with fewer digits (rounded) until it fits; no fit leaves
    the full text, too long for encode() to take."""
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    shortest = repr(abs(v)).split("e")[0].replace(".", "").lstrip("0").rstrip("0")
    full = None
    for p in range(len(shortest), 0, -1):
        mantissa, exponent = f"{abs(v):.{p - 1}e}".split("e")
        digits, e = mantissa.replace(".", "").rstrip("0") or "0", int(exponent)
        fixed, sci = _fixed_text(digits, e), digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + f"e{e}"
        natural, other = (fixed, sci) if -15 <= e < 15 else (sci, fixed)
        full = full or sign + natural
        for text in (natural, other):
            if len(sign + text) <= width:
                return sign + text
    return full


def _fixed_text(digits: str, e: int) -> str:
    if e < 0:
        return "0." + "0" * (-e - 1) + digits
    whole, fraction = digits[:e + 1].ljust(e + 1, "0"), digits[e + 1:]
    return whole + ("." + fraction if fraction else "")


_CASTS = {
    "int": _cast_int,
    "float": _cast_float,
    "decimal": _cast_decimal,
    "string": _cast_string,
}


def decode(attr: Attribute, raw, dialect_name: str, squeeze: bool = False, download_path="."):
    """Stored value -> Python value, the inverse of ``encode``; ``squeeze`` drops a blob's singleton dimensions.
    DataJoint's special types (``attr.codec``: external, attachments, adapters) are read by their codec; an
    attachment or a managed file is saved under ``download_path`` and its path returned."""
    if raw is None:
        return None
    codec = attr.codec
    if codec is not None and codec.kind:  # a UUID or an attachment's bytes: the codec reads them
        return codec.get(raw, squeeze=squeeze, download_path=download_path)
    value = _decode_plain(attr, raw, squeeze)
    return value if codec is None else codec.get(value, squeeze=squeeze, download_path=download_path)


def _decode_plain(attr: Attribute, raw, squeeze: bool):
    c = attr.category
    if c == "int":
        return int(raw)
    if c == "bool":
        return bool(int(raw))
    if c == "float":
        return float(raw)
    if c == "decimal":
        return _decimal(attr, raw)
    if c in ("datetime", "timestamp"):
        if isinstance(raw, dt.datetime):
            return raw
        return dt.datetime.fromisoformat(str(raw))
    if c == "date":
        if isinstance(raw, dt.date):
            return raw
        return dt.date.fromisoformat(str(raw))
    if c == "time":
        if isinstance(raw, dt.timedelta):
            return raw
        return dt.timedelta(microseconds=int(raw))
    if c == "year":
        return int(raw)
    if c == "uuid":
        return uuid.UUID(bytes=bytes(raw))
    if c == "json":
        return json.loads(raw)
    if c == "blob":
        return blob.unpack(bytes(raw), squeeze=squeeze)
    if c in ("string", "enum") and isinstance(raw, bytes):
        return raw.decode("utf-8")
    return raw


def _decimal(attr: Attribute, raw) -> decimal.Decimal:
    """A stored decimal (MySQL: a Decimal; SQLite: an int or float, or text in a table made before NUMERIC) as a
    Decimal with the declared number of digits after the point, as MySQL and DataJoint give it."""
    d = raw if isinstance(raw, decimal.Decimal) else decimal.Decimal(str(raw))
    if isinstance(raw, int) and abs(raw) > 2**53:  # SQLite made a whole decimal beyond 2**53 an integer through a
        with decimal.localcontext() as context:   # double: its 15 significant digits are the value stored
            context.prec = _SQLITE_DECIMAL_DIGITS
            d = +d
    if attr.scale is None or d.as_tuple().exponent == -attr.scale:
        return d
    with decimal.localcontext() as context:
        context.prec = 2 * (attr.precision or 65) + 2
        return d.quantize(decimal.Decimal(1).scaleb(-attr.scale))


def _truncate_microseconds(value: dt.datetime, precision: int) -> dt.datetime:
    unit = 10 ** (6 - (precision or 0))
    return value.replace(microsecond=value.microsecond // unit * unit)


def _is_integral(value) -> bool:
    if isinstance(value, int):
        return True
    if _is_numpy_number(value) and value.dtype.kind in "iuf":
        return float(value).is_integer() and "int" in type(value).__name__
    return False


def _is_numpy_number(value) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "dtype")
