"""A test pipeline whose make() logs every call, so tests count makes, not only rows.

Settings come from the environment: DJHPC_TEST_SCHEMA (schema name), DJHPC_TEST_CALLS (file that gets
one line per make call), DJHPC_TEST_FAIL (comma-separated items whose make raises), DJHPC_TEST_SLEEP
(seconds each make sleeps), DJHPC_TEST_GATE (a file each make waits for, up to 10 minutes: a test holds every
worker inside its first make until enough of them run at once).
"""

import os
import random
import time

import djhpc as dj

schema = dj.schema(os.environ["DJHPC_TEST_SCHEMA"], locals())


def record_call(table: str, key: dict):
    path = os.environ.get("DJHPC_TEST_CALLS")
    if path:
        line = f"{table} {sorted(key.items())} {os.getpid()}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def wait_for_gate():
    gate = os.environ.get("DJHPC_TEST_GATE")
    deadline = time.monotonic() + 600
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)


def failing_items() -> set:
    return {int(x) for x in os.environ.get("DJHPC_TEST_FAIL", "").split(",") if x.strip()}


@schema
class Item(dj.Manual):
    definition = """
    item : int
    ---
    value : int
    """


@schema
class Pair(dj.Manual):
    definition = """
    a : int
    b : int
    """


@schema
class Square(dj.Computed):
    definition = """
    -> Item
    ---
    square : bigint
    """

    class Note(dj.Part):
        definition = """
        -> master
        ---
        note : varchar(64)
        """

    def make(self, key):
        record_call("Square", key)
        wait_for_gate()
        delay = float(os.environ.get("DJHPC_TEST_SLEEP", "0") or 0)
        longest = float(os.environ.get("DJHPC_TEST_SLEEP_MAX", "0") or 0)
        if longest > delay:
            delay = random.uniform(delay, longest)
        if delay:
            time.sleep(delay)
        value = (Item & key).fetch1("value")
        self.insert1(dict(key, square=value * value))
        if key["item"] in failing_items():
            raise ValueError(f"bad item {key['item']}")
        self.Note.insert1(dict(key, note=f"item {key['item']}"))


@schema
class PairSum(dj.Computed):
    definition = """
    -> Pair
    ---
    total : int
    """

    def make(self, key):
        record_call("PairSum", key)
        self.insert1(dict(key, total=key["a"] + key["b"]))


@schema
class Held(dj.Computed):
    """make() inserts, then writes its PID to DJHPC_TEST_MARKER and sleeps DJHPC_TEST_HOLD seconds."""

    definition = """
    -> Item
    ---
    worker_pid : int
    """

    def make(self, key):
        record_call("Held", key)
        self.insert1(dict(key, worker_pid=os.getpid()))
        marker = os.environ.get("DJHPC_TEST_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(float(os.environ.get("DJHPC_TEST_HOLD", "0") or 0))
