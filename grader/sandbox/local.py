"""The local sandbox: the same job as a child process tree on this machine.

NOT a security boundary. It exists so that students (``make check``) and newcomers without
Docker see the grader work, and it keeps the same code path as the container: the harness
runs with its own session, a wall-clock limit, capped output and file-size / open-file / core
limits; at the end the whole session is killed. Never grade untrusted code with it.

With ``warm=N`` it keeps N processes started ahead of their jobs in the same pool as the
Docker sandbox's warm containers (``grader.sandbox.warm``): each runs ``python -m
grader.harness.warmstart MODULE`` (pytest and the plugins imported while earlier jobs run),
then serves exactly one job and is killed with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.processes import kill_session, kill_user
from grader.protocol import wire
from grader.sandbox.base import PYTHON, Job, Outcome, Sandbox, write_files
from grader.sandbox.warm import WarmPool, hand_over, idle_env, stub_command


@dataclass
class _Started:
    """A harness process in its own session, with its folders and output readers."""

    proc: subprocess.Popen
    tmp: Path
    jobdir: Path
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    readers: list[threading.Thread] = field(default_factory=list)


class LocalSandbox(Sandbox):
    """Child process trees on this host, trusted code only (see the module)."""

    name = "local"

    def __init__(self, python: str = sys.executable, warm: int = 0,
                 student_user: tuple[int, int] | None = None, student_python: str | None = None) -> None:
        """``student_user`` (uid, gid): student processes run as that user (the harness drops to
        it, as in the Docker sandbox), at most ``Limits.pids`` of them, and every process of it
        is killed after each job. Needs root; an LMS's own container is where it is used
        (``grader.autograder``: Gradescope, PrairieLearn). Without it everything runs as the
        caller. ``student_python``: the execute-only interpreter for student code, as in the
        grading image (``/opt/mpgrade/bin/python-student``), which seals student processes from exec."""
        self.python = python
        self.warm = max(0, warm)
        self.student_user = student_user
        self.student_python = student_python
        self._running: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool: WarmPool[_Started] = WarmPool(
            self.warm, self._start_warm, lambda box: box.proc.poll() is None, self._discard,
            name="mpgrade-warm-local")

    def run(self, job: Job) -> Outcome:
        """Run the job in a warm process of its shape if one waits, else in a new one."""
        started = time.monotonic()
        stats: dict[str, float] = {}
        waiting = self._pool.for_job(job, stats)
        if waiting is not None:
            return self._run_warm(job, waiting, started)
        return self._run_cold(job, started)

    def _run_cold(self, job: Job, started: float) -> Outcome:
        command = [self.python if a == PYTHON and i == 0 else a for i, a in enumerate(job.command)]
        box = self._start(job, command, {**job.env, **job.secret_env}, write=True)
        if box is None:
            return Outcome(exit_status=None, stdout=b"", cancelled=True)
        return self._finish(box, job, started, time.monotonic())

    def _run_warm(self, job: Job, box: _Started, started: float) -> Outcome:
        """Hand the job to a started process: its files, then the go file, last and atomically."""
        try:
            with self._lock:
                if self._closed:
                    self._discard(box)
                    return Outcome(exit_status=None, stdout=b"", cancelled=True)
                self._running[box.proc.pid] = box.proc
            hand_over(box.jobdir, job)
        except BaseException:
            with self._lock:
                self._running.pop(box.proc.pid, None)
            self._discard(box)
            raise
        return self._finish(box, job, started, time.monotonic(), warm_start=True)

    def _start(self, job: Job, command: list[str], env_extra: dict[str, str], *,
               write: bool) -> _Started | None:
        tmp = Path(tempfile.mkdtemp(prefix="mpgrade-job-"))
        try:
            if self.student_user is not None:
                # Two users: a student process may pass through the job's folder to its scratch
                # (0711: not list it), never into job/ (root's 0700: manifest, hidden tests).
                os.chmod(tmp, 0o711)
            jobdir, scratch = tmp / "job", tmp / "scratch"
            jobdir.mkdir(mode=0o700)
            scratch.mkdir(mode=0o1777)
            os.chmod(scratch, 0o1777)  # student code (maybe another user) writes here
            if write:
                write_files(jobdir, job.files)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(scratch),
                "TMPDIR": str(scratch),
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                wire.SANDBOX_ENV: "local",
                **env_extra,
            }
            limits = job.limits
            # The harness applies these to itself first thing (a preexec_fn would not be safe
            # here: batches call run() from several threads at once).
            env[wire.RLIMITS_ENV] = f"core=0,fsize={limits.fsize},nofile={limits.nofile}"
            if self.student_user is not None:
                uid, gid = self.student_user
                env[wire.STUDENT_USER_ENV] = f"{uid}:{gid}"
                env[wire.STUDENT_NPROC_ENV] = str(limits.pids)
                if self.student_python:
                    env[wire.STUDENT_PYTHON_ENV] = self.student_python
            with self._lock:
                if self._closed:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return None
                proc = subprocess.Popen(
                    command, cwd=jobdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                if write:
                    self._running[proc.pid] = proc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        box = _Started(proc, tmp, jobdir)
        try:
            box.readers = [
                threading.Thread(target=_drain, args=(proc.stdout, box.out, limits.output), daemon=True),
                threading.Thread(target=_drain, args=(proc.stderr, box.err, 65536, True), daemon=True),
            ]
            for t in box.readers:
                t.start()
        except BaseException:
            with self._lock:
                self._running.pop(proc.pid, None)
            self._discard(box)
            raise
        return box

    def _finish(self, box: _Started, job: Job, started: float, handed_over: float,
                warm_start: bool = False) -> Outcome:
        """Wait within this job's wall time (counted from the hand-over; a warm process may have
        been started for a job with another limit), then kill the session."""
        proc = box.proc
        timed_out = False
        try:
            remaining = job.limits.wall_timeout - (time.monotonic() - handed_over)
            proc.wait(timeout=max(0.0, remaining))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_session(proc.pid)
            proc.wait()
            self._kill_student()
            with self._lock:
                self._running.pop(proc.pid, None)
                cancelled = self._closed
            for t in box.readers:
                t.join(timeout=5)
            shutil.rmtree(box.tmp, ignore_errors=True)
        stats = {"wall": time.monotonic() - started}
        if warm_start:
            stats["warm"] = 1.0
        return Outcome(
            exit_status=None if timed_out or cancelled else proc.returncode,
            stdout=bytes(box.out),
            stderr_tail=bytes(box.err),
            timed_out=timed_out,
            cancelled=cancelled and not timed_out,
            stats=stats,
        )

    # -- warm processes ------------------------------------------------------------------------

    def _start_warm(self, job: Job) -> _Started | None:
        """One process for jobs of this one's shape, waiting for its go file (None if closed)."""
        env = {**job.env, **idle_env()}
        return self._start(job, stub_command(self.python, job), env, write=False)

    def _discard(self, box: _Started) -> None:
        """Kill a process's whole session and remove its folders (warm and unused, or done)."""
        kill_session(box.proc.pid)
        box.proc.wait()
        for t in box.readers:
            t.join(timeout=5)
        shutil.rmtree(box.tmp, ignore_errors=True)

    def close(self) -> None:
        """Ctrl-C: kill every job still running (``run`` cleans up as it unwinds), and the warm
        processes."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for pid in running:
            kill_session(pid)
        self._pool.close()
        self._kill_student()

    def _kill_student(self) -> None:
        """Every process of the student user, also those that left the harness's session."""
        if self.student_user is not None:
            kill_user(self.student_user[0])


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
