"""One back-off policy for every retry loop: delays that double up to a cap, with jitter.

Jitter keeps workers that failed together (a database restart, a busy SQLite file) from retrying together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator


def delays(first: float = 0.1, cap: float = 5.0, *, attempts: int | None = None, seconds: float | None = None,
           jitter: str = "half") -> Iterator[float | None]:
    """Seconds to sleep before each retry: ``first``, doubling, at most ``cap``.

    ``attempts`` bounds how many delays are given; ``seconds`` how long the retries may take in all: the last
    delay yielded is then None, meaning "no time left, give up after this try". ``jitter`` is "half" (each
    delay times 0.5-1.5), "full" (times 0-1) or "none".
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    delay, given = first, 0
    while attempts is None or given < attempts:
        given += 1
        actual = _jittered(delay, jitter)
        if deadline is not None and time.monotonic() + actual > deadline:
            yield None
            return
        yield actual
        delay = min(delay * 2, cap)


def _jittered(delay: float, jitter: str) -> float:
    if jitter == "half":
        return delay * (0.5 + random.random())
    if jitter == "full":
        return delay * random.random()
    return delay


def sleep(seconds: float | None) -> None:
    """Sleep ``seconds`` (None: not at all), in one place so tests can count retries."""
    if seconds:
        time.sleep(seconds)
