"""A test pipeline of five computed tables in a graph, for whole-pipeline workers (issue 19).

Session (manual) -> Motion -> Segment ("GPU": resources ask for the gpu partition) -> Trace (with part
Trace.Cell); Motion -> Quality; Trace and Quality -> Summary (a fan-in). Every make() appends a line
``table session pid start end`` to DJHPC_TEST_CALLS, sleeps DJHPC_TEST_SLEEP seconds, and Motion raises for
the sessions in DJHPC_TEST_FAIL. DJHPC_TEST_SCHEMA names the schema. With DJHPC_TEST_WITH=datajoint the
same tables are written with DataJoint itself (connected through DJ_HOST, DJ_USER, DJ_PASS).
"""

import importlib
import os
import time

dj = importlib.import_module("datajoint" if os.environ.get("DJHPC_TEST_WITH") == "datajoint" else "djhpc")
if dj.__name__ == "datajoint" and dj.__version__.startswith("0."):
    dj.config["database.use_tls"] = False  # the test server has no TLS; 0.14 would insist on it

schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"])


def work(table: str, key: dict):
    start = time.time()
    time.sleep(float(os.environ.get("DJHPC_TEST_SLEEP", "0")))
    if table == "Motion" and key["session"] in {int(x) for x in os.environ.get("DJHPC_TEST_FAIL", "").split(",") if x}:
        raise ValueError(f"session {key['session']}: the recording is corrupt")
    path = os.environ.get("DJHPC_TEST_CALLS")
    if path:
        line = f"{table} {key['session']} {os.getpid()} {start:.6f} {time.time():.6f}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@schema
class Session(dj.Manual):
    definition = """
    session : int
    """


@schema
class Motion(dj.Computed):
    definition = """
    -> Session
    ---
    shift : double
    """

    def make(self, key):
        work("Motion", key)
        self.insert1(dict(key, shift=key["session"] / 10))


@schema
class Segment(dj.Computed):
    definition = """
    -> Motion
    ---
    cells : int
    """
    resources = {"partition": "gpu"}

    def make(self, key):
        work("Segment", key)
        self.insert1(dict(key, cells=key["session"] % 3 + 1))


@schema
class Trace(dj.Computed):
    definition = """
    -> Segment
    ---
    mean : double
    """

    class Cell(dj.Part):
        definition = """
        -> master
        cell : int
        """

    def make(self, key):
        work("Trace", key)
        cells = (Segment & key).fetch1("cells")
        self.insert1(dict(key, mean=float(cells)))
        self.Cell.insert([dict(key, cell=c) for c in range(cells)])


@schema
class Quality(dj.Computed):
    definition = """
    -> Motion
    ---
    ok : tinyint
    """

    def make(self, key):
        work("Quality", key)
        self.insert1(dict(key, ok=1))


@schema
class Summary(dj.Computed):
    definition = """
    -> Trace
    -> Quality
    ---
    score : double
    """

    def make(self, key):
        work("Summary", key)
        self.insert1(dict(key, score=(Trace & key).fetch1("mean") + (Quality & key).fetch1("ok")))
