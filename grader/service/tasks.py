"""Celery: the app factory, the grade task, and the client side that sends and gathers jobs.

Why these settings (see README "Grading as a service"):

- ``json`` is the only serializer accepted anywhere (tasks and results): a message from the
  broker is never unpickled, so a compromised Redis cannot run code on a worker or the API.
- ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a message is acknowledged
  only after its result is stored, so a worker killed mid-job leaves it unacknowledged, and
  the broker hands it to another worker after ``visibility_timeout`` (Redis transport option;
  it must exceed the longest grading, default one hour).
- A :class:`Lease` per job being graded (renewed by a heartbeat) and a queued marker per job
  sent tell the API's collector a queued job from a lost one, so a long backlog is never sent
  twice and a dead worker's job is sent again once its lease runs out (not after an hour);
  a copy of a message whose job is leased is dropped, so two workers never grade one job.
- The task id *is* the job id (derived from the submission hash, ``jobs.job_key``) and the
  task returns early with the stored document when the backend already holds a success for
  it, so a redelivered job is not graded twice; Celery itself never overwrites a SUCCESS.
- Results go back through the result backend only to be persisted by the dispatcher (the
  API's collector into its store, or ``mpgrade grade --broker`` into its output folder);
  ``result_expires`` (7 days) bounds how long a dispatcher may be down.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from grader import grading
from grader.assignment import Assignment
from grader.intake.submission import Submission
from grader.protocol import results
from grader.service import jobs

TASK = "mpgrade.grade"
QUEUE = "mpgrade"
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
RESULT_EXPIRES = 7 * 24 * 3600
INFRA_ATTEMPTS = 3  # gradings of one job when the failure is ours, before it is "not gradable"
LEASE_TTL = 15.0  # seconds a worker's hold on a job lives without a heartbeat
log = logging.getLogger("mpgrade.worker")


def make_celery(broker: str, *, backend: str | None = None,
                visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
                grader: jobs.Grader | None = None) -> Any:
    """A Celery app for ``broker``; with ``grader`` it can also run the grade task (a worker).

    No module-level app: the API, the CLI and each worker build their own from their options.
    """
    from celery import Celery

    app = Celery("mpgrade", broker=broker, backend=backend or broker, set_as_current=False)
    leases = redis_for(broker) if grader is not None else None
    # Redis restores unacknowledged messages on a timer (every interval x throttle seconds):
    # keep that period at most half the visibility timeout (and at most kombu's 100 s).
    interval = min(10.0, max(1.0, visibility_timeout / 4))
    throttle = max(1, int(min(visibility_timeout / 2, 100.0) / interval))
    transport = {"visibility_timeout": visibility_timeout, "unacked_restore_interval": interval,
                 "unacked_restore_throttle": throttle}
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, result_expires=RESULT_EXPIRES, result_extended=False,
        broker_transport_options=transport, result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True, task_default_queue=QUEUE,
    )

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def grade(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        if grader is None:
            raise RuntimeError("this process sends jobs; it cannot grade them")
        earlier = self.AsyncResult(self.request.id)
        if earlier.state == "SUCCESS":  # redelivered after it was done: never grade twice
            return earlier.result
        where = str(self.request.hostname or "a worker")
        if leases is not None and leases.exists(dropped_key(self.request.id)):
            from celery.exceptions import Ignore  # replaced by the student's newer submission

            log.info("job %s was superseded before it was graded; dropped", self.request.id)
            raise Ignore()
        lease = Lease(leases, self.request.id, where)
        if not lease.acquire():  # another live worker grades this job: a duplicate message
            from celery.exceptions import Ignore

            log.warning("job %s is being graded by %s; this copy is dropped", self.request.id, lease.holder())
            raise Ignore()
        claims = lease.claimed()
        if claims > INFRA_ATTEMPTS:  # its workers died this often while grading it
            wanted = payload.get("assignment") or {}
            assignment = grader.assignments.get(str(wanted.get("name")))
            if assignment is not None:
                return jobs.failure_document(
                    assignment, payload, f"the worker grading it was lost {claims - 1} times "
                    "(killed, or its host died)", sandbox=grader.sandbox.name)
        try:
            with lease.kept():
                return grade_with_retries(grader, payload, where=where)
        except Exception as exc:
            from celery.exceptions import Reject

            if isinstance(exc, Reject):  # put back in the queue: another worker may take it at once
                lease.give_back()
            raise

    return app


def redis_for(url: str) -> Any:
    """A Redis client for the leases and queue markers (the broker's own database)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def queued_key(job_id: str) -> str:
    return f"mpgrade:queued:{job_id}"


def lease_key(job_id: str) -> str:
    return f"mpgrade:lease:{job_id}"


def dropped_key(job_id: str) -> str:
    return f"mpgrade:dropped:{job_id}"


def claims_key(job_id: str) -> str:
    return f"mpgrade:claims:{job_id}"


class Lease:
    """A worker's hold on the job it grades: a Redis key that lives ``LEASE_TTL`` seconds and
    that a heartbeat thread renews every ``LEASE_TTL / 3`` while grading.

    This is how a queued job is told from a lost one (not by a timer from enqueue): the API
    sets ``mpgrade:queued:<id>`` before it sends the message; the worker that takes it sets the
    lease (only if nobody holds it) and then deletes the queued marker. A job with neither is
    lost (Redis lost the message, or the worker died and its lease ran out) and is sent again;
    a copy of a message whose job is leased is dropped, so two workers never grade one job.
    """

    def __init__(self, redis: Any, job_id: str, owner: str, ttl: float | None = None) -> None:
        self.redis, self.job_id, self.owner = redis, job_id, owner
        self.ttl = ttl or LEASE_TTL

    def acquire(self) -> bool:
        """Take the lease unless another worker holds it; then the job is no longer queued."""
        if self.redis is None:
            return True
        got = self.redis.set(lease_key(self.job_id), self.owner, nx=True, px=int(self.ttl * 1000))
        if got:
            self.redis.delete(queued_key(self.job_id))
        return bool(got)

    def holder(self) -> str:
        value = self.redis.get(lease_key(self.job_id)) if self.redis is not None else None
        return value.decode(errors="replace") if value else "another worker"

    def claimed(self) -> int:
        """How many times a worker has taken this job (this time included)."""
        if self.redis is None:
            return 1
        key = claims_key(self.job_id)
        count = int(self.redis.incr(key))
        self.redis.expire(key, RESULT_EXPIRES)
        return count

    def give_back(self) -> None:
        """The job goes back to the queue (the worker is stopping): queued again, lease gone."""
        if self.redis is not None:
            self.redis.set(queued_key(self.job_id), self.owner, ex=RESULT_EXPIRES)
            self.redis.delete(lease_key(self.job_id))

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Renew the lease while the block runs. It is not deleted at the end: it runs out by
        itself, after Celery has stored the result, so no copy slips in between."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self.redis.set(lease_key(self.job_id), self.owner, px=int(self.ttl * 1000))
                except Exception:  # Redis away for a moment: the next beat tries again
                    log.warning("renewing the lease of job %s failed", self.job_id)

        thread = None
        if self.redis is not None:
            thread = threading.Thread(target=beat, name=f"mpgrade-lease-{self.job_id[:8]}", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=5)


def grade_with_retries(grader: jobs.Grader, payload: dict[str, Any], where: str = "a worker",
                       attempts: int = INFRA_ATTEMPTS, pause: float = 1.0) -> dict[str, Any]:
    """Grade, and grade again when the failure is ours (a killed container, an engine error),
    at most ``attempts`` times; then the document is ``gradable: false``, never a plain 0."""
    for attempt in range(1, attempts + 1):
        doc = grader.grade(payload)
        if doc is None:  # the sandbox was closed: the worker is stopping; let another one grade it
            from celery.exceptions import Reject

            raise Reject("the worker stopped while grading", requeue=True)
        if jobs.fault_of(doc) != "infrastructure":
            return jobs.classified(doc)
        if attempt < attempts:
            log.warning("grading failed for reasons that are not the student's (%s); again (%d of %d)",
                        str(doc.get("message"))[:300], attempt + 1, attempts)
            time.sleep(pause)
    return jobs.not_gradable(doc, f"tried {attempts} times on {where}")


def ping(app: Any, timeout: float = 5.0) -> None:
    """Raise ConnectionError unless the broker answers (one line for the CLI, not a retry loop)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise ConnectionError(f"the broker does not answer ({type(exc).__name__}: {exc})") from None


@dataclass
class Poll:
    """Where a job is, seen from the dispatcher."""

    state: str  # PENDING, STARTED, SUCCESS, FAILURE, RETRY, REVOKED
    document: dict[str, Any] | None = None
    error: str | None = None


def batch_salt(options: grading.Options) -> str:
    """What keys a ``mpgrade grade --broker`` job besides the files: its grading options, so a
    run with another start method or timeout does not pick up results made with the old ones."""
    return f"batch:{options.start_method or ''}:{options.timeout or ''}"


class Client:
    """The sending side: enqueue jobs by id and read their state, for the API and the CLI."""

    def __init__(self, broker: str, *, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT) -> None:
        self.app = make_celery(broker, visibility_timeout=visibility_timeout)
        self.visibility_timeout = visibility_timeout
        self.redis = redis_for(broker)
        self.lease_ttl = LEASE_TTL

    def held(self, job_id: str) -> bool:
        """Whether the job is still queued (its marker is there) or a live worker holds it (its
        lease is there). False means lost: no copy of it is waiting or being graded."""
        return bool(self.redis.exists(queued_key(job_id), lease_key(job_id)))

    def waiting(self, job_ids: list[str]) -> int:
        """How many of these sent jobs still wait in the broker: their queued marker is there
        (the worker that takes a job deletes it), so a job being graded is not counted."""
        if not job_ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.exists(queued_key(job_id))
        return sum(1 for found in pipe.execute() if found)

    def ping(self, timeout: float = 5.0) -> None:
        ping(self.app, timeout)

    def drop(self, job_id: str) -> None:
        """A queued job is not to be graded (superseded): the worker that gets it drops it."""
        self.redis.set(dropped_key(job_id), "superseded", ex=RESULT_EXPIRES)
        self.redis.delete(queued_key(job_id))

    def send(self, job_id: str, payload: dict[str, Any]) -> None:
        # the marker first: from now until a worker leases it, the job counts as queued
        self.redis.set(queued_key(job_id), "queued", ex=RESULT_EXPIRES)
        self.redis.delete(dropped_key(job_id))
        self.app.send_task(TASK, args=[payload], task_id=job_id, queue=QUEUE)
        # send_task subscribes this process to the task's result channel (for result.get());
        # results are polled here instead, so unsubscribe now rather than hold one Redis
        # subscription per job for as long as the process lives
        consumer = getattr(self.app.backend, "result_consumer", None)
        if consumer is not None and hasattr(consumer, "cancel_for"):
            consumer.cancel_for(job_id)

    def forget(self, job_id: str) -> None:
        """Drop the backend's entry for a job (before sending it again after a failure)."""
        self.app.backend.forget(job_id)

    def poll(self, job_id: str) -> Poll:
        """The job's state; a SUCCESS document is validated here (the broker is not trusted)."""
        res = self.app.AsyncResult(job_id)
        state = res.state
        if state == "SUCCESS":
            try:
                return Poll(state, document=results.validate(res.result))
            except results.InvalidResult as exc:
                return Poll("FAILURE", error=f"the worker returned an invalid document: {exc}")
        if state == "FAILURE":
            return Poll(state, error=f"{type(res.result).__name__}: {str(res.result)[:400]}")
        return Poll(state)

    def grade_function(self, assignment: Assignment, options: grading.Options, *, force: bool,
                       sandbox_name: str, stop: threading.Event,
                       interval: float = 0.5) -> Callable[[Submission], dict[str, Any] | None]:
        """``sub -> document`` for ``grader.batch.run``: send the job, wait for its result.

        Jobs are keyed by submission id and hash and the grading options, so re-running a
        batch finds results the workers already produced with the same options; ``force``
        makes every job new. A job whose earlier attempt failed is forgotten and sent again.
        None when ``stop`` is set.
        """
        salt = f"force:{uuid.uuid4().hex}" if force else batch_salt(options)

        def grade_one(sub: Submission) -> dict[str, Any] | None:
            payload = jobs.to_payload(assignment, sub, options)
            job_id = jobs.job_key(assignment, sub.id, sub.hash, salt)
            earlier = self.poll(job_id).state
            if earlier != "SUCCESS":
                if earlier != "PENDING":  # an old FAILURE (or a half-done try): start afresh
                    self.forget(job_id)
                self.send(job_id, payload)
            while not stop.is_set():
                got = self.poll(job_id)
                if got.document is not None:
                    return got.document
                if got.state in ("FAILURE", "REVOKED"):
                    return jobs.failure_document(
                        assignment, payload, f"no worker could grade it: {got.error or got.state}",
                        sandbox=sandbox_name)
                stop.wait(interval)
            return None

        return grade_one

