"""Hidden tests for exercise 04 (locks and semaphores)."""

import os
import random

import pytest

from grader.testing import Mistake, check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

ATOMIC_HINT = ("`counter.value += 1` is not atomic: it reads, adds and writes, and another process "
               "can write in between. Hold the lock around it: `with counter.get_lock(): "
               "counter.value += 1` (the same lock in every process).")
JOIN_HINT = ("did you join every process before reading the result? A process that was never "
             "joined stays a zombie, and one still running may not have finished its work.")
SHARED_HINT = ("Processes do not share variables: a global changed in a child is changed in the "
               "child's copy only. Keep the counters in shared memory (multiprocessing.Value), "
               "update them under one Lock, and hold the semaphore long enough (~100 ms) that the "
               "tasks overlap.")




def check_count(got, processes, increments):
    expected = processes * increments
    what = f"locked_counter({processes}, {increments})"
    if got == expected:
        return
    if isinstance(got, int) and got < expected:
        raise Mistake(f"{what}: expected {expected}, got {got} ({expected - got} increments lost)",
                      hint=ATOMIC_HINT if got > increments else JOIN_HINT + " " + ATOMIC_HINT)
    raise AssertionError(f"{what}: expected {expected}, got {got!r}")


# --- locked_counter --------------------------------------------------------------------------


@pytest.mark.points(3)
@pytest.mark.hint(ATOMIC_HINT)
def test_counter_is_exact(student):
    """locked_counter(4, 50000) loses no increment"""
    locks = student.module("locks", timeout=10)
    got = locks.locked_counter(4, 50_000)
    check_count(got, 4, 50_000)


@pytest.mark.points(2)
@pytest.mark.hint(ATOMIC_HINT)
def test_counter_random_sizes(student):
    """locked_counter is exact for other sizes"""
    processes, increments = rng.randint(3, 5), rng.randint(30_000, 50_000)
    locks = student.module("locks", timeout=10)
    got = locks.locked_counter(processes, increments)
    check_count(got, processes, increments)


@pytest.mark.points(2)
@pytest.mark.hint("Start `processes` multiprocessing.Process workers (not threads), then join "
                  "them all before reading the counter.")
def test_counter_uses_processes(student):
    """locked_counter starts and joins `processes` worker processes"""
    processes = rng.randint(3, 5)
    locks = student.module("locks", timeout=8)
    locks.locked_counter(processes, 1000)
    call = student.last
    assert len(call.workers) == processes, (f"locked_counter({processes}, 1000): expected "
                                            f"{processes} processes, got {len(call.workers)}")
    check_clean(call, f"locked_counter({processes}, 1000)", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("Check the arguments first: processes must be >= 1 and increments >= 0, "
                  "otherwise raise ValueError.")
def test_counter_bad_args(student):
    """locked_counter rejects bad arguments with ValueError"""
    locks = student.module("locks", timeout=5)
    for args in [(0, 5), (-1, 5), (2, -1)]:
        with pytest.raises(ValueError):
            locks.locked_counter(*args)


@pytest.mark.points(1)
@pytest.mark.hint("increments == 0 is valid: the counter stays 0.")
def test_counter_zero_increments(student):
    """locked_counter(3, 0) returns 0"""
    locks = student.module("locks", timeout=5)
    got = locks.locked_counter(3, 0)
    assert got == 0, f"locked_counter(3, 0): expected 0, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Under spawn the worker must be a module-level function, and the Value (and "
                  "Lock) must be passed to it through args=, not reached as a global.")
def test_counter_under_spawn(student):
    """locked_counter works under the spawn start method"""
    processes, increments = 1, rng.randint(3000, 6000)
    locks = student.module("locks", start_method="spawn", timeout=10)
    got = locks.locked_counter(processes, increments)
    assert got == processes * increments, (f"locked_counter({processes}, {increments}) under "
                                           f"spawn: expected {processes * increments}, got {got!r}")


# --- peak_concurrency ------------------------------------------------------------------------

SEMAPHORE_HINT = ("All tasks must share ONE multiprocessing.Semaphore(limit), created by the parent "
                  "and passed to every process; a semaphore created inside each task limits nothing.")
PEAK_LOCK_HINT = ("`inside += 1`, `entries += 1` and the peak update are each a read then a write: "
                  "with several tasks inside the semaphore at once, updates are lost unless ONE "
                  "multiprocessing.Lock (created by the parent, passed to every task) is held "
                  "around them, and around `inside -= 1`.")


def split_peak(got, what):
    """(peak, entries) from the student's return value, or a clear failure."""
    if (not isinstance(got, (tuple, list)) or len(got) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in got)):
        raise AssertionError(f"{what}: expected a pair of integers (peak, entries), got {got!r}")
    return got[0], got[1]


@pytest.mark.points(2)
@pytest.mark.hint(SHARED_HINT)
def test_peak_reaches_limit(student):
    """peak_concurrency(tasks, limit) returns a peak of min(tasks, limit) when tasks exceed the limit"""
    tasks, limit = rng.randint(4, 7), 2
    locks = student.module("locks", timeout=8)
    what = f"peak_concurrency({tasks}, {limit})"
    peak, entries = split_peak(locks.peak_concurrency(tasks, limit), what)
    if peak > limit:
        raise Mistake(f"{what}: expected a peak of {limit}, got {peak}", hint=SEMAPHORE_HINT)
    assert peak == limit, f"{what}: expected a peak of {limit}, got {peak}"
    assert entries == tasks, f"{what}: expected {tasks} entries (one per task), got {entries}"


@pytest.mark.points(2)
@pytest.mark.hint(SEMAPHORE_HINT)
def test_peak_never_above_limit(student):
    """peak_concurrency with limit 1 lets one task in at a time"""
    tasks = rng.randint(4, 5)
    locks = student.module("locks", timeout=8)
    what = f"peak_concurrency({tasks}, 1)"
    peak, _ = split_peak(locks.peak_concurrency(tasks, 1), what)
    assert peak == 1, f"{what}: expected a peak of 1, got {peak}"


@pytest.mark.points(2)
@pytest.mark.hint(PEAK_LOCK_HINT)
def test_peak_under_contention(student):
    """peak_concurrency counts every entry exactly when tasks enter thousands of times"""
    tasks, limit, rounds = 8, 4, rng.randint(5000, 7000)
    locks = student.module("locks", timeout=20)
    what = f"peak_concurrency({tasks}, {limit}, rounds={rounds}, hold=0)"
    peak, entries = split_peak(locks.peak_concurrency(tasks, limit, rounds=rounds, hold=0), what)
    expected = tasks * rounds
    if entries != expected:
        lost = f" ({expected - entries} updates lost)" if entries < expected else ""
        raise Mistake(f"{what}: expected {expected} entries, got {entries}{lost}",
                      hint=PEAK_LOCK_HINT)
    if not 1 <= peak <= limit:
        raise Mistake(f"{what}: expected a peak between 1 and {limit}, got {peak}",
                      hint=PEAK_LOCK_HINT if peak > limit else SHARED_HINT)


@pytest.mark.points(1)
@pytest.mark.hint(SHARED_HINT)
def test_peak_with_fewer_tasks_than_limit(student):
    """peak_concurrency(3, 5) reaches a peak of 3: every task gets in"""
    locks = student.module("locks", timeout=8)
    got = split_peak(locks.peak_concurrency(3, 5, hold=0.5), "peak_concurrency(3, 5, hold=0.5)")
    assert got == (3, 3), f"peak_concurrency(3, 5, hold=0.5): expected (3, 3), got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Start one multiprocessing.Process per task, and join them all.")
def test_peak_uses_processes(student):
    """peak_concurrency starts and joins one process per task"""
    tasks = rng.randint(3, 4)
    locks = student.module("locks", timeout=8)
    locks.peak_concurrency(tasks, 2)
    call = student.last
    assert len(call.workers) == tasks, (f"peak_concurrency({tasks}, 2): expected {tasks} "
                                        f"processes, got {len(call.workers)}")
    check_clean(call, f"peak_concurrency({tasks}, 2)", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("tasks == 0 returns (0, 0); tasks < 0, limit < 1, rounds < 1 or hold < 0 raises "
                  "ValueError.")
def test_peak_bad_args(student):
    """peak_concurrency handles 0 tasks and rejects bad arguments"""
    locks = student.module("locks", timeout=5)
    for args, kwargs in [((-1, 2), {}), ((3, 0), {}), ((3, 2), {"rounds": 0}),
                         ((3, 2), {"hold": -1.0})]:
        with pytest.raises(ValueError):
            locks.peak_concurrency(*args, **kwargs)
    got = split_peak(locks.peak_concurrency(0, 2), "peak_concurrency(0, 2)")
    assert got == (0, 0), f"peak_concurrency(0, 2): expected (0, 0), got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Under spawn the task must be a module-level function receiving the semaphore, "
                  "the lock and the shared values through args=.")
def test_peak_under_spawn(student):
    """peak_concurrency works under the spawn start method"""
    locks = student.module("locks", start_method="spawn", timeout=10)
    what = "peak_concurrency(3, 2, hold=0.5) under spawn"
    got = split_peak(locks.peak_concurrency(3, 2, hold=0.5), what)
    assert got == (2, 3), f"{what}: expected (2, 3), got {got!r}"
