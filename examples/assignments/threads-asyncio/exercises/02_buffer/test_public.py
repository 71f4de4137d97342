"""Public tests for exercise 02 (a thread-safe bounded buffer)."""

import pytest


@pytest.mark.points(3)
@pytest.mark.hint("Keep the items in a collections.deque: append() in put, popleft() in get, "
                  "both while holding the Condition.")
def test_put_then_get_in_order(student):
    """BoundedBuffer(3): put a, b; get gives a, then b; len and capacity are right"""
    with student.session() as s:
        buf = s.module("buffer").BoundedBuffer(3)
        assert buf.capacity == 3, f"expected capacity 3, got {buf.capacity!r}"
        assert buf.put("a") is True, "expected put() to return True"
        buf.put("b")
        assert len(buf) == 2, f"expected len 2 after two puts, got {len(buf)}"
        first, second = buf.get(), buf.get()
    assert (first, second) == ("a", "b"), f"expected 'a' then 'b', got {first!r} then {second!r}"


@pytest.mark.points(3)
@pytest.mark.hint("Start every producer and consumer thread first, then join them all.")
def test_pipeline_small(student):
    """pipeline(2, 2, 2, 10) returns the 20 numbers 0..19"""
    buffer = student.module("buffer", timeout=5)
    got = buffer.pipeline(2, 2, 2, 10)
    assert got == list(range(20)), f"expected [0, 1, ..., 19], got {got!r}"
