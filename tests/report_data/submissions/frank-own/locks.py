"""Exercise 04 - locks and semaphores (Frank's own solution)."""

import multiprocessing
import time

HOLD_SECONDS = 0.1


def add_many(total, times):
    for step in range(times):
        with total.get_lock():
            total.value = total.value + 1


def locked_counter(processes: int, increments: int) -> int:
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if increments < 0:
        raise ValueError("increments must not be negative")
    total = multiprocessing.Value("i", 0)
    workers = []
    for number in range(processes):
        worker = multiprocessing.Process(target=add_many, args=(total, times_for(increments)))
        workers.append(worker)
        worker.start()
    for worker in workers:
        worker.join()
    return total.value


def times_for(increments):
    return int(increments)


def visit(gate, guard, now_inside, highest, visits, rounds, hold):
    for attempt in range(rounds):
        gate.acquire()
        try:
            guard.acquire()
            now_inside.value = now_inside.value + 1
            visits.value = visits.value + 1
            highest.value = max(highest.value, now_inside.value)
            guard.release()
            time.sleep(hold)
            guard.acquire()
            now_inside.value = now_inside.value - 1
            guard.release()
        finally:
            gate.release()


def peak_concurrency(tasks: int, limit: int, rounds: int = 1,
                     hold: float = HOLD_SECONDS) -> tuple[int, int]:
    if tasks < 0 or limit < 1 or rounds < 1 or hold < 0:
        raise ValueError("bad arguments")
    if tasks == 0:
        return (0, 0)
    gate = multiprocessing.Semaphore(limit)
    guard = multiprocessing.Lock()
    now_inside = multiprocessing.Value("i", 0, lock=False)
    highest = multiprocessing.Value("i", 0, lock=False)
    visits = multiprocessing.Value("i", 0, lock=False)
    workers = []
    for number in range(tasks):
        worker = multiprocessing.Process(
            target=visit, args=(gate, guard, now_inside, highest, visits, rounds, hold))
        workers.append(worker)
        worker.start()
    for worker in workers:
        worker.join()
    return (highest.value, visits.value)
