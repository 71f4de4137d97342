"""``make check``: a student's working copy against the public tests, on their own machine.

Runs through the same job / harness / sandbox path as real grading (the local sandbox), so a
student sees exactly the feedback format graders use. It never claims more than it knows: the
document is a public one, and the table ``mpgrade check`` shows (``grader.cli.render``) says
how many points are still to be decided by hidden tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grader import grading
from grader.assignment import Assignment
from grader.atomic import write_atomic
from grader.intake.submission import Submission
from grader.sandbox.local import LocalSandbox

DEFAULT_JSON = Path(".mpgrade") / "check.json"


def working_copy(assignment: Assignment, exercises: tuple[str, ...] = ()) -> Submission:
    """The student's files as they are in ``exercises/NN_name/``."""
    sub = Submission(id="working-copy", source=str(assignment.root / "exercises"))
    for ex in assignment.exercises:
        if exercises and ex.id not in exercises:
            continue
        for name in ex.files:
            path = ex.public_dir / name
            if path.is_file() and not path.is_symlink():
                sub.files[name] = path.read_bytes()
            else:
                sub.missing.append(f"exercises/{ex.id}/{name}")
    return sub


def run_check(assignment: Assignment, exercises: tuple[str, ...] = (),
              start_method: str | None = None) -> dict[str, Any]:
    for ex_id in exercises:
        assignment.exercise(ex_id)  # unknown ids fail early with the list of known ones
    sub = working_copy(assignment, exercises)
    options = grading.Options(scope="public", exercises=exercises, start_method=start_method)
    with LocalSandbox() as sandbox:
        doc = grading.grade(sandbox, assignment, sub, options)
    assert doc is not None  # only a cancelled run gives None, and check never cancels
    return doc


def write_json(doc: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")


def all_public_passed(doc: dict[str, Any]) -> bool:
    return doc["status"] == "graded" and bool(doc["tests"]) and all(
        t["outcome"] == "passed" for t in doc["tests"])
