"""Hidden tests for exercise 01 (a process pool and a chunking generator)."""

import os
import random

import pytest

from grader.testing import Mistake, check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

POOL_HINT = ("Start a multiprocessing.Pool(workers) and return pool.map(func, items): pass func "
             "itself (a lambda around it cannot be pickled to the workers).")
CLEAN_HINT = "Close and join the pool (use `with multiprocessing.Pool(...) as pool:` plus close() and join())."
LAZY_HINT = ("chunks() must be lazy: iterate over `items` with a for loop and yield each full "
             "chunk at once; list(items) never returns for an endless iterable.")


@pytest.mark.points(3)
@pytest.mark.hint(POOL_HINT)
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_parallel_map_under(student, start_method):
    """parallel_map gives the results in order under spawn and forkserver"""
    items = [rng.randint(-50, 50) for _ in range(rng.randint(5, 12))]
    pool = student.module("pool", start_method=start_method, timeout=15)
    got = pool.parallel_map(student.helper("probes.square"), items)
    assert got == [x * x for x in items], f"parallel_map(square, {items}): expected the squares in order, got {got!r}"


@pytest.mark.points(3)
@pytest.mark.hint("Pool(workers): exactly `workers` processes do the work, not the calling process.")
def test_the_pool_does_the_work(student):
    """parallel_map computes in exactly `workers` pool processes, and leaves none running"""
    workers = rng.randint(2, 3)
    pool = student.module("pool", timeout=15)
    got = pool.parallel_map(student.helper("probes.square_and_pid"), list(range(12)), workers)
    call = student.last
    what = f"parallel_map(square_and_pid, range(12), {workers})"
    if not isinstance(got, list) or len(got) != 12:
        raise AssertionError(f"{what}: expected 12 results, got {got!r}")
    pids = {pid for _, pid in got}
    if call.pid in pids:
        raise Mistake(f"{what}: expected the work in pool processes, got results computed by the calling process",
                      hint=POOL_HINT)
    assert [sq for sq, _ in got] == [x * x for x in range(12)], f"{what}: expected the squares in order, got {got!r}"
    assert pids <= call.workers, f"{what}: results came from processes the grader did not see start"
    assert len(call.workers) == workers, f"{what}: expected a pool of {workers} processes, got {len(call.workers)}"
    check_clean(call, what, hint=CLEAN_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Check workers first: raise ValueError when it is below 1.")
def test_parallel_map_rejects_no_workers(student):
    """parallel_map(square, [1], 0) raises ValueError"""
    pool = student.module("pool")
    with pytest.raises(ValueError):
        pool.parallel_map(student.helper("probes.square"), [1], 0)


@pytest.mark.points(2)
@pytest.mark.hint("An exception in a worker comes back from pool.map in the caller: do not catch it.")
def test_parallel_map_passes_errors_on(student):
    """a task that raises makes parallel_map raise it"""
    pool = student.module("pool")
    with pytest.raises(ValueError):
        pool.parallel_map(student.helper("probes.fail"), [1, 2])


@pytest.mark.points(3)
@pytest.mark.hint(LAZY_HINT)
def test_chunks_is_lazy(student):
    """chunks(endless iterator, 3) yields its first chunks without reading it all"""
    size = rng.randint(2, 5)
    with student.session(timeout=5) as s:
        endless = s.helper("probes.naturals")(7)
        gen = s.module("pool").chunks(endless, size)
        first = s.take(gen, 3)
    expected = [list(range(7 + i * size, 7 + (i + 1) * size)) for i in range(3)]
    assert first == expected, f"chunks(count(7), {size}): expected {expected}, got {first!r}"


@pytest.mark.points(2)
@pytest.mark.hint("Yield the last chunk too when it is shorter, and nothing for empty input.")
def test_chunks_keeps_the_tail(student):
    """chunks keeps every item, the last chunk shorter, and yields nothing for []"""
    n, size = rng.randint(7, 20), rng.randint(2, 6)
    if n % size == 0:
        n += 1
    items = list(range(n))
    with student.session() as s:
        mod = s.module("pool")
        got = list(mod.chunks(items, size))
        empty = s.take(mod.chunks([], 3), 5)
    expected = [items[i:i + size] for i in range(0, n, size)]
    assert got == expected, f"chunks(range({n}), {size}): expected {expected}, got {got!r}"
    assert empty == [], f"chunks([], 3): expected nothing, got {empty!r}"
