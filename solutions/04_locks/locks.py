"""Exercise 04 - locks and semaphores (reference solution)."""

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


def _task(semaphore, lock, inside, peak, entries, rounds: int, hold: float) -> None:
    """Worker: enter the semaphore ``rounds`` times, counting who is inside under the lock."""
    for _ in range(rounds):
        with semaphore:
            with lock:  # three read-modify-writes that must not interleave with another task's
                inside.value += 1
                entries.value += 1
                if inside.value > peak.value:
                    peak.value = inside.value
            time.sleep(hold)
            with lock:
                inside.value -= 1


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
    if tasks < 0 or limit < 1 or rounds < 1 or hold < 0:
        raise ValueError(f"need tasks >= 0, limit >= 1, rounds >= 1 and hold >= 0, got "
                         f"{tasks}, {limit}, {rounds} and {hold}")
    semaphore = multiprocessing.Semaphore(limit)
    lock = multiprocessing.Lock()
    inside = multiprocessing.Value("i", 0, lock=False)  # all three guarded by `lock`
    peak = multiprocessing.Value("i", 0, lock=False)
    entries = multiprocessing.Value("i", 0, lock=False)
    procs = [
        multiprocessing.Process(target=_task,
                                args=(semaphore, lock, inside, peak, entries, rounds, hold))
        for _ in range(tasks)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return peak.value, entries.value


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    t = time.perf_counter()
    print(locked_counter(4, 20_000), time.perf_counter() - t)
    t = time.perf_counter()
    print(peak_concurrency(8, 3), peak_concurrency(2, 5), peak_concurrency(0, 1), time.perf_counter() - t)
    t = time.perf_counter()
    print(peak_concurrency(8, 4, rounds=10_000, hold=0), time.perf_counter() - t)
