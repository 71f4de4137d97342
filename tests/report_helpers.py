"""Result documents for the report's tests: hand-made ones, and the committed real batch.

``tests/report_data/results/`` holds real documents, graded with ``--sandbox local``: the
bundled samples (``examples/submissions``; all of them hand in the reference solution for the
exercises they do, which is why their code is not compared in the browser test) and the
submissions in ``tests/report_data/submissions/`` (Frank's and Judy's own solutions, Grace's
copy of Frank's with names and comments changed, Heidi's racy counter, Ivan's deadlock).
Regenerate them after a change of the result format with::

    .venv/bin/python -m grader grade examples/submissions tests/report_data/submissions \\
        --out tests/report_data/results --force --sandbox local
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from grader.protocol import results

DATA = Path(__file__).resolve().parent / "report_data"
RESULTS = DATA / "results"
SUBMISSIONS = DATA / "submissions"


def entry(test_id: str, exercise: str, *, points: float = 1.0, outcome: str = "passed",
               message: str = "", hint: str | None = None, output: str = "",
               name: str | None = None, duration: float = 0.1) -> dict[str, Any]:
    """One entry of a document's ``tests``, scored as the grader scores it."""
    return {"id": test_id, "name": name or test_id, "exercise": exercise,
            "score": points if outcome == "passed" else 0.0, "max_score": points, "outcome": outcome,
            "visibility": "visible", "message": message, "hint": hint, "output": output,
            "duration": duration,
            "telemetry": {"calls": 1, "processes": 2, "peak_processes": 2, "cpu_time": 0.01,
                          "wall_time": duration, "peak_rss": 50_000_000}}


def document(sub_id: str, tests: list[dict[str, Any]], *, status: str = "graded", message: str = "",
             student: dict[str, Any] | None = None, duration: float = 1.0,
             files: list[str] | None = None) -> dict[str, Any]:
    """A valid result document of ``tests`` (exercises and totals computed from them)."""
    exercises: dict[str, dict[str, Any]] = {}
    for t in tests:
        ex = exercises.setdefault(t["exercise"], {"name": t["exercise"], "title": t["exercise"], "score": 0.0,
                                                  "max_score": 0.0, "points": 0.0, "tests_passed": 0,
                                                  "tests_total": 0, "message": None})
        ex["score"] += t["score"]
        ex["max_score"] += t["max_score"]
        ex["points"] += t["max_score"]
        ex["tests_passed"] += t["outcome"] == "passed"
        ex["tests_total"] += 1
    score = sum(e["score"] for e in exercises.values()) if status == "graded" else 0.0
    doc = {
        "schema_version": results.SCHEMA_VERSION,
        "submission": {"id": sub_id, "hash": "sha256:" + hashlib.sha256(sub_id.encode("utf-8", "surrogatepass")).hexdigest(),
                       "files": files or [], "missing": [], "ignored": [], "source": f"{sub_id}.zip",
                       "student": student},
        "assignment": {"name": "demo", "version": "1"},
        "scope": "all", "score": score, "max_score": sum(e["max_score"] for e in exercises.values()),
        "status": status, "message": message, "exercises": list(exercises.values()), "tests": tests,
        "grader": {"name": "mpgrade", "version": "0.1.0", "sandbox": "local", "start_method": "fork"},
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
        "duration": duration,
    }
    return results.validate(doc)


def write_documents(folder: Path, docs: list[dict[str, Any]]) -> Path:
    """Each document as ``<n>.json`` in ``folder`` (file names need not be ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, doc in enumerate(docs):
        (folder / f"doc{n:04d}.json").write_text(json.dumps(doc))
    return folder


def real_documents() -> list[dict[str, Any]]:
    """The committed real batch, as parsed documents."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.name != "summary.json"]


def varied(doc: dict[str, Any], sub_id: str, fail_every: int, offset: int) -> dict[str, Any]:
    """A copy of a real document under another id, with every ``fail_every``-th passed test
    (from ``offset``) turned into a failure: documents with varied scores for the benchmark."""
    out = copy.deepcopy(doc)
    out["submission"]["id"] = sub_id
    out["submission"]["hash"] = "sha256:" + hashlib.sha256(sub_id.encode()).hexdigest()
    for i, t in enumerate(out["tests"]):
        if fail_every and (i + offset) % fail_every == 0 and t["outcome"] == "passed":
            t["outcome"] = "failed"
            t["score"] = 0.0
            t["message"] = f"{t['id'].split('::')[-1]}() returned {i * 7 + offset}, expected {i * 7}"
            t["hint"] = "compare with the statement's example"
    for ex in out["exercises"]:
        mine = [t for t in out["tests"] if t["exercise"] == ex["name"]]
        if mine:
            ex["score"] = sum(t["score"] for t in mine)
            ex["tests_passed"] = sum(t["outcome"] == "passed" for t in mine)
    if out["status"] == "graded":
        out["score"] = sum(ex["score"] for ex in out["exercises"])
    out["duration"] = round(float(out.get("duration") or 1.0) * (1 + (offset % 5) / 10), 3)
    return results.validate(out)


# --------------------------------------------------------------------------- attacks

# Each sets window.__pwned (or fetches) if it ever runs; the browser test reads it back.
SCRIPT = "<script>window.__pwned = (window.__pwned || []).concat(['{0}'])</script>"
ATTACKS = {
    "name": SCRIPT.format("name") + "Mallory",
    "id": '"><img src=x onerror="window.__pwned=[\'id\']">',
    "output": "</pre></details></div>" + SCRIPT.format("output") + "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07"
              "\u202etxt.exe",
    "message": "</style><style>body{display:none}</style>" + SCRIPT.format("message")
               + '<a href="javascript:window.__pwned=[\'link\']">click</a>',
    "hint": "<iframe src=\"javascript:window.__pwned=['hint']\"></iframe>",
    "test": "<svg onload=\"window.__pwned=['test']\">",
    "file": "<script>.py",
    "code": "</pre></div>" + SCRIPT.format("code") + "<img src=https://example.invalid/x.png>",
}


def attack_documents() -> list[dict[str, Any]]:
    """A class in which every student-controlled string of a document attacks the page."""
    evil_test = entry("04_locks/test_x.py::" + ATTACKS["test"], "04_locks", outcome="failed",
                      name=ATTACKS["test"], message=ATTACKS["message"], hint=ATTACKS["hint"],
                      output=ATTACKS["output"])
    hang = entry("03_prodcons/t.py::big", "03_prodcons", outcome="timeout", message=(
        "prodcons.produce_consume() did not return within 25 s (start method fork). Where each process "
        "was, as its own stack dump says:\n  caller 1: <script>x</script>.py:1 in f<img>(), waiting in "
        "q.py:2 in get()\n  worker 2: " + ATTACKS["message"]))
    docs = [
        document(ATTACKS["id"], [evil_test, hang], student={"name": ATTACKS["name"], "user_id": ATTACKS["id"],
                                                            "email": "javascript:alert(1)"},
                 files=[ATTACKS["file"]], message=""),
        document("javascript:alert(1)", [entry("04_locks/test_x.py::" + ATTACKS["test"], "04_locks",
                                               name=ATTACKS["test"], output=ATTACKS["output"]),
                                         entry("03_prodcons/t.py::big", "03_prodcons")]),
        document("plain-student", [entry("04_locks/test_x.py::" + ATTACKS["test"], "04_locks",
                                         name=ATTACKS["test"]), entry("03_prodcons/t.py::big", "03_prodcons")]),
    ]
    docs[0]["submission"]["ignored"] = [{"path": ATTACKS["file"], "reason": ATTACKS["message"]}]
    return [results.validate(d) for d in docs]


def attack_code(own: str) -> dict[str, dict[str, str]]:
    """Code for two of the attack documents: the same code with a closing tag and a script in
    it (a comment and a string), so the pair is shown side by side with the attack marked."""
    evil = own + "\n# " + ATTACKS["code"] + "\nNOTE = " + repr(ATTACKS["code"]) + "\n"
    return {ATTACKS["id"]: {"04_locks": evil}, "javascript:alert(1)": {"04_locks": evil}}
