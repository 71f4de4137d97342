"""Hidden tests for exercise 03 (async def with a concurrency limit)."""

import math
import os
import random

import pytest

from grader.testing import Mistake

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

PACE = 0.25  # probes.paced_double sleeps exactly this long per call (probes.PACE)
LIMIT_HINT = ("Create ONE asyncio.Semaphore(limit) in gather_limited and hold it (`async with`) "
              "around every `await func(item)`: a semaphore per call limits nothing.")
OVERLAP_HINT = ("Awaiting the calls one after the other never overlaps them: make one coroutine "
                "per item and `await asyncio.gather(...)` them, the semaphore limiting how many run.")


def limited(student, items, limit, probe="probes.paced_double"):
    """gather_limited(probe, items, limit) in a session: (result, peak in flight, wall, tasks).

    ``wall`` is the grader's own time of that operation, measured outside the student's process:
    what the tests judge on. ``peak`` (the probe's count) and ``tasks`` (the student's event
    loop's) are counted inside it, the student's word: they only shape the message."""
    with student.session(timeout=10) as s:
        s.helper("probes.reset")()
        got = s.module("aio").gather_limited(s.helper(probe), items, limit)
        wall, tasks = s.last.wall, s.last.tasks
        peak = s.helper("probes.peak")()
    return got, peak, wall, tasks


def rounds_check(what, items, limit, wall, peak):
    """Fail unless ``wall`` is what ``limit`` calls of PACE at a time take: at least
    ``ceil(n / limit)`` rounds (no sleep ends early, whatever the machine's load), and under
    that plus 1.5 rounds of slack (one after another takes a round per call, at least two more).
    The probe's ``peak`` only picks the message, and fails the test when it says "wrong" too."""
    rounds = math.ceil(len(items) / limit)
    if wall < rounds * PACE * 0.9 or peak > limit:
        raise Mistake(f"{what}: expected {rounds} rounds of {PACE} s with {limit} calls at a time (at least "
                      f"{rounds * PACE:.2f} s), got {wall:.2f} s: more than {limit} ran at once", hint=LIMIT_HINT)
    if wall >= (rounds + 1.5) * PACE or peak < limit:
        raise Mistake(f"{what}: expected {limit} calls at a time, {rounds} rounds of {PACE} s (about "
                      f"{rounds * PACE:.2f} s), got {wall:.2f} s (one after another takes "
                      f"{len(items) * PACE:.2f} s)",
                      hint=OVERLAP_HINT if peak <= 1 else "Semaphore(limit): exactly `limit` at once, not fewer.")


@pytest.mark.points(5)
@pytest.mark.hint(LIMIT_HINT)
def test_limit_is_reached_and_never_passed(student):
    """gather_limited runs exactly `limit` calls at once, never more"""
    limit = rng.randint(2, 3)
    # 2 * limit + 1 items: 3 rounds; limit + 1 at once would take 2, one at a time 5 or 7.
    items = list(range(2 * limit + 1))
    got, peak, wall, _ = limited(student, items, limit)
    what = f"gather_limited(paced_double, {len(items)} items, limit={limit})"
    assert got == [2 * x for x in items], f"{what}: expected the doubles in order, got {got!r}"
    rounds_check(what, items, limit, wall, peak)


@pytest.mark.points(4)
@pytest.mark.hint(OVERLAP_HINT)
def test_calls_overlap_in_tasks(student):
    """gather_limited's calls overlap in tasks: it takes far less than the calls one after another"""
    limit = rng.randint(2, 3)
    items = list(range(limit * 3))  # 3 rounds; one after another: 6 or 9
    got, peak, wall, tasks = limited(student, items, limit)
    what = f"gather_limited(paced_double, {len(items)} items, limit={limit})"
    assert got == [2 * x for x in items], f"{what}: expected the doubles in order, got {got!r}"
    if not tasks:  # the student's word: a message, the wall time below is the judge
        raise Mistake(f"{what}: expected the calls to run in tasks (asyncio.gather), got none created",
                      hint=OVERLAP_HINT)
    rounds_check(what, items, limit, wall, peak)


@pytest.mark.points(3)
@pytest.mark.hint("asyncio.gather returns the results in the order of its arguments; "
                  "asyncio.as_completed gives them in the order they finished.")
def test_results_in_the_order_of_items(student):
    """gather_limited returns results in the order of the items, not the order they finished"""
    items = sorted(rng.sample(range(0, 40), 6))  # later items finish first (probes.slow_double)
    got, _, _, _ = limited(student, items, 6, "probes.slow_double")
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
    with student.session(timeout=10) as s:
        with pytest.raises(TimeoutError):
            s.module("aio").first_result(s.helper("probes.slow_double"), [0, 1], 0.05)
        waited = s.last.wall  # the grader's own time of the call: it did wait the timeout
    if waited < 0.045:
        raise Mistake(f"first_result(slow_double, [0, 1], 0.05): expected TimeoutError after 0.05 s, got it "
                      f"after {waited:.3f} s", hint="Raise TimeoutError only when asyncio.wait's timeout ran out.")
