"""A pytest plugin for the runs of DataJoint's suite (tests/datajoint_suite/run.py): one JSON line per test outcome
into $DJSUITE_REPORT, written as each test ends (so a run stopped by its time limit still tells what it did), and a
time limit on each test phase ($DJSUITE_PHASE_SECONDS), so that one hung test cannot stall the run."""

from __future__ import annotations

import json
import os
import signal

import pytest

PHASE_SECONDS = float(os.environ.get("DJSUITE_PHASE_SECONDS", "60"))
_outcomes: dict[str, tuple[str, str]] = {}


class PhaseTimeout(Exception):
    """A test phase ran past its limit."""


def _alarm(signum, frame):
    raise PhaseTimeout(f"the test ran past the suite runner's {PHASE_SECONDS:g} s limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _limited()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _limited()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _limited()


def _limited():
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, PHASE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _reason(report) -> str:
    """The failure's first line; for a module that does not import, pytest's last error line (its cause)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return (crash.message.strip().splitlines() or [""])[0][:300]
    lines = str(report.longrepr).strip().splitlines() or [""]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors or lines)[-1][:300]


def pytest_runtest_logreport(report):
    """Keep the worst outcome of the test's phases; write the line when its teardown ends."""
    outcome, reason = _outcomes.get(report.nodeid, ("passed", ""))
    if report.failed and outcome != "failed":
        outcome, reason = ("failed" if report.when == "call" else "error"), _reason(report)
    elif report.skipped and outcome == "passed":
        outcome, reason = "skipped", _reason(report)
    _outcomes[report.nodeid] = (outcome, reason)
    if report.when == "teardown":
        _write({"test": report.nodeid, "outcome": outcome, "reason": reason})


def pytest_collectreport(report):
    if report.failed:
        _write({"test": report.nodeid, "outcome": "error", "reason": "collection: " + _reason(report)})


def _write(record: dict) -> None:
    with open(os.environ["DJSUITE_REPORT"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
