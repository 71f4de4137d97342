"""The class as the report sees it: every result document of a results folder, validated.

A results folder holds what sandboxes produced, and a folder can be copied, edited or mixed
with other files before someone runs ``mpgrade report`` on it. So every document is read the
way the host reads one from a sandbox (size cap, bounded decode, the JSON Schema and its own
arithmetic, ``grader.protocol.results``), and one that fails is listed as a problem of the
report, never a crash and never silently counted.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grader.escaping import file_name
from grader.protocol import results

A = TypeVar("A")
R = TypeVar("R")

# What `mpgrade grade --out` writes beside the documents: not documents themselves.
NOT_DOCUMENTS = {"summary.json"}


@dataclass(frozen=True)
class Student:
    """One graded submission: its validated document and the name of its page in the site."""

    id: str
    doc: dict[str, Any]
    page: str

    @property
    def name(self) -> str:
        """The LMS name when the submission came from an LMS download, else the id."""
        student = self.doc["submission"].get("student")
        if isinstance(student, dict) and student.get("name"):
            return str(student["name"])
        return self.id

    @property
    def score(self) -> float:
        return float(self.doc["score"])

    @property
    def max_score(self) -> float:
        return float(self.doc["max_score"])

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    @property
    def duration(self) -> float:
        return float(self.doc.get("duration") or 0.0)

    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.doc["tests"]

    def exercise_score(self, name: str) -> float | None:
        for ex in self.doc["exercises"]:
            if ex["name"] == name:
                return float(ex["score"])
        return None


@dataclass(frozen=True)
class ExerciseInfo:
    name: str
    title: str
    max_score: float


@dataclass
class ClassResults:
    """Every student of a results folder, and the files that could not be used (with why)."""

    students: list[Student] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    assignment: str = ""
    version: str = ""

    @property
    def exercises(self) -> list[ExerciseInfo]:
        """The exercises in the order the documents list them (the manifest's order)."""
        seen: dict[str, ExerciseInfo] = {}
        for st in self.students:
            for ex in st.doc["exercises"]:
                if ex["name"] not in seen:
                    seen[ex["name"]] = ExerciseInfo(ex["name"], str(ex.get("title") or ex["name"]),
                                                    float(ex.get("points") or ex["max_score"]))
        return list(seen.values())

    @property
    def max_score(self) -> float:
        counts = Counter(st.max_score for st in self.students)
        return counts.most_common(1)[0][0] if counts else 0.0

    def status_counts(self) -> dict[str, int]:
        counts = {"graded": 0, "error": 0, "timeout": 0}
        for st in self.students:
            counts[st.status] = counts.get(st.status, 0) + 1
        return counts

    def scores(self) -> list[float]:
        return [st.score for st in self.students]

    def exercise_stats(self) -> list[dict[str, Any]]:
        """Mean and median points per exercise, over every student (a missing exercise is 0)."""
        out = []
        for ex in self.exercises:
            points = [st.exercise_score(ex.name) or 0.0 for st in self.students]
            out.append({"name": ex.name, "title": ex.title, "max_score": ex.max_score,
                        "mean": statistics.fmean(points) if points else 0.0,
                        "median": statistics.median(points) if points else 0.0})
        return out


def page_name(sub_id: str) -> str:
    """The file of a student's page: readable, one path component, never shared by two ids.

    ``grader.escaping.file_name`` makes the id harmless as a path component; the hash of the
    exact id keeps ``Alice`` and ``alice`` apart on a case-insensitive file system and keeps a
    reserved device name (``con``) from being the whole name.
    """
    digest = hashlib.sha256(sub_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{file_name(sub_id)[:120]}-{digest}.html"


def read_document(path: Path) -> dict[str, Any]:
    """One result document from a file, checked as one from a sandbox; InvalidResult if not."""
    with path.open("rb") as f:
        data = f.read(results.MAX_DOCUMENT + 1)
    return results.parse(data)


def _read_one(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A document or why not, for a worker process: nothing but data comes back."""
    try:
        return read_document(path), ""
    except (OSError, results.InvalidResult) as exc:
        return None, str(exc)


PARALLEL_FROM = 48  # documents; below it, starting worker processes costs more than it saves


def _read_all(paths: list[Path], parallel: bool = True) -> list[tuple[dict[str, Any] | None, str]]:
    """Validating a document against the schema is most of a report's time for a large class
    (~20 ms for one of 64 tests), and each is independent: a class is read by one worker
    process per CPU (:func:`in_workers`)."""
    return in_workers(_read_one, paths, parallel)


def in_workers(fn: Callable[[A], R], items: list[A], parallel: bool = True) -> list[R]:
    """``[fn(x) for x in items]``, by one worker process per CPU for a large class: for work on
    each student that is independent and costs milliseconds (validating a document, its LMS
    previews). ``fn`` takes and returns plain data only. The workers are forked from this
    process (no re-import); where fork is not available, for a small class, or with
    ``parallel=False`` (a caller with threads of its own), it runs here, one after the other."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if (not parallel or len(items) < PARALLEL_FROM or cpus < 2
            or "fork" not in multiprocessing.get_all_start_methods()):
        return [fn(x) for x in items]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(cpus, 8), mp_context=context) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * cpus))))


def load_class(results_dir: Path, *, parallel: bool = True) -> ClassResults:
    """Every ``*.json`` result document directly in ``results_dir`` (``summary.json`` aside).

    A file that is not a valid document, or a second document with an id already seen, is
    recorded in ``problems`` with the reason and left out of every number. ``parallel=False``
    reads in this process only: for a caller with threads of its own (a web service), where
    forking is not safe.
    """
    out = ClassResults()
    seen: set[str] = set()
    paths = [p for p in sorted(Path(results_dir).glob("*.json"))
             if p.name not in NOT_DOCUMENTS and p.is_file() and not p.is_symlink()]
    for path, (doc, problem) in zip(paths, _read_all(paths, parallel), strict=True):
        if doc is None:
            out.problems.append((path.name, problem))
            continue
        sub_id = doc["submission"]["id"]
        if sub_id in seen:
            out.problems.append((path.name, f"a second document for {sub_id!r}: left out"))
            continue
        seen.add(sub_id)
        out.students.append(Student(id=sub_id, doc=doc, page=page_name(sub_id)))
    out.students.sort(key=lambda st: st.id)
    names = Counter((st.doc["assignment"]["name"], st.doc["assignment"]["version"]) for st in out.students)
    if names:
        (out.assignment, out.version), _ = names.most_common(1)[0]
    return out
