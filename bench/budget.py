"""The connection-budget case (issue 16): an array larger than the database's connection limit.

T tasks (1,000) against a private MariaDB with ``max_connections`` = C (151, the default of most lab servers),
started as a scheduler starts an array's tasks: up to R at once (300: more than C, fewer than this machine's
memory would bear), each a new process that connects when it starts (no barrier) and populates until no key is
left, as ``djhpc work`` does. Tasks that find no free connection wait for one. The row says whether every task
ended well, every key was made once, how many tasks waited, and the server's peak connections.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import psutil

from bench.scale import busy_pct, private_server_with


def run_budget(runner, system, args, release_after: float | None = None) -> dict:
    """One budget run of ``system`` (djhpc) on a private server of its own; with ``release_after`` its workers
    give their connection back once a make has left it unused that long (``djhpc work --release-after``)."""
    from bench.run import Server

    tasks, connections, running = args.budget_tasks, args.budget_connections, args.budget_running
    n = tasks * args.budget_keys
    saved_server, saved_db = runner.server, runner._db
    with private_server_with((f"--max-connections={connections}", "--innodb-buffer-pool-size=256M")) as private:
        runner.server, runner._db = Server("127.0.0.1", private.port, "root", ""), None
        try:
            out = _run(runner, system, tasks, running, n, args.budget_sleep_ms / 1000, args.timeout, release_after)
            with runner.db().cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
                out["peak_connections"] = int(cur.fetchone()[1])
        finally:
            if runner._db is not None:
                runner._db.close()
            runner.server, runner._db = saved_server, saved_db
    out["max_connections"], out["release_after"] = connections, release_after
    return out


def _run(runner, system, tasks: int, running: int, n: int, sleep_seconds: float, timeout: float,
         release_after: float | None) -> dict:
    runner.counter += 1
    schema = f"bench_{runner.run_id}_{runner.counter}"
    folder = runner.tmp / f"budget-t{tasks}-n{n}{'-released' if release_after else ''}"
    folder.mkdir(parents=True)
    settings = {"folder": str(folder), "schema": schema, "sleep_seconds": sleep_seconds, "n": n,
                "barrier_timeout_seconds": timeout, "release_after": release_after}
    env = runner._env(system)
    setup = subprocess.run([system.python, str(system.script), json.dumps(dict(settings, mode="setup", index=0))],
                           cwd=folder, env=env, capture_output=True, timeout=timeout)
    if setup.returncode:
        raise RuntimeError(f"budget case: setting up failed:\n{setup.stderr.decode(errors='replace')[-2000:]}")
    machine = psutil.cpu_times()
    started, deadline = time.time(), time.monotonic() + timeout
    live: dict[int, subprocess.Popen] = {}
    codes: dict[int, int] = {}
    next_task, most = 0, 0
    while next_task < tasks or live:
        while next_task < tasks and len(live) < running:
            log = open(folder / f"task.{next_task}.log", "wb")  # noqa: SIM115  (closed once handed over)
            live[next_task] = subprocess.Popen(
                [system.python, str(system.script), json.dumps(dict(settings, mode="task", index=next_task))],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            next_task += 1
        most = max(most, len(live))
        for i, p in list(live.items()):
            if p.poll() is not None:
                codes[i] = p.returncode
                del live[i]
        if time.monotonic() > deadline:
            for p in live.values():
                p.kill()
            raise RuntimeError(f"budget case: timed out after {timeout:.0f} s with {len(live)} tasks running")
        time.sleep(0.02)
    wall = time.time() - started
    calls = Counter(line.split()[0] for line in (folder / "calls.log").read_text().splitlines())
    logs = [(folder / f"task.{i}.log").read_text(errors="replace") for i in range(tasks)]
    left = runner._rows_left(system, schema, folder)
    runner.drop(schema)
    made = left["rows"]
    return {"case": "budget", "system": system.name, "kind": system.kind, "version": system.version,
            "backend": system.backend, "workers": tasks, "n": n, "sleep_seconds": sleep_seconds, "wall_s": wall,
            "success": made, "jobs_per_s": made / wall if wall > 0 else 0.0, "made_keys": len(calls),
            "make_calls": sum(calls.values()), "twice": sum(1 for c in calls.values() if c > 1),
            "tasks_failed": sum(1 for c in codes.values() if c != 0),
            "tasks_waited": sum("has no free connection" in text for text in logs),
            "tracebacks": sum("Traceback" in text for text in logs), "running_at_once": most,
            "machine_busy_pct": busy_pct(machine, psutil.cpu_times()), **left,
            "checks": _checks(made, n, calls, codes, left)}


def _checks(made, n, calls, codes, left) -> list[str]:
    bad = []
    if made != n or len(calls) != n:
        bad.append(f"{made} rows and {len(calls)} keys made of {n}")
    if any(c > 1 for c in calls.values()):
        bad.append(f"{sum(1 for c in calls.values() if c > 1)} keys made twice")
    if any(c != 0 for c in codes.values()):
        bad.append(f"{sum(1 for c in codes.values() if c != 0)} tasks failed")
    if left["jobs_left"]:
        bad.append(f"{left['jobs_left']} jobs rows left")
    return bad
