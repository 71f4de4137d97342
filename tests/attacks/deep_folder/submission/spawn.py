"""Exercise 01: the reference, plus a folder 3000 levels deep left in /tmp (see attack.toml)."""

import multiprocessing
import os
import sys
import time


def _report_pid(index: int, results: multiprocessing.Queue) -> None:
    """Worker: tell the parent which process ran worker number ``index``."""
    results.put((index, os.getpid()))


def _exit_with(code: int) -> None:
    """Worker: end the process with exit status ``code``."""
    sys.exit(code)


def _sleep(seconds: float) -> None:
    """Worker: sleep, then end normally."""
    time.sleep(seconds)


def worker_pids(n: int) -> list[int]:
    """Start ``n`` worker processes and return their PIDs, in worker order.

    Worker ``i`` (0 <= i < n) is a ``multiprocessing.Process`` that sends ``(i, os.getpid())``
    back to the parent (through a ``multiprocessing.Queue``). The parent starts all workers,
    collects one message per worker, joins every worker and returns the PIDs ordered by worker
    number: element ``i`` is the PID of worker ``i``.

    ``n == 0`` returns ``[]`` without starting anything; ``n < 0`` raises ``ValueError``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        _deep()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_report_pid, args=(i, results)) for i in range(n)]
    for w in workers:
        w.start()
    # Drain the queue before joining: a worker cannot exit while its message is unflushed.
    pids = dict(results.get() for _ in range(n))
    for w in workers:
        w.join()
    return [pids[i] for i in range(n)]


def exit_codes(codes: list[int]) -> list[int]:
    """Start one process per code; each ends with ``sys.exit(code)``. Return the exit codes.

    The result is the list of ``Process.exitcode`` values, in the order of ``codes``, read after
    every process has been joined (so it equals ``codes``). Every code must be an ``int`` in
    ``0..255`` (an exit status is one byte), otherwise ``ValueError`` is raised before any
    process is started. ``[]`` returns ``[]``.
    """
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise ValueError(f"exit codes must be ints in 0..255, got {code!r}")
    procs = [multiprocessing.Process(target=_exit_with, args=(code,)) for code in codes]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]


def run_with_timeout(seconds: float, timeout: float) -> int:
    """Run a child that sleeps ``seconds``; give it at most ``timeout`` seconds.

    Start one ``multiprocessing.Process`` that sleeps ``seconds`` and then ends normally. Wait
    for it at most ``timeout`` seconds (``join(timeout)``). If it is still alive then, stop it
    with ``terminate()`` and join it. Return its exit code: ``0`` when it finished on its own,
    ``-15`` (``-signal.SIGTERM``) when it was terminated. The call returns after about
    ``min(seconds, timeout)`` seconds, never ``seconds`` when ``timeout`` is shorter.

    ``seconds < 0`` or ``timeout < 0`` raises ``ValueError``.
    """
    if seconds < 0 or timeout < 0:
        raise ValueError(f"seconds and timeout must be >= 0, got {seconds} and {timeout}")
    p = multiprocessing.Process(target=_sleep, args=(seconds,))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.terminate()
        p.join()
    return p.exitcode


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    print(worker_pids(4))
    print(exit_codes([0, 1, 2, 255]))
    print(run_with_timeout(0.1, 5), run_with_timeout(5, 0.3))


def _deep(depth=3000):
    """A directory nested deeper than the supervisor's recursion limit, at the top of /tmp."""
    top = os.open("/tmp", os.O_RDONLY)
    os.mkdir("deep", dir_fd=top)
    fd = os.open("deep", os.O_RDONLY, dir_fd=top)
    os.close(top)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
