"""Public tests for exercise 01 (a process pool and a chunking generator)."""

import pytest

POOL_HINT = ("Start a multiprocessing.Pool(workers) and return pool.map(func, items): pass func "
             "itself, never a lambda around it.")


@pytest.mark.points(3)
@pytest.mark.hint(POOL_HINT)
def test_parallel_map_squares(student):
    """parallel_map(square, [1, 2, 3, 4]) returns [1, 4, 9, 16]"""
    pool = student.module("pool")
    got = pool.parallel_map(student.helper("probes.square"), [1, 2, 3, 4])
    assert got == [1, 4, 9, 16], f"expected [1, 4, 9, 16], got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("Fill a list until it has `size` items, yield it, start a new one; yield the "
                  "last, shorter list if it is not empty.")
def test_chunks_of_a_list(student):
    """chunks([1, 2, 3, 4, 5], 2) yields [1, 2], [3, 4], [5]"""
    with student.session() as s:
        gen = s.module("pool").chunks([1, 2, 3, 4, 5], 2)
        got = s.take(gen, 10)
    assert got == [[1, 2], [3, 4], [5]], f"expected [[1, 2], [3, 4], [5]], got {got!r}"
