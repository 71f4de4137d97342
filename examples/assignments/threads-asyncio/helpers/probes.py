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


def racing_consumers(buf: Any, consumers: int) -> list:
    """``consumers`` threads wait in ``buf.get()`` on an empty buffer; one item is put, which
    wakes them all; a moment later the other items. What each consumer got (or raised), sorted.

    A ``get`` that checks "empty?" once (``if``) instead of in a loop (``while``) is woken with
    nothing to take and raises; a correct one waits again for its own item."""
    results: list = []
    lock = threading.Lock()

    def consume() -> None:
        try:
            got: Any = ("item", buf.get(5))
        except Exception as exc:  # noqa: BLE001 - what the student's get raised is the answer
            got = ("raised", type(exc).__name__)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=consume, daemon=True) for _ in range(consumers)]
    for t in threads:
        t.start()
    _until(lambda: all(_waiting(t) for t in threads), 3.0)
    buf.put(0)
    # Woken consumers that find nothing either wait again (correct) or raise (at once).
    _until(lambda: len(results) > 1, 1.0)
    for i in range(1, consumers):
        buf.put(i)
    for t in threads:
        t.join(6)
    return sorted(results, key=repr)


def blocked_producer(buf: Any) -> dict:
    """Fill ``buf``, let a producer thread wait in ``put``, then ``get`` one item: is the
    producer woken? (A ``get`` that never notifies leaves it waiting forever.)"""
    for i in range(buf.capacity):
        buf.put(i, 1)
    done: list = []
    producer = threading.Thread(target=lambda: done.append(buf.put("late")), daemon=True)
    producer.start()
    waiting = _until(lambda: _waiting(producer), 3.0)
    first = buf.get(1)
    producer.join(3)
    return {"waiting": waiting, "first": first, "woken": not producer.is_alive(), "put": done}


def live_threads() -> list[str]:
    """The names of the threads alive in this process besides the main one (what a function
    that returned left running), as Python sees them."""
    return sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
