"""Judy's locks: a counter under an explicit Lock, a semaphore meter in a class."""

import multiprocessing as mp
import time

HOLD_SECONDS = 0.1


def _bump(lock, shared, n):
    i = 0
    while i < n:
        lock.acquire()
        shared.value += 1
        lock.release()
        i += 1


def locked_counter(processes: int, increments: int) -> int:
    if not (processes >= 1 and increments >= 0):
        raise ValueError(f"locked_counter({processes}, {increments})")
    lock = mp.Lock()
    shared = mp.Value("i", 0, lock=False)
    started = [mp.Process(target=_bump, args=(lock, shared, increments)) for _ in range(processes)]
    list(map(mp.Process.start, started))
    list(map(mp.Process.join, started))
    return shared.value


class Meter:
    """The three shared numbers of peak_concurrency and the lock that guards them."""

    def __init__(self):
        self.lock = mp.Lock()
        self.inside = mp.Value("i", 0, lock=False)
        self.peak = mp.Value("i", 0, lock=False)
        self.entries = mp.Value("i", 0, lock=False)


def _enter(sem, meter, rounds, hold):
    for _ in range(rounds):
        with sem:
            with meter.lock:
                meter.inside.value += 1
                meter.entries.value += 1
                if meter.inside.value > meter.peak.value:
                    meter.peak.value = meter.inside.value
            time.sleep(hold)
            with meter.lock:
                meter.inside.value -= 1


def peak_concurrency(tasks: int, limit: int, rounds: int = 1,
                     hold: float = HOLD_SECONDS) -> tuple[int, int]:
    problems = [tasks < 0, limit < 1, rounds < 1, hold < 0]
    if any(problems):
        raise ValueError(f"peak_concurrency({tasks}, {limit}, {rounds}, {hold})")
    sem = mp.Semaphore(limit)
    meter = Meter()
    started = [mp.Process(target=_enter, args=(sem, meter, rounds, hold)) for _ in range(tasks)]
    list(map(mp.Process.start, started))
    list(map(mp.Process.join, started))
    return meter.peak.value, meter.entries.value
