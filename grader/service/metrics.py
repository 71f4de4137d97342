"""Prometheus metrics for ``mpgrade serve --metrics`` (``GET /metrics``).

What a deadline night needs to be watched by: queue depth per course and status (read from
the store at each scrape, so several API processes on one database agree), how long jobs wait
before grading and how long grading takes (histograms per course), outcomes per course
(graded, error, timeout, not gradable, failed) and callback outcomes. A registry per app (no
global state), built with the maintained ``prometheus-client`` library, which also writes the
text exposition format. docs/service.md "Metrics" has the queries of a deadline dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from grader.service.store import FAILED, JobRow, Store

WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
GRADE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (b - a).total_seconds())


class _Queue:
    """A collector that reads the jobs per course and status from the store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        jobs = GaugeMetricFamily("mpgrade_jobs", "Jobs in the store by course and status "
                                 "(queued is the queue depth).", labels=["course", "status"])
        for course, status, n in self.store.counts():
            jobs.add_metric([course, status], n)
        yield jobs


class Metrics:
    """The app's metrics; :meth:`finished` and :meth:`delivered` are called by the service."""

    def __init__(self, store: Store) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.wait = Histogram("mpgrade_wait_seconds", "Seconds from receiving a job to starting to grade it.",
                              ["course"], buckets=WAIT_BUCKETS, registry=self.registry)
        self.grade = Histogram("mpgrade_grade_seconds", "Seconds a grading took.", ["course"],
                               buckets=GRADE_BUCKETS, registry=self.registry)
        self.outcomes = Counter("mpgrade_outcomes", "Finished jobs by course and outcome (graded, error, "
                                "timeout, not_gradable, failed).", ["course", "outcome"], registry=self.registry)
        self.callbacks = Counter("mpgrade_callbacks", "Callback deliveries by outcome (delivered, refused, "
                                 "failed, blocked, withheld).", ["outcome"], registry=self.registry)
        self.registry.register(_Queue(store))

    def finished(self, job: JobRow, document: dict[str, Any] | None) -> None:
        """Count a job that has its outcome, and observe how long it waited and graded."""
        if job.status == FAILED or document is None:
            outcome = "failed"
        elif document.get("gradable") is False:
            outcome = "not_gradable"
        else:
            outcome = str(document.get("status") or "error")
        self.outcomes.labels(job.course, outcome).inc()
        # with --broker the store learns of a start only if the collector saw it (a short
        # grading can go from queued to done between two polls): the document says when
        started = job.started_at or (document or {}).get("started_at")
        waited = _seconds(job.created_at, started)
        if waited is not None:
            self.wait.labels(job.course).observe(waited)
        took = _seconds(started, job.finished_at)
        if took is not None and job.status != FAILED:
            self.grade.labels(job.course).observe(took)

    def delivered(self, status: str) -> None:
        self.callbacks.labels(status.split(":", 1)[0].strip() or "unknown").inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
