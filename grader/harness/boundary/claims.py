"""Workers' claims: how a student process says "I am a worker of this call" and is checked."""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

from grader import processes

# The signal that tells a claiming worker it was seen (default action: ignore, so one that
# arrives late does nothing), and how long a worker waits for it (see ``sitecustomize``).
CLAIM_ACK = signal.SIGURG
MAX_CLAIMS = 10_000  # claims looked up per call; the rest are drained and dropped


class Claims:
    """Workers' "I am a worker" lines, on a FIFO, checked against the kernel while they wait.

    Polling from outside misses a worker that lives a millisecond, so each Python process of a
    call says "pid ppid role" on a FIFO as it starts (``sitecustomize``) and waits, a few
    microseconds, for our answer. A line is only a claim: student code can write any line, for
    threads too (their IDs come from the PID counter) or for PIDs it guesses. A claim is
    granted only while the claimed process is alive and the kernel shows it as a process of its
    own (``/proc/PID/status``: its thread group is itself) of the student (its uid in a sandbox,
    the call's session otherwise); the claimant is then sent ``CLAIM_ACK``. So a thread, gone or
    not, is never a worker, and a worker needs evidence no student code can write.
    """

    def __init__(self, path: Path, user: tuple[int, int] | None, session: Callable[[], int],
                 own_tids: set[int]) -> None:
        self.path, self.user, self.session, self.own_tids = path, user, session, own_tids
        self.granted: set[int] = set()
        self.threads: set[int] = set()  # claimed IDs the kernel shows as threads
        self.checked = 0  # claims looked up in /proc since the last ``forget``: at most MAX_CLAIMS
        os.mkfifo(path, 0o600)
        os.chmod(path, 0o622 if user is not None else 0o600)  # others' processes write, only
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO from reading as closed between two workers.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        self.own_tids.add(threading.get_native_id())
        pending = b""
        while True:
            readable, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            *complete, pending = (pending + chunk).split(b"\n")
            pending = pending[-64:]
            for line in complete:
                self._check(line)

    def _check(self, line: bytes) -> None:
        parts = line.split()
        if len(parts) != 3 or parts[2] != b"worker" or not parts[0].isdigit() or len(parts[0]) > 9:
            return
        pid = int(parts[0])
        if pid in self.own_tids or pid in self.granted or pid <= 1 or self.checked >= MAX_CLAIMS:
            return
        self.checked += 1
        if not processes.HAVE_PROC:  # psutil: no thread IDs to mistake for processes there
            if psutil.pid_exists(pid):
                self._grant(pid)
            return
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(row.split(":", 1) for row in f.read().splitlines() if ":" in row)
            tgid, state = int(fields["Tgid"]), fields["State"].split()[0]
            uid = int(fields["Uid"].split()[0])
        except (OSError, ValueError, KeyError, IndexError):
            return  # gone already: no evidence
        if tgid != pid:
            self.threads.add(pid)
            return
        if state in ("Z", "X"):
            return
        if (uid == self.user[0]) if self.user is not None else processes.in_session(pid, self.session()):
            self._grant(pid)

    def _grant(self, pid: int) -> None:
        self.granted.add(pid)
        try:
            os.kill(pid, CLAIM_ACK)
        except OSError:
            pass

    def forget(self) -> None:
        """Drop what was granted so far, and the count of claims looked up: claims made while
        this child waited as a spare, maybe a flood by the previous call's code (same user)."""
        self.granted.clear()
        self.checked = 0

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            for fd in (self.fd, self._keep, self._stop_r, self._stop_w):
                os.close(fd)
