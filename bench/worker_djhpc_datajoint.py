"""djhpc's populate loop driving a table declared with DataJoint:
``python bench/worker_djhpc_datajoint.py SETTINGS_JSON`` (see workerlib.py).

Runs in a DataJoint interpreter (0.14 or 2.x) with djhpc on PYTHONPATH. The tables, the fill and the make are
worker_datajoint.py's, declared by DataJoint; only the loop around make is djhpc's (djhpc.djtarget), so the row
beside "DataJoint" measures what a lab gets by starting ``djhpc work`` instead of ``populate(reserve_jobs=True)``.
"""

from __future__ import annotations

import os

import worker_datajoint as dj_side  # noqa: I001  (first: the PyMySQL wrappers, DataJoint's configuration)

from djhpc.djtarget import DataJointTarget  # noqa: E402
from djhpc.populate import PopulateOptions, run  # noqa: E402


def populate(worker):
    s = worker.settings
    schema, Item, Result = dj_side.declare(worker)
    if s.get("setup"):
        dj_side.fill(worker, Item, Result)
    target = DataJointTarget(Result)
    target.connection.query("SELECT 1")  # connected before the start, as a long-lived worker would be
    dj_side.dj.conn().query("SELECT 1")
    worker.ready_and_wait(dj_side.COUNTS)
    result = run(target, (), PopulateOptions(reserve_jobs=True, max_calls=s.get("max_calls")))
    worker.finish(success=result.success_count, lost=result.lost_count, seen_held=result.seen_taken_count,
                  make_calls=result.make_calls, errors=len(result.error_list))


def main():
    dj_side.configure()
    worker = dj_side.workerlib.Worker()
    if worker.settings["mode"] != "populate":
        raise SystemExit(f"unknown mode {worker.settings['mode']!r}")
    populate(worker)
    os._exit(0)


if __name__ == "__main__":
    main()
