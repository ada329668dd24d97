"""SIGKILL storms on workers driving a DataJoint table: every key committed once, the jobs table clean at the end,
with no hand clean-up (the surviving and later workers reclaim the dead ones' keys by themselves)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from support.cluster import root_query
from support.datajoint import PIPELINE, Pipeline, datajoint_pythons
from support.env import mysql_available, unavailable

KEYS, WORKERS, KILLS = 300, 4, 6


@pytest.fixture(params=["0.14", "2"])
def storm(request, tmp_path):
    path = datajoint_pythons().get(request.param)
    if not path or not Path(path).exists():
        unavailable(f"no interpreter with DataJoint {request.param} (tests/cluster/ensure-datajoint.sh)")
    if not mysql_available():
        unavailable("no MariaDB on 127.0.0.1:3306")
    schema = "djhpc_djk_" + uuid.uuid4().hex[:10]
    p = Pipeline(path, schema, tmp_path)
    p.fill(KEYS)
    yield p
    root_query(f"DROP DATABASE IF EXISTS `{schema}`")


def _made_so_far(p: Pipeline) -> int:
    return sum(p.calls_of("Square").values())


class Worker:
    """``djhpc work`` with its output in a file (a pipe nobody reads could fill up and stall it)."""

    count = 0

    def __init__(self, p: Pipeline, **env):
        Worker.count += 1
        self.log = p.tmp / f"worker-{Worker.count}.log"
        argv = [p.python, "-m", "djhpc.cli.main", "work", f"{PIPELINE}:Square"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, env=p.env(**env), stdout=out, stderr=subprocess.STDOUT, cwd=p.tmp)

    def finish(self, timeout: float = 240) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.log.read_text(errors="replace")


def test_sigkill_storm_commits_every_key_once_and_leaves_the_jobs_table_clean(storm):
    p, rng = storm, random.Random(7)
    env = {"DJHPC_TEST_SLEEP": "0.01", "DJHPC_HEARTBEAT_SECONDS": "0.5"}
    workers = [Worker(p, **env) for _ in range(WORKERS)]
    killed = []
    deadline = time.monotonic() + 180
    for _ in range(KILLS):
        mark = _made_so_far(p) + 15  # bounded by events: kill once 15 more makes have started
        while _made_so_far(p) < mark and any(w.proc.poll() is None for w in workers):
            assert time.monotonic() < deadline, "the workers stopped making keys"
            time.sleep(0.02)
        alive = [w for w in workers if w.proc.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        killed.append(victim)
        workers[workers.index(victim)] = Worker(p, **env)  # the scheduler's requeue, as it were
    outcomes = [w.finish() for w in workers]
    assert all(code in (0, 1) for code, _ in outcomes), [err[-1500:] for _, err in outcomes]
    # a last worker, started after the storm: it finds the dead workers' keys (PID gone) and makes them
    code, err = Worker(p).finish()
    assert code in (0, 1), err[-1500:]
    assert len(killed) == KILLS
    assert p.rows("SELECT COUNT(*) FROM {s}.`__square`")[0][0] == KEYS - 1
    jobs = p.rows("SELECT status, error_message FROM {s}.`~djhpc_jobs`")
    assert [(s, m) for s, m in jobs] == [("error", "ValueError: thirteen is unlucky")], jobs
    calls = p.calls_of("Square")
    assert set(calls) == set(range(KEYS))
    again = sum(c - 1 for c in calls.values() if c > 1)
    assert again <= KILLS, f"{again} makes ran again for {KILLS} kills: {calls.most_common(5)}"
