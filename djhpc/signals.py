"""Stop signals: the one place djhpc turns SIGTERM, SIGINT and SIGUSR1 into a clean stop.

A batch scheduler asks a task to stop with a signal before it kills it: SLURM sends SIGTERM at the
time limit or on scancel (and the profile's signal_seconds can ask for SIGUSR1 earlier), PBS sends
SIGTERM, a user at a terminal presses Ctrl-C. Inside ``stop_signals()`` the first of them raises
``Interrupted`` in the main thread, so the make in progress rolls back and the worker gives its keys
back; a second one, while that is going on, leaves at once with ``os._exit``.

Grid Engine warns with SIGUSR2 before SIGKILL under ``qsub -notify`` (and with SIGUSR1 before a suspend): both
stop the worker the same way.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

# SIGUSR2: what Grid Engine's qdel sends ahead of the kill to a job submitted with -notify
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped by a signal, keys given back; resubmit to go on


class Interrupted(BaseException):
    """A stop signal arrived: roll back, give the keys back, stop. ``signum`` is the signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    def __reduce__(self):  # pickles as Interrupted(signum), not Interrupted(message)
        return (type(self), (self.signum,))


def raise_interrupted(signum: int) -> None:
    """The default on_stop: raise Interrupted(signum) where the main thread is."""
    raise Interrupted(signum)


# One stop per process, however many stop_signals blocks are nested (djhpc work's around populate's):
# the first signal in any of them makes the next one, in any of them, leave at once.
_depth = 0
_first: int | None = None


#: the signals populate() itself turns into Interrupted: SIGINT stays Python's KeyboardInterrupt there, so
#: an interactive session (a notebook) is interrupted as usual, and pressing Ctrl-C twice never kills it
LOOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


_listeners: list[Callable[[int], None]] = []


def on_first_stop(listener: Callable[[int], None]) -> None:
    """Call ``listener(signum)`` when the first stop signal of this process arrives inside a stop_signals block
    (a forked worker tells its parent it is stopping already, so the parent does not signal it again)."""
    _listeners.append(listener)


def active() -> bool:
    """Whether a stop_signals block is open (an outer one: djhpc work around populate)."""
    return _depth > 0


def stop_requested() -> int | None:
    """The stop signal received inside the stop_signals blocks still open, or None."""
    return _first


@contextmanager
def stop_signals(
    on_stop: Callable[[int], None] | None = None,
    *,
    enabled: bool = True,
    signals: Iterable[int] = STOP_SIGNALS,
    exit_code: int | None = EXIT_INTERRUPTED,
) -> Iterator[bool]:
    """Handle the stop signals while the block runs; the previous handlers come back after it.

    The first signal calls ``on_stop(signum)``, by default ``raise_interrupted``: Interrupted is raised
    in the main thread. A later one exits the process at once with ``exit_code`` (None: it calls on_stop
    again). Handlers can be installed only in the main thread: elsewhere, or with enabled=False, the block
    runs with the handlers as they are. Yields whether the handlers were installed.
    """
    global _depth, _first
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield False
        return
    stop = on_stop or raise_interrupted

    def handler(signum: int, frame: object) -> None:
        global _first
        if _first is not None and exit_code is not None:
            os._exit(exit_code)
        if _first is None:
            for listener in _listeners:
                listener(signum)
        _first = signum
        stop(signum)

    if _depth == 0:
        _first = None
    _depth += 1
    previous = {}
    try:
        for sig in signals:
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # a signal this platform does not have or let us catch
                pass
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)  # None: a handler set outside Python
        _depth -= 1
        if _depth == 0:
            _first = None
