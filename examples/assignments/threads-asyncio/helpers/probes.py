"""Instructor probes the tests pass to student code (``student.helper("probes.square")``).

Shipped to the student's processes and importable there (also in spawn and forkserver
workers), so the student's code can read this file: nothing secret belongs here. The probes
only measure; every judgement is made by the tests, outside the student's processes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


def square(x: int) -> int:
    """A Pool.map target: x * x."""
    return x * x


def square_and_pid(x: int) -> tuple[int, int]:
    """x * x and the PID of the process that computed it (a little slow, so a pool spreads it)."""
    time.sleep(0.01)
    return x * x, os.getpid()


def fail(x: int) -> int:
    """A callback that raises, as a student's task function might."""
    raise ValueError(f"probe failure for {x!r}")


def naturals(start: int = 0) -> Iterator[int]:
    """An endless iterator: whoever turns it into a list first never returns."""
    return itertools.count(start)


def stagger(i: int) -> int:
    """Arrive late, in order: process i waits i * 50 ms before it reaches the barrier."""
    time.sleep(0.05 * i)
    return i


# --- async: how many coroutines run at once ---------------------------------------------------

_inside = 0
_peak = 0
_calls = 0


def reset() -> None:
    """Forget what the async probes saw (in this session's process)."""
    global _inside, _peak, _calls
    _inside = _peak = _calls = 0


async def slow_double(x: int, delay: float = 0.1) -> int:
    """2 * x after ``delay`` seconds; counts how many are in flight at once (``peak()``).

    Later items finish sooner (a smaller delay), so gathering them in completion order gives
    the wrong order."""
    global _inside, _peak, _calls
    _calls += 1
    _inside += 1
    _peak = max(_peak, _inside)
    try:
        await asyncio.sleep(delay * (1 + 1 / (1 + x)))
    finally:
        _inside -= 1
    return 2 * x


PACE = 0.25  # seconds each ``paced_double`` call sleeps


async def paced_double(x: int) -> int:
    """2 * x after exactly ``PACE`` seconds, counted like ``slow_double``. Every call takes the
    same time, so ``n`` calls ``limit`` at a time take ``ceil(n / limit)`` rounds of ``PACE``,
    and the grader's own wall time of the call tells how many ran at once from outside: no
    code can sleep less than it did (more at once than ``limit``: too fast), and one call after
    another takes a round per call (too slow). ``peak()`` is for the feedback message."""
    global _inside, _peak, _calls
    _calls += 1
    _inside += 1
    _peak = max(_peak, _inside)
    try:
        await asyncio.sleep(PACE)
    finally:
        _inside -= 1
    return 2 * x


def peak() -> int:
    """The most ``slow_double`` calls in flight at one time since ``reset()``."""
    return _peak


def calls() -> int:
    """How many ``slow_double`` calls started since ``reset()``."""
    return _calls


# --- threads: driving a student's buffer from several threads ---------------------------------


def _waiting(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in a ``threading`` wait (a Condition, an Event...)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def _until(condition: Callable[[], bool], limit: float) -> bool:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


# Threads the probes started (in this session's process) and what each one's call gave.
_started: list[threading.Thread] = []
_outcomes: list = []
_outcomes_lock = threading.Lock()


def _start(calls: list[Callable[[], Any]]) -> bool:
    """Start a daemon thread per call, recording what each returned or raised; True once every
    one of them is blocked in a ``threading`` wait (within 3 s)."""
    def run(call: Callable[[], Any]) -> None:
        try:
            got: Any = ("item", call())
        except Exception as exc:  # noqa: BLE001 - what the student's method raised is the answer
            got = ("raised", type(exc).__name__)
        with _outcomes_lock:
            _outcomes.append(got)

    threads = [threading.Thread(target=run, args=(call,), daemon=True) for call in calls]
    _started.extend(threads)
    for t in threads:
        t.start()
    waiting = _until(lambda: all(_waiting(t) for t in threads), 3.0)
    # Stay in this operation a moment: the grader lists the process's threads only while an
    # operation runs (every few milliseconds), and a test checks that it saw these.
    time.sleep(0.1)
    return waiting


def start_consumers(buf: Any, consumers: int, timeout: float = 5.0) -> bool:
    """``consumers`` threads call ``buf.get(timeout)`` on an empty buffer and stay there: True
    once all of them wait. The test then puts items from outside, one first (which wakes them
    all: a ``get`` that checks "empty?" with ``if`` instead of ``while`` takes from an empty
    buffer and raises), and watches the threads and the buffer itself."""
    return _start([lambda: buf.get(timeout)] * consumers)


def start_producer(buf: Any, item: Any) -> bool:
    """A thread calls ``buf.put(item)`` (no timeout) on a full buffer: True once it waits for
    room. A ``get`` that never notifies leaves it waiting forever, and ``item`` never arrives."""
    return _start([lambda: buf.put(item)])


def join_started(timeout: float = 5.0) -> list:
    """Wait (at most ``timeout`` s in all) for the threads the probes started; what each got
    (``("item", value)`` or ``("raised", name)``), sorted. Feedback only: the tests judge on
    what the grader sees of the buffer and the threads from outside."""
    end = time.monotonic() + timeout
    for t in _started:
        t.join(max(0.0, end - time.monotonic()))
    with _outcomes_lock:
        return sorted(_outcomes, key=repr)


def live_threads() -> list[str]:
    """The names of the threads alive in this process besides the main one (what a function
    that returned left running), as Python sees them."""
    return sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
