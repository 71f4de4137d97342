import multiprocessing
import os
import sys
import time


def worker_pids(n):
    os._exit(0)


def exit_codes(codes):
    sys.exit(0)


def _sleep(seconds):
    time.sleep(seconds)


def run_with_timeout(seconds, timeout):
    if seconds < 0 or timeout < 0:
        raise ValueError("seconds and timeout must be >= 0")
    p = multiprocessing.Process(target=_sleep, args=(seconds,))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.terminate()
        p.join()
    return p.exitcode
