"""Exercise 01 - spawning processes.

Replace every ``raise NotImplementedError`` with your code. Keep the function names and
signatures. Worker functions (the ``target=`` of a Process) must be defined at module level,
and nothing may run at import time: put any experiments under ``if __name__ == "__main__":``.
"""

import multiprocessing  # noqa: F401 - you will need these
import os  # noqa: F401
import sys  # noqa: F401
import time  # noqa: F401


def worker_pids(n: int) -> list[int]:
    """Start ``n`` worker processes and return their PIDs, in worker order.

    Worker ``i`` (0 <= i < n) is a ``multiprocessing.Process`` that sends ``(i, os.getpid())``
    back to the parent (through a ``multiprocessing.Queue``). The parent starts all workers,
    collects one message per worker, joins every worker and returns the PIDs ordered by worker
    number: element ``i`` is the PID of worker ``i``.

    ``n == 0`` returns ``[]`` without starting anything; ``n < 0`` raises ``ValueError``.
    """
    raise NotImplementedError


def exit_codes(codes: list[int]) -> list[int]:
    """Start one process per code; each ends with ``sys.exit(code)``. Return the exit codes.

    The result is the list of ``Process.exitcode`` values, in the order of ``codes``, read after
    every process has been joined (so it equals ``codes``). Every code must be an ``int`` in
    ``0..255`` (an exit status is one byte), otherwise ``ValueError`` is raised before any
    process is started. ``[]`` returns ``[]``.
    """
    raise NotImplementedError


def run_with_timeout(seconds: float, timeout: float) -> int:
    """Run a child that sleeps ``seconds``; give it at most ``timeout`` seconds.

    Start one ``multiprocessing.Process`` that sleeps ``seconds`` and then ends normally. Wait
    for it at most ``timeout`` seconds (``join(timeout)``). If it is still alive then, stop it
    with ``terminate()`` and join it. Return its exit code: ``0`` when it finished on its own,
    ``-15`` (``-signal.SIGTERM``) when it was terminated. The call returns after about
    ``min(seconds, timeout)`` seconds, never ``seconds`` when ``timeout`` is shorter.

    ``seconds < 0`` or ``timeout < 0`` raises ``ValueError``.
    """
    raise NotImplementedError


if __name__ == "__main__":
    # Try your functions here; this block does not run when the grader imports the module.
    print(worker_pids(3))
