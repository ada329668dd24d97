"""Where a djhpc job's time goes: ``python -m bench.profile_djhpc`` (needs pyinstrument, the bench extra).

1. Micro-costs of the server, measured with plain PyMySQL: a ``SELECT 1`` round trip, an autocommit
   single-row INSERT (one durable commit), BEGIN/INSERT/COMMIT, and an fsync on the server's data folder.
2. One djhpc worker populating N keys (trivial make) in this process under pyinstrument, with the
   process's CPU time, mariadbd's CPU time and the round trips counted, so that wall time per job can be
   split into client Python, server work and waiting.
3. The same run with the completion history off (DJHPC_HISTORY=0), and, with ``--flush-experiment``, with
   ``innodb_flush_log_at_trx_commit=2`` (no fsync per commit). That flag changes a global server setting
   for the length of one run and restores it afterwards: use it only on a server nobody else relies on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import counting
from bench.run import PIPELINES, Server


def mariadbd_cpu(port: int = 3306) -> float | None:
    """CPU seconds of the server that listens on ``port`` (a machine may run others: SLURM's accounting)."""
    import psutil

    for p in psutil.process_iter(["name"]):
        if p.info["name"] not in ("mariadbd", "mysqld"):
            continue
        try:
            if not any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                       for c in p.net_connections(kind="tcp")):
                continue
            t = p.cpu_times()
        except psutil.Error:
            continue
        return t.user + t.system
    return None


def micro_costs(server: Server, repeats: int = 2000) -> dict:
    """Median milliseconds of the basic operations every job is made of."""
    c = server.connect()
    db = f"bench_micro_{uuid.uuid4().hex[:8]}"
    out = {}
    try:
        cur = c.cursor()
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.t (id int PRIMARY KEY, v int) ENGINE=InnoDB")

        def timed(fn, n):
            samples = []
            for i in range(n):
                t0 = time.perf_counter()
                fn(i)
                samples.append(time.perf_counter() - t0)
            return 1000 * statistics.median(samples)

        out["select_1_ms"] = timed(lambda i: cur.execute("SELECT 1"), repeats)
        out["autocommit_insert_ms"] = timed(lambda i: cur.execute(f"INSERT INTO `{db}`.t VALUES (%s, 1)", (i,)),
                                            repeats // 2)

        def tx(i):
            c.begin()
            cur.execute(f"INSERT INTO `{db}`.t VALUES (%s, 2)", (100_000 + i,))
            c.commit()

        out["begin_insert_commit_ms"] = timed(tx, repeats // 2)

        def tx_rollback(i):
            c.begin()
            cur.execute(f"INSERT INTO `{db}`.t VALUES (%s, 2)", (200_000 + i,))
            c.rollback()

        out["begin_insert_rollback_ms"] = timed(tx_rollback, repeats // 2)
        cur.execute("SELECT @@datadir")
        datadir = cur.fetchone()[0]
    finally:
        c.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        c.close()
    folder = datadir if os.access(datadir, os.W_OK) else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(dir=folder, prefix="bench-fsync-")
    try:
        def write_sync(i):
            os.write(fd, b"x" * 512)
            os.fsync(fd)

        out["fsync_ms"] = timed(write_sync, 300)
        out["fsync_folder"] = folder
    finally:
        os.close(fd)
        os.unlink(path)
    return out


def populate_once(server: Server, n: int, *, history: bool, profile: bool):
    """One djhpc worker, this process, N keys; returns (figures, profiler or None)."""
    os.environ["DJHPC_HISTORY"] = "1" if history else "0"
    os.environ["DJHPC_DATABASE_URL"] = server.url
    import djhpc as dj

    connection = dj.conn(server.url, reset=True)
    name = f"bench_profile_{uuid.uuid4().hex[:8]}"
    schema = dj.Schema(name, connection=connection)
    if str(PIPELINES) not in sys.path:
        sys.path.insert(0, str(PIPELINES))
    import pipeline_bench

    Item, Result = pipeline_bench.declare(schema)
    try:
        connection.query(f"INSERT INTO {Item().full_table_name} (item, value) SELECT seq, seq FROM "
                         f"`{name}`.seq_0_to_{n - 1}")
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
        counts_before = counting.COUNTS.snapshot()
        server_before = mariadbd_cpu(server.port)
        cpu_before = time.process_time()
        t0 = time.perf_counter()
        if profiler:
            profiler.start()
        result = Result().populate(reserve_jobs=True)
        if profiler:
            profiler.stop()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu_before
        server_cpu = mariadbd_cpu(server.port)
        counts = counting.COUNTS.snapshot()
        made = result.success_count
        figures = {
            "n": n, "history": history, "made": made, "wall_s": wall, "jobs_per_s": made / wall,
            "ms_per_job": 1000 * wall / made, "client_cpu_ms_per_job": 1000 * cpu / made,
            "server_cpu_ms_per_job": None if server_before is None else 1000 * (server_cpu - server_before) / made,
            "round_trips_per_job": (counts["round_trips"] - counts_before["round_trips"]) / made,
            "commits_per_job": (counts["commits"] - counts_before["commits"]) / made,
        }
        return figures, profiler
    finally:
        connection.query(f"DROP DATABASE IF EXISTS `{name}`")


def set_flush(server: Server, value: int) -> int:
    c = server.connect()
    try:
        cur = c.cursor()
        cur.execute("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit")
        old = int(cur.fetchone()[0])
        cur.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(value)}")
        return old
    finally:
        c.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_djhpc", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="keys (default 2000)")
    p.add_argument("--flush-experiment", action="store_true",
                   help="also run with innodb_flush_log_at_trx_commit=2 (a global server setting, restored after)")
    p.add_argument("--html", metavar="FILE", help="write pyinstrument's HTML profile here too")
    args = p.parse_args(argv)
    counting.install()
    server = Server.from_env()
    print("micro-costs (median ms):")
    for k, v in micro_costs(server).items():
        print(f"  {k:26s} {v:.3f}" if isinstance(v, float) else f"  {k:26s} {v}")
    rows = []
    populate_once(server, min(args.n, 200), history=True, profile=False)  # warm: imports, first tables
    figures, profiler = populate_once(server, args.n, history=True, profile=True)
    rows.append(("default", figures))
    rows.append(("DJHPC_HISTORY=0", populate_once(server, args.n, history=False, profile=False)[0]))
    rows.append(("default, again", populate_once(server, args.n, history=True, profile=False)[0]))
    if args.flush_experiment:
        old = set_flush(server, 2)
        try:
            rows.append(("innodb_flush_log_at_trx_commit=2", populate_once(server, args.n, history=True,
                                                                          profile=False)[0]))
        finally:
            set_flush(server, old)
    print("\none djhpc worker, trivial make (the profiled run is slower: pyinstrument's own cost):")
    print(f"  {'run':34s} {'jobs/s':>8s} {'ms/job':>7s} {'client CPU ms':>13s} {'mariadbd CPU ms':>15s} "
          f"{'rt/job':>6s} {'commits/job':>11s}")
    for label, f in rows:
        server_cpu = "" if f["server_cpu_ms_per_job"] is None else f"{f['server_cpu_ms_per_job']:.3f}"
        print(f"  {label:34s} {f['jobs_per_s']:8.0f} {f['ms_per_job']:7.3f} {f['client_cpu_ms_per_job']:13.3f} "
              f"{server_cpu:>15s} {f['round_trips_per_job']:6.2f} {f['commits_per_job']:11.2f}")
    print()
    print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=False))
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
