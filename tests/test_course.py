"""The bundled course grades the way it should: references full marks, stubs zero, mutants caught.

Everything here goes through the real path (job -> local sandbox -> harness -> pytest ->
result document), so these are also end-to-end tests of the grader.
"""

from __future__ import annotations

import shutil
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader import grading, results, submission
from grader.sandbox.local import LocalSandbox

from .conftest import REPO

MUTANTS = sorted(p.parent for p in (REPO / "solutions" / "mutants").glob("*/mutant.toml"))


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


@pytest.fixture(scope="session")
def stubs(tmp_path_factory, course) -> Path:
    return flat_copy(tmp_path_factory.mktemp("stubs"), [ex.public_dir for ex in course.exercises])


def test_every_exercise_is_worth_its_manifest_points(course):
    assert course.max_score == 100
    for ex in course.exercises:
        assert ex.points == 25
        assert ex.public_tests() and ex.hidden_tests(), f"{ex.id} needs public and hidden tests"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_reference_solutions_score_full_marks(course, reference, method):
    doc = grade(course, reference, start_method=method)
    assert doc["status"] == "graded", doc["message"]
    assert doc["score"] == doc["max_score"] == 100, failures(doc)
    assert doc["grader"]["start_method"] == method
    hidden = [t for t in doc["tests"] if t["visibility"] == "hidden"]
    assert hidden and all(t["telemetry"] is not None for t in doc["tests"])


def test_stubs_score_zero_with_a_clear_message(course, stubs):
    doc = grade(course, stubs)
    assert doc["status"] == "graded" and doc["score"] == 0
    for ex in doc["exercises"]:
        assert ex["score"] == 0 and ex["message"], ex
    assert {t["outcome"] for t in doc["tests"]} <= {"not_implemented", "failed"}
    assert sum(t["outcome"] == "not_implemented" for t in doc["tests"]) > len(doc["tests"]) // 2


@pytest.fixture(scope="session")
def mutant_results(course, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """Every mutant graded on its own exercise, two at a time (so the machine is busy, as in a real batch)."""

    def one(folder: Path) -> tuple[str, tuple[dict, dict]]:
        spec = tomllib.loads((folder / "mutant.toml").read_text())
        sub_dir = flat_copy(tmp_path_factory.mktemp(folder.name), [folder])
        return folder.name, (spec, grade(course, sub_dir, exercises=(spec["exercise"],)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, MUTANTS))


def test_there_are_enough_mutants_for_every_function(course):
    assert len(MUTANTS) >= 20
    exercises = {tomllib.loads((m / "mutant.toml").read_text())["exercise"] for m in MUTANTS}
    assert exercises == {ex.id for ex in course.exercises}


@pytest.mark.parametrize("mutant", [m.name for m in MUTANTS])
def test_each_mutant_loses_exactly_the_points_of_the_tests_it_breaks(course, mutant_results, mutant):
    spec, doc = mutant_results[mutant]
    assert doc["status"] == "graded", doc["message"]
    failed = {t["id"].split("::")[1].split("[")[0] for t in doc["tests"] if t["outcome"] != "passed"}
    assert failed == set(spec["fails"]), f"{spec['description']}\n{failures(doc)}"
    lost = sum(t["max_score"] for t in doc["tests"] if t["outcome"] != "passed")
    assert doc["score"] == course.exercise(spec["exercise"]).points - lost > 0 or lost == 25
    for t in doc["tests"]:
        if t["outcome"] != "passed":
            assert t["message"], f"{t['id']} failed without saying why"
            assert t["hint"], f"{t['id']} failed without a hint"


def test_a_hanging_submission_costs_its_call_limits_not_the_batch(course, tmp_path, reference):
    """A consumer that never stops: the calls time out one by one, with a stack dump each."""
    folder = flat_copy(tmp_path / "hang", [reference])
    (folder / "locks.py").write_text(
        "import time\n\ndef locked_counter(processes, increments):\n    time.sleep(3600)\n\n"
        "def peak_concurrency(tasks, limit):\n    time.sleep(3600)\n")
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
