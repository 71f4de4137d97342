"""``make check``: a student's working copy against the public tests, on their own machine.

Runs through the same job / harness / sandbox path as real grading (the local sandbox), so a
student sees exactly the feedback format graders use. It never claims more than it knows: the
summary says how many points are still to be decided by hidden tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader import grading
from grader.assignment import Assignment
from grader.atomic import write_atomic
from grader.escaping import shown
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


def render(doc: dict[str, Any], assignment: Assignment, console: Console) -> None:
    """The student's table and failures. Messages, hints and output come from the student's
    code (an exception can say anything), so every text is escaped and never read as markup."""
    table = Table(title=shown(f"{assignment.title} — public tests"), title_justify="left")
    table.add_column("Exercise")
    table.add_column("Public points", justify="right")
    table.add_column("Tests", justify="right")
    table.add_column("Still to be graded", justify="right")
    table.add_column("Status")
    hidden_total = 0.0
    for ex in doc["exercises"]:
        hidden = max(ex.get("points", 0) - ex["max_score"], 0)
        hidden_total += hidden
        ok = ex["tests_total"] and ex["tests_passed"] == ex["tests_total"]
        status = shown("ok", "green") if ok else shown(ex.get("message") or "failing tests", "red")
        table.add_row(shown(f"{ex['name']} {ex.get('title', '')}"), f"{ex['score']:g} / {ex['max_score']:g}",
                      f"{ex['tests_passed']}/{ex['tests_total']}", f"{hidden:g} pts (hidden)", status)
    console.print(table)
    failing = [t for t in doc["tests"] if t["outcome"] != "passed"]
    for t in failing:
        console.print(shown(f"✗ {t['exercise']}: {t['name']}  [{t['outcome']}]", "bold red"))
        for line in t["message"].splitlines()[:12]:
            console.print(shown(f"    {line}", multiline=True))
        if t.get("hint"):
            console.print(shown(f"    hint: {t['hint']}", "yellow"))
    if doc["status"] != "graded":
        console.print(shown(f"The check could not run: {doc['message']}", "bold red"))
    passed = sum(t["outcome"] == "passed" for t in doc["tests"])
    summary = (f"Public tests: {passed}/{len(doc['tests'])} passed, {doc['score']:g}/{doc['max_score']:g} points. "
               f"Hidden tests worth {hidden_total:g} more points run only when your work is graded.")
    style = "green" if all_public_passed(doc) else "red"
    console.print(Text(summary, style=style))
