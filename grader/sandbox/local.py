"""The local sandbox: the same job as a child process tree on this machine.

NOT a security boundary. It exists so that students (``make check``) and newcomers without
Docker see the grader work, and it keeps the same code path as the container: the harness
runs with its own session, a wall-clock limit, capped output and file-size / open-file / core
limits; at the end the whole session is killed. Never grade untrusted code with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.sandbox.base import PYTHON, Job, Outcome, write_files
from grader.student import kill_session


class LocalSandbox:
    name = "local"

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closed = False

    def run(self, job: Job) -> Outcome:
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix="mpgrade-job-"))
        try:
            jobdir, scratch = tmp / "job", tmp / "scratch"
            jobdir.mkdir(mode=0o700)
            scratch.mkdir(mode=0o1777)
            os.chmod(scratch, 0o1777)  # student code (maybe another user) writes here
            write_files(jobdir, job.files)
            command = [self.python if a == PYTHON and i == 0 else a for i, a in enumerate(job.command)]
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(scratch),
                "TMPDIR": str(scratch),
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "MPGRADE_SANDBOX": "local",
                **job.env,
                **job.secret_env,
            }
            limits = job.limits
            # The harness applies these to itself first thing (a preexec_fn would not be safe
            # here: batches call run() from several threads at once).
            env["MPGRADE_RLIMITS"] = f"core=0,fsize={limits.fsize},nofile={limits.nofile}"
            with self._lock:
                if self._closed:
                    return Outcome(exit_status=None, stdout=b"", cancelled=True)
                proc = subprocess.Popen(
                    command, cwd=jobdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                self._running[proc.pid] = proc
            out, err = bytearray(), bytearray()
            readers = [
                threading.Thread(target=_drain, args=(proc.stdout, out, limits.output), daemon=True),
                threading.Thread(target=_drain, args=(proc.stderr, err, 65536, True), daemon=True),
            ]
            for t in readers:
                t.start()
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                kill_session(proc.pid)
                proc.wait()
                with self._lock:
                    self._running.pop(proc.pid, None)
                    cancelled = self._closed
                for t in readers:
                    t.join(timeout=5)
            return Outcome(
                exit_status=None if timed_out or cancelled else proc.returncode,
                stdout=bytes(out),
                stderr_tail=bytes(err),
                timed_out=timed_out,
                cancelled=cancelled and not timed_out,
                stats={"wall": time.monotonic() - started},
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running)
        for pid in running:
            kill_session(pid)


def _drain(stream, keep: bytearray, cap: int, tail: bool = False) -> None:
    """Read a pipe to its end, keeping at most ``cap`` bytes (the first, or the last if ``tail``)."""
    while True:
        chunk = stream.read1(1 << 16)
        if not chunk:
            return
        if tail:
            keep.extend(chunk)
            if len(keep) > cap:
                del keep[: len(keep) - cap]
        elif len(keep) < cap:
            keep.extend(chunk[: cap - len(keep)])
