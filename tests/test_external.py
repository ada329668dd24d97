"""External storage (djhpc/external.py), on both backends: blob@store, attach@store, attach and filepath@store in
a file store, stored where and under the names DataJoint 0.14 gives them (checked against DataJoint itself in
test_external_datajoint.py), ``schema.external[store]`` and its garbage collection, and the bad input around them."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pytest

import djhpc as dj
from djhpc import blob
from djhpc.errors import ADAPTED_TYPE_SWITCH, FILEPATH_FEATURE_SWITCH, DataError, DefinitionError, UsageError


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """Two file stores in tmp_path, as DataJoint's test suite sets them: 'loc' (default subfolding) and 'repo'
    (with a stage, for filepath); the filepath switch on."""
    monkeypatch.setenv(FILEPATH_FEATURE_SWITCH, "TRUE")
    paths = {n: tmp_path / n for n in ("loc", "repo", "stage", "download")}
    for p in paths.values():
        p.mkdir()
    dj.config["stores"] = {"loc": {"protocol": "file", "location": paths["loc"]},
                           "repo": {"protocol": "file", "location": str(paths["repo"]), "stage": paths["stage"],
                                    "subfolding": (1,)}}
    yield paths
    del dj.config["stores"]


@pytest.fixture
def thing(schema, stores):
    @schema
    class Thing(dj.Manual):
        definition = """
        id : int
        ---
        data : blob@loc           # a blob in the store
        doc = null : attach@loc   # an attachment in the store
        note = null : attach      # an attachment in the row
        file = null : filepath@repo
        """

    return Thing


def md5_uuid(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.md5(data).digest())


def test_values_round_trip_where_datajoint_puts_them(schema, thing, stores, tmp_path):
    doc = tmp_path / "report.txt"
    doc.write_bytes(b"the report")
    staged = stores["stage"] / "raw" / "run1.dat"
    staged.parent.mkdir()
    staged.write_bytes(b"\x00\x01raw data")
    value = np.arange(12.0).reshape(3, 4)
    thing.insert1({"id": 1, "data": value, "doc": doc, "note": str(doc), "file": staged})

    row = thing.fetch1(download_path=stores["download"])
    assert np.array_equal(row["data"], value)
    assert row["doc"] == row["note"] == str(stores["download"] / "report.txt")
    assert Path(row["doc"]).read_bytes() == b"the report"
    assert row["file"] == str(staged)

    # the store: <location>/<database>/<2 digits>/<2 digits>/<hex>, named by the MD5 of the packed blob
    packed = blob.pack(value)
    h = md5_uuid(packed).hex
    assert (stores["loc"] / schema.database / h[:2] / h[2:4] / h).read_bytes() == packed
    a = md5_uuid(b"report.txt\0the report").hex  # an attachment: name, NUL, content
    assert (stores["loc"] / schema.database / a[:2] / a[2:4] / f"{a}.report.txt").read_bytes() == b"the report"
    assert (stores["repo"] / "raw" / "run1.dat").read_bytes() == b"\x00\x01raw data"  # a managed file: its path

    loc = schema.external["loc"]
    rows = {r["hash"]: r for r in loc.fetch(as_dict=True)}
    assert set(rows) == {uuid.UUID(h), uuid.UUID(a)}
    assert rows[uuid.UUID(h)]["size"] == len(packed) and rows[uuid.UUID(a)]["attachment_name"] == "report.txt"
    repo = schema.external["repo"].fetch1()
    assert repo["hash"] == md5_uuid(b"raw/run1.dat") and repo["filepath"] == "raw/run1.dat"
    assert repo["contents_hash"] == md5_uuid(b"\x00\x01raw data") and repo["size"] == 10
    assert dj.hash.uuid_from_buffer(b"abc").hex == "900150983cd24fb0d6963f7d28e17f72"  # DataJoint's test_hash

    # the managed file comes back to the stage when it is gone from there
    staged.unlink()
    assert (thing & {"id": 1}).fetch1("file") == str(staged) and staged.read_bytes() == b"\x00\x01raw data"
    assert "data : blob@loc" in thing.describe() and "note = null : attach" in thing.describe()


def test_same_content_is_stored_once_and_collected_when_unused(schema, thing, stores, tmp_path):
    value = {"a": [1, 2, 3]}
    thing.insert([{"id": i, "data": value} for i in range(3)])
    thing.insert1({"id": 9, "data": "other"})
    loc = schema.external["loc"]
    assert len(loc) == 2 and len(loc.used()) == 2 and len(loc.unused()) == 0
    packed_path = Path(loc.fetch_external_paths()[0][1])
    assert packed_path.is_file()

    (thing & "id < 2").delete(safemode=False)
    assert len(loc.unused()) == 0 and len(loc) == 2  # one row still refers to the first value
    thing.delete(safemode=False)
    assert len(loc.unused()) == 2
    paths = [Path(p) for _, p in loc.fetch_external_paths()]
    assert loc.delete(delete_external_files=False) is None
    assert len(loc) == 0 and all(p.is_file() for p in paths)  # the rows go, the files stay

    thing.insert1({"id": 1, "data": value})
    thing.delete(safemode=False)
    assert loc.delete(delete_external_files=True) == []
    assert len(loc) == 0 and not packed_path.is_file()
    with pytest.raises(UsageError, match="delete_external_files=True or False"):
        loc.delete()


def test_a_used_object_cannot_lose_its_tracking_row(schema, thing):
    thing.insert1({"id": 1, "data": [1]})
    loc = schema.external["loc"]
    with pytest.raises(dj.DataJointError):
        loc.delete_quick()  # the row's foreign key refers to it
    assert len(loc) == 1 and np.array_equal(thing.fetch1("data"), [1])


def test_attachments_of_the_same_name_do_not_overwrite_each_other(thing, stores, tmp_path):
    for i, content in enumerate((b"first", b"second")):
        source = tmp_path / f"src{i}" / "same.txt"
        source.parent.mkdir()
        source.write_bytes(content)
        thing.insert1({"id": i, "data": 0, "doc": source, "note": source})
    got = thing.fetch("doc", "note", order_by="id", download_path=stores["download"])
    docs, notes = ([str(p) for p in g] for g in got)
    assert docs[0] == notes[0] == str(stores["download"] / "same.txt")  # the same content: the file is reused
    assert docs[1] == notes[1] == str(stores["download"] / "same_0000.txt")
    assert Path(docs[1]).read_bytes() == b"second"
    again = (thing & {"id": 1}).fetch1("doc", download_path=stores["download"])
    assert again == docs[1]


def test_filepath_refuses_other_content_at_the_same_path_and_files_outside_the_stage(schema, thing, stores,
                                                                                   tmp_path):
    staged = stores["stage"] / "a.dat"
    staged.write_bytes(b"one")
    thing.insert1({"id": 1, "data": 0, "file": staged})
    repo = schema.external["repo"]
    assert repo.upload_filepath(staged) == md5_uuid(b"a.dat")  # the same file again: the same entry
    staged.write_bytes(b"two")
    with pytest.raises(dj.DataJointError, match="A different version of 'a.dat' has already been placed"):
        thing.insert1({"id": 2, "data": 0, "file": staged})
    outside = tmp_path / "elsewhere.dat"
    outside.write_bytes(b"x")
    with pytest.raises(DataError) as e:
        thing.insert1({"id": 3, "data": 0, "file": outside})
    assert "is not in the stage" in one_line(e.value)
    assert len(thing) == 1 and len(repo) == 1


def test_bad_input_is_one_line_and_writes_nothing(schema, stores, monkeypatch, tmp_path):
    class Missing(dj.Manual):
        definition = "id : int\n---\nx : blob@nowhere\n"

    with pytest.raises(DefinitionError) as e:
        schema(Missing)
    assert "storage nowhere is requested but not configured" in one_line(e.value)

    dj.config["stores"] = {**dj.config["stores"], "bad": {"protocol": "ftp", "location": "/x"}}

    class BadProtocol(dj.Manual):
        definition = "id : int\n---\nx : blob@bad\n"

    with pytest.raises(DefinitionError, match="invalid protocol"):
        schema(BadProtocol)

    monkeypatch.delenv(FILEPATH_FEATURE_SWITCH)

    class NoSwitch(dj.Manual):
        definition = "id : int\n---\nf : filepath@repo\n"

    with pytest.raises(DefinitionError) as e:
        schema(NoSwitch)
    assert FILEPATH_FEATURE_SWITCH in one_line(e.value)

    class KeyBlob(dj.Manual):
        definition = "x : blob@loc\n---\n"

    with pytest.raises(DefinitionError, match="cannot be in the primary key"):
        schema(KeyBlob)
    assert not [t for t in schema.list_tables() if not t.startswith("~")]

    # an S3 store is declared (its tracking table too, as DataJoint does) but djhpc cannot write to it
    dj.config["stores"] = {**dj.config["stores"],
                           "s3": {"protocol": "s3", "endpoint": "minio:9000", "bucket": "b", "access_key": "k",
                                  "secret_key": "s", "location": "dj"}}

    @schema
    class Remote(dj.Manual):
        definition = "id : int\n---\nx : blob@s3\n"

    with pytest.raises(UsageError) as e:
        Remote.insert1({"id": 1, "x": 1})
    assert "protocol 'file'" in one_line(e.value) and len(Remote()) == 0

    @schema
    class Files(dj.Manual):
        definition = "id : int\n---\na : attach\n"

    with pytest.raises(DataError, match="no such file"):
        Files.insert1({"id": 1, "a": tmp_path / "absent.txt"})
    with pytest.raises(DataError, match="takes a file's path"):
        Files.insert1({"id": 1, "a": b"bytes"})
    assert len(Files()) == 0


def test_the_cache_serves_blobs(schema, thing, stores, tmp_path):
    cache = tmp_path / "cache"
    dj.config["cache"] = cache
    try:
        thing.insert1({"id": 1, "data": [1, 2]})
        assert list(thing.fetch1("data")) == [1, 2]
        cached = [p for p in cache.rglob("*") if p.is_file()]
        assert len(cached) == 1
        for p in stores["loc"].rglob("*"):  # gone from the store: the cache still has it
            if p.is_file():
                p.unlink()
        assert list(thing.fetch1("data")) == [1, 2]
        dj.config["cache"] = None
        with pytest.raises(dj.errors.MissingExternalFile):
            thing.fetch1("data")
    finally:
        dj.config["cache"] = None


def test_adapter_types_from_the_schemas_context(db, schema_name, stores, monkeypatch):
    class Edges(dj.AttributeAdapter):
        attribute_type = "longblob"

        def put(self, obj):
            return sorted(obj)

        def get(self, value):
            return {tuple(int(x) for x in e) for e in value}

    class Stored(Edges):
        attribute_type = "blob@loc"

    class Text(dj.AttributeAdapter):
        attribute_type = "varchar(16)"

        def put(self, obj):
            return obj.upper()

        def get(self, value):
            return value.lower()

    monkeypatch.setenv(ADAPTED_TYPE_SWITCH, "TRUE")
    context = {"edges": Edges(), "stored": Stored(), "text": Text()}
    schema = dj.Schema(schema_name, context, connection=db)

    @schema
    class Graph(dj.Manual):
        definition = """
        gid : int
        ---
        edges = null : <edges>
        stored = null : <stored>
        label = "" : <text>
        """

    Graph.insert1({"gid": 1, "edges": {(1, 2), (0, 1)}, "stored": {(3, 4)}, "label": "abc"})
    Graph.insert1({"gid": 2})
    rows = Graph.fetch(as_dict=True, order_by="gid")
    assert rows[0]["edges"] == {(0, 1), (1, 2)} and rows[0]["stored"] == {(3, 4)} and rows[0]["label"] == "abc"
    assert rows[1]["edges"] is None and rows[1]["stored"] is None
    assert len(schema.external["loc"]) == 1
    assert "edges = null : <edges>" in Graph.describe()
    if not db.is_sqlite:
        comment = db.query("SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND "
                           "COLUMN_NAME='stored'", (schema_name,)).fetchone()[0]
        assert comment == ":<stored>:"  # as DataJoint writes it, so that it reads the column back

    class Unknown(dj.Manual):
        definition = "id : int\n---\nx : <nothing>\n"

    with pytest.raises(DefinitionError, match="attribute adapter <nothing> in line 'x : <nothing>' is not defined"):
        schema(Unknown)

    class NotAdapter(dj.Manual):
        definition = "id : int\n---\nx : <text>\n"

    with pytest.raises(DefinitionError, match="must be an instance of dj.AttributeAdapter"):
        schema(NotAdapter, context={"text": Text})
    monkeypatch.delenv(ADAPTED_TYPE_SWITCH)

    class Off(dj.Manual):
        definition = "id : int\n---\nx : <text>\n"

    with pytest.raises(DefinitionError) as e:
        schema(Off)
    assert ADAPTED_TYPE_SWITCH in one_line(e.value)


class _EdgeList(dj.AttributeAdapter):
    attribute_type = "longblob"

    def put(self, obj):
        return sorted(obj)

    def get(self, value):
        return {tuple(int(x) for x in e) for e in value}


class _StoredEdgeList(_EdgeList):
    attribute_type = "blob@loc"


@pytest.mark.parametrize("backend", [pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True)
def test_a_virtual_module_reads_adapted_and_external_attributes(db, schema_name, stores, monkeypatch):
    """As DataJoint's: the adapters a ``<name>`` column names come from the virtual module's add_objects, and
    external attributes store through the virtual module's schema (MariaDB keeps the type in the column comment;
    SQLite keeps none, see the next test)."""
    monkeypatch.setenv(ADAPTED_TYPE_SWITCH, "TRUE")
    adapters = {"edges": _EdgeList(), "stored": _StoredEdgeList()}
    schema = dj.Schema(schema_name, adapters, connection=db)

    @schema
    class Graph(dj.Manual):
        definition = """
        gid : int
        ---
        edges = null : <edges>
        stored = null : <stored>
        data = null : blob@loc
        """

    Graph.insert1({"gid": 1, "edges": {(1, 2)}, "stored": {(3, 4)}, "data": np.arange(3)})
    vm = dj.VirtualModule("vm", schema_name, connection=db, add_objects=adapters)
    vm.Graph.insert1({"gid": 2, "edges": {(5, 6), (0, 1)}, "stored": {(7, 8)}, "data": [1, 2]})
    vm.Graph.insert1({"gid": 3})
    rows = vm.Graph.fetch(as_dict=True, order_by="gid")
    assert [r["edges"] for r in rows] == [{(1, 2)}, {(0, 1), (5, 6)}, None]
    assert [r["stored"] for r in rows] == [{(3, 4)}, {(7, 8)}, None]
    np.testing.assert_array_equal(rows[0]["data"], np.arange(3))
    assert (Graph & {"gid": 2}).fetch1("edges") == {(0, 1), (5, 6)}  # written through the module, read as declared
    assert "edges = null : <edges>" in vm.Graph.describe()

    bare = dj.VirtualModule("bare", schema_name, connection=db)  # no adapters: the columns are there, untranslated
    assert (bare.Graph & {"gid": 1}).fetch1("data").tolist() == [0, 1, 2]
    assert set((bare.Graph & {"gid": 1}).heading.names) == {"gid", "edges", "stored", "data"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_keeps_no_special_types_for_a_virtual_module(db, schema_name, stores, monkeypatch):
    monkeypatch.setenv(ADAPTED_TYPE_SWITCH, "TRUE")
    adapters = {"edges": _EdgeList()}
    schema = dj.Schema(schema_name, adapters, connection=db)

    @schema
    class Graph(dj.Manual):
        definition = "gid : int\n---\nedges = null : <edges>\n"

    Graph.insert1({"gid": 1, "edges": {(1, 2)}})
    vm = dj.VirtualModule("vm", schema_name, connection=db, add_objects=adapters)
    assert vm.Graph.heading["edges"].type == "longblob"  # the stored column: SQLite keeps no column comment
