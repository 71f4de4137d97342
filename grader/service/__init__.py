"""Grading as a service: an HTTP API for LMSs, an embedded worker, Celery workers.

The service sits beside ``grader.batch`` in the layers (CLI -> batch / check / service ->
grading -> sandbox -> ...): it turns an upload into a :class:`grader.intake.submission.Submission`
with the same hostile-archive checks as ``mpgrade grade``, grades it with
``grader.grading.grade`` (in-process threads, or Celery workers on other hosts) and keeps every
job and result in a store (:mod:`grader.service.store`), never only in Redis.

Modules: ``jobs`` (what a job carries, grading one, whose failure a result is), ``store``
(SQLite or PostgreSQL), ``auth`` (per-course bearer tokens), ``runner`` (the embedded worker
threads, the Celery collector), ``tasks`` (Celery app, the grade task, leases), ``callbacks``
(POSTing results to LMS callback URLs: the egress policy, per-destination delivery),
``serving`` (how uvicorn bounds slow clients), ``openapi`` (the response schemas),
``metrics`` (Prometheus), ``api`` (the FastAPI app factory), and the package ``lti`` (the LTI 1.3
tool: launches, roster, gradebook; docs/lti.md). Needs the ``service`` extra: ``pip install 'mpgrade[service]'``.
"""
