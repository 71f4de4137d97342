"""Public tests for exercise 04 (locks and semaphores). Run them while you work."""

import pytest


@pytest.mark.points(2)
@pytest.mark.hint("`counter.value += 1` is a read then a write: hold the lock "
                  "(with counter.get_lock():) around it.")
def test_locked_counter_small(student):
    """locked_counter(4, 25000) returns 100000"""
    locks = student.module("locks", timeout=8)
    got = locks.locked_counter(4, 25_000)
    assert got == 100_000, f"expected 100000, got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("All tasks share ONE Semaphore(limit); count who is inside under a Lock and hold "
                  "the semaphore about 100 ms so the tasks overlap.")
def test_peak_concurrency_limits(student):
    """peak_concurrency(4, 2) returns (2, 4)"""
    locks = student.module("locks", timeout=8)
    got = locks.peak_concurrency(4, 2)
    assert got == (2, 4), f"expected (2, 4): a peak of 2 and 4 entries, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check the arguments first: raise ValueError when processes < 1.")
def test_locked_counter_bad_args(student):
    """locked_counter(0, 10) raises ValueError"""
    locks = student.module("locks", timeout=5)
    with pytest.raises(ValueError):
        locks.locked_counter(0, 10)
