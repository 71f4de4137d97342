"""A started ``mpgrade_child``: its own session, files, pipes and readers."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grader import processes
from grader._boot import mpgrade_plain as plain
from grader.harness.boundary.claims import Claims
from grader.harness.boundary.output import frame_overhead
from grader.harness.boundary.residue import remove_entries, remove_tree
from grader.protocol import wire

BOOT_DIR = Path(__file__).resolve().parents[2] / "_boot"
CHILD_SCRIPT = BOOT_DIR / "mpgrade_child.py"
KEEP_OUTPUT = 16_384  # bytes of each stream's text kept for feedback
MAX_KEPT = 16 * KEEP_OUTPUT  # ... and of the raw, framed bytes holding it (a frame per byte, at worst)
MAX_RESULT = 32 * 1024 * 1024
# What one result line may decode to, besides its bytes: 30 MB of ``[{},{},...]`` would be ten
# million dicts, over a gigabyte in the supervisor. Two million values (keys included) is 20
# times the largest value the course's tests expect back and stays under ~250 MB decoded;
# a tagged tuple or set (``mpgrade_plain``) is two JSON levels for one of plain.MAX_DEPTH.
MAX_RESULT_VALUES = 2_000_000
MAX_RESULT_DEPTH = 2 * plain.MAX_DEPTH + 8
MAX_UNREAD = 4  # a session's answers ahead of its requests: a student writing on our pipe



SUID_DUMPABLE = "/proc/sys/fs/suid_dumpable"


def sealed_from_exec(python: str, user: tuple[int, int] | None) -> bool:
    """Whether ``python`` started as ``user`` is sealed by the kernel from its first instruction.

    A program its user may execute but not read (mode 0711, another owner) makes the process
    non-dumpable at exec: other processes of that user cannot open its memory, descriptors or
    environment, with no window before ``sitecustomize.seal`` runs. The grading image ships
    such a copy of its interpreter for student code (``/opt/mpgrade/bin/python-student``).
    Exec applies the host-wide ``fs.suid_dumpable`` then, which seals only at 0 or 2; and mode
    bits do not show ACLs, so each such process also says whether it was already sealed when
    its own code first ran (``sitecustomize.seal``), and ``SparePool`` checks that.
    """
    if user is None or user[0] == 0:
        return False
    try:
        with open(SUID_DUMPABLE) as f:
            if f.read().strip() not in ("0", "2"):
                return False
    except OSError:
        return False
    try:
        st = os.stat(python)
    except OSError:
        return False
    uid, gid = user  # student code runs with no supplementary groups
    if st.st_uid == uid:
        read, execute = stat.S_IRUSR, stat.S_IXUSR
    elif st.st_gid == gid:
        read, execute = stat.S_IRGRP, stat.S_IXGRP
    else:
        read, execute = stat.S_IROTH, stat.S_IXOTH
    return not st.st_mode & read and bool(st.st_mode & execute)



class Child:
    """A started ``mpgrade_child``: its own session, files, pipes and readers, waiting for a request.

    The child boots (a fresh interpreter importing multiprocessing: 40-60 ms, most of a short
    call's cost) before it knows what it will run, then blocks reading one request line on
    stdin. That is what lets a ``SparePool`` start the next call's child while the current call
    runs. A waiting child has loaded no student code: which module, function and arguments it
    runs is only decided by the request, sent when the call starts.
    """

    def __init__(self, python: str, user: tuple[int, int] | None, scratch: Path | None,
                 max_processes: int | None = None, root: str = "") -> None:
        self.key = (python, user, scratch, max_processes, root)
        self.tmp = Path(tempfile.mkdtemp(prefix="mpgrade-call-", dir=scratch))
        self.dumps, self.claims_path, self.home = self.tmp / "dumps", self.tmp / "claims", self.tmp / "home"
        self.out = bytearray()
        self.err = bytearray()
        self.output_total = 0
        self.result = bytearray()  # the first answer's line (a call has one)
        self.result_done = threading.Event()  # set at the first answer, or when the pipe ends
        self.session = False  # set before the first request: answers keep coming, one per request
        self.lines: list[bytes] = []  # every answer's line, in order (the first is ``result``)
        self.taken = 0  # how many of them the session has read
        self.line_ready = threading.Event()
        self.flooded = False  # an answer over MAX_RESULT, or answers nobody asked for
        self.overflow = b""  # the start of an answer over MAX_RESULT
        self.own_tids: set[int] = set()  # our reader threads take PIDs from the same counter
        self.readers: list[threading.Thread] = []
        self.spare = False  # set when taken from a SparePool
        self.seal_word = b""  # what it said on the ready pipe (see ``sitecustomize.seal``)
        self.sealed_from_exec = sealed_from_exec(python, user)
        self._stopped = False
        self._ended = False
        try:
            self._start(python, user, max_processes)
        except BaseException:
            if hasattr(self, "proc"):
                self.stop()
            elif hasattr(self, "claims"):
                self.claims.close()
            remove_tree(self.tmp)
            raise

    def _start(self, python: str, user: tuple[int, int] | None, max_processes: int | None) -> None:
        self.dumps.mkdir()
        self.home.mkdir()
        self.claims = Claims(self.claims_path, user, lambda: self.proc.pid, self.own_tids)
        if user is not None:
            # Only the entries become the student's (the claims FIFO stays root's: they may
            # only write it); the folder stays root's, so its entries can never be swapped for
            # links (the supervisor reads and removes them later, and student processes may
            # already be running: this child may be a spare). The folder is opened to them
            # (traverse only) once the entries are theirs.
            for p in (self.dumps, self.home):
                os.chown(p, *user, follow_symlinks=False)
            os.chmod(self.tmp, 0o711)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(BOOT_DIR),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "PYTHONNOUSERSITE": "1",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "LANG": "C.UTF-8",
            wire.DUMP_DIR_ENV: str(self.dumps),
            wire.PID_LOG_ENV: str(self.claims_path),
            wire.GRADER_PID_ENV: str(os.getpid()),
        }
        if max_processes and user is not None:
            # Applied at boot, before the child reads anything: a request, even one forged by
            # other processes of the student user, cannot lift it.
            env[wire.NPROC_ENV] = str(int(max_processes))
        user_kw: dict[str, Any] = {}
        if user is not None:
            user_kw = {"user": user[0], "group": user[1], "extra_groups": []}
        r, w = os.pipe()
        ready_r, ready_w = os.pipe()
        env[wire.READY_FD_ENV] = str(ready_w)
        try:
            self.proc = subprocess.Popen(
                [python, "-s", "-B", str(CHILD_SCRIPT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(w, ready_w), start_new_session=True, env=env, cwd=str(self.home), **user_kw,
            )
        except BaseException:
            os.close(r)
            os.close(ready_r)
            raise
        finally:
            os.close(w)
            os.close(ready_w)
        self.ready_fd: int | None = ready_r
        self.result_fd, self.result_w = r, w  # w: the descriptor's number in the child
        self.readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
            threading.Thread(target=self._read_result, args=(r,), daemon=True),
        ]
        for t in self.readers:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_sealed(self, limit: float = 2.0) -> bool:
        """Until the child says it has sealed itself (``sitecustomize.seal``), on a pipe only it
        and the grader hold. Before that, other processes of the student user can open its
        memory, and a descriptor opened then stays valid; so no student code may run meanwhile."""
        if self.ready_fd is None:
            return False
        try:
            readable, _, _ = select.select([self.ready_fd], [], [], limit)
            if readable:
                self.seal_word = os.read(self.ready_fd, 1)
            return self.seal_word in wire.SEALED
        except OSError:
            return False
        finally:
            os.close(self.ready_fd)
            self.ready_fd = None

    def waiting(self) -> bool:
        """Still there, runnable and untouched: the previous call's processes (same user) could
        have killed or stopped a spare, or written to it before it sealed itself (see
        ``mpgrade_child``); then it is thrown away and the call starts a fresh child."""
        if self.proc.poll() is not None:
            return False
        if self.result_done.is_set() or self.result or self.output_total:
            return False
        st = processes.proc_stat(self.proc.pid)
        return st is not None and st[0] in ("R", "S", "D") and st[3] == self.proc.pid

    def send(self, request: dict[str, Any], timeout: float = 5.0) -> bool:
        """Hand the child its request; False if it did not take it within ``timeout`` (gone, or
        not reading: a write must never block the grader). A call's request closes the channel;
        a session's keeps it open for the operations that follow (``send_more``)."""
        line = (json.dumps({**request, "result_fd": self.result_w}) + "\n").encode()
        try:
            return self._write(line, timeout)
        finally:
            if not self.session:
                self.close_requests()

    def send_more(self, request: dict[str, Any], timeout: float = 5.0) -> bool:
        """One more request of a session (False: the child is not reading them any more)."""
        return self._write((json.dumps(request) + "\n").encode(), timeout)

    def _write(self, line: bytes, timeout: float) -> bool:
        data = memoryview(line)
        deadline = time.monotonic() + timeout
        try:
            fd = self.proc.stdin.fileno()
            os.set_blocking(fd, False)
            while data:
                try:
                    data = data[os.write(fd, data):]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    select.select([], [fd], [], 0.05)
            return True
        except (OSError, ValueError):
            return False

    def close_requests(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def answered(self) -> bool:
        """Whether the session's next answer is in (or the pipe ended, or was flooded)."""
        return len(self.lines) > self.taken or self.flooded or self._ended

    def next_answer(self) -> bytes | None:
        """The session's next answer line; None if there is none (pipe ended or flooded).
        A line taken is not kept: a long session holds only the answers not read yet."""
        if len(self.lines) > self.taken:
            line, self.lines[self.taken] = self.lines[self.taken], b""
            self.taken += 1
            return line
        return None

    def stop(self, also: set[int] = frozenset()) -> None:
        """Kill the child's whole session, reap it, and stop reading its pipes (once)."""
        if self._stopped:
            return
        self._stopped = True
        processes.kill_session(self.proc.pid, also=also)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.claims.close()
        deadline = time.monotonic() + 2  # for all readers together: an escapee holding every
        for t in self.readers:           # pipe costs 2 s, not 2 s a pipe
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        # A process that escaped the session may still hold the pipes' other ends: then the
        # readers are still blocked, and closing under them could hand their descriptor
        # number to the next call. Leak it instead; the escapee dies with the sandbox.
        if not any(t.is_alive() for t in self.readers):
            os.close(self.result_fd)
            self.proc.stdout.close()
            self.proc.stderr.close()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def reset(self) -> bool:
        """Empty what the previous call's code (same user) could write into while this child
        waited: its home (the call's cwd and TMPDIR), its dump folder but its own dump file; and
        forget the claims granted meanwhile. False if a folder is no longer what it was made as
        (then the child is discarded)."""
        self.claims.forget()
        return remove_entries(self.home) and remove_entries(self.dumps, keep={f"{self.pid}.txt"})

    def remove(self) -> None:
        remove_tree(self.tmp)

    def discard(self) -> None:
        self.stop()
        self.remove()

    # -- pipes -------------------------------------------------------------------------------------

    def _drain(self, stream: Any, keep: bytearray) -> None:
        """Count what a stream carries and keep its first ``KEEP_OUTPUT`` bytes of text. The
        frames each process puts before its writes (``output``) count neither against the
        output limit nor against what is kept, up to ``MAX_KEPT`` raw bytes in all."""
        self.own_tids.add(threading.get_native_id())
        text = 0
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            size = len(chunk) - frame_overhead(chunk)
            self.output_total += size
            if text < KEEP_OUTPUT and len(keep) < MAX_KEPT:
                keep.extend(chunk[: MAX_KEPT - len(keep)])
                text += size

    def _read_result(self, fd: int) -> None:
        """Answer lines as they come. A call's ends at its first line; a session's goes on, but
        never holds more than a few unread answers or one over ``MAX_RESULT``: the student's
        code holds this descriptor too and could write to it without end."""
        self.own_tids.add(threading.get_native_id())
        pending = bytearray()
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return
                pending.extend(chunk)
                while (end := pending.find(b"\n")) >= 0:
                    if not self.lines:
                        self.result.extend(pending[: end + 1])
                    self.lines.append(bytes(pending[:end]))
                    del pending[: end + 1]
                    self.result_done.set()
                    self.line_ready.set()
                if self.lines and not self.session:
                    return
                if len(pending) > MAX_RESULT or len(self.lines) - self.taken > MAX_UNREAD:
                    self.overflow = bytes(pending[: MAX_RESULT + 1])  # before the flag: it is read at once
                    self.flooded = True
                    if not self.lines:
                        self.result.extend(self.overflow)
                    return
        except OSError:
            return
        finally:
            if not self.lines and pending and not self.flooded:
                self.result.extend(pending[: MAX_RESULT + 1])
            self._ended = True
            self.result_done.set()
            self.line_ready.set()
