"""Grading many submissions: in parallel, resumable, every write atomic.

One submission's fate never touches another's: every failure is a result document, a killed
run leaves only whole files behind, and re-running the same command skips submissions whose
files, assignment and grader are unchanged.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import statistics
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader import __version__, grading
from grader.assignment import Assignment
from grader.atomic import write_atomic
from grader.escaping import spreadsheet_row
from grader.intake.discovery import discover
from grader.intake.submission import Submission
from grader.protocol import results
from grader.protocol.outputs import SCORES, SUMMARY, result_file
from grader.sandbox.base import Sandbox

__all__ = ["SCORES", "SUMMARY", "Batch", "previous_result", "result_file", "run", "scores_csv", "write_outputs"]


def previous_result(out_dir: Path, sub: Submission, assignment: Assignment,
                    fingerprint: str) -> dict[str, Any] | None:
    """An earlier result that still holds: same files, same assignment, same grader, and the
    same tests: ``fingerprint`` is the batch's, hashed once for all its submissions."""
    path = out_dir / result_file(sub.id)
    try:
        doc = results.validate(json.loads(path.read_text()))
    except (OSError, ValueError, results.InvalidResult):
        return None
    same = (
        doc["submission"].get("id") == sub.id
        and doc["submission"].get("hash") == sub.hash
        and doc["assignment"].get("version") == assignment.version
        and doc["assignment"].get("fingerprint") == fingerprint
        and doc["grader"].get("version") == __version__
        and doc.get("scope") == "all"
    )
    return doc if same else None


@dataclass
class Batch:
    """What happened: every submission's document (graded now or earlier) and what was skipped."""

    id: str
    out_dir: Path
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    started_at: str = field(default_factory=results.now)
    written: dict[str, Any] | None = None  # the summary.json :func:`run` wrote when it ended

    def summary(self, assignment: Assignment) -> dict[str, Any]:
        rows = [
            {"id": sid, "score": d["score"], "max_score": d["max_score"], "status": d["status"],
             "duration": d.get("duration", 0.0), "file": result_file(sid), "reused": sid in self.reused,
             "message": d["message"][:300]}
            for sid, d in sorted(self.documents.items())
        ]
        scores = [r["score"] for r in rows]
        return {
            "batch_id": self.id,
            "assignment": {"name": assignment.name, "version": assignment.version},
            "grader": {"name": "mpgrade", "version": __version__},
            "started_at": self.started_at,
            "finished_at": results.now(),
            "interrupted": self.interrupted,
            "submissions": rows,
            "skipped": self.skipped,
            "totals": {
                "submissions": len(rows),
                "graded": sum(r["status"] == "graded" for r in rows),
                "error": sum(r["status"] == "error" for r in rows),
                "timeout": sum(r["status"] == "timeout" for r in rows),
                "reused": len(self.reused),
                "max_score": assignment.max_score,
                "mean": round(statistics.fmean(scores), 3) if scores else None,
                "median": statistics.median(scores) if scores else None,
            },
        }


def scores_csv(documents: dict[str, dict[str, Any]]) -> bytes:
    """``scores.csv``: id, score, max_score, status, one column per exercise.

    Instructors open it in a spreadsheet, and the id is the student's folder or zip name: every
    text cell is neutralised (OWASP CSV Injection, ``grader.escaping.spreadsheet_cell``) and
    always encodable, while the scores stay numbers.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    exercise_names = []
    for d in documents.values():
        for ex in d["exercises"]:
            if ex["name"] not in exercise_names:
                exercise_names.append(ex["name"])
    writer.writerow(spreadsheet_row(["id", "score", "max_score", "status", *exercise_names]))
    for sid, d in sorted(documents.items()):
        per = {ex["name"]: ex["score"] for ex in d["exercises"]}
        writer.writerow(spreadsheet_row([sid, d["score"], d["max_score"], d["status"],
                                         *(per.get(n, "") for n in exercise_names)]))
    return buf.getvalue().encode()


def write_outputs(batch: Batch, assignment: Assignment) -> dict[str, Any]:
    """Write ``summary.json`` and ``scores.csv`` of the batch and return the summary.

    :func:`run` calls it once, when the batch ends however it ends; what a caller shows is
    ``batch.written``, the summary as it is in the file.
    """
    summary = batch.summary(assignment)
    write_atomic(batch.out_dir / SUMMARY, json.dumps(summary, indent=2).encode() + b"\n")
    write_atomic(batch.out_dir / SCORES, scores_csv(batch.documents))
    return summary


Event = Callable[[str, Submission, dict[str, Any] | None], None]


def run(
    paths: list[Path],
    out_dir: Path,
    assignment: Assignment,
    sandbox: Sandbox | None,
    *,
    jobs: int = 1,
    options: grading.Options | None = None,
    force: bool = False,
    on_event: Event | None = None,
    stop: threading.Event | None = None,
    grade_one: Callable[[Submission], dict[str, Any] | None] | None = None,
) -> Batch:
    """Grade every submission under ``paths`` into ``out_dir``.

    ``on_event(kind, submission, doc)`` is called with kind "found", "reused", "started" and
    "done" (from worker threads for the last two). Setting ``stop`` (or Ctrl-C in the caller,
    which should then call ``sandbox.close()``) ends the batch early; finished results are kept.
    ``grade_one(submission)`` replaces grading in ``sandbox`` (which may then be None): how
    ``mpgrade grade --broker`` lets Celery workers grade while this loop keeps the outputs.

    The tests are fingerprinted once, here: every document of the batch and the resume check
    use that one snapshot (``Options.fingerprint``). ``summary.json`` and ``scores.csv`` are
    written once, when the batch ends, interrupted or not; the summary is ``batch.written``.
    """
    if sandbox is None and grade_one is None:
        raise ValueError("batch.run needs a sandbox or a grade_one function")
    options = options or grading.Options()
    fingerprint = options.fingerprint or assignment.fingerprint()
    options = replace(options, fingerprint=fingerprint)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = Batch(id=uuid.uuid4().hex[:12], out_dir=out_dir)
    submissions, batch.skipped = discover(paths, assignment)
    emit = on_event or (lambda kind, sub, doc: None)
    todo: list[Submission] = []
    for sub in submissions:
        emit("found", sub, None)
        prev = None if force else previous_result(out_dir, sub, assignment, fingerprint)
        if prev is not None:
            batch.documents[sub.id] = prev
            batch.reused.add(sub.id)
            emit("reused", sub, prev)
        else:
            todo.append(sub)
    stop = stop or threading.Event()

    sandbox_name = getattr(sandbox, "name", "docker")  # grade_one: Celery workers, in containers

    def failed(sub: Submission, exc: BaseException) -> dict[str, Any] | None:
        """What a submission whose grading raised gets: an error of its own, never the batch's."""
        if stop.is_set():
            return None  # the batch is being stopped (containers killed): grade it next time
        return grading.failure(assignment, sub, sandbox_name, options, exc)

    def save(sub: Submission, doc: dict[str, Any]) -> None:
        write_atomic(out_dir / result_file(sub.id), json.dumps(doc, indent=2).encode() + b"\n")

    def one(sub: Submission) -> tuple[Submission, dict[str, Any] | None]:
        if stop.is_set():
            return sub, None
        try:
            emit("started", sub, None)
            doc = grade_one(sub) if grade_one is not None else grading.grade(sandbox, assignment, sub, options)
            if doc is not None:
                save(sub, doc)
        except Exception as exc:  # noqa: BLE001 - one submission's problem is its own error
            doc = failed(sub, exc)
            if doc is not None:
                with contextlib.suppress(Exception):  # a full disk: summary.json still says it
                    save(sub, doc)
        with contextlib.suppress(Exception):  # a progress display's hiccup changes no result
            emit("done", sub, doc)
        return sub, doc

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mpgrade") as pool:
        futures: dict[Future, Submission] = {pool.submit(one, sub): sub for sub in todo}
        pending: set[Future] = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        sub, doc = fut.result()
                    except Exception as exc:  # noqa: BLE001 - one() catches all; kept fail-safe
                        sub = futures[fut]
                        doc = failed(sub, exc)
                    if doc is not None:
                        batch.documents[sub.id] = doc
                if stop.is_set():
                    batch.interrupted = True
        except BaseException:
            batch.interrupted = True
            stop.set()
            if sandbox is not None:
                sandbox.close()
            for fut in pending:
                fut.cancel()
            raise
        finally:
            batch.written = write_outputs(batch, assignment)
    return batch
