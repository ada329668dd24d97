"""The one-host Grid Engine cell of tests/cluster/start-sge.sh: start it, wait for jobs, read their end.

A project for it is made with support.cluster.make_project and ``SGE_YAML``: Grid Engine hands a task no
variable of the submit shell but PATH and those -v names (never -V), so the test pipeline's knobs travel
as the profile's extra directive, as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import time

from support.env import ROOT

START_SGE = ROOT / "tests" / "cluster" / "start-sge.sh"

# the test pipeline's settings (support.pipeline) the tasks need
TEST_VARIABLES = ("DJHPC_TEST_SCHEMA", "DJHPC_TEST_CALLS", "DJHPC_TEST_FAIL", "DJHPC_TEST_SLEEP",
                  "DJHPC_TEST_SLEEP_MAX")  # fmt: skip
SGE_YAML = f"""scheduler: sge
profiles:
  default:
    extra_directives: ["-v {",".join(TEST_VARIABLES)}"]
"""


def start_sge(**env) -> None:
    """start-sge.sh (idempotent: a fraction of a second when the cell is up); env sets its SGE_* knobs."""
    proc = subprocess.run(["bash", str(START_SGE)], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"start-sge.sh failed: {proc.stderr[-2000:]}")


def cell_answers() -> bool:
    try:
        return subprocess.run(["qstat"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def listed(job_ids=None) -> list[str]:
    """Which of these jobs (None: any) qstat still lists (pending, running or being deleted)."""
    from djhpc.schedulers.sge import parse_qstat_xml

    out = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True, timeout=30)
    found = parse_qstat_xml(out.stdout, None if job_ids is None else set(map(str, job_ids)))
    return sorted({key.split("_")[0] for key in found})


def wait_until_gone(job_ids, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while listed(job_ids):
        if time.monotonic() > deadline:
            subprocess.run(["qdel", *map(str, job_ids)], capture_output=True)
            raise AssertionError(f"jobs {job_ids} still in qstat after {timeout:.0f} s")
        time.sleep(0.3)


def final_states(job_ids, n_tasks: int, timeout: float = 30) -> dict:
    """The state of every task once all n_tasks are known and ended (qacct writes a record as a task ends)."""
    from djhpc.schedulers import TERMINAL_STATES, get_scheduler

    deadline = time.monotonic() + timeout
    while True:
        states = get_scheduler("sge").task_states(job_ids)
        if len(states) >= n_tasks and all(s in TERMINAL_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"task states not final after {timeout:.0f} s: {states}")
        time.sleep(0.3)


def exit_statuses(job_id: str) -> dict:
    """{task: (failed, exit_status)} from qacct."""
    out = subprocess.run(["qacct", "-j", str(job_id)], capture_output=True, text=True, timeout=30).stdout
    rows, record = {}, {}
    for line in [*out.splitlines(), "===="]:
        if line.startswith("===="):
            if record.get("taskid"):
                rows[record["taskid"]] = (record.get("failed", ""), record.get("exit_status", ""))
            record = {}
            continue
        name, _, value = line.strip().partition(" ")
        record[name] = value.strip().split(" ")[0] if name in ("failed", "exit_status") else value.strip()
    return rows
