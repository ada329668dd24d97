"""What becomes of a commit read after the next make, judged without a database."""

from __future__ import annotations

import pytest

from djhpc.db.pending import PendingCommit
from djhpc.errors import DataError, LostConnectionError, ReservationLostError
from djhpc.inflight import InFlight, InFlightTracker, Verdict
from djhpc.reservation import Claim, Closing


def flight(error=None, failed_at=None) -> InFlight:
    claim = Claim("__t", {"k": 1}, "h" * 32, "token")
    closing = Closing([("DELETE ...", ())], 0, claim)
    return InFlight({"k": 1}, claim, 0.0, 0.1, PendingCommit.settled(error, failed_at), closing)


def test_a_committed_key_is_made():
    assert InFlightTracker(5).verdict(flight(), lambda c: pytest.fail("not asked")) == (Verdict.MADE, None)


def test_a_failed_fence_means_another_worker_has_the_key():
    verdict, err = InFlightTracker(5).verdict(flight(DataError("x"), failed_at=0), lambda c: pytest.fail("not asked"))
    assert verdict is Verdict.LOST and isinstance(err, ReservationLostError)


def test_a_failing_insert_is_a_failure_of_its_own_key():
    verdict, err = InFlightTracker(5).verdict(flight(DataError("does not fit")), lambda c: True)
    assert verdict is Verdict.FAILED and str(err) == "does not fit"


def test_a_failing_insert_of_a_key_reclaimed_meanwhile_is_lost():
    """Its row was made by the new owner (a duplicate here): not this worker's failure."""
    verdict, err = InFlightTracker(5).verdict(flight(DataError("duplicate")), lambda c: False)
    assert verdict is Verdict.LOST and "made by another worker" in str(err)
    verdict, _ = InFlightTracker(5).verdict(flight(DataError("duplicate")), lambda c: 1 / 0)
    assert verdict is Verdict.FAILED  # cannot tell: recorded as the failure it looks like


def test_a_missing_reply_makes_the_key_again_while_it_is_ours_a_bounded_number_of_times():
    tracker = InFlightTracker(2)
    lost = LostConnectionError("no reply")
    verdicts = [tracker.verdict(flight(lost), lambda c: True)[0] for _ in range(3)]
    assert verdicts == [Verdict.AGAIN, Verdict.AGAIN, Verdict.FAILED]


@pytest.mark.parametrize("still_mine", [lambda c: False, lambda c: 1 / 0])
def test_a_missing_reply_for_a_key_no_longer_ours_or_unknowable_is_lost(still_mine):
    verdict, err = InFlightTracker(2).verdict(flight(LostConnectionError("no reply")), still_mine)
    assert verdict is Verdict.LOST and "reclaimed" in str(err)


def test_the_tracker_holds_one_commit_and_hands_it_over_once():
    tracker, f = InFlightTracker(1), flight()
    assert tracker.take() is None
    tracker.send(f)
    assert tracker.take() is f and tracker.take() is None
