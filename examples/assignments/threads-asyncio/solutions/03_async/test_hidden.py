"""Hidden tests for exercise 03 (async def with a concurrency limit)."""

import math
import os
import random

import pytest

from grader.testing import Mistake

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

DELAY = 0.1  # probes.slow_double sleeps at least this long per call
LIMIT_HINT = ("Create ONE asyncio.Semaphore(limit) in gather_limited and hold it (`async with`) "
              "around every `await func(item)`: a semaphore per call limits nothing.")
OVERLAP_HINT = ("Awaiting the calls one after the other never overlaps them: make one coroutine "
                "per item and `await asyncio.gather(...)` them, the semaphore limiting how many run.")


def limited(student, items, limit):
    """gather_limited(slow_double, items, limit) in a session: (result, peak in flight, record)."""
    with student.session(timeout=10) as s:
        s.helper("probes.reset")()
        got = s.module("aio").gather_limited(s.helper("probes.slow_double"), items, limit)
        elapsed, tasks = s.last.elapsed, s.last.tasks
        peak = s.helper("probes.peak")()
    return got, peak, elapsed, tasks


@pytest.mark.points(5)
@pytest.mark.hint(LIMIT_HINT)
def test_limit_is_reached_and_never_passed(student):
    """gather_limited runs exactly `limit` calls at once, never more"""
    limit = rng.randint(2, 4)
    items = list(range(limit * 2 + rng.randint(1, 3)))
    got, peak, _, _ = limited(student, items, limit)
    what = f"gather_limited(slow_double, {len(items)} items, limit={limit})"
    assert got == [2 * x for x in items], f"{what}: expected the doubles in order, got {got!r}"
    if peak > limit:
        raise Mistake(f"{what}: expected at most {limit} calls in flight, got {peak}", hint=LIMIT_HINT)
    if peak < limit:
        raise Mistake(f"{what}: expected {limit} calls in flight at once, got at most {peak}",
                      hint=OVERLAP_HINT if peak == 1 else "Semaphore(limit): exactly `limit`, not fewer.")


@pytest.mark.points(4)
@pytest.mark.hint(OVERLAP_HINT)
def test_calls_overlap_in_tasks(student):
    """gather_limited's calls overlap in tasks: it takes far less than the calls one after another"""
    limit = rng.randint(2, 3)
    items = list(range(limit * 3))
    got, _, elapsed, tasks = limited(student, items, limit)
    what = f"gather_limited(slow_double, {len(items)} items, limit={limit})"
    assert got == [2 * x for x in items], f"{what}: expected the doubles in order, got {got!r}"
    # Lower bounds only: every call sleeps at least DELAY, so one after another takes at least
    # len(items) * DELAY, and `limit` at a time at least ceil(len / limit) * DELAY.
    least = math.ceil(len(items) / limit) * DELAY
    if elapsed is None or elapsed < least * 0.95:
        raise Mistake(f"{what}: expected at least {least:.2f} s with {limit} calls at a time, got "
                      f"{elapsed if elapsed is None else round(elapsed, 2)} s: more ran at once", hint=LIMIT_HINT)
    if not tasks:
        raise Mistake(f"{what}: expected the calls to run in tasks (asyncio.gather), got none created",
                      hint=OVERLAP_HINT)
    if elapsed >= len(items) * DELAY:
        raise Mistake(f"{what}: expected the calls to overlap, got {elapsed:.2f} s, as long as one after another",
                      hint=OVERLAP_HINT)


@pytest.mark.points(3)
@pytest.mark.hint("asyncio.gather returns the results in the order of its arguments; "
                  "asyncio.as_completed gives them in the order they finished.")
def test_results_in_the_order_of_items(student):
    """gather_limited returns results in the order of the items, not the order they finished"""
    items = sorted(rng.sample(range(0, 40), 6))  # later items finish first (probes.slow_double)
    got, _, _, _ = limited(student, items, 6)
    assert got == [2 * x for x in items], f"gather_limited(slow_double, {items}, 6): expected {[2 * x for x in items]}, got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("Check limit first: raise ValueError when it is below 1.")
def test_limit_must_be_positive(student):
    """gather_limited(..., limit=0) raises ValueError"""
    aio = student.module("aio")
    with pytest.raises(ValueError):
        aio.gather_limited(student.helper("probes.slow_double"), [1], 0)


@pytest.mark.points(3)
@pytest.mark.hint("Start every call at once (ensure_future), then asyncio.wait(..., "
                  "return_when=asyncio.FIRST_COMPLETED); cancel the others.")
def test_first_result_starts_every_call(student):
    """first_result starts every call at once and returns the fastest result"""
    items = [0, 1, rng.randint(20, 40)]
    with student.session(timeout=10) as s:
        s.helper("probes.reset")()
        got = s.module("aio").first_result(s.helper("probes.slow_double"), items, 5)
        started = s.helper("probes.calls")()
    assert got == 2 * items[-1], f"first_result(slow_double, {items}, 5): expected {2 * items[-1]}, got {got!r}"
    assert started == len(items), f"expected all {len(items)} calls started at once, got {started}"


@pytest.mark.points(2)
@pytest.mark.hint("asyncio.wait(..., timeout=timeout) returns no finished task when time ran out: "
                  "raise TimeoutError then.")
def test_first_result_times_out(student):
    """first_result raises TimeoutError when nothing finishes within the timeout"""
    aio = student.module("aio")
    with pytest.raises(TimeoutError):
        aio.first_result(student.helper("probes.slow_double"), [0, 1], 0.05)
