"""djhpc.signals: real stop signals sent to a child process that runs a stop_signals block."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from djhpc.signals import EXIT_INTERRUPTED, STOP_SIGNALS, Interrupted, stop_requested, stop_signals

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import os, signal, sys, threading, time
from djhpc.signals import Interrupted, STOP_SIGNALS, stop_requested, stop_signals

def say(*words):
    print(*words, flush=True)
"""


class Child:
    """A Python child running ``code`` after PRELUDE; ``expect`` reads its next line."""

    def __init__(self, code: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )  # fmt: skip

    def expect(self, line: str) -> None:
        got = self.proc.stdout.readline().strip()
        if got != line:
            self.proc.kill()
            raise AssertionError(f"expected {line!r}, got {got!r}; stderr:\n{self.proc.stderr.read()}")

    def kill(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def finish(self, timeout: float = 10) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, out, err


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_first_signal_raises_interrupted_and_the_handlers_come_back(sig: int) -> None:
    child = Child("""
        def mine(signum, frame):
            say("the old handler ran")
        signal.signal(signal.SIGTERM, mine)
        before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        try:
            with stop_signals() as installed:
                say("installed", installed, all(signal.getsignal(s) is not before[s] for s in STOP_SIGNALS))
                say("ready")
                time.sleep(30)
                say("not interrupted")
        except Interrupted as e:
            say("caught", e.signum, e)
        say("restored", all(signal.getsignal(s) is before[s] for s in STOP_SIGNALS), stop_requested())
        os.kill(os.getpid(), signal.SIGTERM)  # the old handler again
        time.sleep(0.2)
        say("done")
    """)
    child.expect("installed True True")
    child.expect("ready")
    child.kill(sig)
    child.expect(f"caught {int(sig)} stopped by {signal.Signals(sig).name}")
    child.expect("restored True None")
    child.expect("the old handler ran")
    child.expect("done")
    assert child.finish()[0] == 0


def test_second_signal_leaves_at_once() -> None:
    child = Child("""
        with stop_signals():
            try:
                say("ready")
                time.sleep(30)
            except Interrupted:
                say("giving the keys back", stop_requested())
                time.sleep(30)  # a slow give-back
                say("given back")
    """)
    child.expect("ready")
    child.kill(signal.SIGTERM)
    child.expect(f"giving the keys back {int(signal.SIGTERM)}")
    started = time.monotonic()
    child.kill(signal.SIGINT)
    code, out, err = child.finish()
    assert code == EXIT_INTERRUPTED == 75, err
    assert time.monotonic() - started < 5
    assert "given back" not in out


def test_nested_blocks_share_the_stop() -> None:
    """djhpc work's block around populate's: a signal raised in the inner one, the next one in the outer
    one (after the inner one put its handler back) still leaves at once."""
    child = Child("""
        with stop_signals(exit_code=42):
            outer = signal.getsignal(signal.SIGTERM)
            try:
                with stop_signals():
                    say("inner", signal.getsignal(signal.SIGTERM) is not outer)
                    say("ready")
                    time.sleep(30)
            except Interrupted as e:
                say("outer caught", e.signum, signal.getsignal(signal.SIGTERM) is outer)
                time.sleep(30)
                say("not reached")
    """)
    child.expect("inner True")
    child.expect("ready")
    child.kill(signal.SIGUSR1)
    child.expect(f"outer caught {int(signal.SIGUSR1)} True")
    child.kill(signal.SIGTERM)
    code, out, err = child.finish()
    assert code == 42, err
    assert "not reached" not in out


def test_every_signal_raises_without_an_exit_code() -> None:
    child = Child("""
        with stop_signals(exit_code=None):
            try:
                say("ready")
                time.sleep(30)
            except Interrupted as e:
                try:
                    say("first", e.signum)  # inside the try: the second signal is sent once this is read
                    time.sleep(30)
                except Interrupted as e:
                    say("second", e.signum)
        say("done")
    """)
    child.expect("ready")
    child.kill(signal.SIGTERM)
    child.expect(f"first {int(signal.SIGTERM)}")
    child.kill(signal.SIGUSR1)
    child.expect(f"second {int(signal.SIGUSR1)}")
    child.expect("done")
    assert child.finish()[0] == 0


def test_on_stop_instead_of_raising() -> None:
    child = Child("""
        stopped = []
        with stop_signals(on_stop=stopped.append):
            say("ready")
            while not stopped:
                time.sleep(0.01)
            say("asked to stop by", stopped[0])
            time.sleep(30)
    """)
    child.expect("ready")
    child.kill(signal.SIGUSR1)
    child.expect(f"asked to stop by {int(signal.SIGUSR1)}")
    child.kill(signal.SIGUSR1)
    assert child.finish()[0] == EXIT_INTERRUPTED


def test_not_installed_in_another_thread() -> None:
    """A block in a thread other than the main one installs nothing: SIGTERM still kills the process."""
    child = Child("""
        entered, results = threading.Event(), []
        def run():
            with stop_signals() as installed:
                results.append(installed)
                entered.set()
                time.sleep(30)
        threading.Thread(target=run, daemon=True).start()
        entered.wait()
        say("installed", results[0], signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
        say("ready")
        time.sleep(30)
        say("survived")
    """)
    child.expect("installed False True")
    child.expect("ready")
    child.kill(signal.SIGTERM)
    code, out, _ = child.finish()
    assert code == -signal.SIGTERM
    assert "survived" not in out


def test_not_installed_in_another_thread_in_process() -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    results = []

    def run():
        with stop_signals() as installed:
            results.append((installed, {s: signal.getsignal(s) for s in STOP_SIGNALS}))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results == [(False, before)]


def test_disabled_installs_nothing() -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with stop_signals(enabled=False) as installed:
        assert installed is False
        assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    with stop_signals() as installed:
        assert installed is True
        assert all(signal.getsignal(s) is not before[s] for s in STOP_SIGNALS)
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    assert stop_requested() is None


def test_interrupted() -> None:
    e = Interrupted(signal.SIGTERM)
    assert str(e) == "stopped by SIGTERM" and e.signum == signal.SIGTERM
    assert isinstance(e, BaseException) and not isinstance(e, Exception)
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is Interrupted and copy.signum == signal.SIGTERM and str(copy) == "stopped by SIGTERM"


def test_populate_alone_survives_a_second_signal_but_not_inside_djhpc_work() -> None:
    """populate()'s own block (LOOP_SIGNALS, no exit) in a script or notebook: each SIGTERM raises Interrupted
    and Ctrl-C stays a KeyboardInterrupt; nested in djhpc work's block, a second signal leaves at once."""
    child = Child("""
        from djhpc import signals
        before = signal.getsignal(signal.SIGINT)  # Python's default handler, or SIG_IGN in a background job
        for round in (1, 2):
            try:
                with stop_signals(signals=signals.LOOP_SIGNALS, exit_code=None):
                    say("ready", signals.active())
                    time.sleep(30)
            except Interrupted as e:
                say("interrupted", round)
        say("active after", signals.active(), signal.getsignal(signal.SIGINT) is before)
        with stop_signals():
            with stop_signals(signals=signals.LOOP_SIGNALS,
                              exit_code=signals.EXIT_INTERRUPTED if signals.active() else None):
                try:
                    say("nested ready")
                    time.sleep(30)
                except Interrupted:
                    say("giving back")
                    time.sleep(30)
        say("not reached")
    """)
    for round in (1, 2):
        child.expect("ready True")
        child.kill(signal.SIGTERM)
        child.expect(f"interrupted {round}")
    child.expect("active after False True")
    child.expect("nested ready")
    child.kill(signal.SIGTERM)
    child.expect("giving back")
    child.kill(signal.SIGTERM)
    assert child.finish()[0] == EXIT_INTERRUPTED
