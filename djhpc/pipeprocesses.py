"""``djhpc work PIPELINE --processes N``: N pipeline workers in forked processes of one task (a many-core node's).

Each child is the worker ``djhpc work PIPELINE`` runs (pipework.py), with connections of its own and its walks
starting at its own share of the keys (of the array task's share, in an array); the jobs table hands out the keys,
so each is made once. A stop signal to the task reaches each child once: the scheduler signals every process of
the job itself (scancel, a time limit), a terminal's Ctrl-C the whole process group, and a signal to this
process alone (SLURM's ``--signal=B:USR1@60``) is passed on, a moment later, as SIGINT to each child that is not
stopping already (a second signal would cut its giving back short). The task's exit code is the most telling of
the children's: a usage error, the database away, a make stuck, stopped, failures, nothing left.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
from dataclasses import replace

from . import signals
from .deadline import EXIT_HUNG
from .pipeline import Pipeline
from .pipework import work_pipeline
from .processes import send_signal
from .worker import (
    EXIT_DATABASE_UNREACHABLE,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    WorkOptions,
    task_share,
)

__all__ = ["combined_exit_code", "run"]

log = logging.getLogger(__name__)

# most telling first: what the task's exit code says when its children's differ
EXIT_ORDER = (EXIT_USAGE, EXIT_DATABASE_UNREACHABLE, EXIT_HUNG, EXIT_INTERRUPTED, EXIT_FAILURES, EXIT_OK)
PASS_ON_SECONDS = 1.0  # a signal the children got themselves arrives with the parent's: wait for them to say so


def run(pipeline: Pipeline, options: WorkOptions, processes: int, *, prefer: str = "deepest",
        serve: Pipeline | None = None) -> int:
    """``processes`` pipeline workers in forked children; the task's exit code."""
    context = multiprocessing.get_context("fork")  # the pipeline's classes as this process has them
    stopping = context.Array("b", processes, lock=False)  # child i is stopping already
    start, width = task_share()
    children = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals.STOP_SIGNALS)  # none lost, none half-handled
    try:
        for i in range(processes):
            position = (start + width * i / processes) % 1.0
            mine = replace(options, processes=1, populate=replace(options.populate, position=position))
            child = context.Process(target=_child, name=f"worker-{i + 1}",
                                    args=(pipeline, mine, prefer, serve, stopping, i))
            child.start()
            children.append(child)
        log.info("%d processes, each a worker of its own", processes)
        passing_on: list[threading.Timer] = []

        def pass_on():
            for i, c in enumerate(children):
                if c.is_alive() and not stopping[i]:
                    stopping[i] = 1
                    send_signal(c, signal.SIGINT)

        def on_stop(signum: int) -> None:
            if not passing_on:
                passing_on.append(threading.Timer(PASS_ON_SECONDS, pass_on))
                passing_on[0].start()

        with signals.stop_signals(on_stop=on_stop, exit_code=None):
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for c in children:
                c.join()
        for timer in passing_on:
            timer.cancel()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for c in children:
            if c.is_alive():  # the parent itself failed: its children must not outlive it
                send_signal(c, signal.SIGKILL)
                c.join()
    return combined_exit_code([c.exitcode for c in children])


def combined_exit_code(codes: list[int | None]) -> int:
    """The task's exit code: the most telling of its children's; a child killed by a signal (out of memory?) counts
    as failures (its keys go back as a dead worker's)."""
    known = []
    for i, code in enumerate(codes):
        if code is None or code < 0 or code not in EXIT_ORDER:
            log.warning("worker-%d ended with %s: its keys go back as a dead worker's", i + 1,
                        f"signal {-code}" if code is not None and code < 0 else f"exit code {code}")
            code = EXIT_FAILURES
        known.append(code)
    return min(known, key=EXIT_ORDER.index, default=EXIT_OK)


def _child(pipeline: Pipeline, options: WorkOptions, prefer: str, serve: Pipeline | None, stopping, index: int):
    """One worker, with djhpc work's stop signals; it marks itself stopping at its first one."""
    for sig in signals.STOP_SIGNALS:  # until its worker takes them: the parent's handling is not the child's
        signal.signal(sig, signal.SIG_DFL)
    signals.on_first_stop(lambda signum: stopping.__setitem__(index, 1))
    _reopen_datajoint(pipeline)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.STOP_SIGNALS)
    code = work_pipeline(pipeline, options, prefer=prefer, serve=serve)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def _reopen_datajoint(pipeline: Pipeline) -> None:
    """DataJoint's connections of the pipeline's tables, opened anew: the parent's sockets are left alone. djhpc's
    own open a session of their own in a forked process by themselves."""
    from .djtarget import is_datajoint_class

    seen = set()
    for cls in pipeline.tables:
        if is_datajoint_class(cls):
            conn = cls.connection
            if id(conn) not in seen:
                seen.add(id(conn))
                conn.connect()
