"""Exercise 04 - locks and semaphores.

Replace every ``raise NotImplementedError`` with your code. Keep the function names and
signatures. Worker functions (the ``target=`` of a Process) must be defined at module level,
and nothing may run at import time: put any experiments under ``if __name__ == "__main__":``.
"""

import multiprocessing  # noqa: F401 - you will need these
import time  # noqa: F401

HOLD_SECONDS = 0.1  # how long a task stays inside the semaphore in peak_concurrency


def locked_counter(processes: int, increments: int) -> int:
    """Let ``processes`` processes each add 1 to one shared counter ``increments`` times.

    The counter is a ``multiprocessing.Value("i", 0)``; every ``+= 1`` happens while holding a
    lock (the Value's own ``get_lock()`` or a ``multiprocessing.Lock``), because ``+=`` on shared
    memory is a read followed by a write and two processes can interleave between them. Start
    all processes, join them all, return the final value, which is always exactly
    ``processes * increments``.

    ``processes < 1`` or ``increments < 0`` raises ``ValueError`` (nothing is started).
    """
    raise NotImplementedError


def peak_concurrency(tasks: int, limit: int, rounds: int = 1,
                     hold: float = HOLD_SECONDS) -> tuple[int, int]:
    """Run ``tasks`` processes that each enter a ``Semaphore(limit)`` ``rounds`` times.

    One ``multiprocessing.Semaphore(limit)`` is shared by all tasks. Each task, ``rounds``
    times: acquires it (``with semaphore:`` so it is released even on error), then under one
    shared ``multiprocessing.Lock`` increments the shared "inside" and "entries" counters
    (``multiprocessing.Value``) and raises the shared "peak" to "inside" if "inside" is now
    larger; sleeps ``hold`` seconds (default ``HOLD_SECONDS``, about 100 ms, so the tasks
    overlap); under the lock decrements "inside"; releases the semaphore. All processes are
    started, then all joined; ``(peak, entries)`` is returned.

    The peak is never above ``limit``; with ``rounds == 1`` and the default ``hold`` it equals
    ``min(tasks, limit)``. ``entries`` is always exactly ``tasks * rounds``. ``tasks == 0``
    returns ``(0, 0)``; ``tasks < 0``, ``limit < 1``, ``rounds < 1`` or ``hold < 0`` raises
    ``ValueError`` (nothing is started).
    """
    raise NotImplementedError


if __name__ == "__main__":
    # Try your functions here; this block does not run when the grader imports the module.
    print(locked_counter(4, 10_000), peak_concurrency(6, 2))
