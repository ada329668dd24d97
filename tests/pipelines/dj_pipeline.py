"""A small pipeline written with DataJoint itself (0.14.x or 2.x), as a lab's would be: djhpc drives it unchanged.

The schema is named by DJHPC_TEST_SCHEMA; DataJoint connects with DJ_HOST/DJ_USER/DJ_PASS. Every make appends
"table item pid" to the file DJHPC_TEST_CALLS (one write per line: lines of concurrent workers never mix), so a
test can tell a key made twice; with DJHPC_TEST_CONNECTION_IDS also the id of DataJoint's session that made it.
DJHPC_TEST_SLEEP makes each make sleep that long, then wait for the file DJHPC_TEST_GATE to exist, then (for
the item DJHPC_TEST_QUERY_AFTER names) send a statement on DataJoint's connection; DJHPC_TEST_STEAL=item makes
that key's make hand its djhpc reservation to another owner, as a reaper would, before it inserts.
"""

import os
import time

import datajoint as dj

if dj.__version__.startswith("0."):
    dj.config["database.use_tls"] = False  # the test server has no TLS; 0.14 would insist on it

schema = dj.Schema(os.environ["DJHPC_TEST_SCHEMA"])


def _called(table: str, key: dict):
    path = os.environ.get("DJHPC_TEST_CALLS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        session = ""
        if os.environ.get("DJHPC_TEST_CONNECTION_IDS"):
            session = f" {dj.conn().query('SELECT CONNECTION_ID()').fetchone()[0]}"
        try:
            os.write(fd, f"{table} {key['item']} {os.getpid()}{session}\n".encode())
        finally:
            os.close(fd)
    if os.environ.get("DJHPC_TEST_SLEEP"):
        time.sleep(float(os.environ["DJHPC_TEST_SLEEP"]))
    gate = os.environ.get("DJHPC_TEST_GATE")
    deadline = time.monotonic() + 600
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.environ.get("DJHPC_TEST_QUERY_AFTER") == str(key["item"]):
        dj.conn().query("SELECT 1").fetchall()


def _steal_if_asked(table, key: dict):
    """Give this key's reservation to another owner from another session, as a reaper that judged this worker
    dead would: the make's own commit must then fail its fence."""
    if os.environ.get("DJHPC_TEST_STEAL") != str(key["item"]):
        return
    import pymysql

    from djhpc.reservation import key_hash

    other = pymysql.connect(host=os.environ.get("DJ_HOST", "127.0.0.1"), user=os.environ.get("DJ_USER", "root"),
                            password=os.environ.get("DJ_PASS", ""), autocommit=True)
    try:
        with other.cursor() as cur:
            cur.execute(f"UPDATE `{table.database}`.`~djhpc_jobs` SET token = 'stolen', owner = 'stolen' "
                        "WHERE table_name = %s AND key_hash = %s", (table.table_name, key_hash(dict(key))))
    finally:
        other.close()


@schema
class Item(dj.Manual):
    definition = """
    item : int
    ---
    value : int
    """


@schema
class Square(dj.Computed):
    definition = """
    -> Item
    ---
    square : int
    """

    def make(self, key):
        _called("Square", key)
        _steal_if_asked(self, key)
        value = (Item & key).fetch1("value")
        if value == 13:
            raise ValueError("thirteen is unlucky")
        self.insert1(dict(key, square=value * value))


@schema
class Doubled(dj.Computed):
    """The tripartite make: fetch and compute outside the transaction, fetch again and insert inside it."""

    definition = """
    -> Item
    ---
    doubled : int
    """

    def make_fetch(self, key):
        return ((Item & key).fetch1("value"),)

    def make_compute(self, key, value):
        _called("Doubled", key)
        return (2 * value,)

    def make_insert(self, key, doubled):
        self.insert1(dict(key, doubled=doubled))
