"""Walltime fit: a worker that knows when its allocation ends does not start a key that would not fit.

The end comes from ``taskenv.allocation_end``: DJHPC_END_TIME (seconds since the epoch), SLURM
(``squeue -o %e`` of the job) or Torque's PBS_WALLTIME; the usual duration of a key from the completion
history (90th percentile) or, without history, from the keys this worker has made so far.
"""

from __future__ import annotations

import logging
import time

from .schedulers import taskenv

log = logging.getLogger(__name__)

SAFETY_FACTOR = 1.25  # leave room: the usual duration is a percentile, not a bound


class Walltime:
    def __init__(self, end: float, typical=None):
        self.end = end
        self.typical = typical  # callable -> seconds or None (e.g. History.typical_duration)
        self.observed: list[float] = []
        self._cached: tuple[float, float | None] = (0.0, None)

    @classmethod
    def detect(cls, typical=None) -> Walltime | None:
        end = taskenv.allocation_end()
        return cls(end, typical) if end else None

    def observe(self, seconds: float):
        self.observed.append(seconds)

    def usual_duration(self) -> float | None:
        now = time.monotonic()
        if self.typical and now - self._cached[0] > 60:
            try:
                self._cached = (now, self.typical())
            except Exception as e:  # without history the worker's own durations serve
                log.info("could not read the completion history: %s", e)
                self._cached = (now, None)
        usual = self._cached[1]
        if usual is None and self.observed:
            usual = max(self.observed[-20:])
        return usual

    def fits(self) -> bool:
        usual = self.usual_duration()
        if usual is None:
            return time.time() < self.end
        return time.time() + usual * SAFETY_FACTOR < self.end
