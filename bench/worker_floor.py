"""The floor of the sleep case: ``python bench/worker_floor.py SETTINGS_JSON`` (see workerlib.py).

The same make (sleep, then insert one row) with no coordination at all: worker i of W makes the keys whose
number is i modulo W, each in one round trip (BEGIN, INSERT, COMMIT in one packet) with one durable commit.
No library can spend less per key on a durable result, so its rate is what the machine allows, and the
gap between it and djhpc is what djhpc's reservation costs.
"""

from __future__ import annotations

import os

import worker_djhpc  # noqa: I001  (imports workerlib first, then installs the PyMySQL counters)
import workerlib
from worker_djhpc import COUNTS


def floor(worker):
    s = worker.settings
    connection, schema, Item, Result = worker_djhpc.declare(worker)
    if s.get("setup"):
        worker_djhpc.fill(worker, connection, Item, Result)
    mine = [k for k in Item.fetch("KEY", order_by="item") if k["item"] % int(s["workers"]) == worker.index]
    raw = connection.raw
    sql = f"BEGIN;\nINSERT INTO {Result().full_table_name} (item, doubled) VALUES (%s, %s);\nCOMMIT"
    worker.ready_and_wait(COUNTS)
    for key in mine:
        worker.made(key)
        with raw.cursor() as cur:
            cur.execute(sql, (key["item"], 2 * key["item"]))
            while cur.nextset():
                pass
    worker.finish(success=len(mine), lost=0, make_calls=len(mine), errors=0)


def main():
    worker = workerlib.Worker()
    floor(worker)
    os._exit(0)


if __name__ == "__main__":
    main()
