"""Attacks on the grader's own limits: one submission too big to describe, one value too big to
decode, and the batch has to go on for everyone else.

A submission with more than a thousand ignored files (1001 ``conftest.py`` in a zip, a notebook
of 1001 ``%time`` magics) used to make its own document invalid, then the host's error document
too, and ``batch.run`` stopped every student's grading on every rerun. A result line of ten
million tiny values (30 MB, under the byte cap) used to decode to over a gigabyte in the
supervisor. Each test hands the grader what a student could hand in, next to an honest student.
"""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from grader import batch, grading
from grader._boot import mpgrade_plain as plain
from grader.harness.boundary import (
    MAX_RESULT,
    MAX_RESULT_DEPTH,
    MAX_RESULT_VALUES,
    BoundaryError,
    StudentRunner,
)
from grader.intake import notebook
from grader.intake.submission import Submission
from grader.protocol import boundedjson, results, wire
from grader.sandbox.base import Outcome
from grader.sandbox.local import LocalSandbox

REPO = Path(__file__).resolve().parents[2]
SPAWN = (REPO / "solutions" / "01_spawn" / "spawn.py").read_text()
ONLY_SPAWN = grading.Options(exercises=("01_spawn",))


def zip_of(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


def notebook_of(*cells: str | list[str]) -> str:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],
                   "execution_count": None, "source": source} for i, source in enumerate(cells)],
    })


def run_batch(subs: Path, out: Path, course, **kwargs) -> batch.Batch:
    box = LocalSandbox()
    try:
        return batch.run([subs], out, course, box, jobs=3, options=ONLY_SPAWN, **kwargs)
    finally:
        box.close()


# --------------------------------------------------------------------------------------------
# Too many ignored files: the submission is graded with a capped list, the batch goes on


def test_1001_conftest_files_or_magics_cap_the_ignored_list_and_the_batch_finishes(tmp_path, course):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "bob").mkdir()
    (subs / "bob" / "spawn.py").write_text(SPAWN)  # honest
    conftests = {f"junk/{i}/conftest.py": "def pytest_runtest_setup(): pass\n" for i in range(1001)}
    (subs / "mallory.zip").write_bytes(zip_of({"spawn.py": SPAWN, **conftests}))
    (subs / "nina").mkdir()
    (subs / "nina" / "spawn.ipynb").write_text(notebook_of(SPAWN, "%time x = 1\n" * 1001))

    result = run_batch(subs, tmp_path / "out", course)

    assert not result.interrupted and set(result.documents) == {"bob", "mallory", "nina"}
    for sid, doc in result.documents.items():
        results.validate(doc)
        assert json.loads((tmp_path / "out" / f"{sid}.json").read_text()) == doc
    bob = result.documents["bob"]
    assert bob["status"] == "graded" and bob["score"] == bob["max_score"] > 0, bob["message"]

    mallory = result.documents["mallory"]
    assert mallory["status"] == "graded" and mallory["score"] == bob["score"], mallory["message"]
    ignored = mallory["submission"]["ignored"]
    assert len(ignored) == results.MAX_LIST == 1000
    assert ignored[-1] == {"path": "...", "reason": "and 2 more ignored files, not listed"}

    nina = result.documents["nina"]
    assert nina["status"] == "graded" and nina["score"] == bob["score"], nina["message"]
    notes = nina["submission"]["ignored"]
    assert len(notes) == notebook.MAX_NOTES + 1
    assert "and 981 more lines or cells dropped" in notes[-1]["reason"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["totals"]["submissions"] == 3 and not summary["interrupted"]


def test_an_exception_while_grading_one_submission_is_its_error_only(tmp_path, course):
    subs = tmp_path / "subs"
    for sid in ("ann", "bob", "mallory"):
        (subs / sid).mkdir(parents=True)
        (subs / sid / "spawn.py").write_text(SPAWN)
    box = LocalSandbox()

    def grade_one(sub: Submission):
        if sub.id == "mallory":
            raise RuntimeError("something no one foresaw")
        return grading.grade(box, course, sub, ONLY_SPAWN)

    try:
        result = batch.run([subs], tmp_path / "out", course, None, jobs=3, grade_one=grade_one)
    finally:
        box.close()
    assert not result.interrupted and set(result.documents) == {"ann", "bob", "mallory"}
    mallory = results.validate(result.documents["mallory"])
    assert mallory["status"] == "error" and "something no one foresaw" in mallory["message"]
    for sid in ("ann", "bob"):
        assert result.documents[sid]["status"] == "graded" and result.documents[sid]["score"] > 0
    assert json.loads((tmp_path / "out" / "mallory.json").read_text())["status"] == "error"


class Broken:
    name = "local"

    def run(self, job):
        raise RuntimeError("the daemon went away " + "!" * 100_000)

    def close(self):
        pass


def test_the_error_document_always_validates_whatever_the_submission_holds(course):
    sub = Submission(
        id="m" * 5000, source="/" + "x" * 100_000,
        files={"spawn.py": b"x = 1\n"},
        ignored=[{"path": f"{i}/" + "p" * 5000 + "/conftest.py", "reason": "r" * 50_000} for i in range(9000)],
        error="rejected: " + "e" * 1_000_000,
        student={"name": "n" * 10_000, "nested": {"a": [1, 2]}, "late": True},
    )
    doc = grading.grade(Broken(), course, sub)
    results.validate(doc)
    assert doc["status"] == "error" and doc["message"].startswith("rejected: eee")
    assert len(doc["message"]) <= results.MAX_TEXT and "characters in all]" in doc["message"]
    assert len(doc["submission"]["ignored"]) == 1000
    assert doc["submission"]["ignored"][-1]["reason"] == "and 8001 more ignored files, not listed"
    assert len(json.dumps(doc)) < 3 * 1024 * 1024, "it fits in what the host accepts from a sandbox"

    sub.error = None  # the sandbox fails, and says so at length
    doc = grading.grade(Broken(), course, sub)
    assert results.validate(doc)["status"] == "error" and "the daemon went away" in doc["message"]


def test_a_report_the_schema_cannot_hold_is_built_capped(course):
    """The supervisor's document: 12,000 tests with huge messages and outputs still validate."""
    def entry(i: int) -> dict:
        meta = {"exercise": "01_spawn", "points": 0, "outcome": "failed", "name": "n" * 5000,
                "message": "m" * 100_000, "output": "o" * 100_000, "hint": "h" * 5000,
                "visibility": "shown to everyone", "telemetry": {"calls": 10**400, "cpu_time": -1}}
        return {"nodeid": f"solutions/01_spawn/test_hidden.py::test_{i}[{'x' * 2000}]",
                "user_properties": [{"mpgrade": meta}]}

    report = {"tests": [entry(i) for i in range(12_000)], "collectors": []}
    sub = {"id": "mallory", "hash": "sha256:" + "0" * 64, "ignored": [{"path": "c", "reason": "r"}] * 5000}
    doc = results.build(report, course, sub, scope="all", sandbox="docker", start_method="fork",
                        started_at=results.now(), only=("01_spawn",))
    results.validate(doc)
    assert doc["status"] == "error" and "more than the 10000 a document holds" in doc["message"]
    assert len(doc["tests"]) == results.MAX_TESTS and doc["tests"][0]["visibility"] == "hidden"


def test_the_caps_are_the_schemas_limits():
    props = results.schema()["properties"]
    sub = props["submission"]["properties"]
    test = props["tests"]["items"]["properties"]
    assert {sub[k]["maxItems"] for k in ("files", "missing", "ignored")} == {results.MAX_LIST}
    assert props["exercises"]["maxItems"] == results.MAX_LIST
    assert props["tests"]["maxItems"] == results.MAX_TESTS
    assert sub["id"]["maxLength"] == results.MAX_SUBMISSION_ID
    assert results.schema()["$defs"]["text"]["maxLength"] == results.MAX_TEXT
    assert test["id"]["maxLength"] == test["name"]["maxLength"] == results.MAX_TEST_ID
    assert test["hint"]["maxLength"] == results.MAX_HINT
    assert set(test["visibility"]["enum"]) == set(results.VISIBILITIES)


# --------------------------------------------------------------------------------------------
# Notebooks: a huge one costs little to refuse, and its notes are counted, not stored


def test_a_16_mib_notebook_of_magic_lines_costs_little(course):
    data = notebook_of(SPAWN, ["%t\n"] * 2_090_000).encode()  # 16 MiB of lines, all magics
    assert 15 * 2**20 < len(data) <= notebook.NOTEBOOK_MAX
    one_string = notebook_of(SPAWN, "%t\n" * 1_300_000).encode()  # few values, 4 MB of magics
    for nb in (data, one_string):
        tracemalloc.start()
        started = time.monotonic()
        try:
            conv = notebook.convert(nb, "nina/spawn.ipynb", course, 1024 * 1024)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 5
        assert peak < 4 * len(nb) + 64 * 1024 * 1024, f"{peak / 2**20:.0f} MiB to read a notebook"
        assert conv.module is None and len(conv.ignored) == 1
        assert conv.ignored[0]["path"] == "nina/spawn.ipynb"
        assert "too large to read" in conv.ignored[0]["reason"] or "of code" in conv.ignored[0]["reason"]


# --------------------------------------------------------------------------------------------
# Decoding: bounded in values and depth, and a failure costs that call only


MANY = '''
import sys

def _send_instead(value):
    def encode(_, **options):
        return value
    sys.modules["mpgrade_plain"].encode = encode

def many():
    _send_instead([{}] * 10_000_000)  # 30 MB on the wire, ten million dicts decoded

def deep():
    value = 0
    for _ in range(500):  # json.dumps in the child manages ~900
        value = [value]
    _send_instead(value)

def honest(n):
    return [(i, str(i)) for i in range(n)]
'''


def test_a_result_of_ten_million_values_is_refused_for_that_call_only(make_module):
    runner = StudentRunner(path=make_module("greedy", MANY), start_method="fork", call_timeout=10)
    mod = runner.module("greedy")
    tracemalloc.start()
    try:
        with pytest.raises(BoundaryError, match=r"result of greedy.many\(\) was too large to decode"):
            mod.many()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The line itself is read and copied a few times (~150 MiB); decoded it was over 1.5 GB.
    assert peak < 6 * MAX_RESULT, f"{peak / 2**20:.0f} MiB to refuse a 30 MB line"
    with pytest.raises(BoundaryError, match=r"result of greedy.deep\(\) was too deep to decode"):
        mod.deep()
    assert mod.honest(100_000)[-1] == (99_999, "99999"), "the next call is not affected"


def test_bounded_decoding_refuses_before_building_and_accepts_honest_values():
    flood = b'{"ok":true,"value":[' + b"{}," * 10_000_000 + b"{}]}"
    assert len(flood) < MAX_RESULT
    started = time.monotonic()
    with pytest.raises(boundedjson.TooComplex, match="more than 2,000,000 values") as info:
        boundedjson.loads(flood, max_values=MAX_RESULT_VALUES, max_depth=MAX_RESULT_DEPTH)
    assert info.value.kind == "large" and time.monotonic() - started < 1
    strings = b"[" + b'"",' * 3_000_000 + b'""]'  # quotes alone give it away
    with pytest.raises(boundedjson.TooComplex, match="values"):
        boundedjson.loads(strings, max_values=MAX_RESULT_VALUES)
    with pytest.raises(boundedjson.TooComplex, match="deeper than 10 levels") as info:
        boundedjson.loads(b'{"a":' * 11 + b"0" + b"}" * 11, max_depth=10)
    assert info.value.kind == "deep"
    # Brackets, commas and quotes inside strings are text, not structure.
    text = json.dumps(["[[[[[[[[[[[[", '\\"]]]', "{,:,:,:}" * 1_000_000, {"k\\\\": "]"}])
    assert boundedjson.loads(text, max_values=20, max_depth=3) == json.loads(text)
    # What the encoder lets through comes back: 64 levels of tuples, 100,000 pairs.
    nested: object = 1
    for _ in range(plain.MAX_DEPTH):
        nested = (nested,)
    for value in (nested, [(i, str(i)) for i in range(100_000)]):
        line = json.dumps({"ok": True, "value": plain.encode(value)})
        msg = boundedjson.loads(line, max_values=MAX_RESULT_VALUES, max_depth=MAX_RESULT_DEPTH)
        assert plain.decode(msg["value"]) == value
    with pytest.raises(ValueError):
        boundedjson.loads(b"\xff\xfe[1]")


class Flooder:
    """A sandbox whose framed document (right nonce, under the byte cap) is a million objects."""

    name = "local"

    def run(self, job):
        nonce = job.secret_env[wire.NONCE_ENV]
        doc = '{"tests":[' + "{}," * 1_300_000 + "{}]}"
        return Outcome(exit_status=0, stdout=wire.frame(nonce, doc))

    def close(self):
        pass


def test_a_document_of_a_million_objects_from_the_sandbox_is_refused_cheaply(course):
    sub = Submission(id="sam", source="test", files={"spawn.py": b"x = 1\n"})
    tracemalloc.start()
    try:
        doc = grading.grade(Flooder(), course, sub)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert results.validate(doc)["status"] == "error" and "too large to decode" in doc["message"]
    assert peak < 32 * 1024 * 1024, f"{peak / 2**20:.0f} MiB to refuse a 4 MB document"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_document_with_a_number_json_does_not_have_is_refused(constant):
    """Python's json reads NaN and Infinity; an export copying one would be invalid JSON."""
    with pytest.raises(results.InvalidResult, match="not a JSON number"):
        results.decode(b'{"score": ' + constant + b"}")
    with pytest.raises(ValueError):
        boundedjson.loads(b"[1, " + constant + b"]")
