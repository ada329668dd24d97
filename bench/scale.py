"""The scale case: W workers with 1 s makes started together, each run on a private MariaDB of its own whose
``max_connections`` is raised for W, so that the server's counters, CPU time and peak connections belong to that
run alone. What it adds to a row: % of ideal, rows read per job, server CPU ms per job, peak connections.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from support.mariadb import PrivateMariaDB  # noqa: E402  (the tests' throw-away server)

sys.path.pop(0)


def private_server(workers: int):
    """A fresh MariaDB for one run, with room for every worker's connection (and a heartbeat's) and the runner's."""
    options = [f"--max-connections={2 * workers + 50}", "--innodb-buffer-pool-size=256M"]
    if os.environ.get("DJHPC_BENCH_GENERAL_LOG"):  # every statement the server ran, to see where they go
        options += ["--general-log=1", f"--general-log-file={os.environ['DJHPC_BENCH_GENERAL_LOG']}-{workers}"]
    return private_server_with(tuple(options))


@contextmanager
def private_server_with(options: tuple[str, ...]):
    """A fresh MariaDB started with ``options``, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="djhpc-bench-scale-") as base:
        server = PrivateMariaDB(Path(base) / "mariadb", options=options)
        server.install()
        server.start()
        try:
            yield server
        finally:
            server.stop()


def run_scale(runner, run, system, workers: int, rep: int, kwargs: dict) -> dict:
    """``run(runner, system, "scale", workers, rep, kwargs)`` on a private server; the row gains the server's
    CPU time, rows read and peak connections, and % of ideal (W keys per make time)."""
    from bench.run import Server  # the runner's own description of a server

    saved_server, saved_db = runner.server, runner._db
    with private_server(workers) as private:
        runner.server, runner._db = Server("127.0.0.1", private.port, "root", ""), None
        try:
            process = psutil.Process(private.proc.pid)
            cpu, machine = process.cpu_times(), psutil.cpu_times()
            out = run(runner, system, "scale", workers, rep, kwargs)
            after, machine_after = process.cpu_times(), psutil.cpu_times()
            with runner.db().cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Max_used_connections')")
                status = {name: int(value) for name, value in cur.fetchall()}
        finally:
            if runner._db is not None:
                runner._db.close()
            runner.server, runner._db = saved_server, saved_db
    success = out["success"] or 1
    out["server_cpu_ms_per_job"] = 1000 * ((after.user + after.system) - (cpu.user + cpu.system)) / success
    out["peak_connections"] = status.get("Max_used_connections")
    out["rows_read_per_job"] = out["server"].get("Rows_read", 0) / success
    ideal = workers / kwargs["sleep_seconds"]
    out["pct_of_ideal"] = 100 * out["jobs_per_s"] / ideal
    out["machine_busy_pct"] = busy_pct(machine, machine_after)
    out["worker_cpu_ms_per_job"] = 1000 * sum(r.get("cpu_s", 0.0) for r in out["workers_detail"]) / success
    return out


def busy_pct(before, after) -> float:
    """How busy every core of the machine was between two ``psutil.cpu_times()`` (the whole run: workers starting
    and ending, the server, the runner): near 100 % the gap to ideal is CPU this machine does not have."""
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return 100 * (1 - idle / total) if total > 0 else 0.0
