"""Exercise 02 - pipes: ping-pong and a ring (reference solution)."""

import multiprocessing
import sys


def _ponger(conn) -> None:
    """Child of ping_pong: answer every "ping i" with "pong i" until None arrives."""
    while True:
        message = conn.recv()
        if message is None:
            break
        _, number = message.split()
        conn.send(f"pong {number}")
    conn.close()


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
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.Process(target=_ponger, args=(child_end,))
    child.start()
    child_end.close()  # the parent never uses the child's end
    transcript = []
    for i in range(rounds):
        ping = f"ping {i}"
        parent_end.send(ping)
        transcript.append(ping)
        transcript.append(parent_end.recv())
    parent_end.send(None)
    child.join()
    parent_end.close()
    return transcript


def _ring_member(index: int, pipes) -> None:
    """Child ``index`` of ring: forward every token (+1) until its left pipe reports EOF."""
    inbox = pipes[index][0]
    outbox = pipes[index + 1][1]
    # recv() raises EOFError only once every copy of the sending end is closed, in every
    # process; this child holds copies of all ends (inherited under fork, passed under spawn),
    # so it closes every end it does not use, or its right neighbour would wait forever.
    for i, (recv_end, send_end) in enumerate(pipes):
        if i != index:
            recv_end.close()
        if i != index + 1:
            send_end.close()
    while True:
        try:
            token = inbox.recv()
        except EOFError:  # the left neighbour closed its end: no more tokens
            break
        outbox.send(token + 1)
    outbox.close()  # tells the right neighbour that no more tokens will come


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
    if n < 1:
        raise ValueError(f"a ring needs at least one process, got n={n}")
    pipes = []
    for _ in range(n + 1):
        recv_end, send_end = multiprocessing.Pipe(duplex=False)
        pipes.append((recv_end, send_end))
    members = [multiprocessing.Process(target=_ring_member, args=(i, pipes)) for i in range(n)]
    for m in members:
        m.start()
    feed, results = pipes[0][1], pipes[n][0]
    for i, (recv_end, send_end) in enumerate(pipes):  # the parent keeps only feed and results
        if i != n:
            recv_end.close()
        if i != 0:
            send_end.close()
    for token in tokens:
        feed.send(token)
    feed.close()  # P0 sees EOFError after the last token, then P1, ..., then the parent
    received = []
    while True:
        try:
            received.append(results.recv())
        except EOFError:
            break
    for m in members:
        m.join()
    results.close()
    return received


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    print(ping_pong(3))
    print(ring(5, [10, 20, 30]), ring(1, [-3]), ring(3, []))
