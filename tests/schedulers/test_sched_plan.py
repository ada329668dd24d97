"""plan_arrays: splitting a run into arrays that fit MaxArraySize."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from djhpc.errors import SchedulerError, UsageError
from djhpc.schedulers import ArrayChunk, plan_arrays, task_key


def test_one_array_without_a_limit() -> None:
    assert plan_arrays(11) == [ArrayChunk(1, 11, 0)]
    assert plan_arrays(1) == [ArrayChunk(1, 1, 0)]
    assert plan_arrays(11, 11) == [ArrayChunk(1, 11, 0)]


def test_limit_is_on_the_highest_index() -> None:
    # MaxArraySize=1001 allows indices 0..1000: 1000 tasks fit, 1001 do not
    assert plan_arrays(1000, None, 1001) == [ArrayChunk(1, 1000, 0)]
    assert plan_arrays(1001, None, 1001) == [ArrayChunk(1, 1000, 0), ArrayChunk(1, 1, 1000)]
    assert plan_arrays(2500, 10, 1001) == [ArrayChunk(1, 1000, 0), ArrayChunk(1, 1000, 1000), ArrayChunk(1, 500, 2000)]
    assert plan_arrays(3, None, 2) == [ArrayChunk(1, 1, 0), ArrayChunk(1, 1, 1), ArrayChunk(1, 1, 2)]
    assert plan_arrays(2500, 10, 1001)[2].size == 500


@pytest.mark.parametrize(
    "args,message",
    [
        ((0,), r"^--array must be >= 1 \(got 0\)$"),
        ((-3,), r"^--array must be >= 1 \(got -3\)$"),
        ((11, 20), r"^--throttle 20 is larger than the array \(11\): lower it or omit it$"),
        ((11, 0), r"^--throttle must be >= 1 \(got 0\)$"),
    ],
)
def test_bad_plans(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_arrays(*args)


def test_max_submit_jobs() -> None:
    with pytest.raises(UsageError, match=r"--array 5000 is more than this account may queue \(MaxSubmitJobs 1000\)"):
        plan_arrays(5000, max_submit_jobs=1000)
    assert plan_arrays(1000, max_submit_jobs=1000) == [ArrayChunk(1, 1000, 0)]


@pytest.mark.parametrize("limit", [0, 1])
def test_arrays_impossible(limit: int) -> None:
    with pytest.raises(SchedulerError, match=f"MaxArraySize={limit}"):
        plan_arrays(5, None, limit)


@given(n=st.integers(1, 20000), limit=st.one_of(st.none(), st.integers(2, 3000)), data=st.data())
def test_chunks_cover_every_task_once(n: int, limit: int | None, data: st.DataObject) -> None:
    throttle = data.draw(st.one_of(st.none(), st.integers(1, n)))
    chunks = plan_arrays(n, throttle, limit)
    covered = [chunk.index_offset + i for chunk in chunks for i in range(chunk.first_index, chunk.last_index + 1)]
    assert covered == list(range(1, n + 1))
    for chunk in chunks:
        assert chunk.first_index == 1
        assert limit is None or chunk.last_index <= limit - 1
    assert len(chunks) == (1 if limit is None else -(-n // (limit - 1)))


def test_task_key() -> None:
    assert task_key("12", 3) == "12_3"
