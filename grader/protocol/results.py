"""The result document: the JSON contract with LMSs, built from pytest-json-report's report.

``build`` turns a pytest-json-report report into a result document; ``validate`` checks one
against the published JSON Schema *and* for internal consistency (scores add up, no test is
worth more than its maximum), because a document that came out of a sandbox is untrusted.
``error_document`` is what a submission gets when there is no trustworthy report at all.
"""

from __future__ import annotations

import json
import math
import platform
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from grader import __version__
from grader.assignment import START_METHODS, Assignment
from grader.protocol import boundedjson

SCHEMA_VERSION = "1.2"  # 1.1: optional start_method and diagnosis per test, gradable, fault; 1.2: thread telemetry
OUTCOMES = (
    "passed", "failed", "error", "timeout", "crashed", "output_limit",
    "memory_limit", "process_limit", "not_implemented", "skipped",
)
MAX_DOCUMENT = 4 * 1024 * 1024
# Decoding a document from a sandbox: far above what a real one holds (10,000 tests of ~40
# values), far below what would strain the host (each value costs at most ~130 bytes decoded).
MAX_DOCUMENT_VALUES = 1_000_000
MAX_DOCUMENT_DEPTH = 32

# What a document may hold (the maxItems and maxLength of grader/schema/result.schema.json;
# tests/attacks/test_caps_attacks.py checks they agree). Every list and string that a student
# can make long is cut to these before a document is built, with a visible marker, so that
# ``build`` and ``error_document`` give a valid document whatever the submission holds.
MAX_LIST = 1000  # submission.files, .missing, .ignored; exercises
MAX_TESTS = 10_000
MAX_TEXT = 20_000  # messages and outputs
MAX_TEST_ID = 1000  # a test's id and name
MAX_HINT = 2000
MAX_SUBMISSION_ID = 200
MAX_PATH = 1000  # not in the schema: a path or reason in submission.ignored, the source
MAX_STUDENT_FIELDS = 50  # and an LMS identity (submission.student) of short plain values
VISIBILITIES = ("visible", "hidden", "after_due_date")
TELEMETRY = {"calls": int, "processes": int, "peak_processes": int, "cpu_time": float,
             "wall_time": float, "peak_rss": int, "threads": int, "peak_threads": int}


class InvalidResult(ValueError):
    """A result document that does not match the schema or does not add up."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def schema() -> dict[str, Any]:
    text = resources.files("grader.schema").joinpath("result.schema.json").read_text()
    return json.loads(text)


def grader_info(sandbox: str, start_method: str | None) -> dict[str, Any]:
    return {
        "name": "mpgrade",
        "version": __version__,
        "sandbox": sandbox,
        "start_method": start_method,
        "python": platform.python_version(),
    }


def _points(x: float) -> float:
    return round(float(x), 4)


# --------------------------------------------------------------------------------------------
# Caps: nothing student-sized reaches a document uncut


def cut(text: Any, limit: int) -> str:
    """``text`` as a string of at most ``limit`` characters; a cut one says so at its end."""
    text = text if isinstance(text, str) else str(text)
    if len(text) <= limit:
        return text
    tail = f" [... cut: {len(text)} characters in all]"
    return text[: max(0, limit - len(tail))] + tail


def _cut_list(items: Any, limit: int, more: Any) -> list[Any]:
    """At most ``limit`` items: the first ``limit - 1`` and ``more(n)`` for the ``n`` left out."""
    items = items if isinstance(items, list) else list(items or [])
    if len(items) <= limit:
        return items
    return [*items[: limit - 1], more(len(items) - limit + 1)]


def capped_submission(sub: dict[str, Any]) -> dict[str, Any]:
    """The ``submission`` object (``Submission.describe()``) cut to what a document may hold.

    ``ignored`` is student-sized (a zip of 9,000 ``conftest.py``, a notebook of a million
    magics): past the limit it ends with one entry saying how many more there were.
    """
    out = {k: v for k, v in sub.items() if k not in ("files", "missing", "ignored", "student")}
    out["id"] = cut(sub.get("id") or "submission", MAX_SUBMISSION_ID)
    for key in ("files", "missing"):
        if key in sub:
            what = "files" if key == "files" else "missing files"
            names = _cut_list(sub[key], MAX_LIST, lambda n, w=what: f"... and {n} more {w}")
            out[key] = [cut(name, MAX_PATH) for name in names]
    if "ignored" in sub:
        entries = _cut_list(sub["ignored"], MAX_LIST,
                            lambda n: {"path": "...", "reason": f"and {n} more ignored files, not listed"})
        out["ignored"] = [
            {"path": cut(e.get("path", ""), MAX_PATH), "reason": cut(e.get("reason", ""), MAX_PATH)}
            if isinstance(e, dict) else {"path": cut(e, MAX_PATH), "reason": ""}
            for e in entries
        ]
    if "source" in sub:
        out["source"] = cut(sub["source"], MAX_PATH)
    if "student" in sub:
        out["student"] = _capped_student(sub["student"])
    return out


def _capped_student(student: Any) -> dict[str, Any] | None:
    """An LMS identity: a few short plain values (``grader.export.student_of`` reads it)."""
    if not isinstance(student, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in list(student.items())[:MAX_STUDENT_FIELDS]:
        if value is None or isinstance(value, bool | int | float):
            out[cut(key, 100)] = value
        else:
            out[cut(key, 100)] = cut(value, MAX_PATH)
    return out


def _capped_telemetry(telemetry: Any) -> dict[str, Any] | None:
    if not isinstance(telemetry, dict):
        return None
    out = {}
    for key, kind in TELEMETRY.items():
        value = telemetry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and 0 <= value < 1e300 and math.isfinite(value):
            out[key] = int(value) if kind is int else float(value)
    return out


def capped_test(test: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``tests`` with its strings cut (message, output: the student's words)."""
    out = dict(test)
    for key, limit in (("id", MAX_TEST_ID), ("name", MAX_TEST_ID), ("message", MAX_TEXT),
                       ("output", MAX_TEXT)):
        out[key] = cut(test.get(key) or "", limit)
    out["hint"] = None if test.get("hint") is None else cut(test["hint"], MAX_HINT)
    if out.get("visibility") not in VISIBILITIES:
        out["visibility"] = "hidden"  # when in doubt, show the student less
    if "telemetry" in out:
        out["telemetry"] = _capped_telemetry(out["telemetry"])
    return out


def build(
    report: dict[str, Any],
    assignment: Assignment,
    submission: dict[str, Any],
    *,
    scope: str,
    sandbox: str,
    start_method: str | None,
    started_at: str,
    finished_at: str | None = None,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A result document from a pytest-json-report report.

    ``scope`` is "all" (a real grade: every exercise's tests must add up to its points) or
    "public" (a student's ``make check``: only the public tests ran). ``only`` limits the
    document to some exercises (``make check EX=...``, grading one exercise in tests).
    """
    problems: list[str] = []
    tests = _tests(report, problems)
    exercises = _exercises(tests, assignment, scope, only, problems)
    score = _points(sum(e["score"] for e in exercises))
    max_score = _points(sum(e["max_score"] for e in exercises))
    status, message = "graded", ""
    if problems:
        status = "error"
        message = cut("the grader could not grade this submission fully: " + "; ".join(problems[:10]),
                      MAX_TEXT)
    return {
        "schema_version": SCHEMA_VERSION,
        "submission": capped_submission(submission),
        "assignment": {
            "name": assignment.name,
            "version": assignment.version,
            "fingerprint": assignment.fingerprint(),
        },
        "scope": scope,
        "score": score if status == "graded" else 0.0,
        "max_score": _points(assignment.max_score) if scope == "all" and not only else max_score,
        "status": status,
        "message": message,
        "exercises": exercises,
        "tests": tests,
        "grader": grader_info(sandbox, start_method),
        "started_at": started_at,
        "finished_at": finished_at or now(),
    }


def _tests(report: dict[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """The document's ``tests`` from the report's entries (each capped); what is wrong with the
    run itself (no plugin metadata, too many tests, collection errors) goes into ``problems``."""
    tests = []
    for entry in report.get("tests", []):
        meta = {}
        for prop in entry.get("user_properties", []) or []:
            if isinstance(prop, dict) and "mpgrade" in prop:
                meta = prop["mpgrade"]
        if not meta:
            problems.append(f"{entry.get('nodeid')}: no mpgrade metadata (is the plugin loaded?)")
            continue
        tests.append(_test(entry, meta))
    if len(tests) > MAX_TESTS:
        problems.append(f"{len(tests)} tests ran, more than the {MAX_TESTS} a document holds")
        tests = tests[:MAX_TESTS]
    for collector in report.get("collectors", []):
        if collector.get("outcome") == "failed":
            nodeid = collector.get("nodeid") or "collection"
            problems.append(f"{nodeid}: the tests could not be collected")
    return tests


def _test(entry: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """One test of the document from its report entry and the plugin's record of it."""
    outcome = meta.get("outcome", "error")
    if outcome not in OUTCOMES:
        outcome = "error"
    max_score = _points(meta.get("points", 0))
    duration = sum(
        float(entry.get(phase, {}).get("duration", 0.0) or 0.0) for phase in ("setup", "call", "teardown")
    )
    return capped_test({
        "id": _short_nodeid(entry.get("nodeid", "")),
        "name": meta.get("name") or entry.get("nodeid", ""),
        "exercise": meta.get("exercise"),
        "score": max_score if outcome == "passed" else 0.0,
        "max_score": max_score,
        "outcome": outcome,
        "visibility": meta.get("visibility", "visible"),
        "message": meta.get("message") or "",
        "hint": meta.get("hint"),
        "output": meta.get("output") or "",
        "duration": round(duration, 4),
        "telemetry": meta.get("telemetry"),
        **({"start_method": meta["start_method"]} if meta.get("start_method") in START_METHODS else {}),
        **({"diagnosis": [str(d)[:64] for d in meta["diagnosis"][:20]]}
           if isinstance(meta.get("diagnosis"), list) and meta["diagnosis"] else {}),
    })


def _exercises(tests: list[dict[str, Any]], assignment: Assignment, scope: str,
               only: tuple[str, ...], problems: list[str]) -> list[dict[str, Any]]:
    """Per exercise, the sums of its tests; a real grade's tests must add up to the manifest."""
    exercises = []
    for ex in assignment.exercises:
        if only and ex.id not in only:
            continue
        mine = [t for t in tests if t["exercise"] == ex.id]
        if not mine and scope == "public" and not ex.public_tests():
            continue
        ex_max = _points(sum(t["max_score"] for t in mine))
        problem = ex.points_problem(ex_max) if scope == "all" else None
        if problem:
            problems.append(problem)
        exercises.append({
            "name": ex.id,
            "title": ex.title,
            "score": _points(sum(t["score"] for t in mine)),
            "max_score": ex_max,
            "points": _points(ex.points),
            "tests_passed": sum(t["outcome"] == "passed" for t in mine),
            "tests_total": len(mine),
            "message": _common_message(mine),  # the first line of a test's message: cut already
        })
    orphans = [t["id"] for t in tests if t["exercise"] is None]
    if orphans:
        problems.append(f"tests outside any exercise folder: {', '.join(orphans[:5])}")
    return exercises


def _short_nodeid(nodeid: str) -> str:
    """``solutions/01_spawn/test_hidden.py::t`` -> ``01_spawn/test_hidden.py::t``: no host paths."""
    path, sep, rest = nodeid.partition("::")
    parts = path.split("/")
    return "/".join(parts[-2:]) + sep + rest


def common_message(tests: list[dict[str, Any]]) -> str | None:
    """An exercise's ``message`` from its tests (also for documents merged on the host)."""
    return _common_message(tests)


def _common_message(tests: list[dict[str, Any]]) -> str | None:
    """When every test of an exercise failed the same way (import error, stub), say it once."""
    if not tests or any(t["outcome"] == "passed" for t in tests):
        return None
    messages = {t["message"].split("\n", 1)[0] for t in tests}
    outcomes = {t["outcome"] for t in tests}
    if len(messages) == 1 and outcomes <= {"error", "not_implemented"}:
        return next(iter(messages))
    if outcomes == {"not_implemented"}:
        return "not implemented yet"
    return None


def error_document(
    assignment: Assignment,
    submission: dict[str, Any],
    *,
    status: str,
    message: str,
    sandbox: str,
    start_method: str | None,
    started_at: str,
    scope: str = "all",
    only: tuple[str, ...] = (),
    fingerprint: str | None = None,
    tests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score 0 with a clear reason: for timeouts, crashes and anything that left no valid report.

    It claims what the run it stands for would have: its ``scope`` and exercises (``only``) and
    their maximum, like :func:`build`; every caller that knows the run passes them. A ``make check`` that timed out is still a public run,
    worth the public tests' points (``Exercise.public_points``), never the whole assignment's.
    ``fingerprint`` is the caller's snapshot of the tests (a batch computes it once); without
    it the tests on disk are hashed now.

    Everything in it is cut to the schema's limits, so it validates whatever the submission
    (or the message quoting it) holds: it is what a submission gets when all else failed.
    """
    message = cut(message, MAX_TEXT)
    exercises = []
    for ex in assignment.exercises:
        if only and ex.id not in only:
            continue
        if scope == "public" and not ex.public_tests():
            continue
        ex_max = _points(ex.points if scope == "all" else ex.public_points())
        exercises.append({"name": ex.id, "title": ex.title, "score": 0.0, "max_score": ex_max,
                          "points": _points(ex.points), "tests_passed": 0, "tests_total": 0,
                          "message": message})
    whole = scope == "all" and not only
    return {
        "schema_version": SCHEMA_VERSION,
        "submission": capped_submission(submission),
        "assignment": {"name": assignment.name, "version": assignment.version,
                       "fingerprint": fingerprint or assignment.fingerprint()},
        "scope": scope,
        "score": 0.0,
        "max_score": _points(assignment.max_score) if whole else _points(sum(e["max_score"] for e in exercises)),
        "status": status,
        "message": message,
        "exercises": exercises,
        "tests": [capped_test(t) for t in (tests or [])[:MAX_TESTS]],
        "grader": grader_info(sandbox, start_method),
        "started_at": started_at,
        "finished_at": now(),
    }


@cache
def validator() -> Any:
    """Checking the schema itself is most of the cost of ``jsonschema.validate``: do it once."""
    import jsonschema

    document_schema = schema()
    cls = jsonschema.validators.validator_for(document_schema)
    cls.check_schema(document_schema)
    return cls(document_schema)


def validate(doc: Any) -> dict[str, Any]:
    """Check a document against the schema and its own arithmetic; raise InvalidResult if not."""
    import jsonschema

    try:
        validator().validate(doc)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "document"
        raise InvalidResult(f"{where}: {exc.message[:300]}") from None
    for t in doc["tests"]:
        if t["score"] > t["max_score"] + 1e-9:
            raise InvalidResult(f"test {t['id']} scores {t['score']} of {t['max_score']}")
        if t["outcome"] != "passed" and t["score"] != 0:
            raise InvalidResult(f"test {t['id']} did not pass but scores {t['score']}")
    if doc["status"] != "graded" and doc["score"] != 0:
        raise InvalidResult(f"a {doc['status']} document must score 0")
    for ex in doc["exercises"]:
        if ex["score"] > ex["max_score"] + 1e-9:
            raise InvalidResult(f"exercise {ex['name']} scores above its maximum")
        mine = [t for t in doc["tests"] if t["exercise"] == ex["name"]]
        if not mine and ex["score"] != 0:
            raise InvalidResult(f"exercise {ex['name']} scores without any test")
        if mine and abs(sum(t["score"] for t in mine) - ex["score"]) > 1e-6:
            raise InvalidResult(f"exercise {ex['name']}: score does not equal the sum of its tests")
    total = sum(ex["score"] for ex in doc["exercises"])
    if doc["status"] == "graded" and abs(total - doc["score"]) > 1e-6:
        raise InvalidResult("score does not equal the sum of the exercises")
    if doc["score"] > doc["max_score"] + 1e-9:
        raise InvalidResult("score is above max_score")
    return doc


def decode(data: bytes) -> Any:
    """Bytes from a sandbox -> JSON data, bounded in bytes, values and depth (``grader.protocol.boundedjson``).

    Never anything but ``json.loads``, and only after the text was measured: a document that
    would decode to millions of objects is refused before any is built.
    """
    if len(data) > MAX_DOCUMENT:
        raise InvalidResult(f"result is {len(data)} bytes, more than the {MAX_DOCUMENT} allowed")
    try:
        return boundedjson.loads(data, max_values=MAX_DOCUMENT_VALUES, max_depth=MAX_DOCUMENT_DEPTH)
    except boundedjson.TooComplex as exc:
        raise InvalidResult(f"result is too {exc.kind} to decode: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidResult(f"result is not JSON: {str(exc)[:200]}") from None


def parse(data: bytes) -> dict[str, Any]:
    """Bytes from a sandbox -> a validated document (:func:`decode`, then :func:`validate`)."""
    return validate(decode(data))
