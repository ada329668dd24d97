"""DataJoint's content hashes (``dj.hash``): the UUID of an MD5 digest, which names a blob, an attachment or a
managed file in an external store and its ``~external_<store>`` row, so that djhpc and DataJoint name the same
content alike. ``key_hash`` is DataJoint's hash of a key, kept for code that calls it (djhpc's jobs table uses
reservation.key_hash)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

__all__ = ["key_hash", "uuid_from_buffer", "uuid_from_file", "uuid_from_stream"]

_CHUNK_BYTES = 1 << 16


def key_hash(mapping) -> str:
    """DataJoint 0.14's 32 hex digits of a key: MD5 over its values' text, sorted by attribute name."""
    digest = hashlib.md5()
    for _, value in sorted(mapping.items()):
        digest.update(str(value).encode())
    return digest.hexdigest()


def uuid_from_stream(stream, *, init_string: str = "") -> uuid.UUID:
    """MD5 of ``init_string`` followed by the stream's bytes, as a UUID."""
    digest = hashlib.md5(init_string.encode())
    for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
        digest.update(chunk)
    return uuid.UUID(bytes=digest.digest())


def uuid_from_buffer(buffer: bytes = b"", *, init_string: str = "") -> uuid.UUID:
    return uuid_from_stream(io.BytesIO(buffer), init_string=init_string)


def uuid_from_file(filepath, *, init_string: str = "") -> uuid.UUID:
    with Path(filepath).open("rb") as f:
        return uuid_from_stream(f, init_string=init_string)
