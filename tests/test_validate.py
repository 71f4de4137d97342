"""``mpgrade validate`` on the bundled course, and validate catching what it must catch."""

from __future__ import annotations

import shutil

import pytest

from grader import assignment as assignment_mod
from grader import validate


@pytest.fixture(scope="session")
def course_report(course):
    """The real thing: references once under every start method (two at a time), stubs, mutants.

    Once, not five times as `make validate` does: the repeats measure flakiness, which is
    `make validate`'s job before a release, and CI has to stay well under 20 minutes."""
    return validate.run(course, repeat=1, jobs=2)


def test_references_score_full_marks_under_every_start_method(course_report):
    methods = {r["start_method"] for r in course_report.references}
    assert methods == {"fork", "spawn", "forkserver"}
    bad = [r for r in course_report.references if not r["ok"]]
    assert bad == [], (bad, course_report.flaky)
    assert course_report.flaky == [], course_report.flaky


def test_stubs_score_zero(course_report):
    assert course_report.stubs["ok"], course_report.stubs


def test_there_are_enough_mutants_for_every_exercise(course):
    mutants = validate.load_mutants(course)
    assert len(mutants) >= 20
    assert {m.exercise for m in mutants} == {ex.id for ex in course.exercises}


def test_every_mutant_is_caught_in_its_own_exercise_with_hints(course_report):
    problems = {m["id"]: m["problems"] for m in course_report.mutants if not m["ok"]}
    assert problems == {}
    assert course_report.ok


def test_a_mutant_that_is_really_correct_makes_validate_fail(course_copy):
    course = assignment_mod.load(course_copy)
    fake = course_copy / "solutions" / "mutants" / "not_a_mistake"
    fake.mkdir()
    shutil.copy(course_copy / "solutions" / "04_locks" / "locks.py", fake / "locks.py")
    (fake / "mutant.toml").write_text(
        'exercise = "04_locks"\nmodule = "locks.py"\ndescription = "identical to the reference"\n')
    mutants = [m for m in validate.load_mutants(course) if m.id in ("not_a_mistake", "locks_no_join")]
    report = validate.run(course, repeat=1, start_methods=("fork",), mutants=mutants)
    verdict = {m["id"]: m for m in report.mutants}
    assert verdict["locks_no_join"]["ok"]
    assert not verdict["not_a_mistake"]["ok"]
    assert any("not caught" in p for p in verdict["not_a_mistake"]["problems"])
    assert not report.ok


def test_a_reference_that_fails_under_one_start_method_is_reported(course_copy):
    """A reference using a lambda target passes under fork and fails under spawn: not releasable."""
    path = course_copy / "solutions" / "01_spawn" / "spawn.py"
    path.write_text(path.read_text() + (
        "\n\n_original = exit_codes\n\n\ndef exit_codes(codes):\n"
        "    import multiprocessing\n"
        "    if multiprocessing.get_start_method() != 'fork':\n"
        "        raise RuntimeError('only works under fork')\n"
        "    return _original(codes)\n"))
    course = assignment_mod.load(course_copy)
    report = validate.run(course, repeat=1, start_methods=("fork", "forkserver"), mutants=[])
    assert not report.ok
    assert not any(r["ok"] for r in report.references)
    failing = {(f["start_method"], f["test"].split("::")[1]) for f in report.flaky}
    # Under the forkserver run every exit_codes test fails; under the fork run only the test
    # that pins forkserver for itself does.
    assert ("forkserver", "test_exit_codes_small") in failing
    assert ("fork", "test_exit_codes_under_forkserver") in failing
    assert ("fork", "test_exit_codes_small") not in failing
    assert all("exit_codes" in test for _, test in failing)


def test_mutants_are_stored_as_small_changes_that_still_fit_the_reference(course):
    for mutant in validate.load_mutants(course):
        reference = (course.exercise(mutant.exercise).hidden_dir / mutant.module).read_bytes()
        assert mutant.source != reference, mutant.id
        compile(mutant.source, f"{mutant.id}/{mutant.module}", "exec")


def test_a_change_that_no_longer_fits_is_an_error():
    with pytest.raises(ValueError, match="matches the reference 0 times"):
        validate.apply_changes("a = 1\n", [{"old": "b = 2\n", "new": "b = 3\n"}], "m/mutant.toml")
    with pytest.raises(ValueError, match="2 times"):
        validate.apply_changes("x\nx\n", [{"old": "x\n", "new": "y\n"}], "m/mutant.toml")
    assert validate.apply_changes("a = 1\n", [{"old": "1", "new": "2"}], "m") == "a = 2\n"


def _graded(failing: list[str]) -> dict:
    tests = [{"id": f"01_spawn/test_hidden.py::{name}", "exercise": "01_spawn", "hint": "h",
              "outcome": "failed" if name in failing else "passed"}
             for name in ("test_a", "test_b", "test_c")]
    return {"status": "graded", "message": "", "tests": tests,
            "exercises": [{"name": "01_spawn", "score": 25 - 5 * len(failing), "max_score": 25}]}


@pytest.mark.parametrize("failing, ok", [
    (["test_a", "test_b"], True),   # the racy test caught it this time
    (["test_a"], True),             # ... or not: allowed
    (["test_b"], False),            # a listed test passed: missing
    (["test_a", "test_c"], False),  # a test neither listed nor allowed failed
])
def test_may_fail_lists_tests_a_racy_mistake_fails_only_sometimes(course, failing, ok):
    mutant = validate.Mutant(id="m", exercise="01_spawn", module="spawn.py", description="",
                             source=b"", fails=["test_a"], may_fail=["test_b"])
    judged = validate._judge_mutant(course, mutant, _graded(failing))
    assert judged["ok"] is ok, judged["problems"]


def test_a_listed_test_that_does_not_exist_is_reported(course):
    mutant = validate.Mutant(id="m", exercise="01_spawn", module="spawn.py", description="",
                             source=b"", fails=["test_a"], may_fail=["test_bb"])
    judged = validate._judge_mutant(course, mutant, _graded(["test_a"]))
    assert judged["problems"] == ["lists tests 01_spawn does not have: test_bb"]
