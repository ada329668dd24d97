"""The commit of a made key whose reply is read while the next key is made (MySQL), and what became of it.

A reserved key's commit travels in one packet with its fenced completion; the worker does not wait for the
reply. Once the next make has ended, the reply is read and the key is one of: made; lost (its reservation was
reclaimed: another worker makes it); to be made again (the reply never came and the reservation is still this
worker's); failed (an insert that did not fit, or the reply never came too many times).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import LostConnectionError, ReservationLostError, TransientError
from .reservation import ask_still_mine

log = logging.getLogger(__name__)


class Verdict(Enum):
    MADE = "made"
    LOST = "lost"
    AGAIN = "again"
    FAILED = "failed"


@dataclass
class InFlight:
    """A made key whose commit was sent without waiting for the reply."""

    key: dict
    claim: Any  # reservation.Claim
    started: float
    elapsed: float
    pending: Any  # db.PendingCommit
    closing: Any  # reservation.Closing


@dataclass
class InFlightTracker:
    """At most one commit on its way; how often each key's reply went missing."""

    max_retries: int
    flight: InFlight | None = None
    missing_replies: dict[str, int] = field(default_factory=dict)

    def send(self, flight: InFlight):
        self.flight = flight

    def take(self) -> InFlight | None:
        """The commit on its way, if any; the tracker is empty afterwards."""
        flight, self.flight = self.flight, None
        return flight

    def verdict(self, flight: InFlight, still_mine) -> tuple[Verdict, Exception | None]:
        """Read the reply (if not read yet) and judge it; ``still_mine(claim)`` is asked only when the reply
        never came. Never raises."""
        err = flight.closing.error(flight.pending, still_mine)
        if err is None:
            return Verdict.MADE, None
        if isinstance(err, ReservationLostError):
            return Verdict.LOST, err
        if not isinstance(err, (TransientError, LostConnectionError)):
            # a worker stopped past its lease and resumed: its insert meets the row the new owner made
            # (a duplicate) before the fence is reached; that is a lost key, not a failure
            if not ask_still_mine(still_mine, flight.claim, unknown=True):  # unknown: recorded as a failure
                return Verdict.LOST, ReservationLostError(f"{err} (the key was reclaimed and made by another "
                                                          "worker meanwhile: nothing of this make was kept)")
            return Verdict.FAILED, err
        claim = flight.claim
        tries = self.missing_replies[claim.key_hash] = self.missing_replies.get(claim.key_hash, 0) + 1
        try:
            mine = still_mine(claim)
        except Exception as e:  # the database stays away: reclaimed once this worker is seen dead
            log.warning("cannot tell whether %s was made (%s)", flight.key, e)
            mine = False
        if not mine:
            return Verdict.LOST, ReservationLostError("reclaimed while the database was away")
        if tries <= self.max_retries:
            return Verdict.AGAIN, err
        return Verdict.FAILED, err

