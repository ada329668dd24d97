"""One back-off policy for every retry loop: delays that grow by a factor up to a cap, with jitter.

Jitter keeps workers that failed together (a database restart, a busy SQLite file) from retrying together.

    for delay in backoff.delays(first=0.1, cap=5, attempts=6):   # a loop of its own
        try:
            return work()
        except TransientError:
            if delay is None: raise                              # (with seconds=: no time left)
            backoff.sleep(delay)

    backoff.retry(work, exceptions=TransientError, attempts=6)  # the same loop, raising after the 6th try
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

JITTERS = ("half", "full", "none")


def delays(first: float = 0.1, cap: float = 5.0, *, attempts: int | None = None, seconds: float | None = None,
           jitter: str = "half", factor: float = 2.0) -> Iterator[float | None]:
    """Seconds to sleep before each retry: ``first``, times ``factor`` each time, at most ``cap``.

    ``attempts`` bounds how many delays are given; ``seconds`` how long the retries may take in all: the last
    delay yielded is then None, meaning "no time left, give up after this try". ``jitter`` is "half" (each
    delay times 0.5-1.5), "full" (times 0-1) or "none".
    """
    if jitter not in JITTERS:
        raise ValueError(f"jitter {jitter!r} is not one of {', '.join(JITTERS)}")
    deadline = None if seconds is None else time.monotonic() + seconds
    given = 0
    while attempts is None or given < attempts:
        actual = delay(given, first, cap, jitter=jitter, factor=factor)
        given += 1
        if deadline is not None and time.monotonic() + actual > deadline:
            yield None
            return
        yield actual


def delay(attempt: int, first: float = 0.1, cap: float = 5.0, *, jitter: str = "half", factor: float = 2.0) -> float:
    """The delay before retry number ``attempt`` (0 for the first), as ``delays()`` would give it: for loops
    that usually succeed at once and should not build a generator for the rare retry."""
    try:
        grown = first * factor**attempt
    except OverflowError:  # attempt 1100 of a doubling: past the cap long before
        grown = cap
    return _jittered(min(grown, cap), jitter)


def _jittered(delay: float, jitter: str) -> float:
    if jitter == "half":
        return delay * (0.5 + random.random())
    if jitter == "full":
        return delay * random.random()
    if jitter != "none":
        raise ValueError(f"jitter {jitter!r} is not one of {', '.join(JITTERS)}")
    return delay


def sleep(seconds: float | None) -> None:
    """Sleep ``seconds`` (None: not at all), in one place so tests can count retries."""
    if seconds:
        time.sleep(seconds)


def retry(fn: Callable[[], T], *, exceptions: type[BaseException] | tuple[type[BaseException], ...],
          attempts: int | None = None, seconds: float | None = None, first: float = 0.1, cap: float = 5.0,
          jitter: str = "half", when: Callable[[BaseException], bool] | None = None,
          on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """``fn()``, tried again after ``exceptions`` with the delays of ``delays()``; the last error is raised.

    ``attempts`` is how many times fn runs at most, ``seconds`` how long the retrying may take (one of them, or
    both). An error ``when(error)`` says is not worth retrying is raised at once; ``on_retry(error, delay)`` is
    called before each sleep (a log line).
    """
    if attempts is None and seconds is None:
        raise ValueError("retry needs attempts or seconds: without either it would retry for ever")
    tries = 0
    for delay in delays(first, cap, attempts=attempts, seconds=seconds, jitter=jitter):
        tries += 1
        try:
            return fn()
        except exceptions as e:
            if delay is None or tries == attempts or (when is not None and not when(e)):
                raise
            if on_retry is not None:
                on_retry(e, delay)
            sleep(delay)
    raise ValueError(f"retry with attempts={attempts} never calls fn")
