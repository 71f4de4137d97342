"""Workers started ahead of their jobs, for any sandbox: one pool and one hand-over.

Starting a sandbox (a container, a process tree) and importing pytest in it take longer than
grading a small submission, so a sandbox may keep ``size`` workers started ahead of their jobs:
each runs ``python -m grader.harness.warmstart MODULE`` and waits for its go file. A worker
still serves exactly one job and is discarded with it; starting early only moves start-up off
the submission's critical path.

This module holds what the Docker and the local sandbox would otherwise each spell out: which
shape of job a worker may serve (``base.warm_shape``), starting workers on threads of the pool's
own while earlier jobs run, taking the oldest live one, dropping those of another shape, the
hand-over through the job folder (``protocol.wire``), and a bounded :meth:`WarmPool.close`.
A sandbox supplies only how to start one worker, whether one still waits, and how to discard
one; the pool never looks inside a worker.

Ownership, so that nothing is discarded twice or never: each worker is given away exactly
once, under the pool's lock (``_Slot.given``). While it is being started it belongs to its
starting thread, which gives it to the pool when it is up, or discards it itself when nobody
wants it any more (its slot was dropped, or the pool closed meanwhile). A ready worker goes to
whoever claims its slot first: a job (take), a refill dropping an old shape, or close(), which
also claims the slots that takers are still waiting on, so that no worker outlives close().
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from grader.protocol.wire import IDLE_ENV, check_reserved, write_go
from grader.sandbox.base import Job, warm_shape, write_files

WARMSTART = "grader.harness.warmstart"
# A warm worker nobody sends a job to exits after this long (the host may have died) ...
IDLE = 900.0
# ... so one that has waited nearly that long is not handed a job: the job would find it gone.
MAX_AGE = IDLE - 60.0
# How long a job waits for a worker still being started before it goes cold without it.
TAKE_WAIT = 60.0
# How long close() waits for workers still being started (each start is itself bounded: the
# Docker client's timeout, or a fork and exec).
CLOSE_WAIT = 120.0

W = TypeVar("W")


def stub_command(python: str, job: Job) -> list[str]:
    """A warm worker's command for a ``python -m MODULE ARG...`` job: the stub that waits first."""
    return [python, "-m", WARMSTART, *job.command[2:]]


def idle_env() -> dict[str, str]:
    """The environment that makes a worker nobody sends a job give up (see :data:`IDLE`)."""
    return {IDLE_ENV: str(IDLE)}


def hand_over(folder: Path, job: Job) -> None:
    """Give a waiting worker its job: the files, then the go file (secrets) last, atomically.

    Refuses, before writing anything, a job whose own files would take the go file's names:
    the stub must never see a go file the host did not write.
    """
    check_reserved(job.files)
    write_files(folder, job.files)
    write_go(folder, job.secret_env)


@dataclass(eq=False)
class _Slot(Generic[W]):
    """One worker of the pool, being started or ready; see the module's rule on ownership."""

    shape: Hashable
    ready: threading.Event = field(default_factory=threading.Event)
    worker: W | None = None  # None once ready: its start failed or made nothing
    since: float = 0.0  # time.monotonic() when it was ready
    orphaned: bool = False  # dropped before it was ready: its thread discards the worker
    given: bool = False  # its worker was handed to a claimer, or discarded by its thread


class WarmPool(Generic[W]):
    """Up to ``size`` workers of the shape of the last job, started ahead on threads it owns.

    ``start(job)`` makes one worker for a job of that shape (or returns None when its sandbox is
    closing), ``running(worker)`` says whether it still waits, ``discard(worker)`` ends it and
    removes what it left (called exactly once per worker the pool made). After :meth:`close`
    the pool starts nothing, and none of its threads or workers is left.
    """

    def __init__(self, size: int, start: Callable[[Job], W | None], running: Callable[[W], bool],
                 discard: Callable[[W], None], *, name: str = "mpgrade-warm",
                 take_wait: float = TAKE_WAIT, close_wait: float = CLOSE_WAIT,
                 max_age: float = MAX_AGE) -> None:
        self.size = max(0, size)
        self.name = name
        self.take_wait = take_wait
        self.close_wait = close_wait
        self.max_age = max_age
        self._start = start
        self._running = running
        self._discard = discard
        self._lock = threading.Lock()
        self._slots: list[_Slot[W]] = []  # in the pool, oldest first
        self._taking: set[_Slot[W]] = set()  # out of the pool, a take() waiting for them
        self._threads: set[threading.Thread] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: a ``start`` may look, to give up early."""
        return self._closed

    def for_job(self, job: Job, stats: dict[str, float]) -> W | None:
        """A waiting worker for this job, if there is one, after asking for the next ones.

        The refill comes first (for the job after this one) even when none was found: a batch
        keeps ``size`` workers starting while its jobs run. If the refill is interrupted
        (Ctrl-C), the worker taken is discarded: it was not handed its job yet.
        """
        shape = warm_shape(job) if self.size else None
        if shape is None:
            return None
        worker = self.take(shape, stats)
        try:
            self.refill(shape, job)
        except BaseException:
            if worker is not None:
                self.discard(worker)
            raise
        return worker

    def take(self, shape: Hashable, stats: dict[str, float]) -> W | None:
        """The oldest worker of this shape that still waits (waiting for one still starting,
        up to ``take_wait``), or None; the caller then owns it. Dead or stale ones are discarded."""
        while True:
            with self._lock:
                slot = next((s for s in self._slots if s.shape == shape), None)
                if slot is None or self._closed:
                    return None
                self._slots.remove(slot)
                self._taking.add(slot)
            waited = time.monotonic()
            try:
                slot.ready.wait(self.take_wait)
                stats["warm_wait"] = stats.get("warm_wait", 0.0) + time.monotonic() - waited
            except BaseException:  # Ctrl-C while waiting: the worker is nobody's job yet
                self._drop(slot)
                raise
            worker = self._claim(slot)
            if worker is None:
                continue
            if time.monotonic() - slot.since < self.max_age and self._still_running(worker):
                return worker
            self.discard(worker)

    def refill(self, shape: Hashable, job: Job) -> None:
        """Start workers for this shape until ``size`` of them wait or start; drop other shapes'."""
        with self._lock:
            if self._closed or not self.size:
                return
            stale = [s for s in self._slots if s.shape != shape]
            self._slots = [s for s in self._slots if s.shape == shape]
            while len(self._slots) < self.size:
                slot: _Slot[W] = _Slot(shape)
                thread = threading.Thread(target=self._fill, args=(slot, job), name=self.name)
                self._threads.add(thread)  # before it runs: it removes itself when done
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: only an optimisation, go without
                    self._threads.discard(thread)
                    break
                self._slots.append(slot)
        for slot in stale:
            self._drop(slot)

    def discard(self, worker: W) -> None:
        """End a worker taken from the pool and not handed a job (or done with one)."""
        try:
            self._discard(worker)
        except Exception:  # already gone; a sandbox's discard removes what it can
            pass

    def waiting(self, timeout: float = TAKE_WAIT) -> list[W]:
        """The workers in the pool once those still starting are up (for tests and diagnostics);
        they stay in the pool."""
        with self._lock:
            slots = list(self._slots)
        deadline = time.monotonic() + timeout
        for slot in slots:
            slot.ready.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return [s.worker for s in slots
                    if s in self._slots and s.ready.is_set() and not s.given and s.worker is not None]

    def close(self) -> None:
        """Start nothing more, discard every worker, and wait (up to ``close_wait`` in all) for
        the threads still starting one; each discards what it made. One worker at a time, so a
        second Ctrl-C in here leaves the rest to the next close()."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            with self._lock:
                if self._slots:
                    slot = self._slots.pop()
                elif self._taking:
                    slot = self._taking.pop()  # its take() then finds it given away
                else:
                    break
            self._drop(slot)
        deadline = time.monotonic() + self.close_wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the rule on ownership ---------------------------------------------------------------

    def _fill(self, slot: _Slot[W], job: Job) -> None:
        """A starting thread: make one worker, then hand it to the pool or discard it."""
        worker: W | None = None
        try:
            if not self._closed:
                worker = self._start(job)
        except Exception:  # only an optimisation: the job that would have taken it starts cold
            worker = None
        finally:
            with self._lock:
                slot.worker, slot.since = worker, time.monotonic()
                unwanted = slot.orphaned or self._closed  # closed: sooner than close() would
                slot.given = unwanted
                slot.ready.set()
                self._threads.discard(threading.current_thread())
            if unwanted and worker is not None:
                self.discard(worker)

    def _claim(self, slot: _Slot[W]) -> W | None:
        """The worker of a slot taken out of the pool, now the caller's; None when it has none,
        was given away already (close() claimed it first), or is not ready yet (then its
        thread will discard it)."""
        with self._lock:
            self._taking.discard(slot)
            if slot.given:
                return None
            if not slot.ready.is_set():
                slot.orphaned = True
                return None
            slot.given = True
            return slot.worker

    def _drop(self, slot: _Slot[W]) -> None:
        """Nobody will use this slot's worker (another shape, close): end it, now or when up."""
        worker = self._claim(slot)
        if worker is not None:
            self.discard(worker)

    def _still_running(self, worker: W) -> bool:
        """The sandbox's check, where an error (the engine hiccuped) counts as dead."""
        try:
            return self._running(worker)
        except Exception:  # cannot tell: a job must not be handed to it
            return False
