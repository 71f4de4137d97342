"""Heidi: the counter without a lock (a race), the semaphore without a peak."""

import multiprocessing
import time

HOLD_SECONDS = 0.1


def racer(value, count):
    for _ in range(count):
        value.value += 1  # no lock: two processes can read the same old value


def locked_counter(processes: int, increments: int) -> int:
    if processes < 1 or increments < 0:
        raise ValueError("bad arguments")
    value = multiprocessing.Value("i", 0, lock=False)
    ps = [multiprocessing.Process(target=racer, args=(value, increments)) for _ in range(processes)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    return value.value


def peak_concurrency(tasks: int, limit: int, rounds: int = 1,
                     hold: float = HOLD_SECONDS) -> tuple[int, int]:
    if tasks < 0 or limit < 1 or rounds < 1 or hold < 0:
        raise ValueError("bad arguments")
    time.sleep(hold)
    return min(tasks, limit) + 1, tasks * rounds
