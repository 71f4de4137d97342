"""``mpgrade validate`` on the bundled course, and validate catching what it must catch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from grader import assignment as assignment_mod
from grader import validate

from .conftest import REPO


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


# --- a tiny course whose tests hand pytest's tmp_path to student code (#17) ----------------------

WRITER_STUB = '''
def save(path, text):
    """Write text to the file at path."""
    raise NotImplementedError
'''

WRITER = '''
def save(path, text):
    """Write text to the file at path."""
    with open(path, "w") as f:
        f.write(text)
'''

WRITER_TEST = '''
import pytest

from grader.testing import read_student_text


@pytest.mark.points({points})
@pytest.mark.hint("open the file for writing and write the text")
def test_save_{name}(student, tmp_path):
    """save(path, text) writes text to path"""
    target = tmp_path / "out.txt"
    student.module("writer").save(str(target), "{text}")
    got = read_student_text(target)
    assert got == "{text}", f"expected the file to hold {text!r}, got {{got!r}}"
'''


def tiny_writer_course(root, *, points: int = 2, mutants: dict[str, tuple[str, str]] | None = None):
    """A one-exercise course (writer.save) whose public and hidden tests use tmp_path; each
    mutant is ``id: (old, new)``, a change of the reference."""
    (root / "exercises" / "01_writer").mkdir(parents=True)
    (root / "solutions" / "01_writer").mkdir(parents=True)
    (root / "assignment.toml").write_text(
        '[assignment]\nname = "writer"\nversion = "1"\nstart_method = "fork"\n\n'
        f'[[exercise]]\nid = "01_writer"\ntitle = "Files"\nfiles = ["writer.py"]\npoints = {points}\n')
    (root / "exercises" / "01_writer" / "writer.py").write_text(WRITER_STUB)
    (root / "exercises" / "01_writer" / "test_public.py").write_text(
        WRITER_TEST.format(points=1, name="public", text="hello"))
    (root / "solutions" / "01_writer" / "writer.py").write_text(WRITER)
    (root / "solutions" / "01_writer" / "test_hidden.py").write_text(
        'import pytest\n\npytestmark = pytest.mark.visibility("hidden")\n'
        + WRITER_TEST.format(points=1, name="hidden", text="a longer text"))
    for mutant_id, (old, new) in (mutants or {}).items():
        folder = root / "solutions" / "mutants" / mutant_id
        folder.mkdir(parents=True)
        (folder / "mutant.toml").write_text(
            f'exercise = "01_writer"\ndescription = "{mutant_id}"\n\n'
            f'[[change]]\nold = {old!r}\nnew = {new!r}\n'.replace("'", '"'))
    return assignment_mod.load(root)


def test_a_mutants_failed_tests_and_their_messages_are_kept_and_a_missed_one_shows_what_passed(tmp_path):
    course = tiny_writer_course(tmp_path, mutants={
        "truncates": ("f.write(text)", "f.write(text[:5])"),  # caught by the hidden test only
        "same": ("f.write(text)", "f.write(text[:])"),  # no mistake at all: not caught
    })
    report = validate.run(course, repeat=1, start_methods=("fork",), jobs=2)
    verdict = {m["id"]: m for m in report.mutants}
    caught = verdict["truncates"]
    assert caught["failures"] == [{
        "test": "01_writer/test_hidden.py::test_save_hidden", "outcome": "failed", "start_method": "fork",
        "message": "expected the file to hold 'a longer text', got 'a lon'"}], caught
    assert caught["passed_tests"] == ["01_writer/test_public.py::test_save_public"]
    missed = verdict["same"]
    assert not missed["ok"] and missed["failures"] == []
    assert sorted(missed["passed_tests"]) == ["01_writer/test_hidden.py::test_save_hidden",
                                              "01_writer/test_public.py::test_save_public"]
    saved = report.to_dict()
    assert saved["sandbox"] == "local"
    assert saved["mutants"][0]["failures"] or saved["mutants"][1]["failures"]


def _mpgrade(*args: str, cwd, env: dict | None = None, timeout: float = 600):
    """The command as an author runs it, on this checkout's grader."""
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO), **(env or {})})


def test_the_command_shows_each_failing_mutants_tests_and_names_its_sandbox(tmp_path):
    tiny_writer_course(tmp_path, mutants={"same": ("f.write(text)", "f.write(text[:])")})
    out = _mpgrade("validate", "--repeat", "1", "--start-methods", "fork", "--sandbox", "local", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "mutant same: not caught" in out.stdout
    assert "passed: 01_writer/test_hidden.py::test_save_hidden, 01_writer/test_public.py::test_save_public" \
        in out.stdout or "passed: 01_writer/test_public.py::test_save_public, 01_writer/test_hidden.py" \
        "::test_save_hidden" in out.stdout, out.stdout
    assert "Sandbox: local" in out.stdout
    saved = json.loads((tmp_path / "validate.json").read_text())
    assert saved["sandbox"] == "local" and saved["mutants"][0]["passed_tests"]


def test_without_an_engine_validate_says_it_falls_back_to_the_local_sandbox(tmp_path):
    tiny_writer_course(tmp_path)
    out = _mpgrade("validate", "--repeat", "1", "--start-methods", "fork", cwd=tmp_path,
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validating with the LOCAL sandbox" in out.stderr and "no Docker engine answers" in out.stderr
    assert json.loads((tmp_path / "validate.json").read_text())["sandbox"] == "local"


@pytest.mark.docker
def test_validate_grades_in_docker_by_default_where_a_test_using_tmp_path_passes(
        tmp_path, docker_client, grading_image):
    """The #17 report: this reference validated at 100% locally and lost points in Docker."""
    tiny_writer_course(tmp_path, mutants={"truncates": ("f.write(text)", "f.write(text[:5])")})
    out = _mpgrade("validate", "--repeat", "1", "--start-methods", "fork,spawn", "--image", grading_image,
                   cwd=tmp_path)
    saved = json.loads((tmp_path / "validate.json").read_text())
    assert saved["sandbox"] == "docker"
    assert [r["ok"] for r in saved["references"]] == [True, True], saved["references"]
    assert saved["stubs"]["ok"] and saved["mutants"][0]["ok"], saved
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_mutant_caught_in_only_some_runs_is_not_caught(tmp_path):
    """--repeat applies to mutants too: one caught only once in two runs does not hold. This
    mutant truncates only the very first text it writes in any grading (a marker folder it
    makes says it happened), so exactly its first run catches it."""
    marker = tmp_path / "wrote-once"
    course_dir = tmp_path / "course"
    course_dir.mkdir()
    tiny_writer_course(course_dir)
    folder = course_dir / "solutions" / "mutants" / "first_time_only"
    folder.mkdir(parents=True)
    first = f'not __import__("os").path.exists("{marker}") and __import__("os").makedirs("{marker}") is None'
    (folder / "mutant.toml").write_text(
        'exercise = "01_writer"\ndescription = "truncates the first text it ever writes"\n\n'
        "[[change]]\nold = '''f.write(text)'''\n"
        f"new = '''f.write(text[:2] if {first} else text)'''\n")
    course = assignment_mod.load(course_dir)
    report = validate.run(course, repeat=2, start_methods=("fork",), jobs=1)
    [verdict] = report.mutants
    assert (verdict["runs"], verdict["runs_ok"]) == (2, 1), verdict["problems"]
    assert not verdict["ok"] and not report.ok
    assert verdict["problems"] == ["1 of 2 runs: not caught: it loses no points in its own exercise"], verdict
