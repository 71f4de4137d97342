"""``make check`` (grader.check): what a student's local run of the public tests claims.

A check runs only the public tests, so every document it produces, an error or a timeout
included, says ``"scope": "public"`` and counts only the public points: a timed-out check that
claimed the whole assignment's maximum would tell a student that hidden tests ran.
"""

from __future__ import annotations

import pytest

from grader import check, grading
from grader.protocol import results
from grader.sandbox.base import Outcome

PUBLIC_POINTS = 5  # each bundled exercise: 5 public points of 25 (README "The exercises")


class TimesOut:
    name = "local"

    def __init__(self, *args, **kwargs):
        pass

    def run(self, job):
        return Outcome(exit_status=None, stdout=b"", timed_out=True)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Breaks(TimesOut):
    def run(self, job):
        raise RuntimeError("the sandbox went away")


@pytest.mark.parametrize(("sandbox", "status"), [(TimesOut, "timeout"), (Breaks, "error")])
@pytest.mark.parametrize("exercises", [(), ("02_pingpong",)])
def test_a_check_that_fails_keeps_its_public_scope_and_maximum(course, monkeypatch, sandbox, status, exercises):
    monkeypatch.setattr(check, "LocalSandbox", sandbox)
    doc = check.run_check(course, exercises)
    results.validate(doc)
    wanted = exercises or tuple(ex.id for ex in course.exercises)
    assert doc["status"] == status and doc["score"] == 0
    assert doc["scope"] == "public"
    assert [ex["name"] for ex in doc["exercises"]] == list(wanted)
    assert all(ex["max_score"] == PUBLIC_POINTS and ex["points"] == 25 for ex in doc["exercises"])
    assert doc["max_score"] == PUBLIC_POINTS * len(wanted)


def test_the_last_resort_document_keeps_the_scope_too(course, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no error document today")

    monkeypatch.setattr(results, "error_document", broken)
    monkeypatch.setattr(check, "LocalSandbox", Breaks)
    doc = check.run_check(course, ("01_spawn",))
    results.validate(doc)
    assert doc["scope"] == "public" and doc["status"] == "error"


def test_the_public_points_are_read_from_the_tests_without_running_them(course):
    assert [ex.public_points() for ex in course.exercises] == [PUBLIC_POINTS] * len(course.exercises)


def test_a_grade_that_fails_still_claims_every_point(course):
    doc = grading.grade(Breaks(), course, check.working_copy(course))
    results.validate(doc)
    assert doc["scope"] == "all" and doc["max_score"] == course.max_score


def test_the_library_call_leaves_its_caller_as_it_was(course):
    """run_check in a test run or a service must not make the caller a child subreaper (orphans
    of later, unrelated work would become its unreaped zombies) nor kill its other children;
    only the `mpgrade check` command, a process of its own, reaps everything it leaves."""
    import ctypes
    import subprocess
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        check.run_check(course, ("01_spawn",))
        flag = ctypes.c_int(-1)
        assert ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
        assert flag.value == 0, "run_check left this process a child subreaper"
        assert bystander.poll() is None, "run_check killed a child it did not start"
    finally:
        bystander.kill()
        bystander.wait()
