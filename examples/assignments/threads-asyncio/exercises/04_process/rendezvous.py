"""Exercise 04 - a Process subclass and a Barrier.

Replace every ``raise NotImplementedError`` with your code. Keep the names and signatures.
Worker functions must be defined at module level, and nothing may run at import time: put
experiments under ``if __name__ == "__main__":``.
"""

import multiprocessing
from collections.abc import Callable
from typing import Any


class Task(multiprocessing.Process):
    """A process that runs ``func(*args)`` and sends its result back through a Pipe.

    ``Task(func, 3).start()`` runs ``func(3)`` in a new process (its ``run()``);
    ``result()`` waits for the value there. A ``func`` that raises ends the process with a
    non-zero ``exitcode`` (let the exception leave ``run()``) and ``result()`` then raises
    ``RuntimeError``.
    """

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        """Call ``super().__init__()`` first; keep ``func`` and ``args``; make the Pipe here."""
        raise NotImplementedError

    def run(self) -> None:
        """Runs in the new process: send ``func(*args)`` through the Pipe."""
        raise NotImplementedError

    def result(self, timeout: float = 5.0) -> Any:
        """The value ``func`` returned, waiting at most ``timeout`` seconds for it."""
        raise NotImplementedError


def rendezvous(n: int, arrive: Callable[[int], Any]) -> list[int]:
    """Start ``n`` processes that meet at one ``multiprocessing.Barrier(n)``.

    Process ``i`` calls ``arrive(i)`` (which may take a while), adds 1 to a shared counter
    (``multiprocessing.Value``, under its lock), waits at the barrier, then stores the counter's
    value in ``seen[i]`` (a shared ``multiprocessing.Array("i", n)``). Start all, join all,
    return ``list(seen)``: every process passes the barrier only once all have arrived, so each
    saw ``n``. ``n < 1`` raises ``ValueError``.
    """
    raise NotImplementedError
