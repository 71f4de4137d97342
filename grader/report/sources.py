"""The code behind each result, for the similarity page, read with the grading intake.

A hostile zip is read with the same caps and refusals as when it was graded, and only code
whose hash is the one that was graded is compared: a report never compares files that changed
since, and never runs any of them.
"""

from __future__ import annotations

from pathlib import Path

from grader.assignment import Assignment
from grader.intake.discovery import discover
from grader.report.model import ClassResults
from grader.report.similarity import exercise_code


def collect_code(klass: ClassResults, assignment: Assignment,
                 paths: list[Path]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Each student's code per exercise, and notes on what was not used.

    ``paths`` are the submissions to read (as given to ``mpgrade grade``); without them each
    document's own ``submission.source`` is read when it still exists (relative to the current
    folder or the assignment's). Code whose hash differs from the graded one is not used.
    """
    wanted = {st.id: st.doc["submission"]["hash"] for st in klass.students}
    notes: list[str] = []
    found = {}
    if paths:
        subs, _ = discover(paths, assignment)
        found = {sub.id: sub for sub in subs}
    else:
        sources: dict[Path, None] = {}
        for st in klass.students:
            source = st.doc["submission"].get("source")
            if not source:
                continue
            for base in (Path.cwd(), assignment.root):
                candidate = base / source
                if candidate.exists():
                    sources[candidate] = None
                    break
        for source in sources:
            subs, _ = discover([source], assignment)
            for sub in subs:
                found.setdefault(sub.id, sub)
    code: dict[str, dict[str, str]] = {}
    for sid, graded_hash in wanted.items():
        sub = found.get(sid)
        if sub is None:
            continue
        if sub.hash != graded_hash:
            notes.append(f"{sid}: the files changed since they were graded; not compared")
            continue
        files = {name: data.decode("utf-8", "replace") for name, data in sub.files.items()}
        code[sid] = exercise_code(assignment, files)
    return code, notes
