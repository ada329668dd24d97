"""djhpc and DataJoint side by side on the same MariaDB: ``python -m bench`` (options: ``--help``).

Every case declares a fresh database (``bench_<run>_<n>``) with each library's own tables (a Manual
``Item`` of N keys, a Computed ``Result`` whose make inserts one row, after a sleep in the sleep case),
starts W worker processes that wait at a barrier (a ``go`` file naming a start time), collects what each
worker counted, reads the make log for keys made twice and drops the database. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.budget import run_budget
from bench.prototypes import PATCHES
from bench.scale import run_scale

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PIPELINES = ROOT / "tests" / "pipelines"  # pipeline_bench.py: the tables djhpc's workers declare
CASES = ("scaling", "sleep", "startup", "progress", "sqlite", "scale", "budget")
AT_SCALE = ("scale", "budget")  # private servers, minutes each: left out of --quick unless asked for
THROUGHPUT_CASES = ("scaling", "sleep", "sqlite", "scale")
SERVER_COUNTERS = ("Questions", "Com_commit", "Handler_commit", "Innodb_data_fsyncs", "Innodb_log_writes",
                   "Innodb_row_lock_waits", "Innodb_row_lock_time", "Innodb_deadlocks", "Rows_read")
MAKE_OWN_ROUND_TRIPS = 3  # BEGIN, the INSERT, COMMIT: what make() itself costs without any reservation
MAKE_OWN_COMMITS = 1
LEFT = "('reserved', 'error')"  # job statuses that must not outlive a run (DataJoint 2.x keeps 'pending' rows)
ENV_DATAJOINT_PYTHON = "DJHPC_BENCH_DATAJOINT_PYTHON"
PASSED_THROUGH = ("DJHPC_HISTORY",)  # djhpc settings a user may set on purpose when benchmarking


class BenchError(Exception):
    """A run could not be completed; the message names the run and the worker's last words."""


class WorkerDied(BenchError):
    """A worker exited before writing its result; ``reason`` is the last line it printed."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class System:
    name: str  # shown in the table
    kind: str  # "djhpc" or "datajoint"
    python: str
    version: str
    backend: str = "mysql"

    @property
    def script(self) -> Path:
        scripts = {"djhpc": "worker_djhpc.py", "floor": "worker_floor.py", "djhpc-dj": "worker_djhpc_datajoint.py"}
        return HERE / scripts.get(self.kind, "worker_datajoint.py")

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str = field(repr=False)

    @classmethod
    def from_env(cls) -> Server:
        return cls(os.environ.get("DJ_HOST", "127.0.0.1"), int(os.environ.get("DJ_PORT", 3306)),
                   os.environ.get("DJ_USER", "root"), os.environ.get("DJ_PASS", ""))

    def connect(self):
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               autocommit=True, connect_timeout=5)

    @property
    def url(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return f"mysql://{auth}@{self.host}:{self.port}"


# --------------------------------------------------------------------------------------------- options
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="djhpc vs DataJoint populate(reserve_jobs=True) on the same MariaDB, side by side.",
        epilog="The server comes from DJ_HOST, DJ_USER, DJ_PASS, DJ_PORT (default root@127.0.0.1:3306, no "
               f"password). DataJoint runs in the interpreters given by --datajoint-python, else in those listed in "
               f"${ENV_DATAJOINT_PYTHON} ({os.pathsep}-separated), else in this one if it can import datajoint.",
    )
    p.add_argument("--n", type=int, help="keys in the scaling and SQLite cases (default 2000; --quick 60)")
    p.add_argument("--workers", help="worker counts of the scaling case (default 1,2,4,8; --quick 1,2)")
    p.add_argument("--cases", help=f"comma-separated, from {', '.join(CASES)} (default all; --quick: all but scale)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks that everything runs")
    p.add_argument("--repeat", type=int, help="repeats of each run; the median run is shown (default 3; --quick 1)")
    p.add_argument("--datajoint-python", action="append", default=[], metavar="PYTHON",
                   help="an interpreter with DataJoint installed (repeatable: 2.x and 0.14 side by side)")
    p.add_argument("--no-datajoint", action="store_true", help="djhpc rows only")
    p.add_argument("--datajoint-refresh", choices=("each", "once"), default="each",
                   help="DataJoint 2.x: every worker refreshes the queue (its default), or the runner once")
    p.add_argument("--djhpc-position", choices=("default", "random", "spread"), default="default",
                   help="experiment: pass populate(position=) to djhpc workers: a random start each, or evenly "
                        "spread starts as array tasks get (default: plain populate(reserve_jobs=True))")
    p.add_argument("--djhpc-patch", action="append", default=[], choices=sorted(PATCHES), metavar="NAME",
                   help="experiment: apply a prototype change in every djhpc worker (bench/prototypes.py: "
                        f"{', '.join(sorted(PATCHES))})")
    p.add_argument("--sleep-ms", type=float, help="make's sleep in the sleep case (default 50; --quick 20)")
    p.add_argument("--sleep-workers", type=int, help="workers in the sleep case (default 8; --quick 2)")
    p.add_argument("--sleep-n", type=int, help="keys in the sleep case (default 1600: 200 per worker; --quick 20)")
    p.add_argument("--startup-keys", help="pending keys in the start-up case (default 1000,100000; --quick 200,2000)")
    p.add_argument("--progress-keys", type=int, help="parent keys in the progress case, half done (default 200000)")
    p.add_argument("--sqlite-workers", help="worker counts of the SQLite case (default 1,2,4; --quick 1,2)")
    p.add_argument("--sqlite-sleep-workers", type=int, help="workers on one SQLite file with 100 ms makes, 25 keys "
                   "each (default 32; --quick 4)")
    p.add_argument("--scale-workers", help="worker counts of the scale case, each on a private MariaDB "
                                           "(default 16,64,256; --quick 16)")
    p.add_argument("--scale-keys", type=int, help="keys per worker in the scale case (default 8; --quick 2)")
    p.add_argument("--scale-sleep-ms", type=float, help="make's sleep in the scale case (default 1000)")
    p.add_argument("--budget-tasks", type=int, help="tasks of the connection-budget case's array (default 1000)")
    p.add_argument("--budget-connections", type=int, help="the server's max_connections there (default 151)")
    p.add_argument("--budget-running", type=int, help="tasks running at once there, as the scheduler lets them "
                   "(default 300: twice the connections; ~60 MB each)")
    p.add_argument("--budget-keys", type=int, help="keys per task there (default 2)")
    p.add_argument("--budget-sleep-ms", type=float,
                   help="make's sleep there (default 5000: the makes outlast the tasks' arrival)")
    p.add_argument("--budget-release-after-ms", type=float,
                   help="the case's second row: workers give their connection back after a make leaves it unused "
                        "this long (djhpc work --release-after; default 1000, --quick 100)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one run may take before it is killed")
    p.add_argument("--json", metavar="FILE", help="write every row, run and target check as JSON")
    p.add_argument("--png", metavar="FILE", help="chart of jobs/s against workers (needs matplotlib)")
    args = p.parse_args(argv)
    quick = args.quick
    args.n = args.n or (60 if quick else 2000)
    args.workers = _ints(args.workers or ("1,2" if quick else "1,2,4,8"), "--workers")
    args.repeat = args.repeat or (1 if quick else 3)
    args.sleep_ms = args.sleep_ms if args.sleep_ms is not None else (20 if quick else 50)
    args.sleep_workers = args.sleep_workers or (2 if quick else 8)
    args.sleep_n = args.sleep_n or (20 if quick else 1600)
    args.startup_keys = _ints(args.startup_keys or ("200,2000" if quick else "1000,100000"), "--startup-keys")
    args.progress_keys = args.progress_keys or (2000 if quick else 200_000)
    args.sqlite_workers = _ints(args.sqlite_workers or ("1,2" if quick else "1,2,4"), "--sqlite-workers")
    args.sqlite_sleep_workers = args.sqlite_sleep_workers or (4 if quick else 32)
    args.scale_workers = _ints(args.scale_workers or ("16" if quick else "16,64,256"), "--scale-workers")
    args.scale_keys = args.scale_keys or (2 if quick else 8)
    args.scale_sleep_ms = args.scale_sleep_ms if args.scale_sleep_ms is not None else 1000
    args.budget_tasks = args.budget_tasks or (24 if quick else 1000)
    args.budget_connections = args.budget_connections or (8 if quick else 151)
    args.budget_running = args.budget_running or (16 if quick else 300)
    args.budget_keys = args.budget_keys or 2
    args.budget_sleep_ms = args.budget_sleep_ms if args.budget_sleep_ms is not None else (300 if quick else 5000)
    if args.budget_release_after_ms is None:
        args.budget_release_after_ms = 100 if quick else 1000
    if args.cases is None:
        args.cases = ",".join(c for c in CASES if not (quick and c in AT_SCALE))
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in CASES]
    if bad:
        p.error(f"unknown case {bad[0]!r}: choose from {', '.join(CASES)}")
    if args.n < 1 or args.repeat < 1:
        p.error("--n and --repeat must be >= 1")
    return args


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"bench: error: {option} takes comma-separated whole numbers (got {text!r})") from None
    if not values or min(values) < 1:
        raise SystemExit(f"bench: error: {option} takes numbers >= 1 (got {text!r})")
    return values


def find_datajoint(args) -> list[System]:
    """The DataJoint interpreters to compare with, each asked for its DataJoint version."""
    if args.no_datajoint:
        return []
    pythons = list(args.datajoint_python)
    if not pythons and os.environ.get(ENV_DATAJOINT_PYTHON):
        pythons = [x for x in os.environ[ENV_DATAJOINT_PYTHON].split(os.pathsep) if x]
    if not pythons and importlib.util.find_spec("datajoint") is not None:
        pythons = [sys.executable]
    systems = []
    for python in pythons:
        done = subprocess.run([python, "-c", "import datajoint; print(datajoint.__version__)"], capture_output=True,
                              text=True, cwd=tempfile.gettempdir(), env=_worker_env_base(), timeout=120)
        if done.returncode != 0:
            raise BenchError(f"{python} cannot import datajoint: {done.stderr.strip().splitlines()[-1:]}")
        version = done.stdout.strip().splitlines()[-1]
        systems.append(System(f"DataJoint {version}", "datajoint", python, version))
        if _can_run_djhpc(python):
            systems.append(System(f"djhpc driving DataJoint {version}", "djhpc-dj", python, version))
    return systems


def _can_run_djhpc(python: str) -> bool:
    """Whether a DataJoint interpreter has djhpc's dependencies, so djhpc can drive its tables there."""
    done = subprocess.run([python, "-c", "import yaml, psutil, jinja2, rich"], capture_output=True,
                          cwd=tempfile.gettempdir(), env=_worker_env_base(), timeout=120)
    return done.returncode == 0


# --------------------------------------------------------------------------------------------- one run
def _worker_env_base() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "PBS_", "PARALLEL_")) or k in PASSED_THROUGH}
    env.pop("PYTHONPATH", None)
    return env


class Runner:
    def __init__(self, args, server: Server, systems: list[System]):
        self.args = args
        self.server = server
        self.systems = systems
        self.run_id = uuid.uuid4().hex[:8]
        self.counter = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="djhpc-bench-"))
        self._db = None

    # -------------------------------------------------------------- server
    def db(self):
        if self._db is None:
            self._db = self.server.connect()
        else:
            self._db.ping(reconnect=True)
        return self._db

    def server_counters(self) -> dict:
        with self.db().cursor() as cur:
            marks = ", ".join(["%s"] * len(SERVER_COUNTERS))
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", SERVER_COUNTERS)
            return {name: int(value) for name, value in cur.fetchall()}

    def server_facts(self) -> dict:
        with self.db().cursor() as cur:
            cur.execute("SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin, "
                        "@@innodb_buffer_pool_size, @@tx_isolation")
            v = cur.fetchone()
        return {"version": v[0], "innodb_flush_log_at_trx_commit": int(v[1]), "sync_binlog": int(v[2]),
                "log_bin": int(v[3]), "innodb_buffer_pool_size": int(v[4]), "isolation": v[5]}

    def drop(self, schema: str):
        with self.db().cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")

    def close(self):
        if self._db is not None:
            self._db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------- workers
    def _env(self, system: System) -> dict:
        env = _worker_env_base()
        if system.kind in ("djhpc", "floor"):
            env["PYTHONPATH"] = os.pathsep.join(map(str, (HERE, ROOT, PIPELINES)))
            env["DJHPC_DATABASE_URL"] = self.server.url if system.backend == "mysql" else self._sqlite_url
        else:
            env.update(DJ_HOST=self.server.host, DJ_PORT=str(self.server.port), DJ_USER=self.server.user,
                       DJ_PASS=self.server.password)
            if system.kind == "djhpc-dj":  # djhpc connects as DataJoint does: it reads DataJoint's connection
                env["PYTHONPATH"] = os.pathsep.join(map(str, (HERE, ROOT)))
        return env

    def _spawn(self, system, folder, settings, index, procs):
        s = dict(settings, index=index)
        out = open(folder / f"worker.{index}.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen([system.python, str(system.script), json.dumps(s)], cwd=folder,
                                env=self._env(system), stdout=out, stderr=subprocess.STDOUT)
        out.close()
        procs.append(proc)
        return proc

    def _wait_for(self, folder, names, procs, deadline, what):
        while not all((folder / name).exists() for name in names):
            for i, p in enumerate(procs):
                if p.poll() is not None and not (folder / f"result.{i}.json").exists():
                    tail = _tail(folder, i)
                    raise WorkerDied(f"{what}: worker {i} exited with {p.returncode}:\n{tail}",
                                     (tail.splitlines() or ["(no output)"])[-1].strip())
            if time.monotonic() > deadline:
                raise BenchError(f"{what}: timed out after {self.args.timeout:.0f} s")
            time.sleep(0.01)

    def run(self, system: System, case: str, workers: int, *, n: int, sleep_seconds=0.0, max_calls=None,
            done=0, mode="populate", repeat=0) -> dict:
        """Start ``workers`` processes together on a fresh database; returns what they did."""
        self.counter += 1
        schema = f"bench_{self.run_id}_{self.counter}"
        slug = system.name.replace(" ", "-").lower()
        folder = self.tmp / f"{case}-{slug}-{system.backend}-w{workers}-n{n}-r{repeat}-{self.counter}"  # a retry: anew
        folder.mkdir(parents=True)
        self._sqlite_url = f"sqlite:///{folder / 'bench.db'}"
        what = f"{case} {system.name} ({system.backend}) W={workers} N={n}"
        settings = {"mode": mode, "folder": str(folder), "schema": schema, "sleep_seconds": sleep_seconds,
                    "max_calls": max_calls, "n": n, "done": done, "datajoint_refresh": self.args.datajoint_refresh,
                    "workers": workers, "djhpc_position": self.args.djhpc_position,
                    "djhpc_patches": self.args.djhpc_patch,
                    "repeats": 3 if self.args.quick else 5, "barrier_timeout_seconds": self.args.timeout}
        procs: list[subprocess.Popen] = []
        deadline = time.monotonic() + self.args.timeout
        mysql = system.backend == "mysql"
        try:
            self._spawn(system, folder, dict(settings, setup=True), 0, procs)
            if mode == "progress":
                self._wait_for(folder, ["result.0.json"], procs, deadline, what)
                return self._progress_result(system, case, folder, n, done)
            self._wait_for(folder, ["ready.0"], procs, deadline, what)  # declared and filled
            for i in range(1, workers):
                self._spawn(system, folder, settings, i, procs)
            self._wait_for(folder, [f"ready.{i}" for i in range(workers)], procs, deadline, what)
            before = self.server_counters() if mysql else {}
            load = os.getloadavg()[0]
            go_at = time.time() + 0.2
            (folder / ".go").write_text(repr(go_at))
            (folder / ".go").rename(folder / "go")
            self._wait_for(folder, [f"result.{i}.json" for i in range(workers)], procs, deadline, what)
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            after = self.server_counters() if mysql else {}
            server = {k: after[k] - before[k] for k in before}
            if server:
                server["Questions"] -= 1  # the SHOW GLOBAL STATUS that read "after"
            left = self._rows_left(system, schema, folder)
            out = self._populate_result(system, case, folder, workers, n, sleep_seconds, max_calls, server, left)
            out["load_1min_at_start"] = load
            return out
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            if mysql:
                self.drop(schema)

    def _rows_left(self, system, schema, folder) -> dict:
        """Rows in the target, and reservations or errors left in the jobs table after the run."""
        if system.backend == "sqlite":
            with sqlite3.connect(folder / "bench.db") as c:
                rows = c.execute(f'SELECT COUNT(*) FROM "{schema}.__result"').fetchone()[0]
                jobs = c.execute(f'SELECT COUNT(*) FROM "{schema}.~jobs" WHERE status IN {LEFT}').fetchone()[0]
            return {"rows": rows, "jobs_left": jobs}
        with self.db().cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{schema}`.`__result`")
            rows = cur.fetchone()[0]
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND "
                        "TABLE_NAME IN ('~jobs', '~~result', '~djhpc_jobs')", (schema,))
            jobs = 0
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT COUNT(*) FROM `{schema}`.`{table}` WHERE status IN {LEFT}")
                jobs += cur.fetchone()[0]
        return {"rows": rows, "jobs_left": jobs}

    def _results(self, folder, count) -> list[dict]:
        return [json.loads((folder / f"result.{i}.json").read_text()) for i in range(count)]

    def _populate_result(self, system, case, folder, workers, n, sleep_seconds, max_calls, server, left) -> dict:
        results = self._results(folder, workers)
        go_at = results[0]["go_at"]
        calls_path = folder / "calls.log"
        calls = Counter(line.split()[0] for line in calls_path.read_text().splitlines()) \
            if calls_path.exists() else Counter()
        success = sum(r["success"] for r in results)
        wall = max(r["ended_at"] for r in results) - go_at
        if system.backend == "sqlite":  # no PyMySQL: djhpc's own statement and commit counters
            counts = {"round_trips": sum(r["connection_stats"]["statements"] for r in results),
                      "commits": sum(r["connection_stats"]["commits"] for r in results)}
        else:
            counts = {k: sum(r["counts"][k] for r in results) for k in results[0]["counts"]}
        starts = [r["first_make_at"] - go_at for r in results if "first_make_at" in r]
        out = {
            "case": case, "system": system.name, "kind": system.kind, "version": system.version,
            "backend": system.backend, "workers": workers, "n": n, "sleep_seconds": sleep_seconds,
            "max_calls": max_calls, "wall_s": wall, "success": success, "errors": sum(r["errors"] for r in results),
            "jobs_per_s": success / wall if wall > 0 else 0.0,
            "ms_per_job": 1000 * wall / success if success else None,
            "round_trips": counts["round_trips"], "commits": counts["commits"],
            "autocommit_writes": counts.get("autocommit_writes", 0),
            "round_trips_per_job": counts["round_trips"] / success if success else None,
            "commits_per_job": counts["commits"] / success if success else None,
            "lost": sum(r["lost"] for r in results),
            "seen_held": sum(r.get("seen_held", 0) for r in results) if system.kind in ("djhpc", "djhpc-dj") else None,
            "made_keys": len(calls), "make_calls": sum(calls.values()),
            "twice": sum(1 for c in calls.values() if c > 1),
            "startup_s": max(starts) if starts else None,
            "startup_median_s": statistics.median(starts) if starts else None,
            "import_s": max(r["ready_at"] - r["started_at"] for r in results),
            "max_rss_mb": max(r["max_rss_mb"] for r in results),
            "server": server, **left,
            "workers_detail": results,
        }
        out["lost_pct"] = 100.0 * out["lost"] / n
        if sleep_seconds and success:
            # worker-seconds from the start to each worker's end, less the sleeping: what the rest costs
            busy = sum(r["ended_at"] - go_at for r in results)
            slept = sum(r.get("slept_s", 0.0) for r in results)
            out["outside_sleep_s_per_job"] = (busy - slept) / success
            out["sleep_overshoot_s_per_job"] = slept / out["make_calls"] - sleep_seconds
        if server and success:
            out["server_questions_per_job"] = server["Questions"] / success
            out["server_commits_per_job"] = server["Com_commit"] / success
        first = [r.get("counts_before_first_make") for r in results if r.get("counts_before_first_make")]
        if first:
            out["round_trips_before_first_make"] = max(c["round_trips"] for c in first)
        if system.kind == "djhpc":
            stats = [r.get("connection_stats") for r in results if r.get("connection_stats")]
            out["djhpc_connection_stats"] = {k: sum(s[k] for s in stats) for k in ("statements", "commits")}
        out["checks"] = self._checks(out, n if max_calls is None else None)
        return out

    @staticmethod
    def _checks(r, expected) -> list[str]:
        """Counters that must add up; each failure is a line shown under the table."""
        bad = []
        if r["twice"]:
            bad.append(f"{r['twice']} keys made twice")
        if r["errors"]:
            bad.append(f"{r['errors']} makes failed")
        if expected is not None:
            if r["success"] != expected or r["made_keys"] != expected or r["rows"] != expected:
                bad.append(f"made {r['success']} (make log: {r['made_keys']} keys, table: {r['rows']} rows), "
                           f"expected {expected}")
        if r["make_calls"] != r["success"] + r["errors"]:
            bad.append(f"{r['make_calls']} make calls for {r['success']} successes")
        if r["jobs_left"]:
            bad.append(f"{r['jobs_left']} rows left in the jobs table")
        if r["round_trips"] <= 0 or r["commits"] < r["success"]:
            bad.append(f"{r['round_trips']} round trips and {r['commits']} commits for {r['success']} jobs")
        return bad

    def _progress_result(self, system, case, folder, n, done) -> dict:
        r = self._results(folder, 1)[0]
        timing = r["progress"].get("detail") or r["progress"]["plain"]
        plain = r["progress"]["plain"]
        answer = timing["answer"]
        remaining = answer["remaining"] if isinstance(answer, dict) else answer[0]
        out = {"case": case, "system": system.name, "kind": system.kind, "version": system.version,
               "backend": system.backend, "workers": 1, "n": n, "done": done, "wall_s": timing["seconds"],
               "progress_s": timing["seconds"], "progress_plain_s": plain["seconds"],
               "progress_statements": timing["statements"], "progress_answer": answer,
               "detail": "detail" in r["progress"], "max_rss_mb": r["max_rss_mb"], "twice": 0,
               "workers_detail": [r]}
        out["checks"] = [] if remaining == n - done else [f"progress says {remaining} remaining, expected {n - done}"]
        return out


def _tail(folder, index, lines=25) -> str:
    path = folder / f"worker.{index}.log"
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------------- cases
def plan(args, systems: list[System]) -> list[tuple]:
    """(case, system, workers, keyword arguments of Runner.run, repeats) in the order they run."""
    mysql = [s for s in systems if s.backend == "mysql"]
    driven = [s for s in mysql if s.kind == "djhpc-dj"]  # scaling and start-up only
    mysql = [s for s in mysql if s.kind != "djhpc-dj"]
    out = []
    if "scaling" in args.cases:
        for w in args.workers:
            out += [("scaling", s, w, {"n": args.n}, args.repeat) for s in mysql + driven]
    if "sleep" in args.cases:
        floor = System("floor: no reservation", "floor", sys.executable, "-")
        out += [("sleep", s, args.sleep_workers, {"n": args.sleep_n, "sleep_seconds": args.sleep_ms / 1000},
                 args.repeat) for s in mysql + [floor]]
    if "startup" in args.cases:
        for k in args.startup_keys:
            out += [("startup", s, 1, {"n": k, "max_calls": 1}, args.repeat) for s in mysql + driven]
    if "progress" in args.cases:
        out += [("progress", s, 1, {"n": args.progress_keys, "done": args.progress_keys // 2, "mode": "progress"}, 1)
                for s in mysql]
    if "scale" in args.cases:  # djhpc and DataJoint 2.x: 0.14 is not the reference at scale
        at_scale = [s for s in mysql if s.kind == "djhpc" or s.major >= 2]
        for w in args.scale_workers:
            out += [("scale", s, w, {"n": args.scale_keys * w, "sleep_seconds": args.scale_sleep_ms / 1000}, 1)
                    for s in at_scale]
    if "budget" in args.cases:  # djhpc alone: a DataJoint task without a free connection fails
        # the workers holding their connection, then giving it back during makes (--release-after)
        out += [("budget", s, args.budget_tasks, {"n": args.budget_tasks * args.budget_keys, "release_after": r}, 1)
                for s in mysql if s.kind == "djhpc" for r in (None, args.budget_release_after_ms / 1000)]
    if "sqlite" in args.cases:
        sqlite = [s for s in systems if s.backend == "sqlite"]
        # issue 16: many workers on one SQLite file, with makes long enough for the file's lock to be shared
        out += [("sleep", s, args.sqlite_sleep_workers, {"n": 25 * args.sqlite_sleep_workers, "sleep_seconds": 0.1},
                 args.repeat) for s in sqlite]
        for w in args.sqlite_workers:
            out += [("sqlite", s, w, {"n": args.n}, args.repeat) for s in sqlite]
    return out


DATAJOINT_RETRIES = 2


def run_with_retries(runner, system, case, workers, rep, kwargs) -> dict:
    """One run. A DataJoint worker that dies (0.14 can end a worker with a deadlock error under load) is
    DataJoint's behaviour, not the benchmark's: the run is made again, and the row says how often it died.
    A djhpc worker that dies ends the benchmark."""
    died = []
    while True:
        try:
            out = runner.run(system, case, workers, repeat=rep, **kwargs)
        except WorkerDied as e:
            if system.kind != "datajoint" or len(died) == DATAJOINT_RETRIES:
                raise
            died.append(e.reason)
            print(f"bench: {system.name}: a worker died ({e.reason}); running it again", file=sys.stderr)
            continue
        out["died"] = died
        return out


def pick_median(runs: list[dict]) -> dict:
    """The run with the median speed (the middle one of an odd count), keeping every counter consistent."""
    key = "jobs_per_s" if runs[0]["case"] in THROUGHPUT_CASES else "wall_s"
    ordered = sorted(runs, key=lambda r: r.get(key) or 0)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = len(runs)
    chosen["twice_all_repeats"] = sum(r.get("twice", 0) for r in runs)
    chosen["all_" + key] = [r.get(key) for r in runs]
    chosen["checks"] = sorted({c for r in runs for c in r.get("checks", [])})
    chosen["died_all_repeats"] = [d for r in runs for d in r.get("died", [])]
    return chosen


def add_ratios(rows: list[dict], reference: str | None):
    """djhpc ÷ DataJoint on every row: a DataJoint row against itself, a djhpc row against the reference."""
    fields = ("jobs_per_s", "wall_s", "round_trips_per_job", "commits_per_job", "startup_s")
    mine = {(r["case"], r["workers"], r["n"]): r for r in rows if r["kind"] == "djhpc" and r["backend"] == "mysql"}
    theirs = {(r["case"], r["workers"], r["n"], r["system"]): r for r in rows if r["kind"] == "datajoint"}
    for r in rows:
        base = (r["case"], r["workers"], r["n"])
        shown = fields if r["case"] in THROUGHPUT_CASES else ("wall_s", "startup_s")
        if r["kind"] == "datajoint":
            ours, other = mine.get(base), r
        elif r["backend"] == "mysql" and reference:
            ours, other = r, theirs.get(base + (reference,))
        else:
            ours = other = None
        r["ratio_vs"] = other["system"] if ours and other else None
        r["ratios"] = {f: _ratio(ours.get(f), other.get(f)) if ours and other and f in shown else None
                       for f in fields}


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


# --------------------------------------------------------------------------------------------- output
COLUMNS = [
    # (header, row -> text)
    ("×jobs/s", lambda r: _x(r["ratios"]["jobs_per_s"])),
    ("×wall", lambda r: _x(r["ratios"]["wall_s"])),
    ("×rt/job", lambda r: _x(r["ratios"]["round_trips_per_job"])),
    ("×commits/job", lambda r: _x(r["ratios"]["commits_per_job"])),
    ("×start-up", lambda r: _x(r["ratios"]["startup_s"])),
    ("case", lambda r: r["case"]),
    ("W", lambda r: str(r["workers"])),
    ("N", lambda r: f"{r['n']:,}"),
    ("system", lambda r: r["system"] + (" (SQLite)" if r["backend"] == "sqlite" else "")),
    ("wall s", lambda r: _f(r.get("wall_s"), 3)),
    ("jobs/s", lambda r: _per_job(r, "jobs_per_s", 0)),
    ("ms/job", lambda r: _per_job(r, "ms_per_job", 2)),
    ("rt/job", lambda r: _per_job(r, "round_trips_per_job", 2)),
    ("commits/job", lambda r: _per_job(r, "commits_per_job", 2)),
    ("srv q/job", lambda r: _per_job(r, "server_questions_per_job", 2)),
    ("lost", lambda r: "" if r.get("lost") is None else f"{r['lost']:,}"),
    ("lost %", lambda r: _per_job(r, "lost_pct", 1)),
    ("seen held", lambda r: "" if r.get("seen_held") is None else f"{r['seen_held']:,}"),
    ("twice", lambda r: str(r.get("twice_all_repeats", r.get("twice", "")))),
    ("start-up s", lambda r: _f(r.get("startup_s"), 3)),
    ("notes", lambda r: notes(r)),
]


def _per_job(r, name, digits):
    """Per-job figures of the throughput cases (a start-up run makes one key; progress makes none)."""
    return _f(r.get(name), digits) if r["case"] in THROUGHPUT_CASES else ""


def _x(v):
    return "" if v is None else f"{v:.2f}"


def _f(v, digits):
    return "" if v is None else f"{v:,.{digits}f}"


def notes(r) -> str:
    out = []
    if r["case"] == "sleep":
        ideal = r["workers"] / r["sleep_seconds"]
        out.append(f"{100 * r['jobs_per_s'] / ideal:.0f}% of ideal {ideal:.0f}/s; per job "
                   f"{1000 * r['outside_sleep_s_per_job']:.1f} ms outside the sleep, sleep "
                   f"{1000 * r['sleep_overshoot_s_per_job']:.1f} ms over")
    elif r["case"] == "scale":
        out.append(f"{r['pct_of_ideal']:.0f}% of ideal (cores {r.get('machine_busy_pct', 0):.0f}% busy); per job "
                   f"{r['rows_read_per_job']:,.0f} rows read, {r['server_cpu_ms_per_job']:.1f} ms server CPU, "
                   f"{r.get('worker_cpu_ms_per_job', 0):.1f} ms workers' CPU; peak {r['peak_connections']} connections")
    elif r["case"] == "budget":
        released = f"connections given back after {r['release_after']:g} s unused; " if r.get("release_after") else ""
        out.append(f"{released}{r['workers']:,} tasks, max_connections {r['max_connections']}, up to "
                   f"{r['running_at_once']} running: {r['tasks_waited']} waited for a connection, {r['tasks_failed']} "
                   f"failed; peak {r['peak_connections']} connections; cores {r['machine_busy_pct']:.0f}% busy")
    elif r["case"] == "startup":
        out.append(f"{r.get('round_trips_before_first_make', '?')} rt before 1st make, "
                   f"peak RSS {r['max_rss_mb']:.0f} MB")
    elif r["case"] == "progress":
        done = r["n"] - (r["progress_answer"]["remaining"] if isinstance(r["progress_answer"], dict)
                         else r["progress_answer"][0])
        what = "progress(detail=True): +reserved/error/ignore" if r["detail"] else "progress()"
        out.append(f"{what}, {done:,} done, {r['progress_statements']} statements")
        if r["detail"]:
            out.append(f"plain {r['progress_plain_s']:.3f} s")
    if r.get("repeats", 1) > 1 and r["case"] != "progress":
        out.append(f"median of {r['repeats']}")
    died = r.get("died_all_repeats") or []
    if died:
        reasons = sorted(set(died))
        out.append(f"{len(died)} run(s) ended by a worker's error and run again: {'; '.join(reasons)[:120]}")
    out += [f"CHECK: {c}" for c in r.get("checks", [])]
    return "; ".join(out)


def render(rows: list[dict]) -> str:
    """One markdown table, ratios first."""
    cells = [[h for h, _ in COLUMNS]] + [[fn(r) for _, fn in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    numeric = {i for i, (h, _) in enumerate(COLUMNS) if h not in ("case", "system", "notes")}

    def line(c):
        return "| " + " | ".join(v.rjust(w) if i in numeric else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(c, widths, strict=True))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(c) for c in cells[1:]])


def check_targets(rows: list[dict], args, reference: str | None) -> list[dict]:
    """The issue's targets, each with what was measured and whether it is met (None: not measured)."""
    def row(case, kind, workers=None, system=None, n=None, backend="mysql"):
        for r in rows:
            if (r["case"] == case and r["kind"] == kind and r["backend"] == backend
                    and (workers is None or r["workers"] == workers) and (system is None or r["system"] == system)
                    and (n is None or r["n"] == n)):
                return r
        return None

    out = []

    def target(name, met, measured):
        out.append({"target": name, "met": met, "measured": measured})

    w1, wmax = min(args.workers), max(args.workers)
    h1 = row("scaling", "djhpc", w1)
    if h1:
        rt = h1["round_trips_per_job"] - MAKE_OWN_ROUND_TRIPS
        commits = h1["commits_per_job"] - MAKE_OWN_COMMITS
        target("reservation bookkeeping <= 2 round trips and <= 1 durable commit per job beyond make's own",
               rt <= 2 and commits <= 1,
               f"W={w1}: {h1['round_trips_per_job']:.2f} rt and {h1['commits_per_job']:.2f} commits per job in all; "
               f"make's own: {MAKE_OWN_ROUND_TRIPS} rt, {MAKE_OWN_COMMITS} commit")
    for w, factor in ((1, 2), (8, 5)):
        h, d = row("scaling", "djhpc", w), row("scaling", "datajoint", w, reference)
        if h and d:
            ratio = h["jobs_per_s"] / d["jobs_per_s"]
            target(f"W={w}: >= {factor}x DataJoint 2.x jobs/s", ratio >= factor,
                   f"{h['jobs_per_s']:.0f} vs {d['jobs_per_s']:.0f} jobs/s ({reference}): {ratio:.2f}x")
        elif h:
            target(f"W={w}: >= {factor}x DataJoint 2.x jobs/s", None, "no DataJoint 2.x row")
    h = row("scaling", "djhpc", wmax)
    if h and wmax > 1:
        target(f"W={wmax}: losing attempts < 1% of keys", h["lost_pct"] < 1,
               f"{h['lost']:,} losing attempts for {h['n']:,} keys ({h['lost_pct']:.1f}%)")
    h = row("sleep", "djhpc")
    if h:
        ideal = h["workers"] / h["sleep_seconds"]
        target(f"{args.sleep_ms:g} ms make at W={h['workers']}: >= 95% of ideal ({ideal:.0f} jobs/s)",
               h["jobs_per_s"] >= 0.95 * ideal, f"{h['jobs_per_s']:.1f} jobs/s = {100 * h['jobs_per_s'] / ideal:.1f}%")
    h = row("sleep", "djhpc", backend="sqlite")
    if h:
        ideal = h["workers"] / h["sleep_seconds"]
        target(f"SQLite: 100 ms make at W={h['workers']}: >= 85% of ideal ({ideal:.0f} jobs/s)",
               h["jobs_per_s"] >= 0.85 * ideal, f"{h['jobs_per_s']:.1f} jobs/s = {100 * h['jobs_per_s'] / ideal:.1f}%")
    small, big = min(args.startup_keys), max(args.startup_keys)
    hs, hb = row("startup", "djhpc", n=small), row("startup", "djhpc", n=big)
    if hb:
        target(f"start-up with {big:,} pending: first make within 0.2 s", hb["startup_s"] <= 0.2,
               f"{hb['startup_s']:.3f} s")
    if hs and hb and small != big:
        target(f"start-up: no statement per pending key ({small:,} vs {big:,} pending)",
               hb["round_trips_before_first_make"] <= hs["round_trips_before_first_make"] + 2,
               f"{hs['round_trips_before_first_make']} vs {hb['round_trips_before_first_make']} round trips "
               "before the first make")
        target("start-up: worker memory independent of the pending count",
               hb["max_rss_mb"] - hs["max_rss_mb"] < 5,
               f"peak RSS {hs['max_rss_mb']:.1f} MB vs {hb['max_rss_mb']:.1f} MB")
    h = row("progress", "djhpc")
    if h:
        target(f"progress(detail=True) at {h['n']:,}/{h['n'] - h['done']:,} within 0.05 s on MariaDB",
               h["progress_s"] <= 0.05, f"{h['progress_s']:.4f} s ({h['progress_statements']} statements)")
    for d in sorted({r["version"] for r in rows if r["kind"] == "djhpc-dj"}):
        driven, own = (row("scaling", kind, wmax, system) for kind, system in
                       (("djhpc-dj", f"djhpc driving DataJoint {d}"), ("datajoint", f"DataJoint {d}")))
        if driven and own:
            ratio = driven["jobs_per_s"] / own["jobs_per_s"]
            target(f"W={wmax}: djhpc driving a DataJoint {d} table >= 3x DataJoint's own populate, 0 losing",
                   ratio >= 3 and driven["lost"] == 0,
                   f"{driven['jobs_per_s']:.0f} vs {own['jobs_per_s']:.0f} jobs/s: {ratio:.2f}x, "
                   f"{driven['lost']} losing attempts")
        start = row("startup", "djhpc-dj", n=big, system=f"djhpc driving DataJoint {d}")
        if start:
            target(f"start-up driving DataJoint {d} with {big:,} pending: first make within 0.2 s",
                   start["startup_s"] <= 0.2, f"{start['startup_s']:.3f} s")
    scale_targets(row, args, reference, target)
    for budget in (r for r in rows if r["case"] == "budget"):
        how = " (connections given back during makes)" if budget.get("release_after") else ""
        target(f"connection budget{how}: {args.budget_tasks:,} tasks against max_connections="
               f"{args.budget_connections} complete, every key made once, no task failed", not budget["checks"],
               f"{budget['made_keys']:,} of {budget['n']:,} keys, {budget['twice']} twice, {budget['tasks_failed']} "
               f"tasks failed, {budget['tasks_waited']} waited; peak {budget['peak_connections']} connections")
    mine = [r for r in rows if r["kind"] in ("djhpc", "djhpc-dj") and r["case"] != "progress"]
    if mine:
        twice = sum(r.get("twice_all_repeats", 0) for r in mine)
        backends = sorted({r["backend"] for r in mine})
        target(f"zero keys made twice in every djhpc run ({', '.join(backends)})", twice == 0,
               f"{twice} keys made twice over {sum(r.get('repeats', 1) for r in mine)} runs")
    return out


def scale_targets(row, args, reference, target):
    """Issue 16's targets at the largest W of the scale case, and cost per key flat in W."""
    big = max(args.scale_workers)
    h, d = row("scale", "djhpc", big), row("scale", "datajoint", big, reference)
    if not h:
        return
    target(f"scale W={big}: >= 85% of ideal", h["pct_of_ideal"] >= 85, f"{h['pct_of_ideal']:.1f}%")
    target(f"scale W={big}: statements/job <= 8", h["server_questions_per_job"] <= 8,
           f"{h['server_questions_per_job']:.1f} server statements per job")
    if d:
        ratio = h["jobs_per_s"] / d["jobs_per_s"]
        target(f"scale W={big}: >= 10x DataJoint 2.x jobs/s", ratio >= 10,
               f"{h['jobs_per_s']:.1f} vs {d['jobs_per_s']:.1f} jobs/s ({reference}): {ratio:.1f}x")
    small = row("scale", "djhpc", min(args.scale_workers))
    if small and small is not h:
        worst = max(h[k] / small[k] for k in ("server_questions_per_job", "rows_read_per_job",
                                               "server_cpu_ms_per_job") if small[k])
        target(f"scale: cost per key at W={big} within 1.5x of W={small['workers']}'s", worst <= 1.5,
               "statements, rows read, server CPU per job: "
               + ", ".join(f"{h[k]:.1f} vs {small[k]:.1f}" for k in ("server_questions_per_job", "rows_read_per_job",
                                                                      "server_cpu_ms_per_job")))


def write_png(rows: list[dict], path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = {}
    for r in rows:
        if r["case"] in ("scaling", "sqlite"):
            label = r["system"] + (" (SQLite)" if r["backend"] == "sqlite" else "")
            series.setdefault(label, []).append((r["workers"], r["jobs_per_s"]))
    for label, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                linestyle="--" if "SQLite" in label else "-", label=label)
    ax.set_xlabel("workers (processes started together)")
    ax.set_ylabel("jobs/s, trivial make (log scale)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["workers"] for r in rows if r["case"] == "scaling"}) or [1])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_yscale("log")  # SQLite runs several times faster than any MariaDB row: a log axis keeps both readable
    ax.get_yaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("populate(reserve_jobs=True) on one MariaDB, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def describe_machine(runner: Runner, systems) -> dict:
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except OSError:
        rev = ""
    import pymysql

    facts = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
             "pymysql": ".".join(map(str, pymysql.VERSION[:3])), "djhpc_revision": rev,
             "systems": [{"name": s.name, "python": s.python, "backend": s.backend} for s in systems]}
    try:
        with open("/proc/cpuinfo") as f:
            facts["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
        with open("/proc/meminfo") as f:
            facts["memory_gib"] = round(int(f.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    facts["server"] = runner.server_facts()
    return facts


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("bench: --png needs matplotlib: pip install -e '.[bench]' (or leave out --png)", file=sys.stderr)
            return 2
    server = Server.from_env()
    try:
        server.connect().close()
    except Exception as e:  # noqa: BLE001  (any driver error: say where we looked)
        print(f"bench: error: cannot reach MariaDB at {server.host}:{server.port} as {server.user} ({e}); "
              "set DJ_HOST, DJ_USER, DJ_PASS", file=sys.stderr)
        return 2
    try:
        datajoint = find_datajoint(args)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    import djhpc

    systems = [System("djhpc", "djhpc", sys.executable, djhpc.__version__)] + datajoint
    if "sqlite" in args.cases:
        systems.append(System("djhpc", "djhpc", sys.executable, djhpc.__version__, backend="sqlite"))
    reference = next((s.name for s in datajoint if s.major >= 2), datajoint[0].name if datajoint else None)
    if not datajoint:
        print("bench: no DataJoint interpreter (--datajoint-python, $" + ENV_DATAJOINT_PYTHON +
              "): djhpc rows only", file=sys.stderr)
    runner = Runner(args, server, systems)
    started = time.time()
    load = os.getloadavg()[0]
    if load > 0.75 * (os.cpu_count() or 1):
        print(f"bench: warning: the machine is busy (load average {load:.1f} on {os.cpu_count()} CPUs): "
              "throughput will be low and noisy", file=sys.stderr)
    runs: list[dict] = []
    try:
        meta = describe_machine(runner, systems)
        # repeats go round the whole plan, so that a burst of load elsewhere hits one repeat of many runs
        steps = [(rep, step) for rep in range(args.repeat) for step in plan(args, systems) if rep < step[4]]
        for i, (rep, (case, system, workers, kwargs, repeats)) in enumerate(steps, 1):
            print(f"[{i}/{len(steps)}] {case} {system.name} {system.backend} W={workers} N={kwargs['n']} "
                  f"run {rep + 1}/{repeats}", file=sys.stderr, flush=True)
            if case == "scale":
                runs.append(run_scale(runner, run_with_retries, system, workers, rep, kwargs))
            elif case == "budget":
                runs.append(run_budget(runner, system, args, kwargs["release_after"]))
            else:
                runs.append(run_with_retries(runner, system, case, workers, rep, kwargs))
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    grouped: dict[tuple, list] = {}
    for r in runs:
        grouped.setdefault((r["case"], r["system"], r["backend"], r["workers"], r["n"], r.get("release_after")),
                           []).append(r)
    rows = [pick_median(g) for g in grouped.values()]
    add_ratios(rows, reference)
    targets = check_targets(rows, args, reference)
    print(render(rows))
    print()
    print(f"× columns: djhpc ÷ {reference or 'DataJoint'} at the same case and W (a DataJoint row: djhpc ÷ that row). "
          "rt = round trips and commits = durable commits, counted in each worker at the PyMySQL layer; "
          "srv q = the server's Questions. lost = losing reservation attempts (a key tried and won by another worker "
          "at the same time); seen held = keys a djhpc reservation skipped because another worker held or had made "
          "them when it looked (its reservers take turns, so this is not a race); twice = keys whose make ran twice.")
    for t in targets:
        mark = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        print(f"  [{mark}] {t['target']}: {t['measured']}")
    failed = [(r["case"], r["system"], r["workers"], c) for r in rows for c in r["checks"]]
    command = ["python", "-m", "bench"] + list(sys.argv[1:] if argv is None else argv)
    meta.update(run_id=runner.run_id, folder=str(runner.tmp), seconds=time.time() - started, load_average_before=load,
                command=" ".join(command), load_average_after=os.getloadavg())
    if args.json:
        slim = [{k: v for k, v in r.items() if k != "workers_detail"} for r in rows]
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": slim, "targets": targets, "runs": runs},
                                              indent=1, default=str))
    if args.png:
        write_png(rows, args.png)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
