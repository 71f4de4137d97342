"""Exercise 04 - locks and semaphores (MUTANT locks_global_peak: the inside/peak counters are module globals: each child changes its own copy, the parent's peak stays 0)."""

import multiprocessing
import sys
import time

HOLD_SECONDS = 0.1  # how long a task stays inside the semaphore in peak_concurrency


def _increment(counter, increments: int) -> None:
    """Worker: add 1 to the shared counter ``increments`` times, each time under its lock."""
    for _ in range(increments):
        with counter.get_lock():  # `counter.value += 1` is a read then a write: not atomic
            counter.value += 1


def locked_counter(processes: int, increments: int) -> int:
    """Let ``processes`` processes each add 1 to one shared counter ``increments`` times.

    The counter is a ``multiprocessing.Value("i", 0)``; every ``+= 1`` happens while holding a
    lock (the Value's own ``get_lock()`` or a ``multiprocessing.Lock``), because ``+=`` on shared
    memory is a read followed by a write and two processes can interleave between them. Start
    all processes, join them all, return the final value, which is always exactly
    ``processes * increments``.

    ``processes < 1`` or ``increments < 0`` raises ``ValueError`` (nothing is started).
    """
    if processes < 1 or increments < 0:
        raise ValueError(
            f"need processes >= 1 and increments >= 0, got {processes} and {increments}"
        )
    counter = multiprocessing.Value("i", 0)
    procs = [
        multiprocessing.Process(target=_increment, args=(counter, increments))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return counter.value


_inside = 0
_peak = 0


def _task(semaphore, lock, inside, peak, hold: float) -> None:
    """Worker: hold the semaphore for ``hold`` seconds, recording how many tasks are inside."""
    global _inside, _peak
    with semaphore:
        with lock:
            _inside += 1
            _peak = max(_peak, _inside)
        time.sleep(hold)
        with lock:
            _inside -= 1


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
    if tasks < 0 or limit < 1:
        raise ValueError(f"need tasks >= 0 and limit >= 1, got {tasks} and {limit}")
    semaphore = multiprocessing.Semaphore(limit)
    lock = multiprocessing.Lock()
    inside = multiprocessing.Value("i", 0, lock=False)  # guarded by `lock`
    peak = multiprocessing.Value("i", 0, lock=False)
    procs = [
        multiprocessing.Process(target=_task, args=(semaphore, lock, inside, peak, HOLD_SECONDS))
        for _ in range(tasks)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return _peak


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    t = time.perf_counter()
    print(locked_counter(4, 20_000), time.perf_counter() - t)
    t = time.perf_counter()
    print(peak_concurrency(8, 3), peak_concurrency(2, 5), peak_concurrency(0, 1), time.perf_counter() - t)
