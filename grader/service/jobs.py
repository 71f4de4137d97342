"""What a grading job carries and how one is graded, shared by the embedded worker and Celery.

A job's payload is plain JSON: the submission's whitelisted module files (base64), the
metadata of ``Submission.describe()``, the assignment's name and fingerprint and the grading
options. It never holds the client's archive (the API unpacks and checks that, with
``grader.intake.submission``'s hostile-zip rules, before anything is queued) and never a pickle, so a
Celery message or a stored job can be read by a worker on another host with ``json.loads``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grader import grading
from grader.assignment import START_METHODS, Assignment
from grader.intake.submission import Submission
from grader.protocol import results
from grader.sandbox.base import Sandbox

PAYLOAD_VERSION = 1


def job_key(assignment: Assignment, student: str, submission_hash: str, salt: str = "") -> str:
    """A job id derived from what is graded: the same files by the same student for the same
    assignment and tests give the same id, so a re-sent or redelivered job is recognised.

    ``salt`` makes a deliberate regrade (``--force``) a new job.
    """
    h = hashlib.sha256()
    for part in (assignment.name, assignment.fingerprint(), student, submission_hash, salt):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def to_payload(assignment: Assignment, sub: Submission, options: grading.Options) -> dict[str, Any]:
    """The JSON a job travels as (queue message, stored job)."""
    return {
        "version": PAYLOAD_VERSION,
        "assignment": {"name": assignment.name, "version": assignment.version,
                       "fingerprint": assignment.fingerprint()},
        "submission": {
            "id": sub.id, "source": sub.source, "student": sub.student, "error": sub.error,
            "missing": list(sub.missing), "ignored": list(sub.ignored),
            "files": {name: base64.b64encode(data).decode("ascii") for name, data in sub.files.items()},
        },
        "options": {"start_method": options.start_method, "timeout": options.timeout},
    }


def submission_of(payload: Mapping[str, Any]) -> Submission:
    """The submission back from a payload; only strings and base64 are read."""
    s = payload["submission"]
    files = {str(name): base64.b64decode(data, validate=True) for name, data in s["files"].items()}
    return Submission(id=str(s["id"]), source=str(s["source"]), files=files,
                      missing=[str(m) for m in s.get("missing", [])],
                      ignored=[{"path": str(i["path"]), "reason": str(i["reason"])} for i in s.get("ignored", [])],
                      error=s.get("error"), student=s.get("student"))


class UnknownAssignment(LookupError):
    """This worker does not have the job's assignment (or has another version of its tests)."""


class BadPayload(ValueError):
    """A job this worker refuses to grade: files the assignment does not take, odd options.

    The broker is not trusted: a forged message must not smuggle a ``conftest.py`` next to the
    tests or ask for a sandbox wall clock of a week.
    """




def checked_options(assignment: Assignment, payload: Mapping[str, Any]) -> grading.Options:
    """The job's grading options, refused unless they are ones the API itself would send."""
    opts = payload.get("options") or {}
    if not isinstance(opts, Mapping):
        raise BadPayload("the job's options are not an object")
    start_method = opts.get("start_method")
    if start_method is not None and start_method not in START_METHODS:
        raise BadPayload(f"start method {str(start_method)[:40]!r} is not one of {', '.join(START_METHODS)}")
    timeout = opts.get("timeout")
    if timeout is not None:
        limit = assignment.limits.submission_timeout
        if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                or not 0 < float(timeout) <= limit):
            raise BadPayload(f"timeout {str(timeout)[:40]!r} is not a number of seconds in (0, {limit:g}]")
        timeout = float(timeout)
    return grading.Options(scope="all", start_method=start_method, timeout=timeout)


def checked_submission(assignment: Assignment, payload: Mapping[str, Any]) -> Submission:
    """The job's submission, refused if it carries a file the assignment does not take."""
    try:
        names = list(payload["submission"]["files"])
    except (KeyError, TypeError) as exc:
        raise BadPayload(f"the job has no submission files ({type(exc).__name__})") from None
    allowed = set(assignment.submitted_files)
    stray = [str(n) for n in names if n not in allowed]
    if stray:
        raise BadPayload(f"the job carries files the assignment does not take: {', '.join(stray)[:200]}")
    try:
        return submission_of(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadPayload(f"the job's submission cannot be read ({type(exc).__name__})") from None


def mismatch(payload: Mapping[str, Any], submission_hash: str, document: Mapping[str, Any]) -> str | None:
    """Why a result document returned for a job is not about that job's files, or None.

    The API checks this before it stores a document from the result backend: a forged or
    crossed entry must not land on another student's job."""
    wanted = payload.get("assignment") or {}
    got_sub, got_assignment = document.get("submission") or {}, document.get("assignment") or {}
    if got_sub.get("hash") != submission_hash:
        return f"submission hash {str(got_sub.get('hash'))[:20]} instead of {submission_hash[:20]}"
    if got_assignment.get("name") != wanted.get("name"):
        return f"assignment {str(got_assignment.get('name'))[:64]!r} instead of {wanted.get('name')!r}"
    if got_assignment.get("fingerprint") != wanted.get("fingerprint"):
        return "another version of the assignment's tests"
    return None


@dataclass
class Grader:
    """A worker's means to grade: its assignments (by name) and its sandbox.

    Used by the embedded worker threads of ``mpgrade serve`` and by ``mpgrade worker``.
    """

    assignments: Mapping[str, Assignment]
    sandbox: Sandbox

    def grade(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """A validated result document for the job, None if the sandbox was closed meanwhile.

        A worker whose copy of the assignment differs (another fingerprint) refuses the job
        rather than grading it against other tests: the caller sees UnknownAssignment. A job
        with files the assignment does not take, or options out of bounds, is BadPayload.
        """
        wanted = payload["assignment"]
        assignment = self.assignments.get(wanted["name"])
        if assignment is None:
            raise UnknownAssignment(f"this worker has no assignment {wanted['name']!r} "
                                    f"(it has {', '.join(sorted(self.assignments)) or 'none'})")
        if assignment.fingerprint() != wanted["fingerprint"]:
            raise UnknownAssignment(f"this worker's copy of {wanted['name']!r} has other tests "
                                    f"(fingerprint {assignment.fingerprint()[:19]}, the job wants "
                                    f"{str(wanted['fingerprint'])[:19]}); deploy the same assignment folder")
        sub = checked_submission(assignment, payload)
        options = checked_options(assignment, payload)
        return grading.grade(self.sandbox, assignment, sub, options)


def failure_document(assignment: Assignment, payload: Mapping[str, Any], message: str,
                     sandbox: str = "local") -> dict[str, Any]:
    """The answer for a job no worker could grade (so the LMS still hears of it): status
    error, ``gradable: false``, fault ``infrastructure``; its score 0 is not a grade."""
    sub = submission_of(payload)
    return not_gradable(results.validate(results.error_document(
        assignment, sub.describe(), status="error", message=message[:500], sandbox=sandbox,
        start_method=(payload.get("options") or {}).get("start_method") or assignment.start_method,
        started_at=results.now())))


# What grading.grade writes when the failure is ours, not the submission's. A container that
# ends by SIGKILL or SIGTERM (137, 143) without the OOM flag was killed from outside: the
# student's processes cannot kill the container's init.
_OUR_FAILURES = ("the sandbox failed", "the grader failed", "no worker could grade it",
                 "grading was interrupted")
_KILLED_FROM_OUTSIDE = ("(exit status 137)", "(exit status 143)")


def fault_of(document: Mapping[str, Any]) -> str | None:
    """Whose failure a document's status is: None for a grade, ``infrastructure`` for ours (a
    killed container, an engine or grader error, a lost worker), ``student`` for the rest (a
    bad archive, a timeout, memory, a report the submission broke)."""
    if document.get("fault") in ("student", "infrastructure"):
        return str(document["fault"])
    status = document.get("status")
    if status == "graded":
        return None
    if status == "timeout":
        return "student"
    message = str(document.get("message") or "")
    if message.startswith(_OUR_FAILURES) or (message.startswith("no valid result came out of the sandbox")
                                             and any(k in message for k in _KILLED_FROM_OUTSIDE)):
        return "infrastructure"
    return "student"


def not_gradable(document: dict[str, Any], note: str | None = None) -> dict[str, Any]:
    """``document`` marked as no grade: ``gradable: false``, fault ``infrastructure``."""
    doc = dict(document)
    doc["gradable"], doc["fault"] = False, "infrastructure"
    if note:
        doc["message"] = results.cut(f"{doc.get('message') or ''} ({note})".strip(), results.MAX_TEXT)
    return results.validate(doc)


def classified(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``fault`` set when its status is not graded (whose failure it is)."""
    fault = fault_of(document)
    if fault is None or document.get("fault") == fault:
        return document
    return results.validate({**document, "fault": fault})
