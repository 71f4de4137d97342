"""The bundled course: its shape, and how hangs and whole-submission limits are graded.

References, stubs and mutants are checked by ``mpgrade validate`` (tests/test_validate.py).

Everything here goes through the real path (job -> local sandbox -> harness -> pytest ->
result document), so these are also end-to-end tests of the grader.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from grader import grading
from grader.intake import submission
from grader.protocol import results
from grader.sandbox.local import LocalSandbox


def grade(course, folder: Path, **options) -> dict:
    sub = submission.from_folder(folder, course)
    doc = grading.grade(LocalSandbox(), course, sub, grading.Options(**options))
    assert doc is not None
    results.validate(doc)
    return doc


def failures(doc: dict) -> str:
    return "\n".join(f"{t['id']}: {t['outcome']}: {t['message'][:300]}" for t in doc["tests"]
                     if t["outcome"] != "passed") or doc["message"]


def flat_copy(tmp: Path, folders: list[Path]) -> Path:
    """The module files of some folders, as one flat submission."""
    tmp.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for path in folder.glob("*.py"):
            if not path.name.startswith("test_"):
                shutil.copy(path, tmp / path.name)
    return tmp


@pytest.fixture(scope="session")
def reference(tmp_path_factory, course) -> Path:
    return flat_copy(tmp_path_factory.mktemp("reference"), [ex.hidden_dir for ex in course.exercises])


def test_every_exercise_is_worth_its_manifest_points(course):
    assert course.max_score == 100
    for ex in course.exercises:
        assert ex.points == 25
        assert ex.public_tests() and ex.hidden_tests(), f"{ex.id} needs public and hidden tests"


def test_a_hanging_submission_costs_its_call_limits_not_the_batch(course, tmp_path, reference):
    """A counter that never returns: its calls time out one by one, with a stack dump each.

    (Only locked_counter hangs: hanging every test of the exercise proves nothing more and
    costs CI two minutes.)"""
    folder = flat_copy(tmp_path / "hang", [reference])
    (folder / "locks.py").write_text(
        "import time\n\ndef locked_counter(processes, increments):\n    time.sleep(3600)\n\n"
        "def peak_concurrency(tasks, limit, rounds=1, hold=0.1):\n    raise NotImplementedError\n")
    started = time.monotonic()
    doc = grade(course, folder, exercises=("04_locks",))
    elapsed = time.monotonic() - started
    timeouts = [t for t in doc["tests"] if t["outcome"] == "timeout"]
    assert timeouts and doc["score"] < 25
    assert all("did not return within" in t["message"] and "locks.py" in t["message"] for t in timeouts)
    bound = sum(t["duration"] for t in doc["tests"]) + 15
    assert elapsed < bound
    limit = course.limits.call_timeout
    assert all(t["duration"] < 4 * limit + 5 for t in timeouts), "each test is bounded by its own calls"


def test_a_submission_past_its_whole_limit_is_a_timeout(course, tmp_path, reference):
    folder = flat_copy(tmp_path / "slow", [reference])
    (folder / "spawn.py").write_text("import time\ntime.sleep(3600)\n")
    started = time.monotonic()
    doc = grade(course, folder, timeout=6)
    assert time.monotonic() - started < 6 + 5
    assert doc["status"] == "timeout" and doc["score"] == 0
    assert "limit of 6 s" in doc["message"]
