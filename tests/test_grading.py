"""The error policy of grading one submission: whatever the sandbox does, a valid document."""

from __future__ import annotations

from grader import grading
from grader.intake.submission import Submission
from grader.protocol import results
from grader.sandbox.base import Outcome


class Broken:
    name = "local"

    def run(self, job):
        raise RuntimeError("the daemon went away")

    def close(self):
        pass


class Forger:
    """A sandbox whose output carries a perfect score under the wrong nonce."""

    name = "local"

    def run(self, job):
        doc = '{"score": 100}'
        return Outcome(exit_status=0, stdout=f"\nMPGRADE-RESULT-BEGIN guess\n{doc}\nMPGRADE-RESULT-END guess\n".encode())

    def close(self):
        pass


def submission() -> Submission:
    return Submission(id="sam", source="test", files={"spawn.py": b"x = 1\n"})


def test_a_sandbox_that_fails_is_an_error_for_that_submission_only(course):
    doc = grading.grade(Broken(), course, submission())
    results.validate(doc)
    assert doc["status"] == "error" and doc["score"] == 0
    assert "the daemon went away" in doc["message"]


def test_a_result_without_this_runs_nonce_is_refused(course):
    doc = grading.grade(Forger(), course, submission())
    results.validate(doc)
    assert doc["status"] == "error" and doc["score"] == 0
    assert "nonce" in doc["message"]


def test_an_error_document_that_cannot_be_built_falls_back_to_a_minimal_valid_one(course, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no error document today")

    monkeypatch.setattr(results, "error_document", broken)
    doc = grading.grade(Broken(), course, submission())
    results.validate(doc)
    assert doc["status"] == "error" and doc["score"] == 0
    assert "the daemon went away" in doc["message"] and "no error document today" in doc["message"]
    assert doc["submission"] == {"id": "sam", "hash": submission().hash}
