"""External storage, as DataJoint 0.14 keeps it: ``blob@store``, ``attach@store`` and ``filepath@store`` values live
in a store (``dj.config["stores"][name]``, protocol ``file``), the row holds a UUID, and ``~external_<store>`` in
the schema tracks each stored object. Names, paths, hashes and the tracking table's layout are DataJoint's, so one
database's external data is read and written alike by DataJoint and djhpc:

- a blob is stored at ``<location>/<database>/<subfolders>/<hex>`` where ``hex`` is the MD5 (as a UUID) of its
  packed bytes and the subfolders its first digits (``subfolding``, default (2, 2));
- an attachment at the same path plus ``.<file name>``, named by the MD5 of ``name + "\\0" + content``;
- a managed file (``filepath@store``) at ``<location>/<path relative to the store's stage>``, named by the MD5 of
  that relative path, its content's MD5 in ``contents_hash``.

``schema.external[store]`` is the tracking table (a query: ``len``, ``fetch``, ``&``), with DataJoint's ``put``,
``get``, ``upload_attachment``, ``upload_filepath``, ``download_filepath``, ``used``/``unused`` and ``delete`` (the
garbage collection of objects no row refers to). S3 stores are declared (their tracking table is made, as DataJoint
does) but not read or written: djhpc has no S3 client.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from . import blob, hash
from .adapters import Codec
from .declare import TableSpec, create_table_sql, parse_definition
from .dependencies import foreign_key_graph
from .errors import DataError, DefinitionError, DjhpcError, MissingExternalFile, UsageError
from .query import Heading, Query, new_alias
from .settings import config
from .utils import write_whole

log = logging.getLogger(__name__)

__all__ = ["ExternalMapping", "ExternalTable", "bind", "store_spec", "subfold"]

EXTERNAL_TABLE_ROOT = "~external"
DEFAULT_SUBFOLDING = (2, 2)
CACHE_SUBFOLDING = (2, 2)

# DataJoint's definition of the tracking table, word for word in what it makes (comments included: DataJoint reads
# the ':uuid:' of a column's comment to give a UUID back)
DEFINITION = """
# external storage tracking
hash  : uuid    #  hash of contents (blob), of filename + contents (attach), or relative filepath (filepath)
---
size      :bigint unsigned     # size of object in bytes
attachment_name=null : varchar(255)  # the filename of an attachment
filepath=null : varchar(1000)  # relative filepath or attachment filename
contents_hash=null : uuid      # used for the filepath datatype
timestamp=CURRENT_TIMESTAMP  :timestamp   # automatic timestamp
"""

_SPEC_KEYS = {  # required, then allowed, per protocol (DataJoint's)
    "file": ({"protocol", "location"}, {"subfolding", "stage"}),
    "s3": ({"protocol", "endpoint", "bucket", "access_key", "secret_key", "location"},
           {"secure", "subfolding", "stage", "proxy_server"}),
}


def subfold(name: str, folds) -> tuple:
    """The subfolders of ``name``: ``subfold("aBCdefg", (2, 3))`` is ``("ab", "cde")``."""
    out, rest = [], name
    for n in folds:
        out.append(rest[:n].lower())
        rest = rest[n:]
    return tuple(out)


def store_spec(store: str) -> dict:
    """``dj.config["stores"][store]`` checked as DataJoint checks it, with the default subfolding."""
    stores = config.get("stores") or {}
    if store not in stores:
        raise DefinitionError(f"storage {store} is requested but not configured: add it to dj.config['stores'] "
                              "(e.g. {'protocol': 'file', 'location': '/data/store'})")
    spec = dict(stores[store])
    protocol = str(spec.get("protocol", "")).lower()
    if protocol not in _SPEC_KEYS:
        raise DefinitionError(f"missing or invalid protocol in dj.config['stores']['{store}']: use 'file' (or 's3')")
    required, allowed = _SPEC_KEYS[protocol]
    missing = sorted(required - set(spec))
    if missing:
        raise DefinitionError(f"dj.config['stores']['{store}'] is missing '{missing[0]}'")
    unknown = sorted(set(spec) - required - allowed)
    if unknown:
        raise DefinitionError(f"dj.config['stores']['{store}'] has an unknown key '{unknown[0]}' (known: "
                              f"{', '.join(sorted(required | allowed))})")
    spec["protocol"] = protocol
    spec["location"] = str(spec["location"])  # a Path or py.path as the tests give it
    if spec.get("stage") is not None:
        spec["stage"] = str(spec["stage"])
    spec["subfolding"] = tuple(spec.get("subfolding", DEFAULT_SUBFOLDING) or ())
    return spec


def _safe_copy(source: Path, target: Path, overwrite: bool = False):
    if not overwrite and target.is_file():
        return
    write_whole(target, Path(source).read_bytes())


class ExternalTable(Query):
    """The tracking table ``~external_<store>`` of one schema: a query over its rows with DataJoint's methods."""

    def __init__(self, connection, store: str, database: str):
        self.store = store
        self.spec = store_spec(store)
        self.database = database
        self.table_name = f"{EXTERNAL_TABLE_ROOT}_{store}"
        spec = parse_definition(DEFINITION, _no_reference)
        self._ensure(connection, spec)
        alias = new_alias()
        q = connection.dialect.quote
        full = connection.dialect.table(database, self.table_name)
        super().__init__(connection, Heading(spec.attributes), f"{full} AS {alias}", (),
                         {a.name: f"{alias}.{q(a.name)}" for a in spec.attributes}, aliases={alias},
                         flat_names=True)
        if self.spec["protocol"] == "file" and not Path(self.spec["location"]).is_dir():
            raise FileNotFoundError(f"inaccessible local directory {self.spec['location']} (store {store}): "
                                    "create it, or fix dj.config['stores']")

    @property
    def full_table_name(self) -> str:
        return self.connection.dialect.table(self.database, self.table_name)

    def _ensure(self, connection, spec: TableSpec):
        full = connection.dialect.table(self.database, self.table_name)
        if not connection.has_table(full):
            for sql in create_table_sql(connection.dialect, spec, self.database, self.table_name):
                connection.query(sql, context=f"declare {self.table_name}")

    # ---------------------------------------------------------------- paths
    def _file_store(self, what: str):
        if self.spec["protocol"] != "file":
            raise UsageError(f"store {self.store} is an S3 store, which djhpc cannot {what}: use a store with "
                             "protocol 'file' (a folder, shared or local)")

    def _make_external_filepath(self, relative_filepath) -> PurePosixPath:
        """Where a path relative to the store's root is."""
        self._file_store("reach")
        return PurePosixPath(Path(self.spec["location"]), relative_filepath)

    def _make_uuid_path(self, uuid_: uuid.UUID, suffix: str = "") -> PurePosixPath:
        """Where the object named ``uuid_`` is: under the database's folder, in its subfolders."""
        folders = subfold(uuid_.hex, self.spec["subfolding"])
        return self._make_external_filepath(PurePosixPath(self.database, *folders, uuid_.hex + suffix))

    def exists(self, external_filepath) -> bool:
        self._file_store("reach")
        return Path(external_filepath).is_file()

    def _read(self, external_path) -> bytes:
        try:
            return Path(external_path).read_bytes()
        except FileNotFoundError:
            raise MissingExternalFile(f"missing external file {external_path}: it was deleted or moved from "
                                      f"store {self.store}") from None

    def _track(self, uuid_: uuid.UUID, size: int, attachment_name=None, filepath=None, contents_hash=None):
        """The tracking row of an object stored (its timestamp renewed when it is there already)."""
        d = self.connection.dialect
        q = d.quote
        names = ["hash", "size", "attachment_name", "filepath", "contents_hash"]
        marks = ", ".join([d.placeholder] * len(names))
        sql = f"INSERT INTO {self.full_table_name} ({', '.join(q(n) for n in names)}) VALUES ({marks}) "
        sql += (f"ON DUPLICATE KEY UPDATE {q('timestamp')}=CURRENT_TIMESTAMP" if d.name == "mysql"
                else f"ON CONFLICT({q('hash')}) DO UPDATE SET {q('timestamp')}=CURRENT_TIMESTAMP")
        self.connection.query(sql, (uuid_.bytes, size, attachment_name, filepath,
                                    contents_hash.bytes if contents_hash else None), context="external")

    # ---------------------------------------------------------------- blobs
    def put(self, blob_bytes: bytes) -> uuid.UUID:
        """Store packed bytes; their UUID (the MD5 of the bytes)."""
        self._file_store("write to")
        uuid_ = hash.uuid_from_buffer(blob_bytes)
        path = Path(self._make_uuid_path(uuid_))
        if not path.is_file() or path.stat().st_size != len(blob_bytes):
            write_whole(path, blob_bytes)
        self._track(uuid_, len(blob_bytes))
        return uuid_

    def get(self, uuid_: uuid.UUID | None) -> bytes | None:
        """The bytes stored under ``uuid_`` (from dj.config["cache"] when it has them)."""
        if uuid_ is None:
            return None
        self._file_store("read from")
        cache = config.get("cache")
        cached = Path(str(cache), *subfold(uuid_.hex, CACHE_SUBFOLDING), uuid_.hex) if cache else None
        if cached is not None and cached.is_file():
            return cached.read_bytes()
        try:
            data = self._read(self._make_uuid_path(uuid_))
        except MissingExternalFile:
            # DataJoint 0.11's blobs, migrated, are stored at the path of their row
            relative = self._row(uuid_, "filepath")
            if not relative:
                raise
            data = self._read(self._make_external_filepath(relative))
        if cached is not None:
            write_whole(cached, data)
        return data

    def _row(self, uuid_: uuid.UUID, name: str):
        d = self.connection.dialect
        row = self.connection.query(
            f"SELECT {d.quote(name)} FROM {self.full_table_name} WHERE {d.quote('hash')} = {d.placeholder}",
            (uuid_.bytes,), context="external").fetchone()
        return None if row is None else row[0]

    # ---------------------------------------------------------------- attachments
    def upload_attachment(self, local_path) -> uuid.UUID:
        self._file_store("write to")
        local_path = Path(local_path)
        name = local_path.name
        uuid_ = hash.uuid_from_file(local_path, init_string=name + "\0")
        _safe_copy(local_path, Path(self._make_uuid_path(uuid_, "." + name)), overwrite=True)
        self._track(uuid_, local_path.stat().st_size, attachment_name=name)
        return uuid_

    def get_attachment_name(self, uuid_: uuid.UUID) -> str:
        name = self._row(uuid_, "attachment_name")
        if name is None:
            raise MissingExternalFile(f"no attachment {uuid_} is tracked in {self.table_name}")
        return name

    def download_attachment(self, uuid_: uuid.UUID, attachment_name: str, download_path):
        self._file_store("read from")
        source = Path(self._make_uuid_path(uuid_, "." + attachment_name))
        write_whole(Path(download_path), self._read(source))

    # ---------------------------------------------------------------- managed files
    def upload_filepath(self, local_filepath) -> uuid.UUID:
        """Track a file of the store's stage (copied to the store once): the UUID of its path relative to the
        stage. The same path with other content is refused."""
        self._file_store("write to")
        local_filepath = Path(local_filepath)
        stage = self.spec.get("stage")
        try:
            relative = local_filepath.relative_to(stage).as_posix() if stage else None
        except ValueError:
            relative = None
        if relative is None:
            raise DataError(f"the path {local_filepath} is not in the stage {stage} of store {self.store}: put the "
                            "file under the stage folder (dj.config['stores'][...]['stage'])")
        uuid_ = hash.uuid_from_buffer(init_string=relative)
        size = local_filepath.stat().st_size
        limit = config.get("filepath_checksum_size_limit_insert")
        skip_checksum = limit is not None and size > limit
        contents_hash = None if skip_checksum else hash.uuid_from_file(local_filepath)
        if skip_checksum:
            log.warning("Skipping checksum for '%s' (%d bytes > %d byte limit)", relative, size, limit)
        row = self.connection.query(
            f"SELECT {self.connection.dialect.quote('contents_hash')} FROM {self.full_table_name} "
            f"WHERE {self.connection.dialect.quote('hash')} = {self.connection.dialect.placeholder}",
            (uuid_.bytes,), context="external").fetchone()
        if row is not None:
            known = uuid.UUID(bytes=bytes(row[0])) if row[0] is not None else None
            if not skip_checksum and contents_hash != known:
                raise DataError(f"A different version of '{relative}' has already been placed: give the new "
                                "version another path")
            return uuid_
        _safe_copy(local_filepath, Path(self._make_external_filepath(relative)), overwrite=True)
        self._track(uuid_, size, filepath=relative, contents_hash=contents_hash)
        return uuid_

    def download_filepath(self, filepath_hash: uuid.UUID | None):
        """Bring a managed file to the stage (unless it is there, checked): (its local path, its content's UUID)."""
        if filepath_hash is None:
            return None
        self._file_store("read from")
        d = self.connection.dialect
        row = self.connection.query(
            f"SELECT {d.quote('filepath')}, {d.quote('contents_hash')}, {d.quote('size')} FROM {self.full_table_name}"
            f" WHERE {d.quote('hash')} = {d.placeholder}", (filepath_hash.bytes,), context="external").fetchone()
        if row is None:
            raise MissingExternalFile(f"no managed file {filepath_hash} is tracked in {self.table_name}")
        relative, contents_hash, size = row[0], row[1] and uuid.UUID(bytes=bytes(row[1])), int(row[2])
        local = Path(self.spec["stage"]).absolute() / relative
        if not (local.is_file() and (not _checks(local, size) or hash.uuid_from_file(local) == contents_hash)):
            write_whole(local, self._read(self._make_external_filepath(relative)))
            if _checks(local, size) and hash.uuid_from_file(local) != contents_hash:
                raise DjhpcError(f"'{local}' downloaded but did not pass checksum: the store's copy changed")
        if not _checks(local, size):
            log.warning("Skipped checksum for file with hash: %s, and path: %s", contents_hash, local)
        return str(local), contents_hash

    # ---------------------------------------------------------------- garbage collection
    @property
    def references(self):
        """(referencing table, its column) for every column that refers to this table."""
        graph = foreign_key_graph(self.connection)
        d = self.connection.dialect
        for child, cols, _ in graph.get((self.database, self.table_name), []):
            yield {"referencing_table": d.table(*child), "column_name": cols[0]}

    def _referenced_sql(self) -> list[str]:
        q = self.connection.dialect.quote
        return [f"SELECT {q(r['column_name'])} FROM {r['referencing_table']} WHERE {q(r['column_name'])} IS NOT NULL"
                for r in self.references]

    def used(self) -> ExternalTable:
        """The objects a row of the schema refers to."""
        refs = self._referenced_sql()
        column = self.connection.dialect.quote("hash")
        return self & (f"{column} IN (" + " UNION ".join(refs) + ")" if refs else "1=0")

    def unused(self) -> ExternalTable:
        """The objects no row refers to: what delete() removes."""
        refs = self._referenced_sql()
        column = self.connection.dialect.quote("hash")
        return self & (f"{column} NOT IN (" + " UNION ".join(refs) + ")") if refs else self

    def fetch_external_paths(self, **fetch_kwargs) -> list[tuple]:
        """(uuid, path in the store) of each object of this query."""
        paths = []
        for item in self.fetch("hash", "attachment_name", "filepath", as_dict=True, **fetch_kwargs):
            if item["attachment_name"]:
                path = self._make_uuid_path(item["hash"], "." + item["attachment_name"])
            elif item["filepath"]:
                path = self._make_external_filepath(item["filepath"])
            else:
                path = self._make_uuid_path(item["hash"])
            paths.append((item["hash"], path))
        return paths

    def delete_quick(self, get_count=False):
        """Delete this query's tracking rows, files left alone."""
        d = self.connection.dialect
        sub, params = self.make_sql(["hash"])
        sql = (f"DELETE FROM {self.full_table_name} WHERE {d.quote('hash')} IN "
               f"(SELECT {d.quote('hash')} FROM ({sub}) AS _del)")
        count = self.connection.query(sql, params, context=f"delete from {self.table_name}").rowcount
        return count if get_count else None

    def delete(self, *, delete_external_files=None, limit=None, display_progress=True, errors_as_string=True):
        """Remove the objects no row refers to: their tracking rows, and with ``delete_external_files=True`` their
        files too (a file that cannot be removed keeps its row; returned as (uuid, path, error))."""
        if delete_external_files not in (True, False):
            raise UsageError("delete() needs delete_external_files=True or False: whether the stored files go too")
        del display_progress  # DataJoint's progress bar; djhpc logs a line instead
        if not delete_external_files:
            self.unused().delete_quick()
            return None
        errors = []
        items = self.unused().fetch_external_paths(limit=limit)
        for uuid_, path in items:
            one = self & {"hash": uuid_}
            rows = one.fetch(as_dict=True)
            if not rows:
                continue
            try:
                one.delete_quick()
            except DjhpcError:  # referred to again meanwhile: the file stays
                continue
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as e:
                self._track(uuid_, rows[0]["size"], rows[0]["attachment_name"], rows[0]["filepath"],
                            rows[0]["contents_hash"])
                errors.append((uuid_, path, str(e) if errors_as_string else e))
        log.info("%s: %d unused object(s) deleted, %d could not be", self.table_name, len(items) - len(errors),
                 len(errors))
        return errors


def _checks(local: Path, expected_size: int) -> bool:
    """Whether a managed file's content is checked (dj.config["filepath_checksum_size_limit"])."""
    actual = local.stat().st_size
    if actual != expected_size:
        raise DjhpcError(f"'{local}' has {actual} bytes where {expected_size} were stored: it changed")
    limit = config.get("filepath_checksum_size_limit")
    return limit is None or actual < limit


def _no_reference(ref: str):
    raise DefinitionError(f"the tracking table references nothing (got -> {ref})")


class ExternalMapping(Mapping):
    """``schema.external``: the tracking table of each store the schema uses, made on first use."""

    def __init__(self, schema):
        self.schema = schema
        self._tables: dict[str, ExternalTable] = {}

    def __repr__(self):
        stores = "\n    ".join(f'"{k}" {v.spec["protocol"]}:{v.spec["location"]}' for k, v in self.items())
        return f"External file tables for schema `{self.schema.database}`:\n    {stores}"

    def __getitem__(self, store: str) -> ExternalTable:
        table = self._tables.get(store)
        if table is None or table.database != self.schema.database:
            table = self._tables[store] = ExternalTable(self.schema.connection, store, self.schema.database)
        return table

    def __len__(self):
        return len(self._tables)

    def __iter__(self):
        return iter(self._tables)

    # ---------------------------------------------------------------- the codecs' work (adapters.Codec.runtime)
    def put(self, codec: Codec, value):
        """A value of a special attribute as its column takes it."""
        if codec.adapter is not None:
            value = codec.adapter.put(value)
            if value is None:
                return None
        if codec.kind == "blob":
            packed = blob.pack(value)
            return self[codec.store].put(packed) if codec.store else packed
        if codec.kind == "attach":
            path = _attachment(value)
            if codec.store:
                return self[codec.store].upload_attachment(path)
            return path.name.encode() + b"\0" + path.read_bytes()
        if codec.kind == "filepath":
            return self[codec.store].upload_filepath(_attachment(value))
        return value

    def get(self, codec: Codec, raw, *, squeeze=False, download_path="."):
        """A special attribute's stored value (already decoded when the type is the adapter's plain SQL type) as
        the user gets it."""
        value = raw
        if codec.kind == "blob":
            data = self[codec.store].get(_uuid(raw)) if codec.store else bytes(raw)
            value = blob.unpack(data, squeeze=squeeze)
        elif codec.kind == "attach":
            value = self._attachment(codec, raw, download_path)
        elif codec.kind == "filepath":
            value = self[codec.store].download_filepath(_uuid(raw))[0]
        return codec.adapter.get(value) if codec.adapter is not None else value

    def _attachment(self, codec: Codec, raw, download_path) -> str:
        """An attachment saved under download_path (a file already there with the same content is used; another
        name is found when a different file has it), as DataJoint does."""
        if codec.store:
            uuid_ = _uuid(raw)
            external = self[codec.store]
            name = external.get_attachment_name(uuid_)
            content = None
        else:
            data = bytes(raw)
            name_bytes, _, content = data.partition(b"\0")
            name = name_bytes.decode()
            uuid_ = hash.uuid_from_buffer(data)
        target = Path(download_path) / name
        for n in itertools.count():
            if not target.is_file():
                break
            if hash.uuid_from_file(target, init_string=name + "\0") == uuid_:
                return str(target)
            base = Path(download_path) / name
            target = base.parent / f"{base.stem}_{n:04x}{base.suffix}"
        if content is None:
            external.download_attachment(uuid_, name, target)
        else:
            write_whole(target, content)
        return str(target)


def _uuid(raw) -> uuid.UUID:
    return raw if isinstance(raw, uuid.UUID) else uuid.UUID(bytes=bytes(raw))


def _attachment(value) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise DataError(f"an attachment or filepath takes a file's path, not {type(value).__name__}")
    path = Path(value)
    if not path.is_file():
        raise DataError(f"cannot attach {path}: no such file")
    return path


def mapping_of(schema) -> ExternalMapping:
    """The schema's ExternalMapping, made once."""
    mapping = schema.__dict__.get("_external")
    if mapping is None:
        mapping = schema.__dict__["_external"] = ExternalMapping(schema)
    return mapping


def bind(spec: TableSpec, schema) -> TableSpec:
    """Give the special attributes of a parsed definition their schema (their codecs' runtime), and make the
    tracking table of each store they use (their foreign keys refer to it)."""
    mapping = None
    for a in spec.attributes:
        if a.codec is None:
            continue
        mapping = mapping or mapping_of(schema)
        a.codec.runtime = mapping
        if a.codec.store:
            mapping[a.codec.store]  # noqa: B018 (made here, before the table whose foreign key refers to it)
    return spec
