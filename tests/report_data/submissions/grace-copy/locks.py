"""Exercise 04 - locks and semaphores (my solution, Grace)."""

import multiprocessing
import time

HOLD_SECONDS = 0.1


def increment_loop(counter_val, times):
    for _i in range(times):
        with counter_val.get_lock():
            counter_val.value = counter_val.value + 1


def locked_counter(processes: int, increments: int) -> int:
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if increments < 0:
        raise ValueError("increments must not be negative")
    counter_val = multiprocessing.Value("i", 0)
    proc_list = []
    for idx in range(processes):
        proc = multiprocessing.Process(target=increment_loop, args=(counter_val, how_many(increments)))
        proc_list.append(proc)
        proc.start()
    for proc in proc_list:
        proc.join()
    return counter_val.value


def how_many(increments):
    return int(increments)


def enter_sema(sema, mutex, current, best, enter_semas, rounds, hold):
    for attempt in range(rounds):
        sema.acquire()
        try:
            mutex.acquire()
            current.value = current.value + 1
            enter_semas.value = enter_semas.value + 1
            best.value = max(best.value, current.value)
            mutex.release()
            time.sleep(hold)
            mutex.acquire()
            current.value = current.value - 1
            mutex.release()
        finally:
            sema.release()


def peak_concurrency(tasks: int, limit: int, rounds: int = 1,
                     hold: float = HOLD_SECONDS) -> tuple[int, int]:
    if tasks < 0 or limit < 1 or rounds < 1 or hold < 0:
        raise ValueError("bad arguments")
    if tasks == 0:
        return (0, 0)
    sema = multiprocessing.Semaphore(limit)
    mutex = multiprocessing.Lock()
    current = multiprocessing.Value("i", 0, lock=False)
    best = multiprocessing.Value("i", 0, lock=False)
    enter_semas = multiprocessing.Value("i", 0, lock=False)
    proc_list = []
    for idx in range(tasks):
        proc = multiprocessing.Process(
            target=enter_sema, args=(sema, mutex, current, best, enter_semas, rounds, hold))
        proc_list.append(proc)
        proc.start()
    for proc in proc_list:
        proc.join()
    return (best.value, enter_semas.value)
