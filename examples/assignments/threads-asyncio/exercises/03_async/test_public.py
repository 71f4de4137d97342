"""Public tests for exercise 03 (async def with a concurrency limit)."""

import pytest


@pytest.mark.points(3)
@pytest.mark.hint("await asyncio.gather(...) of one coroutine per item gives the results in the "
                  "order of the items.")
def test_gather_limited_results(student):
    """gather_limited(slow_double, [1, 2, 3], 2) returns [2, 4, 6]"""
    aio = student.module("aio")
    got = aio.gather_limited(student.helper("probes.slow_double"), [1, 2, 3], 2)
    assert got == [2, 4, 6], f"expected [2, 4, 6], got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("Start every call at once (ensure_future), asyncio.wait(..., "
                  "return_when=asyncio.FIRST_COMPLETED), then cancel the others.")
def test_first_result(student):
    """first_result(slow_double, [0, 9], 5) returns 18 (9 finishes first)"""
    aio = student.module("aio")
    got = aio.first_result(student.helper("probes.slow_double"), [0, 9], 5)
    assert got == 18, f"expected 18 (slow_double(9) finishes first), got {got!r}"
