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


def peak_concurrency(tasks: int, limit: int) -> int:
    """Run ``tasks`` processes that each hold a ``Semaphore(limit)`` briefly; return the peak.

    One ``multiprocessing.Semaphore(limit)`` is shared by all tasks. Each task acquires it,
    increments a shared "inside" counter (a ``multiprocessing.Value``), updates a shared "peak"
    value if "inside" is now larger, sleeps about 100 ms (``HOLD_SECONDS``), decrements "inside"
    and releases the semaphore (use ``with semaphore:`` so it is released even on error). Both
    counters are updated under one ``multiprocessing.Lock``. All processes are started, then
    all joined; the peak is returned.

    The peak is never above ``limit`` and, with all tasks started together, equals
    ``min(tasks, limit)``. ``tasks == 0`` returns ``0``; ``tasks < 0`` or ``limit < 1`` raises
    ``ValueError`` (nothing is started).
    """
    raise NotImplementedError


if __name__ == "__main__":
    # Try your functions here; this block does not run when the grader imports the module.
    print(locked_counter(4, 10_000), peak_concurrency(6, 2))
