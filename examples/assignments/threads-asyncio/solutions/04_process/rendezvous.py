"""Exercise 04 - a Process subclass and a Barrier (reference solution)."""

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
        super().__init__()
        self.func, self.args = func, args
        self._receiver, self._sender = multiprocessing.Pipe(duplex=False)

    def run(self) -> None:
        self._receiver.close()
        self._sender.send(self.func(*self.args))
        self._sender.close()

    def result(self, timeout: float = 5.0) -> Any:
        """The value ``func`` returned, waiting at most ``timeout`` seconds for it."""
        if self._receiver.poll(timeout):
            try:
                return self._receiver.recv()
            except EOFError:
                pass
        raise RuntimeError(f"the task ended without a result (exit code {self.exitcode})")


def _arrive(i: int, arrive: Callable[[int], Any], arrived: Any, barrier: Any, seen: Any) -> None:
    arrive(i)
    with arrived.get_lock():
        arrived.value += 1
    barrier.wait()
    seen[i] = arrived.value


def rendezvous(n: int, arrive: Callable[[int], Any]) -> list[int]:
    """Start ``n`` processes that meet at one ``multiprocessing.Barrier(n)``.

    Process ``i`` calls ``arrive(i)`` (which may take a while), adds 1 to a shared counter
    (``multiprocessing.Value``, under its lock), waits at the barrier, then stores the counter's
    value in ``seen[i]`` (a shared ``multiprocessing.Array("i", n)``). Start all, join all,
    return ``list(seen)``: every process passes the barrier only once all have arrived, so each
    saw ``n``. ``n < 1`` raises ``ValueError``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    arrived = multiprocessing.Value("i", 0)
    seen = multiprocessing.Array("i", n)
    barrier = multiprocessing.Barrier(n)
    procs = [multiprocessing.Process(target=_arrive, args=(i, arrive, arrived, barrier, seen)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return list(seen)
