"""No process at all: threads, claimed as workers (see attack.toml)."""

import os
import threading
import time


def _threads(n: int) -> list[int]:
    """n threads that end at once, then their IDs claimed as workers: the kernel has nothing left
    to show for them."""
    time.sleep(0.3)  # until the grader polls slowly, then all of them between two of its looks
    tids: list[int] = []
    for _ in range(n):
        t = threading.Thread(target=lambda: tids.append(threading.get_native_id()))
        t.start()
        t.join()
    path = os.environ.get("MPGRADE_PID_LOG")
    if path:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, "".join(f"{tid} {os.getpid()} worker\n" for tid in tids).encode())
            os.close(fd)
        except OSError:
            pass
    return tids


def worker_pids(n):
    if n < 0:
        raise ValueError(n)
    return _threads(n)


def exit_codes(codes):
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise ValueError(code)
    _threads(len(codes))
    return list(codes)


def run_with_timeout(seconds, timeout):
    if seconds < 0 or timeout < 0:
        raise ValueError((seconds, timeout))
    _threads(1)
    time.sleep(min(seconds, timeout))
    return 0 if seconds <= timeout else -15
