"""External storage shared with DataJoint 0.14.10 itself (its interpreter in a subprocess, MariaDB): rows with a
blob@store, attach@store, attach and filepath@store written by DataJoint are read by djhpc, rows written by djhpc
are read by DataJoint, a table djhpc declared is read by DataJoint from its column comments, and each side's
garbage collection sees the other's references."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from support.datajoint import datajoint_pythons
from support.env import MYSQL_URL, ROOT, mysql_available, unavailable

import djhpc as dj
from djhpc.errors import FILEPATH_FEATURE_SWITCH

DEFINITION = """
id : int
---
data : blob@loc            # a blob in the store
doc = null : attach@loc    # an attachment in the store
note = null : attach       # an attachment in the row
file = null : filepath@repo
"""

# DataJoint's side: argv = schema, stores folder, action, table class name; prints JSON
DATAJOINT_SIDE = r'''
import json, os, sys
from pathlib import Path
import numpy as np
import datajoint as dj

schema_name, base, action, name = sys.argv[1:5]
base = Path(base)
dj.config["database.use_tls"] = False
dj.config["safemode"] = False
dj.config["stores"] = {"loc": {"protocol": "file", "location": str(base / "loc")},
                       "repo": {"protocol": "file", "location": str(base / "repo"), "stage": str(base / "stage")}}
schema = dj.Schema(schema_name)
table = type(name, (dj.Manual,), {"definition": os.environ["DEFINITION"]})
table = schema(table)
if action == "insert":
    doc = base / "dj_doc.txt"
    doc.write_bytes(b"written by DataJoint")
    staged = base / "stage" / "dj" / "file.dat"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(b"DataJoint's managed file")
    table.insert1({"id": 1, "data": np.arange(6.0).reshape(2, 3), "doc": str(doc), "note": str(doc),
                   "file": str(staged)})
    staged.unlink()
elif action == "fetch":
    out = []
    for row in table.fetch(as_dict=True, order_by="id", download_path=str(base / "dj_download")):
        out.append({"id": int(row["id"]), "data": np.asarray(row["data"]).tolist(),
                    **{k: row[k] and Path(row[k]).read_bytes().decode() for k in ("doc", "note", "file")}})
    print(json.dumps(out))
elif action == "collect":
    (table & "id = 1").delete()
    ext = schema.external["loc"]
    before = len(ext)
    ext.delete(delete_external_files=True)
    print(json.dumps({"before": before, "after": len(ext)}))
'''


@pytest.fixture
def datajoint_014():
    path = datajoint_pythons().get("0.14")
    if not path or not Path(path).exists():
        unavailable("no interpreter with DataJoint 0.14 (run tests/cluster/ensure-datajoint.sh and set "
                    "DJHPC_DATAJOINT_PYTHONS)")
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    return path


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """The stores both sides use, the filepath switch on, a fresh schema dropped afterwards."""
    for name in ("loc", "repo", "stage", "download", "dj_download"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv(FILEPATH_FEATURE_SWITCH, "TRUE")
    dj.config["stores"] = {"loc": {"protocol": "file", "location": str(tmp_path / "loc")},
                           "repo": {"protocol": "file", "location": str(tmp_path / "repo"),
                                    "stage": str(tmp_path / "stage")}}
    connection = dj.conn(MYSQL_URL, reset=True)
    name = "djhpc_ext_" + uuid.uuid4().hex[:10]
    yield name, connection
    del dj.config["stores"]
    connection.query(f"DROP DATABASE IF EXISTS `{name}`")
    connection.close()


def datajoint(python: str, tmp_path: Path, schema_name: str, action: str, table: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env.update(DJ_HOST="127.0.0.1", DJ_USER="root", DJ_PASS="", DEFINITION=DEFINITION, PYTHONPATH=str(ROOT / "tests"),
               **{FILEPATH_FEATURE_SWITCH: "TRUE"})
    done = subprocess.run([python, "-c", DATAJOINT_SIDE, schema_name, str(tmp_path), action, table], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if action != "insert" else None


def declare(schema, name: str):
    return schema(type(name, (dj.Manual,), {"definition": DEFINITION, "__module__": __name__}))


def djhpc_row(tmp_path: Path, row_id: int) -> dict:
    doc = tmp_path / "djhpc_doc.txt"
    doc.write_bytes(b"written by djhpc")
    staged = tmp_path / "stage" / "djhpc" / "file.dat"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(b"djhpc's managed file")
    return {"id": row_id, "data": np.arange(4).reshape(2, 2) + row_id, "doc": doc, "note": doc, "file": staged}


@pytest.mark.mysql
def test_datajoint_and_djhpc_share_external_data_both_ways(datajoint_014, shared, tmp_path):
    name, connection = shared
    # DataJoint declares the table and writes a row; djhpc reads it
    datajoint(datajoint_014, tmp_path, name, "insert", "Shared")
    schema = dj.Schema(name, connection=connection)
    shared_table = declare(schema, "Shared")
    row = (shared_table & {"id": 1}).fetch1(download_path=tmp_path / "download")
    assert np.array_equal(row["data"], np.arange(6.0).reshape(2, 3))
    assert Path(row["doc"]).read_bytes() == Path(row["note"]).read_bytes() == b"written by DataJoint"
    assert Path(row["file"]).read_bytes() == b"DataJoint's managed file"  # brought back to the stage

    # djhpc writes a row into DataJoint's table; DataJoint reads both
    staged = djhpc_row(tmp_path, 2)
    shared_table.insert1(staged)
    staged["file"].unlink()
    got = datajoint(datajoint_014, tmp_path, name, "fetch", "Shared")
    assert got == [
        {"id": 1, "data": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "doc": "written by DataJoint",
         "note": "written by DataJoint", "file": "DataJoint's managed file"},
        {"id": 2, "data": [[2, 3], [4, 5]], "doc": "written by djhpc", "note": "written by djhpc",
         "file": "djhpc's managed file"},
    ]

    # DataJoint's garbage collection sees djhpc's references: only row 1's blob and attachment go
    counts = datajoint(datajoint_014, tmp_path, name, "collect", "Shared")
    assert counts == {"before": 4, "after": 2}
    assert np.array_equal(shared_table.fetch1("data"), np.arange(4).reshape(2, 2) + 2)


@pytest.mark.mysql
def test_datajoint_reads_a_table_djhpc_declared(datajoint_014, shared, tmp_path):
    name, connection = shared
    schema = dj.Schema(name, connection=connection)
    mine = declare(schema, "Mine")
    mine.insert1(djhpc_row(tmp_path, 7))
    other = djhpc_row(tmp_path, 8)
    other["data"] = "text"
    mine.insert1(other)
    # DataJoint reads the heading from the database: the ':blob@loc:' comments djhpc wrote, and the tracking table
    got = datajoint(datajoint_014, tmp_path, name, "fetch", "Mine")
    assert [r["id"] for r in got] == [7, 8] and got[0]["data"] == [[7, 8], [9, 10]] and got[1]["data"] == "text"
    assert all(r["doc"] == r["note"] == "written by djhpc" and r["file"] == "djhpc's managed file" for r in got)
    # djhpc's garbage collection sees the rows DataJoint wrote and deleted
    datajoint(datajoint_014, tmp_path, name, "insert", "Mine")
    (mine & "id = 7").delete(safemode=False)
    loc = schema.external["loc"]
    assert len(loc.unused()) == 1  # row 7's blob; the attachment is row 8's too
    assert loc.delete(delete_external_files=True) == [] and len(loc) == 4
    assert len(mine) == 2 and (mine & {"id": 1}).fetch1("doc", download_path=tmp_path / "download")
