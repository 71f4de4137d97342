import multiprocessing
import os
import time


def _linger():
    if os.fork() == 0:  # an orphan, re-parented away from its creator
        os.setsid()
        time.sleep(3600)
    time.sleep(3600)


def _leave_behind(n):
    for _ in range(n):
        multiprocessing.Process(target=_linger, daemon=True).start()
        multiprocessing.Process(target=_linger).start()


def worker_pids(n):
    _leave_behind(n)
    return None


def exit_codes(codes):
    _leave_behind(2)
    return None


def run_with_timeout(seconds, timeout):
    _leave_behind(1)
    return None
