"""djhpc.backoff: delays grow by a factor, stop at the cap, jitter within bounds; retry on top of them."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from djhpc import backoff
from djhpc.backoff import delays, retry


class Clock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.now = 1000.0
        self.slept: list[float] = []
        monkeypatch.setattr(backoff.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(backoff, "sleep", self.sleep)

    def sleep(self, seconds: float | None) -> None:
        self.slept.append(seconds)
        self.now += seconds or 0


def test_delays_grow_to_the_cap() -> None:
    assert list(islice(delays(0.1, 1.0, jitter="none"), 7)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert list(islice(delays(1, 20, jitter="none", factor=3), 5)) == [1, 3, 9, 20, 20]
    assert list(delays(5, 2, attempts=2, jitter="none")) == [2, 2]  # a first delay above the cap is capped too


def test_attempts_bound_the_delays() -> None:
    assert len(list(delays(attempts=6))) == 6
    assert list(delays(attempts=0)) == []


@pytest.mark.parametrize(("jitter", "low", "high"), [("half", 0.5, 1.5), ("full", 0.0, 1.0), ("none", 1.0, 1.0)])
def test_jitter_stays_within_its_bounds(jitter: str, low: float, high: float) -> None:
    bases = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for _ in range(200):
        got = list(delays(0.1, 2.0, attempts=len(bases), jitter=jitter))
        assert all(low * b <= d <= high * b for d, b in zip(got, bases, strict=True)), got


def test_jitter_at_its_extremes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff.random, "random", lambda: 0.0)
    assert list(delays(0.1, 5, attempts=3)) == pytest.approx([0.05, 0.1, 0.2])
    assert list(delays(0.1, 5, attempts=3, jitter="full")) == [0.0, 0.0, 0.0]
    monkeypatch.setattr(backoff.random, "random", lambda: 0.999)
    assert list(delays(0.1, 5, attempts=3)) == pytest.approx([0.1499, 0.2998, 0.5996])


def test_jitter_spreads_the_workers() -> None:
    random.seed(7)
    first = [next(delays(1.0, 5.0)) for _ in range(100)]
    assert len(set(first)) == 100 and min(first) < 0.75 and max(first) > 1.25


def test_unknown_jitter() -> None:
    with pytest.raises(ValueError, match="jitter 'some' is not one of half, full, none"):
        next(delays(jitter="some"))


def test_seconds_bound_the_time_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    given = []
    for delay in delays(1, 4, seconds=10, jitter="none"):
        given.append(delay)
        clock.sleep(delay)
    assert given == [1, 2, 4, None]  # 1 + 2 + 4 = 7 s; 4 more would end past 10 s
    assert sum(filter(None, clock.slept)) <= 10


def test_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = []
    monkeypatch.setattr(backoff.time, "sleep", slept.append)
    backoff.sleep(None)
    backoff.sleep(0)
    backoff.sleep(0.25)
    assert slept == [0.25]


# ------------------------------------------------------------------------------------------ retry


def flaky(failures: int, error: type[BaseException] = ConnectionError):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"failure {len(calls)}")
        return len(calls)

    return fn, calls


def test_retry_until_it_works(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    fn, calls = flaky(3)
    seen = []
    assert retry(fn, exceptions=ConnectionError, attempts=5, first=0.1, jitter="none",
                 on_retry=lambda e, d: seen.append((str(e), d))) == 4  # fmt: skip
    assert clock.slept == pytest.approx([0.1, 0.2, 0.4])
    assert seen == [("failure 1", 0.1), ("failure 2", 0.2), ("failure 3", pytest.approx(0.4))]


def test_retry_raises_the_last_error_after_the_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    fn, calls = flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        retry(fn, exceptions=(TimeoutError, ConnectionError), attempts=3, jitter="none")
    assert len(calls) == 3 and len(clock.slept) == 2  # no sleep after the last try


def test_retry_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    fn, calls = flaky(100)
    with pytest.raises(ConnectionError):
        retry(fn, exceptions=ConnectionError, seconds=10, first=1, cap=4, jitter="none")
    assert clock.slept == [1, 2, 4] and len(calls) == 4


def test_retry_other_errors_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    fn, calls = flaky(1, KeyError)
    with pytest.raises(KeyError):
        retry(fn, exceptions=ConnectionError, attempts=5)
    fn, calls = flaky(5, ConnectionError)
    with pytest.raises(ConnectionError, match="failure 1"):
        retry(fn, exceptions=ConnectionError, attempts=5, when=lambda e: "locked" in str(e))
    assert clock.slept == [] and len(calls) == 1


def test_retry_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="attempts or seconds"):
        retry(lambda: 1, exceptions=ConnectionError)
    with pytest.raises(ValueError, match="never calls fn"):
        retry(lambda: 1, exceptions=ConnectionError, attempts=0)


def test_one_delay_is_the_delay_delays_gives_at_that_attempt():
    from djhpc import backoff

    given = list(backoff.delays(first=0.1, cap=1.0, attempts=6, jitter="none"))
    assert [backoff.delay(i, first=0.1, cap=1.0, jitter="none") for i in range(6)] == given
    assert all(0.5 * 0.4 <= backoff.delay(2, first=0.1, cap=1.0) <= 1.5 * 0.4 for _ in range(50))


def test_one_delay_far_past_the_cap() -> None:
    assert backoff.delay(5000, first=0.1, cap=2.0, jitter="none") == 2.0  # no OverflowError from 2.0**5000
    assert backoff.delay(0, first=3.0, cap=2.0, jitter="none") == 2.0
    with pytest.raises(ValueError, match="jitter 'bogus'"):
        backoff.delay(1, jitter="bogus")
