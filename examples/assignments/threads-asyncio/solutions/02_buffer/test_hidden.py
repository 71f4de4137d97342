"""Hidden tests for exercise 02 (a thread-safe bounded buffer)."""

import os
import random
import time

import pytest

from grader.testing import Mistake

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

WHILE_HINT = ("A woken thread must check the condition again: wait in a `while` loop (or use "
              "Condition.wait_for), never an `if`; another consumer may have taken the item first.")
NOTIFY_HINT = ("After get() removes an item, notify the threads waiting in put() "
               "(cond.notify_all()): otherwise a producer waits for space forever.")
THREADS_HINT = ("Start all producer and consumer threads first, then join them all: a producer "
                "joined before the consumers start waits forever on a full buffer.")


@pytest.mark.points(3)
@pytest.mark.hint("get() returns the oldest item: popleft() from a deque, not pop().")
def test_fifo_order(student):
    """items come out in the order they went in"""
    items = [rng.randint(0, 999) for _ in range(rng.randint(4, 8))]
    with student.session() as s:
        buf = s.module("buffer").BoundedBuffer(len(items))
        for item in items:
            buf.put(item)
        got = [buf.get() for _ in items]
    assert got == items, f"put {items}: expected them back in that order, got {got}"


@pytest.mark.points(3)
@pytest.mark.hint("put() waits while len == capacity (and gives up with False after `timeout`); "
                  "get() waits while it is empty (and raises TimeoutError after `timeout`).")
def test_full_and_empty_wait(student):
    """put on a full buffer gives up with False after its timeout; get on an empty one raises TimeoutError"""
    capacity = rng.randint(1, 4)
    with student.session() as s:
        buf = s.module("buffer").BoundedBuffer(capacity)
        for i in range(capacity):
            buf.put(i)
        refused = buf.put("extra", 0.1)
        waited = [s.last.wall]  # the grader's own time of each operation: it did wait
        size = len(buf)
        for _ in range(capacity):
            buf.get()
        try:
            late = buf.get(0.1)
        except TimeoutError:
            late = TimeoutError
        waited.append(s.last.wall)
    assert late is TimeoutError, f"get(0.1) on an empty buffer: expected TimeoutError, got {late!r}"
    assert refused is False, f"put() on a full buffer of {capacity}: expected False after the timeout, got {refused!r}"
    assert size == capacity, f"expected the buffer to hold at most {capacity} items, got {size}"
    if min(waited) < 0.09:
        raise Mistake(f"put(x, 0.1) on a full buffer and get(0.1) on an empty one: expected each to wait its "
                      f"0.1 s timeout first, got {waited[0]:.3f} s and {waited[1]:.3f} s",
                      hint="Wait for the timeout (Condition.wait_for(predicate, timeout)) before giving up.")


@pytest.mark.points(2)
@pytest.mark.hint("Check the capacity in __init__: raise ValueError when it is below 1.")
def test_capacity_must_be_positive(student):
    """BoundedBuffer(0) raises ValueError"""
    with student.session() as s:
        mod = s.module("buffer")
        with pytest.raises(ValueError):
            mod.BoundedBuffer(0)


def threads_seen(what, record, started):
    """The probe's threads must be seen from outside (the grader lists the student's threads
    while it runs): a probe replaced by one that only says what happened starts none."""
    if record.peak_threads < started:
        raise Mistake(f"{what}: expected the test's {started} thread(s) to be seen waiting in the buffer, "
                      f"saw {record.peak_threads}", hint="The tests' helper probes start these threads: leave "
                      "the probes alone, and make put() and get() wait while they cannot proceed.")


@pytest.mark.points(4)
@pytest.mark.hint(WHILE_HINT)
def test_woken_consumers_wait_again(student):
    """several consumers waiting on an empty buffer each get one item, none raises"""
    consumers = rng.randint(3, 4)
    what = f"{consumers} consumer threads waiting in get(), woken by one put()"
    with student.session(timeout=10) as s:
        buf = s.module("buffer").BoundedBuffer(consumers)
        s.helper("probes.start_consumers")(buf, consumers, 5)
        buf.put(0)  # from here, outside: notify_all wakes every consumer, one finds the item
        time.sleep(0.5)  # the grader's own clock: the others either wait again or take from nothing
        for i in range(1, consumers):
            buf.put(i, 1)
        got = s.helper("probes.join_started")(5)  # what the consumers say they got: the message
        left = len(buf)  # the judge: every item went to a consumer, none is left over
        try:
            extra = buf.get(0.1)
        except TimeoutError:
            extra = None
        alive = s.helper("probes.live_threads")()  # one more operation: joined threads leave the list
    record = student.last
    raised = sorted({name for kind, name in got if kind == "raised"})
    if not raised:  # what the probe says can fail a test, never pass one: the threads must be seen
        threads_seen(what, record, consumers)
    if raised or left or extra is not None:
        how = f"some raising {', '.join(raised)}, " if raised else ""
        raise Mistake(f"{what}: expected each consumer to get an item and the buffer empty, got {how}"
                      f"{left} of the {consumers} items never taken", hint=WHILE_HINT)
    items = sorted(value for _, value in got)
    assert items == list(range(consumers)), f"expected the items 0..{consumers - 1}, got {items}"
    assert not alive and not record.threads_left, f"{what}: expected every consumer done, got {record.threads_left} still waiting"


@pytest.mark.points(4)
@pytest.mark.hint(NOTIFY_HINT)
def test_get_wakes_a_waiting_producer(student):
    """a producer waiting in put() on a full buffer is woken when get() makes room"""
    capacity = rng.randint(1, 3)
    what = f"a producer thread waiting in put() on a full buffer of {capacity}"
    with student.session(timeout=15) as s:
        buf = s.module("buffer").BoundedBuffer(capacity)
        filled = [buf.put(i, 1) for i in range(capacity)]
        waiting = s.helper("probes.start_producer")(buf, "late")
        # From here on, outside: every get must return the oldest item, the producer's last.
        got = []
        for _ in range(capacity + 1):
            try:
                got.append(buf.get(3))
            except TimeoutError:
                got.append(TimeoutError)
                break
        s.helper("probes.join_started")(3)
        alive = s.helper("probes.live_threads")()  # one more operation: joined threads leave the list
    record = student.last
    assert filled == [True] * capacity, f"put() into a buffer with room: expected True, got {filled}"
    if not waiting:
        raise Mistake(f"put() on a full buffer of {capacity}: expected it to wait for room, got it returned",
                      hint="put() must wait while the buffer is full: cond.wait() in a while loop.")
    threads_seen(what, record, 1)
    assert got[:1] == [0], f"expected get() to return the oldest item 0, got {got[:1]!r}"
    if got[-1] is TimeoutError or record.threads_left:
        raise Mistake(f"{what}: expected it to put its item once get() made room, got it still waiting "
                      f"(get() found the buffer empty for 3 s: {got!r})", hint=NOTIFY_HINT)
    assert got == [*range(capacity), "late"], f"{what}: expected the items back in order, got {got!r}"
    assert not alive, f"{what}: expected the producer done, got {alive} still running"


@pytest.mark.points(6)
@pytest.mark.hint(THREADS_HINT)
def test_pipeline_with_threads(student):
    """pipeline moves every item through a small buffer with producer and consumer threads, and joins them"""
    # Enough items through a buffer of 1 that the threads live long enough to be seen.
    producers, consumers, items = rng.randint(2, 3), rng.randint(2, 3), rng.randint(1500, 2000)
    with student.session(timeout=8) as s:
        got = s.module("buffer").pipeline(1, producers, consumers, items)
        # One more operation before the session ends and counts what is left: a thread that
        # join() returned for may take a moment more to leave the kernel's list.
        alive = s.helper("probes.live_threads")()
    record = student.last
    what = f"pipeline(1, {producers}, {consumers}, {items})"
    total = producers * items
    if got != list(range(total)):
        missing = sorted(set(range(total)) - set(got or []))[:5]
        raise Mistake(f"{what}: expected the {total} numbers 0..{total - 1}, got {len(got or [])} items"
                      + (f" (missing {missing}...)" if missing else ""),
                      hint=THREADS_HINT + " Join them before returning the list.")
    assert not record.workers, f"{what}: expected threads, got {len(record.workers)} processes"
    assert record.peak_threads >= 2, f"{what}: expected producer and consumer threads running at once, saw {record.peak_threads}"
    if alive or record.threads_left:
        raise Mistake(f"{what}: expected every thread joined, got {max(len(alive), record.threads_left)} "
                      "still running after it returned", hint="join() every thread you started before returning.")
