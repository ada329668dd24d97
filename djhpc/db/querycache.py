"""DataJoint's query cache: while a connection has a cache name set (``conn.set_query_cache("name")``), each
read-only statement is answered from a file under ``dj.config["query_cache"]``, or run once and its rows written
there; any other statement is refused, so that the cached answers cannot go stale under the caller.

A file is named by a UUID made from the cache name, the statement and its arguments, so that another name (a new
"state" of the data, in DataJoint's words) asks the server again. Rows are stored with djhpc's blob codec
(DataJoint's format: decoding never executes code, never pickle), written to a temporary name and renamed, so
that a reader never sees half a file. ``purge`` deletes the cache's files (names that read as UUIDs) and nothing
else in the folder.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

from .. import blob, settings
from ..errors import ConfigError, UsageError
from ..utils import write_whole

#: statements that only read: DataJoint's SELECT and SHOW, and SQLite's PRAGMA that sets nothing
_READ_ONLY = re.compile(r"\s*(?:SELECT|SHOW)\b|\s*PRAGMA\s+[\w.]+\s*(?:\([^)]*\))?\s*;?\s*$", re.I)


class CachedCursor:
    """The rows of a cached answer, read as a driver cursor is read (fetchone, fetchall, iteration, rowcount)."""

    lastrowid = None

    def __init__(self, names: list[str], rows: list[tuple]):
        self.description = tuple((n, None, None, None, None, None, None) for n in names) if names else None
        self._rows = rows
        self._next = 0

    @property
    def rowcount(self) -> int:
        return len(self._rows)

    def fetchone(self):
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int = 1) -> list:
        out = self._rows[self._next:self._next + size]
        self._next += len(out)
        return out

    def fetchall(self) -> list:
        out = self._rows[self._next:]
        self._next = len(self._rows)
        return out

    def __iter__(self):
        return iter(self.fetchall())

    def close(self):
        pass


def folder() -> Path:
    """The cache's folder, dj.config["query_cache"]; a ConfigError when none is set."""
    where = settings.config["query_cache"]
    if not where:
        raise ConfigError("query caching is on but dj.config['query_cache'] names no folder: set it to a folder, "
                          "or turn caching off with conn.set_query_cache()")
    return Path(where).expanduser()


def check_read_only(sql: str) -> None:
    """Refuse a statement that may change the data while caching is on (DataJoint allows SELECT and SHOW)."""
    if not _READ_ONLY.match(sql):
        words = " ".join(sql.split()[:2])
        raise UsageError(f"only SELECT queries are allowed when query caching is on (got {words!r}): turn caching "
                         "off first with conn.set_query_cache()")


def path_for(name: str, sql: str, args) -> Path:
    """The file that holds the answer to ``sql`` with ``args`` under the cache name ``name``."""
    digest = hashlib.sha256(blob.pack([str(name), sql, _plain(args)], compress=False)).digest()
    return folder() / str(uuid.UUID(bytes=digest[:16]))


def _plain(args):
    """Arguments as the codec takes them: a dict of named parameters as pairs, sequences as lists."""
    if isinstance(args, dict):
        return [[str(k), _plain(v)] for k, v in sorted(args.items())]
    if isinstance(args, (list, tuple)):
        return [_plain(a) for a in args]
    return args


def read(path: Path) -> CachedCursor | None:
    """The cached answer at ``path``, or None when there is none yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    stored = blob.unpack(data)
    return CachedCursor(list(stored["names"]), [tuple(r) for r in stored["rows"]])


def write(path: Path, cursor) -> CachedCursor:
    """Read every row of ``cursor``, store them at ``path`` and return them as a cursor."""
    names = [d[0] for d in cursor.description or ()]
    rows = [tuple(r) for r in cursor.fetchall()]
    write_whole(path, blob.pack({"names": names, "rows": [list(r) for r in rows]}))
    return CachedCursor(names, rows)


def purge() -> None:
    """Delete every cached answer in dj.config["query_cache"] (files named by a UUID); nothing when it names no
    folder."""
    where = settings.config["query_cache"]
    if not isinstance(where, str) or not Path(where).expanduser().is_dir():
        return
    for path in Path(where).expanduser().iterdir():
        if path.is_file() and _is_uuid(path.name):
            path.unlink(missing_ok=True)


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
