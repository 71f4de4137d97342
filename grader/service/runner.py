"""Who grades the jobs the API accepts: embedded worker threads, or Celery workers elsewhere.

``Embedded`` (``mpgrade serve`` without ``--broker``): threads in the API process take queued
jobs from the store, so a job id is returned at once and queued jobs survive a restart (jobs
that were running go back to the queue when the server starts again).

``Dispatched`` (``--broker redis://...``): the API sends jobs as Celery tasks and a
collector thread polls the result backend for unfinished jobs, persisting each result in the
store (``INSERT OR IGNORE``: one result per job, however often it comes back). The store stays
the queue: a sender thread hands the broker the next job by fair share (``store.claim_send``)
only while fewer than ``ahead`` sent jobs wait there untaken, so the broker's first-in,
first-out order never lets one course's burst starve another, however many workers take jobs.

Both call ``on_done(job_id)`` once a job has its result (or failed), which sends callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from grader.service import jobs
from grader.service.store import MAX_ATTEMPTS, JobRow, JobState, Store
from grader.service.tasks import Client

log = logging.getLogger("mpgrade.service")
OnDone = Callable[[str], None]
POLL_ERRORS = 5  # consecutive unreadable backend entries before a job is failed
AHEAD = 4  # sent jobs no worker has taken yet, at most: how far the broker's own order reaches


class Dispatcher(Protocol):
    mode: str

    def start(self) -> None: ...
    def submit(self, job: JobRow) -> None: ...
    def forget(self, job_id: str) -> None: ...
    def stop(self) -> None: ...
    def unready(self) -> str | None: ...
    def drop(self, job_id: str) -> None: ...


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
        requeued, failed = self.store.requeue_running()
        if requeued:
            log.warning("%d job(s) were running when the server stopped; they are queued again", requeued)
        for job_id in failed:
            log.error("job %s was interrupted too often while grading; it is failed", job_id)
            self.on_done(job_id)
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"mpgrade-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def submit(self, job: JobRow) -> None:
        self._wake.set()

    def forget(self, job_id: str) -> None:
        """Nothing outside the store remembers a job here."""

    def drop(self, job_id: str) -> None:
        """Nothing to do: the store no longer lists a superseded job as queued."""

    def unready(self) -> str | None:
        """Why this dispatcher cannot grade new jobs (readiness), or None."""
        if self._workers and not any(t.is_alive() for t in self._workers):
            return "no embedded worker thread is running"
        return None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.grader.sandbox.close()
        for t in self._workers:
            t.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next()
                if job is None:
                    self._wake.wait(self.idle)
                    self._wake.clear()
                    continue
                self._run(job)
            except Exception:  # a locked database, a failing callback hand-off: never the thread
                log.exception("the embedded worker hit an error; carrying on")
                self._stop.wait(min(self.idle, 1.0))

    def _run(self, job: JobRow) -> None:
        """Grade one claimed job. A failure that is ours (the sandbox or grader broke, a
        container was killed) is graded again, up to ``MAX_ATTEMPTS`` claims in all; then the
        job ends ``gradable: false``, never as a 0 that looks like a grade."""
        try:
            doc = self.grader.grade(job.payload)
        except (jobs.UnknownAssignment, jobs.BadPayload) as exc:
            self.store.fail(job.id, str(exc))
            self.on_done(job.id)
            return
        except Exception as exc:  # a bug must cost this job, not the worker thread
            log.exception("grading job %s failed", job.id)
            why = f"the grader failed: {type(exc).__name__}: {str(exc)[:300]}"
            if not self._again(job, why):
                self.store.fail(job.id, f"{why} (tried {job.attempts} times)")
                self.on_done(job.id)
            return
        if doc is None:  # stopping: leave it running; the next start queues it again
            return
        if jobs.fault_of(doc) == "infrastructure":
            if self._again(job, str(doc.get("message") or "")):
                return
            doc = jobs.not_gradable(doc, f"tried {job.attempts} times")
        else:
            doc = jobs.classified(doc)
        if self.store.finish(job.id, doc):
            self.on_done(job.id)

    def _again(self, job: JobRow, why: str) -> bool:
        """Queue ``job`` again after a failure of ours, unless it has had its attempts."""
        if job.attempts >= MAX_ATTEMPTS:
            return False
        log.warning("job %s failed for reasons that are not the student's (%s); grading it again "
                    "(attempt %d of %d)", job.id, why[:300], job.attempts + 1, MAX_ATTEMPTS)
        self.store.requeue(job.id, why)
        self._wake.set()
        return True


class Dispatched:
    """Celery workers grade; this side sends tasks and collects their results into the store."""

    mode = "broker"

    def __init__(self, store: Store, client: Client, on_done: OnDone, interval: float = 0.5,
                 ahead: int = AHEAD) -> None:
        self.store, self.client, self.on_done, self.interval = store, client, on_done, interval
        self.ahead = max(1, ahead)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: dict[str, int] = {}

    def start(self) -> None:
        unsent = len(self.store.unsent())
        if unsent:  # stored, then the API stopped before the broker had them (or waiting their turn)
            log.info("%d queued job(s) not yet handed to the broker; sending them by fair share", unsent)
        for target, name in ((self._collect, "mpgrade-collector"), (self._send_loop, "mpgrade-sender")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: JobRow) -> None:
        """A new (or retried) job is in the store's queue: the sender hands it on in its turn.
        Raises when the broker does not answer, so the API answers 503 and keeps nothing queued
        that no worker could get (a PING on the pooled Redis client: about 1 ms, where a broker
        connection check is about 12, on every POST of a deadline burst)."""
        try:
            self.client.redis.ping()
        except Exception as exc:
            raise ConnectionError(f"the broker does not answer ({type(exc).__name__}: {str(exc)[:200]})") from None
        self._wake.set()

    def send_due(self) -> int:
        """Hand the broker queued jobs, by fair share, until ``ahead`` sent jobs wait there
        untaken (a worker that takes one deletes its queued marker); how many were sent."""
        waiting = self.client.waiting(self.store.waiting_sent())
        sent = 0
        while waiting < self.ahead:
            job = self.store.claim_send()  # marked sent first: a crash before the send is "lost", sent again
            if job is None:
                break
            try:
                self.client.send(job.id, job.payload)
            except Exception:
                self.store.unsend(job.id)
                raise
            waiting += 1
            sent += 1
        return sent

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_due()
            except Exception as exc:  # the broker away for a moment: the jobs wait in the store
                log.warning("handing jobs to the broker failed (%s: %s); trying again", type(exc).__name__,
                            str(exc)[:200])
            self._wake.wait(self.interval)
            self._wake.clear()

    def _resend(self, job: JobRow) -> None:
        """A job that was sent and is lost (no queued marker, no live lease): send it again now
        (it already had its turn)."""
        self.client.send(job.id, job.payload)
        self.store.mark_sent(job.id)

    def forget(self, job_id: str) -> None:
        """Drop the backend's old outcome of a job about to be graded again."""
        self.client.forget(job_id)

    def drop(self, job_id: str) -> None:
        """A superseded job's message, still in the queue, is dropped by the worker that gets it."""
        try:
            self.client.drop(job_id)
        except Exception:  # the broker away: the worst case is grading it for nothing
            log.warning("could not mark job %s as dropped in the broker", job_id)

    def unready(self) -> str | None:
        """Why jobs cannot be sent now (readiness: the broker does not answer), or None."""
        try:
            self.client.ping(timeout=2.0)
        except Exception as exc:  # ConnectionError from ping, or anything the transport raises
            return f"the broker does not answer ({type(exc).__name__}: {str(exc)[:200]})"
        return None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.collect_once()
            except Exception:  # the broker went away for a moment: try again
                log.exception("collecting results failed")
            self._stop.wait(self.interval)

    def collect_once(self) -> None:
        """One pass over the unfinished jobs. A job whose backend entry cannot be read (corrupt,
        forged) costs only that job: after ``POLL_ERRORS`` passes in a row it is failed. The
        broker being unreachable is not the job's fault: that ends the pass (and is retried)."""
        for state in self.store.unfinished_states():
            try:
                self._collect_one(state)
            except _transient_errors():
                raise
            except Exception as exc:
                count = self._errors.get(state.id, 0) + 1
                log.warning("reading the result of job %s failed (%d/%d): %s: %s", state.id, count,
                            POLL_ERRORS, type(exc).__name__, str(exc)[:300])
                if count < POLL_ERRORS:
                    self._errors[state.id] = count
                    continue
                self._errors.pop(state.id, None)
                self.store.fail(state.id, "the result backend holds an unreadable entry for this job "
                                          f"({type(exc).__name__}: {str(exc)[:300]}); submit it again")
                self.on_done(state.id)
            else:
                self._errors.pop(state.id, None)

    def _collect_one(self, state: JobState) -> None:
        if state.status == "queued" and state.sent_at is None:  # waiting its turn in the store
            return
        got = self.client.poll(state.id)
        if got.state in ("SUCCESS", "FAILURE", "STARTED"):  # a worker took or finished one: send the next
            self._wake.set()
        if got.document is not None:
            job = self.store.job(state.id)
            if job is None:
                return
            why = jobs.mismatch(job.payload, job.submission_hash, got.document)
            if why:
                self.store.fail(job.id, f"the worker returned a result for other files: {why}")
                self.on_done(job.id)
            elif self.store.finish(job.id, got.document):
                self.on_done(job.id)
        elif got.state == "FAILURE":
            self.store.fail(state.id, got.error or "the worker failed")
            self.on_done(state.id)
        elif got.state == "STARTED" and state.status != "running":
            self.store.mark_running(state.id)
        elif got.state in ("PENDING", "STARTED") and self._lost(state):
            # neither waiting in the queue (its marker) nor held by a live worker (its lease):
            # Redis lost the message, or the worker died; a queued job, however long the
            # backlog, is never sent twice. A copy that finds a result is not graded again.
            job = self.store.job(state.id)
            if job is not None and job.status not in ("done", "failed"):
                log.warning("job %s is neither queued nor held by a live worker (sent %s): sending it again",
                            job.id, state.sent_at)
                self._resend(job)

    def _lost(self, state: JobState) -> bool:
        """A job sent a while ago (a lease's lifetime: no race with the send itself) that no
        queue marker or worker lease accounts for."""
        held = getattr(self.client, "held", None)
        if held is None:  # a client without leases: the old rule, a timer from the send
            return state.status != "running" and _older_than(state.sent_at, self.client.visibility_timeout)
        return _older_than(state.sent_at, getattr(self.client, "lease_ttl", 15.0)) and not held(state.id)


def _older_than(stamp: str | None, seconds: float) -> bool:
    if not stamp:
        return False
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds() > seconds


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the broker is away", not "this job's entry is bad"."""
    found: list[Any] = [ConnectionError, TimeoutError]
    try:
        import redis.exceptions

        found += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:
        pass
    try:
        import kombu.exceptions

        found.append(kombu.exceptions.OperationalError)
    except ImportError:
        pass
    return tuple(found)
