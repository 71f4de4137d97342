"""Exercise 02 - pipes: ping-pong and a ring.

Replace every ``raise NotImplementedError`` with your code. Keep the function names and
signatures. Worker functions (the ``target=`` of a Process) must be defined at module level,
and nothing may run at import time: put any experiments under ``if __name__ == "__main__":``.
"""

import multiprocessing  # noqa: F401 - you will need it


def ping_pong(rounds: int) -> list[str]:
    """Play ``rounds`` rounds of ping-pong with one child process over one duplex ``Pipe``.

    The parent creates ``parent_end, child_end = multiprocessing.Pipe()`` and starts one child
    that owns ``child_end``. In round ``i`` (0-based) the parent sends ``"ping i"``, the child
    receives it and sends back ``"pong i"``, the parent receives that reply. The transcript lists
    every message in the order it was sent: ``["ping 0", "pong 0", "ping 1", "pong 1", ...]``
    (the pongs are the strings actually received from the child).

    Afterwards the parent sends ``None``; the child stops when it receives ``None``; the parent
    joins it and returns the transcript. ``rounds == 0`` still starts and stops the child and
    returns ``[]``. ``rounds < 0`` raises ``ValueError`` (nothing is started).
    """
    raise NotImplementedError


def ring(n: int, tokens: list[int]) -> list[int]:
    """Stream ``tokens`` around a ring of ``n`` child processes; each one adds 1 to each token.

    The parent is NOT one of the ``n`` processes: it starts ``n`` children P0 .. P(n-1) and
    closes the ring itself. It creates ``n + 1`` one-way pipes (``Pipe(duplex=False)``, which
    returns ``(receiving_end, sending_end)``): pipe 0 goes parent -> P0, pipe ``i`` goes
    P(i-1) -> Pi, pipe ``n`` goes P(n-1) -> parent. After starting the children the parent
    sends every token into pipe 0, in order, then closes its sending end of pipe 0. Every
    child receives integers from its left pipe until ``recv()`` raises ``EOFError``, sends each
    one plus 1 into its right pipe, then closes its right pipe and ends. The parent receives
    from pipe ``n`` until ``EOFError``, joins every child and returns what it received. So
    ``ring(n, tokens) == [t + n for t in tokens]`` and exactly ``n`` processes are started.

    There is no stop message: the end of the stream is the closing of the pipes. Because a
    reader sees ``EOFError`` only when *every* copy of the sending end is closed, each process
    (every child, and the parent after starting them) closes every pipe end it does not use.
    ``tokens`` has at most 1000 integers, so they fit in the pipes' buffers. ``n < 1`` raises
    ``ValueError`` (nothing is started).
    """
    raise NotImplementedError


if __name__ == "__main__":
    # Try your functions here; this block does not run when the grader imports the module.
    print(ping_pong(3))
