"""A time limit for one make(): past it, make is stopped and its key becomes an error instead of being held for
ever by a make that never returns.

The limit is raised inside make as ``MakeTimeout`` by SIGALRM (it interrupts sleeps and blocking reads, and
Python code at its next bytecode). A make stuck where signals do not reach (C code that blocks them, a
deadlocked extension) is ended by a watchdog thread ``grace`` seconds later: the worker exits 70 and its keys are
reclaimed as a dead worker's (counted as deaths, an error after three).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from .errors import MakeTimeout

log = logging.getLogger(__name__)

EXIT_HUNG = 70  # EX_SOFTWARE: make stayed stuck past its limit and the grace after it
GRACE_SECONDS = float(os.environ.get("DJHPC_MAKE_TIMEOUT_GRACE", 30))


class Deadline:
    """``arm()`` before make, ``disarm()`` once it has returned (before the commit's statements): at most one
    armed at a time, in the main thread only (where SIGALRM is delivered)."""

    def __init__(self, seconds: float | None, grace: float = GRACE_SECONDS):
        self.seconds = float(seconds) if seconds else None
        self.grace = grace
        self._previous = None
        self._watchdog: threading.Timer | None = None
        self.usable = self.seconds is not None and threading.current_thread() is threading.main_thread() \
            and hasattr(signal, "setitimer")
        if self.seconds is not None and not self.usable:
            log.warning("--make-timeout works in the main thread only: makes run without a time limit here")

    def arm(self) -> None:
        if not self.usable:
            return
        self._previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self._watchdog = threading.Timer(self.seconds + self.grace, _hung, args=(self.seconds, self.grace))
        self._watchdog.daemon = True
        self._watchdog.start()

    def disarm(self) -> None:
        if self._watchdog is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._watchdog.cancel()
        self._watchdog = None
        signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)

    def _expired(self, signum, frame):
        if self._watchdog is None:  # disarmed while the signal was on its way
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise MakeTimeout(f"make() ran past its {self.seconds:g} s limit (--make-timeout, or the table's "
                          "make_timeout) and was stopped: raise the limit or make it faster, then djhpc jobs retry")


def _hung(seconds: float, grace: float) -> None:
    log.error("make() did not stop %g s after its %g s limit (stuck where signals do not reach): ending this "
              "worker (exit %d); its keys are reclaimed as a dead worker's", grace, seconds, EXIT_HUNG)
    logging.shutdown()
    os._exit(EXIT_HUNG)
