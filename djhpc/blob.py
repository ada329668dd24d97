"""Values in ``longblob`` columns: DataJoint's blob format, written and read, and djhpc's older format, read.

``pack`` writes what DataJoint's own ``pack`` writes (djhpc/blob_dj.py), so DataJoint (and MATLAB's mYm, for
MATLAB's types) read what djhpc stores, and djhpc reads what they store. ``unpack`` tells the formats apart by
their first bytes: DataJoint's ``mYm``, ``dj0`` and ``ZL123``, and ``djhpc\\0`` for the blobs djhpc wrote before
(djhpc/blob_v1.py). Neither runs code named by the data: no pickle, no eval, no import.

What comes back is what DataJoint gives for the same bytes: numeric arrays as numpy arrays (a 0-d one as its numpy
scalar), str arrays as object arrays, MATLAB structs and cells as ``MatStruct`` and ``MatCell``, frozensets as
sets, bytearrays as bytes.

What DataJoint's format cannot hold is refused in one line naming the fix, never stored changed: datetimes with a
time zone, float16/long double/byte-string (other than ``S1``, MATLAB's char)/timedelta64 arrays, record arrays with
subarray fields, strings with lone surrogates, containers nested deeper than ``MAX_DEPTH``. A ``datetime.timedelta``
(a ``time`` column's value, in keys too) is stored with a code of djhpc's own, which DataJoint cannot read, as it
cannot write one.
"""

from __future__ import annotations

from djhpc import blob_dj, blob_v1
from djhpc.blob_dj import MAX_DEPTH, MatCell, MatStruct
from djhpc.errors import BlobError

__all__ = ["MAX_DEPTH", "MatCell", "MatStruct", "bypass_serialization", "pack", "unpack", "use_32bit_dims"]

_DATAJOINT_PREFIXES = (blob_dj.MYM, blob_dj.DJ0, blob_dj.ZL123)

# As DataJoint's setting of this name: read lengths and dimensions as uint32, to read the blobs of the 32-bit mYm
# for MATLAB (they cannot be told apart from the bytes). It applies to every unpack while it is set.
use_32bit_dims = False

# As DataJoint's setting of this name: pack and unpack hand blobs through unchanged (to copy blobs between tables
# without decoding them); pack then takes only the bytes of a blob.
bypass_serialization = False


def _raw(data, what: str) -> bytes:
    if not isinstance(data, bytes) or not data.startswith((*_DATAJOINT_PREFIXES, blob_v1.MAGIC)):
        raise BlobError(
            f"blob.bypass_serialization is set, so {what} takes the bytes of a blob (got {type(data).__name__}): "
            "unset it to store values"
        )
    return data


def pack(value, compress: bool = True) -> bytes:
    """``value`` in DataJoint's blob format (compressed above 1000 bytes when that helps, as DataJoint does)."""
    if bypass_serialization:
        return _raw(value, "pack")
    return blob_dj.pack(value, compress=compress)


def unpack(data: bytes, squeeze: bool = False):
    """Decode a blob written by djhpc, DataJoint or MATLAB's mYm; BlobError (one line) for anything else.

    ``squeeze=True`` drops arrays' singleton dimensions, a 0-d result becoming its Python value, as DataJoint's.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise BlobError(f"unpack needs bytes, got {type(data).__name__}")
    if bypass_serialization:
        return _raw(data, "unpack")
    if data.startswith(_DATAJOINT_PREFIXES):
        return blob_dj.unpack(data, squeeze=squeeze, dims32=use_32bit_dims)
    if data.startswith(blob_v1.MAGIC):
        return blob_v1.unpack(data)
    raise BlobError(
        "not a blob: it starts with neither DataJoint's header (mYm, dj0, ZL123) nor djhpc's "
        "(was it written by another program?)"
    )
