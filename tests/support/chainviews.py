"""tests/pipelines/chain.py filled by a real ``djhpc work chain.py`` with one failing session: what the reporting
commands (progress, status, jobs, report) read, table by table."""

from __future__ import annotations

from pathlib import Path

from support.chain import TABLES, ChainProject

FAILED = 2  # session whose Motion make raises: Segment, Trace, Quality and Summary of it are blocked
WORKED = range(6)  # sessions one worker made
MORE = (6, 7)  # sessions added after it: their Motion keys ready, the rest waiting

# what filled_chain leaves, counted by hand: pipeprogress's fields per table
EXPECTED = {
    "Motion": {"total": 8, "done": 5, "remaining": 3, "ready": 2, "reserved": 0, "error": 1, "ignore": 0,
               "pending": 0, "waiting": 0, "blocked": 0},
    **{t: {"total": 5, "done": 5, "remaining": 0, "ready": 0, "reserved": 0, "error": 0, "ignore": 0, "pending": 0,
           "waiting": 3, "blocked": 1} for t in TABLES[1:]},
}
PARENTS = {"Motion": [], "Segment": ["Motion"], "Trace": ["Segment"], "Quality": ["Motion"],
           "Summary": ["Trace", "Quality"]}


def filled_chain(folder: Path, url: str, schema: str, *, more=MORE, **env) -> ChainProject:
    """Sessions 0-5 made by one ``djhpc work chain.py`` (session 2's Motion fails), then ``more`` sessions added and
    not worked. The project's djhpc.yaml names chain.py as its target."""
    project = ChainProject.create(folder, url, schema, DJHPC_TEST_FAIL=FAILED, DJHPC_PIPELINE_LOOK_SECONDS="0.3",
                                  **env)
    project.add_sessions(WORKED)
    done = project.djhpc("work", "chain.py")
    assert done.returncode == 1, done.stderr[-2000:]  # 1: a make failed
    if more:
        project.add_sessions(more)
    return project


def counts(row: dict) -> dict:
    return {k: row[k] for k in EXPECTED["Motion"]}
