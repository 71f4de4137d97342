"""Exercise 02 - pipes: ping-pong and a ring (MUTANT pingpong_no_stop_message: the parent never sends None: the child waits in recv() forever and join() hangs)."""

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
    child.join()
    parent_end.close()
    return transcript


def _ring_member(inbox, outbox) -> None:
    """Child of ring: receive the token, add 1, pass it on."""
    token = inbox.recv()
    outbox.send(token + 1)
    inbox.close()
    outbox.close()


def ring(n: int, token: int) -> int:
    """Pass ``token`` once around a ring of ``n`` child processes; each one adds 1.

    The parent is NOT one of the ``n`` processes: it starts ``n`` children P0 .. P(n-1) and
    closes the ring itself. It creates ``n + 1`` one-way pipes (``Pipe(duplex=False)``, which
    returns ``(receiving_end, sending_end)``): pipe 0 goes parent -> P0, pipe ``i`` goes
    P(i-1) -> Pi, pipe ``n`` goes P(n-1) -> parent. The parent sends ``token`` into pipe 0;
    every child receives one integer from its left pipe, adds 1 and sends it to its right pipe,
    then ends; the parent receives the final value from pipe ``n``, joins every child and returns
    it. So ``ring(n, token) == token + n`` and exactly ``n`` processes are started.

    ``n < 1`` raises ``ValueError`` (nothing is started).
    """
    if n < 1:
        raise ValueError(f"a ring needs at least one process, got n={n}")
    pipes = [multiprocessing.Pipe(duplex=False) for _ in range(n + 1)]  # (recv_end, send_end)
    members = [
        multiprocessing.Process(target=_ring_member, args=(pipes[i][0], pipes[i + 1][1]))
        for i in range(n)
    ]
    for m in members:
        m.start()
    pipes[0][1].send(token)
    result = pipes[n][0].recv()
    for m in members:
        m.join()
    for recv_end, send_end in pipes:
        recv_end.close()
        send_end.close()
    return result


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    print(ping_pong(3))
    print(ring(5, 10), ring(1, -3))
