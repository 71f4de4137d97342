"""What a grading job carries and how one is graded, shared by the embedded worker and Celery.

A job's payload is plain JSON: the submission's whitelisted module files (base64), the
metadata of ``Submission.describe()``, the assignment's name and fingerprint and the grading
options. It never holds the client's archive (the API unpacks and checks that, with
``grader.submission``'s hostile-zip rules, before anything is queued) and never a pickle, so a
Celery message or a stored job can be read by a worker on another host with ``json.loads``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grader import grading, results
from grader.assignment import Assignment
from grader.sandbox.base import Sandbox
from grader.submission import Submission

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
        rather than grading it against other tests: the caller sees UnknownAssignment.
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
        sub = submission_of(payload)
        opts = payload.get("options") or {}
        options = grading.Options(scope="all", start_method=opts.get("start_method"),
                                  timeout=opts.get("timeout"))
        return grading.grade(self.sandbox, assignment, sub, options)


def failure_document(assignment: Assignment, payload: Mapping[str, Any], message: str,
                     sandbox: str = "local") -> dict[str, Any]:
    """Score 0 with the reason, for a job no worker could grade (so the LMS still gets an answer)."""
    sub = submission_of(payload)
    return results.validate(results.error_document(
        assignment, sub.describe(), status="error", message=message[:500], sandbox=sandbox,
        start_method=(payload.get("options") or {}).get("start_method") or assignment.start_method,
        started_at=results.now()))
