"""The ``student`` fixture's object: runs calls of the student's functions, one per test."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import processes
from grader.assignment import START_METHODS
from grader.harness.boundary.call import CallExecution
from grader.harness.boundary.failures import MemoryLimit, ProcessLimit, StudentError, StudentFailure
from grader.harness.boundary.helper import Helper
from grader.harness.boundary.pool import SparePool
from grader.harness.boundary.record import CallRecord
from grader.harness.boundary.residue import SHARED_WRITABLE, clear_user_ipc, remove_entries
from grader.harness.boundary.session import Session


@dataclass
class TimeShare:
    """What one test may spend of the run's time budget (``HarnessConfig.budget``).

    The test's share is fixed at its first call: what leaves every later test ``RESERVE``
    seconds and this test no more than half of what is left, and always at least an equal share
    of what is left. Each call may take its own limit within what is left of that share: correct
    code, fast in every test, is not cut short (a heavy test of it, such as 100,000 items
    through a queue, gets the time the fast ones left), while a submission that hangs in every
    test hangs for ever shorter limits, then for an equal share each, so that every test runs
    and the run ends in time; a test of many calls (a session's operations) shares one share.
    Never less than ``MIN_CALL`` a call (a test whose earlier calls used its share still runs
    its later ones; the sandbox's wall clock is the backstop). One per test (the plugin's).
    """

    end: float  # time.monotonic() when the run's budget is spent
    tests_after: int  # tests still to run after this one
    until: float | None = None  # when this test's share is spent: set by its first call
    RESERVE = 1.5  # seconds every later test keeps: a spawn-started call of correct code needs ~1 s
    MIN_CALL = 0.5

    def limit(self, own: float) -> tuple[float, str]:
        """The call's time limit and, when the budget cut it, what the timeout message adds."""
        now = time.monotonic()
        if self.until is None:
            left = self.end - now
            self.until = now + max(left / (self.tests_after + 1),
                                   min(left / 2, left - self.tests_after * self.RESERVE))
        share = self.until - now
        if share >= own:
            return own, ""
        return (max(self.MIN_CALL, round(share, 2)),
                f"this test's share of the run's time budget; its own limit is {own:g} s")


@dataclass
class StudentRunner:
    """Runs calls of the student's functions; one per test (the ``student`` fixture)."""

    path: Path
    start_method: str | None = None
    call_timeout: float = 10.0
    output_limit: int = 8 * 1024 * 1024
    python: str = sys.executable
    user: tuple[int, int] | None = None  # (uid, gid) to run student code as, when root
    scratch: Path | None = None
    cgroup: Path | None = None  # cgroup v2 folder: its event counters name memory / process limits
    max_processes: int | None = None  # RLIMIT_NPROC for the student user (only with ``user``)
    spares: SparePool | None = None  # starts each call's successor ahead of time (the plugin's)
    helpers: Path | None = None  # the assignment's helpers folder, on the student processes' path
    # This test's part of the run's time budget (HarnessConfig.budget, set by the plugin);
    # None: each call has only its own limit.
    budget: TimeShare | None = None
    records: list[CallRecord] = field(default_factory=list)
    # The session whose block is running: one student process tree at a time (the clean-up
    # after any call kills every process of the student user, which would end the session).
    active: Any = None

    @property
    def last(self) -> CallRecord:
        if not self.records:
            raise LookupError("no student call has been made yet")
        return self.records[-1]

    def module(self, name: str, *, start_method: str | None = None, timeout: float | None = None) -> ModuleProxy:
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"unknown start method {start_method!r}")
        return ModuleProxy(self, name, start_method, timeout)

    def session(self, *, start_method: str | None = None, timeout: float | None = None) -> Session:
        """One student process for several operations, sharing its objects (``with ... as s:``).

        ``s.module("buffer").BoundedBuffer(2)`` gives a handle to the instance (it stays in the
        student's process); its methods and attributes are reached through it. Each operation
        has ``timeout`` (default: the call limit); a failing one ends the session. At the end of
        the block every process is killed and reaped; ``student.last`` is the session's record.
        """
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"unknown start method {start_method!r}")
        self._one_at_a_time("a session")
        method = start_method or self.start_method or "fork"
        record = CallRecord(module="", function="session", start_method=method)
        self.records.append(record)
        return Session(self, record, timeout or self.call_timeout)

    def helper(self, name: str) -> Helper:
        """A function of the assignment's helpers folder, to pass to student code:
        ``pool.parallel_map(student.helper("probes.square"), [1, 2, 3])``."""
        return Helper(name)

    def call(
        self,
        module: str,
        function: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        start_method: str | None = None,
        timeout: float | None = None,
    ) -> CallRecord:
        """Run ``module.function(*args, **kwargs)`` in a fresh process tree and return the record.

        Raises a StudentFailure subclass when the call did not return a value; the record is
        appended either way so tests and telemetry can see it.
        """
        self._one_at_a_time(f"{module}.{function}()")
        method = start_method or self.start_method or "fork"
        record = CallRecord(module=module, function=function, start_method=method)
        self.records.append(record)
        before = self._limit_events()
        own = timeout or self.call_timeout
        limit, note = self.budget.limit(own) if self.budget is not None else (own, "")
        error = CallExecution(self, record, args, kwargs or {}, limit, note).run()
        if error is not None:
            raise self._explain_limits(error, before)
        return record

    def _one_at_a_time(self, what: str) -> None:
        if self.active is not None:
            raise RuntimeError(f"test bug: {what} while a session is open; inside the block, reach the "
                               "student's code through the session (s.module(...), s.helper(...))")

    def clear_user(self) -> int:
        """Between two calls nothing of the student user is left: no process but the waiting
        spares (our own code, sealed), no file in the scratch folder, /dev/shm or /dev/mqueue
        but the spares' folders, no System V IPC object. Only with a user of the sandbox's own
        (``user``); returns how many processes had to be killed here, i.e. had escaped the
        call's session (0 without a user)."""
        if self.user is None or self.user[0] == 0:
            return 0
        held = self.spares.held() if self.spares is not None else []
        # Only spares not reaped yet: the PID of one that died (killed by the call's code, same
        # user) is free again and could be taken by a student process.
        killed = processes.kill_user(self.user[0], keep={c.pid for c in held if c.proc.poll() is None})
        scratch = self.scratch or Path(tempfile.gettempdir())
        for folder in (scratch, *map(Path, SHARED_WRITABLE)):
            remove_entries(folder, keep={c.tmp.name for c in held}, owner=self.user[0])
        clear_user_ipc(self.user, self.python)
        return killed

    def _limit_events(self) -> dict[str, int]:
        counters: dict[str, int] = {}
        if self.cgroup is None:
            return counters
        # cgroup v2 keeps the counters in one folder; v1 in one folder per controller.
        sources = (
            ("memory", "memory.events", "oom_kill"), ("memory", "memory/memory.oom_control", "oom_kill"),
            ("pids", "pids.events", "max"), ("pids", "pids/pids.events", "max"),
        )
        for counter, filename, key in sources:
            try:
                for line in (self.cgroup / filename).read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == key:
                        counters[counter] = int(value)
            except (OSError, ValueError):
                pass
        return counters

    def _explain_limits(self, error: StudentFailure, before: dict[str, int]) -> StudentFailure:
        """A call that failed while the container hit its memory or process limit says so."""
        after = self._limit_events()
        what = self.records[-1]
        name = f"{what.module}.{what.function}()" if what.module else "the session"
        out_of_memory = isinstance(error, StudentError) and error.student_type == "MemoryError"
        if after.get("memory", 0) > before.get("memory", 0) or out_of_memory:
            return MemoryLimit(f"{name} ran out of memory: a process was killed at the memory limit "
                               f"({error})", error.record)
        text = str(error)
        forked_out = ("Resource temporarily unavailable" in text or "can't start new thread" in text
                      or (self.max_processes and what.peak_processes >= self.max_processes - 8))
        if after.get("pids", 0) > before.get("pids", 0) or forked_out:
            return ProcessLimit(f"{name} started too many processes or threads and hit the process "
                                f"limit ({error})", error.record)
        return error


class ModuleProxy:
    def __init__(self, runner: StudentRunner, name: str, start_method: str | None, timeout: float | None):
        self._runner, self._name = runner, name
        self._start_method, self._timeout = start_method, timeout

    def __getattr__(self, function: str) -> Callable[..., Any]:
        if function.startswith("_"):
            raise AttributeError(function)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.call(
                self._name, function, args, kwargs,
                start_method=self._start_method, timeout=self._timeout,
            ).value

        call.__name__ = function
        return call

    def __repr__(self) -> str:
        return f"<student module {self._name}>"
