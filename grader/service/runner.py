"""Who grades the jobs the API accepts: embedded worker threads, or Celery workers elsewhere.

``Embedded`` (``mpgrade serve`` without ``--broker``): threads in the API process take queued
jobs from the store, so a job id is returned at once and queued jobs survive a restart (jobs
that were running go back to the queue when the server starts again).

``Dispatched`` (``--broker redis://...``): the API sends each job as a Celery task and a
collector thread polls the result backend for unfinished jobs, persisting each result in the
store (``INSERT OR IGNORE``: one result per job, however often it comes back).

Both call ``on_done(job_id)`` once a job has its result (or failed), which sends callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from grader.service import jobs
from grader.service.store import JobRow, Store
from grader.service.tasks import Client

log = logging.getLogger("mpgrade.service")
OnDone = Callable[[str], None]


class Dispatcher(Protocol):
    mode: str

    def start(self) -> None: ...
    def submit(self, job: JobRow) -> None: ...
    def stop(self) -> None: ...


class Embedded:
    """``threads`` workers in this process, reading queued jobs from the store."""

    mode = "embedded"

    def __init__(self, store: Store, grader: jobs.Grader, on_done: OnDone, threads: int = 1,
                 idle: float = 1.0) -> None:
        self.store, self.grader, self.on_done = store, grader, on_done
        self.threads, self.idle = max(1, threads), idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        requeued = self.store.requeue_running()
        if requeued:
            log.warning("%d job(s) were running when the server stopped; they are queued again", requeued)
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"mpgrade-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def submit(self, job: JobRow) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.grader.sandbox.close()
        for t in self._workers:
            t.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim_next()
            if job is None:
                self._wake.wait(self.idle)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: JobRow) -> None:
        try:
            doc = self.grader.grade(job.payload)
        except jobs.UnknownAssignment as exc:
            self.store.fail(job.id, str(exc))
            self.on_done(job.id)
            return
        except Exception as exc:  # a bug must cost this job, not the worker thread
            log.exception("grading job %s failed", job.id)
            self.store.fail(job.id, f"the grader failed: {type(exc).__name__}: {str(exc)[:300]}")
            self.on_done(job.id)
            return
        if doc is None:  # stopping: leave it running; the next start queues it again
            return
        if self.store.finish(job.id, doc):
            self.on_done(job.id)


class Dispatched:
    """Celery workers grade; this side sends tasks and collects their results into the store."""

    mode = "broker"

    def __init__(self, store: Store, client: Client, on_done: OnDone, interval: float = 0.5) -> None:
        self.store, self.client, self.on_done, self.interval = store, client, on_done, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for job in self.store.unsent():  # stored, then the API stopped before the broker had it
            log.warning("sending job %s, stored before the last stop but never sent", job.id)
            self.submit(job)
        self._thread = threading.Thread(target=self._collect, name="mpgrade-collector", daemon=True)
        self._thread.start()

    def submit(self, job: JobRow) -> None:
        self.client.send(job.id, job.payload)
        self.store.mark_sent(job.id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.collect_once()
            except Exception:  # the broker went away for a moment: try again
                log.exception("collecting results failed")
            self._stop.wait(self.interval)

    def collect_once(self) -> None:
        for job in self.store.unfinished():
            got = self.client.poll(job.id)
            if got.document is not None:
                if self.store.finish(job.id, got.document):
                    self.on_done(job.id)
            elif got.state == "FAILURE":
                self.store.fail(job.id, got.error or "the worker failed")
                self.on_done(job.id)
            elif got.state == "STARTED" and job.status != "running":
                self.store.mark_running(job.id)
