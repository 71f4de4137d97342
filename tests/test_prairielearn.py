"""PrairieLearn's external grader: `mpgrade image build --target prairielearn` and its entrypoint
(#19 item 8).

The image runs as PrairieLearn's grader host runs a job (tests/prairielearn_helpers.py): the job
folder at /grade, no network, memory and pids limits, killed at the question's timeout, and
results.json read only after an exit with status 0. One question grades one exercise, as a
PrairieLearn question usually is (03_prodcons here: its 100,000-item test is the heaviest call
of the course, and the example deadlock hangs in it).

Checked: the reference scores 1.0 in a valid results.json; a deadlocking submission is graded
within PrairieLearn's default 30 s with a partial score (its other tests pass); nothing
submitted, no file of the question, a grader that cannot start: each "gradable": false with
the reason, never a 0. The attack (a submission that reads the hidden tests or writes the
results) is tests/attacks/test_prairielearn_attacks.py. The time plan and the budget's
arithmetic are checked without Docker.
"""

from __future__ import annotations

import time
import zipfile

import pytest

from grader import autograder
from grader.escaping import json_text
from grader.harness.boundary.runner import TimeShare
from tests.prairielearn_helpers import REPO, prairielearn_image, run_grader, valid_results  # noqa: F401

PRODCONS = (REPO / "solutions" / "03_prodcons" / "prodcons.py").read_bytes()


def deadlocking_prodcons() -> bytes:
    """Carol's prodcons.py from the bundled examples: it joins its producers before draining the
    queue, so it hangs once the items outgrow the pipe (the 100,000-item test)."""
    with zipfile.ZipFile(REPO / "examples" / "submissions" / "carol-deadlock.zip") as zf:
        return zf.read("carol-deadlock/exercises/03_prodcons/prodcons.py")


# --------------------------------------------------------------------------- in the image


# The reference's tests get a question timeout of 120 s: on a machine shared by many jobs it
# needs more than 22 s of calls, and the budget would then cut it (as it should: docs/prairielearn.md
# says to try the reference at the question's timeout before a release).
GENEROUS = ["/opt/mpgrade/bin/prairielearn-grade", "--timeout", "120"]


@pytest.mark.docker
def test_the_reference_scores_1_in_a_valid_results_json(docker_client, prairielearn_image):  # noqa: F811
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": PRODCONS}, command=GENEROUS, timeout=120)
    assert out["status"] == 0 and out["results"] is not None, out["log"]
    results = valid_results(out["results"])
    assert results["gradable"] is True and results["score"] == 1.0, out["log"]
    names = [t["name"] for t in results["tests"]]
    assert names and all(n.startswith("03_prodcons") for n in names), names
    assert "03_prodcons: hidden tests" in names  # hidden tests only as a total, never by name
    assert sum(t["points"] for t in results["tests"]) == sum(t["max_points"] for t in results["tests"])
    assert out["results_files"] == ["results.json"] and out["results_mode"] == 0o644
    assert out["grade_mode"] == 0o700, "the job folder is closed to student code"


@pytest.mark.docker
def test_a_deadlocking_submission_is_graded_within_prairielearns_timeout(docker_client, prairielearn_image):  # noqa: F811
    # PrairieLearn kills the container at the timeout and then has no result at all: run_grader
    # does the same, so a result here means the grading ended in time.
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": deadlocking_prodcons()}, timeout=30)
    assert out["status"] == 0, "killed at PrairieLearn's 30 s, or failed: " + out["log"][-3000:]
    results = valid_results(out["results"])
    assert results["gradable"] is True, results
    assert 0.0 < results["score"] < 1.0, results["score"]
    hidden = next(t for t in results["tests"] if t["name"] == "03_prodcons: hidden tests")
    assert 0 < hidden["points"] < hidden["max_points"], hidden
    assert "calls 22 s of PrairieLearn's 30 s" in out["log"], out["log"][-2000:]


@pytest.mark.docker
def test_no_student_folder_is_not_gradable(docker_client, prairielearn_image):  # noqa: F811
    out = run_grader(docker_client, prairielearn_image, None)
    assert out["status"] == 0, out["log"]
    results = valid_results(out["results"])
    assert results["gradable"] is False and "score" not in results
    assert "/grade/student is missing" in results["message"]
    assert results["format_errors"] == [results["message"]]


@pytest.mark.docker
def test_files_of_no_exercise_are_not_gradable(docker_client, prairielearn_image):  # noqa: F811
    out = run_grader(docker_client, prairielearn_image, {"prodcons (1).py": PRODCONS, "notes.txt": b"hi"})
    results = valid_results(out["results"])
    assert out["status"] == 0 and results["gradable"] is False, out["log"]
    assert "None of the files" in results["message"] and "prodcons.py" in results["message"]


@pytest.mark.docker
def test_another_exercises_file_is_not_gradable_for_this_question(docker_client, prairielearn_image):  # noqa: F811
    spawn = (REPO / "solutions" / "01_spawn" / "spawn.py").read_bytes()
    out = run_grader(docker_client, prairielearn_image, {"spawn.py": spawn},
                     command=["/opt/mpgrade/bin/prairielearn-grade", "--exercise", "03_prodcons"])
    results = valid_results(out["results"])
    assert out["status"] == 0 and results["gradable"] is False, out["log"]
    assert "expected one of: prodcons.py)" in results["message"]


@pytest.mark.docker
def test_the_course_can_come_from_server_files_course(docker_client, prairielearn_image):  # noqa: F811
    from grader import assignment

    course = assignment.load(REPO)
    files = {f"mpgrade-course/{p.relative_to(REPO).as_posix()}": p.read_bytes() for p in course.grading_files()}
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": PRODCONS}, server_files=files,
                     command=[*GENEROUS, "--exercise", "03_prodcons",
                              "--assignment", "/grade/serverFilesCourse/mpgrade-course"], timeout=120)
    results = valid_results(out["results"])
    assert out["status"] == 0 and results["gradable"] is True and results["score"] == 1.0, out["log"]


@pytest.mark.docker
def test_a_grader_that_cannot_start_still_writes_a_not_gradable_result(docker_client, prairielearn_image):  # noqa: F811
    # A wrong entrypoint argument: the command line refuses it before grading anything; the
    # entrypoint's fallback writes the result, and exits 0 so PrairieLearn reads it.
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": PRODCONS},
                     command=["/opt/mpgrade/bin/prairielearn-grade", "--no-such-option"])
    assert out["status"] == 0, out["log"]
    results = valid_results(out["results"])
    assert results["gradable"] is False and "could not start" in results["message"]


@pytest.mark.docker
def test_an_unknown_exercise_is_a_setup_error_not_a_zero(docker_client, prairielearn_image):  # noqa: F811
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": PRODCONS},
                     command=["/opt/mpgrade/bin/prairielearn-grade", "--exercise", "99_nope"])
    results = valid_results(out["results"])
    assert out["status"] == 0 and results["gradable"] is False
    assert "not set up right" in results["message"] and "99_nope" in results["message"]


# --------------------------------------------------------------------------- the time plan


def test_the_time_plan_ends_before_prairielearns_timeout():
    plan = autograder.prairielearn_plan(30)
    assert plan.budget < plan.wall < plan.timeout == 30
    assert plan.timeout - plan.wall >= autograder.PL_CONTAINER_RESERVE
    long = autograder.prairielearn_plan(600)
    assert long.wall == 540 and long.budget == 486
    for bad in (5, 601):
        with pytest.raises(autograder.AutograderError, match="--timeout"):
            autograder.prairielearn_plan(bad)


def test_a_call_keeps_its_own_limit_while_the_budget_allows():
    share = TimeShare(end=time.monotonic() + 100, tests_after=3)
    assert share.limit(5.0) == (5.0, "")


def test_a_heavy_call_gets_what_the_later_tests_can_spare():
    share = TimeShare(end=time.monotonic() + 20, tests_after=4)  # 4 later tests keep 1.5 s each
    limit, note = share.limit(25.0)
    assert 9.0 < limit <= 10.0  # half of what is left, 20 - 4 * 1.5 = 14 being more
    assert "its own limit is 25 s" in note


def test_when_the_budget_runs_low_every_test_gets_an_equal_share():
    share = TimeShare(end=time.monotonic() + 6, tests_after=5)  # 6 s for this and 5 more tests
    limit, _ = share.limit(5.0)
    assert 0.9 < limit <= 1.0
    spent = TimeShare(end=time.monotonic() - 1, tests_after=2)
    assert spent.limit(5.0)[0] == TimeShare.MIN_CALL


def test_a_call_cut_by_the_budget_says_so(make_module):
    from grader.harness.boundary import CallTimeout, StudentRunner

    folder = make_module("hang", "import time\n\ndef f():\n    time.sleep(60)\n")
    runner = StudentRunner(path=folder, budget=TimeShare(end=time.monotonic() + 1.0, tests_after=0))
    with pytest.raises(CallTimeout) as info:
        runner.module("hang", timeout=30).f()
    assert "share of the run's time budget; its own limit is 30 s" in str(info.value)
    assert runner.last.duration < 30


def test_the_course_baked_in_is_what_grading_reads_and_nothing_else():
    from grader import assignment, image

    course = assignment.load(REPO)
    names = set(image._course_files(course))
    assert "course/assignment.toml" in names
    assert "course/solutions/03_prodcons/test_hidden.py" in names
    assert not any(n.endswith(("prodcons.py", "spawn.py")) or "mutants" in n for n in names), names
    assert image.prairielearn_tag(REPO, course).startswith("mpgrade-prairielearn:")


def test_results_over_a_megabyte_are_cut_to_fit():
    big = {"gradable": True, "score": 0.5, "message": "m",
           "tests": [{"name": f"t{i}", "output": "x" * 4000, "message": "y" * 4000} for i in range(300)]}
    fitted = autograder.fit(big)
    assert len(json_text(fitted).encode()) < autograder.PL_MAX_RESULTS
    assert fitted["score"] == 0.5 and len(fitted["tests"]) == 300


# --------------------------------------------------------------------------- without Docker


def test_prairielearn_run_explains_itself_with_examples():
    from click.testing import CliRunner

    from grader.cli.main import main

    result = CliRunner().invoke(main, ["export", "prairielearn-run", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output
    assert "mpgrade export prairielearn-run --exercise 03_prodcons --timeout 60" in result.output
    result = CliRunner().invoke(main, ["image", "build", "--help"])
    assert "--target prairielearn" in result.output
    result = CliRunner().invoke(main, ["image", "build", "--assignment", "."])
    assert result.exit_code == 2 and "--target prairielearn" in result.output


def test_a_job_folder_closed_to_the_student_keeps_its_owner(tmp_path):
    grade = tmp_path / "grade"
    grade.mkdir(mode=0o755)
    autograder.close_grade_folder(grade, (10001, 10001))
    owner = grade.stat().st_uid, grade.stat().st_gid
    for folder in (grade, grade / "results"):
        st = folder.stat()
        assert st.st_mode & 0o777 == 0o700 and (st.st_uid, st.st_gid) == owner
    written = autograder.write_results(grade / "results" / "results.json", autograder.not_gradable("x"))
    assert written.stat().st_mode & 0o777 == 0o644 and written.stat().st_uid == owner[0]


def test_without_root_or_a_student_user_nothing_is_graded_and_nothing_is_a_zero(tmp_path, monkeypatch):
    import os

    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "prodcons.py").write_bytes(PRODCONS)
    results = autograder.prairielearn_grade(tmp_path, REPO, student_user="no-such-user-here", log=lambda _: None)
    assert valid_results(results)["gradable"] is False and "no user 'no-such-user-here'" in results["message"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    results = autograder.prairielearn_grade(tmp_path, REPO, log=lambda _: None)
    assert results["gradable"] is False and "must run as root" in results["message"]
    assert "score" not in results


def test_a_suite_run_by_hand_can_be_given_the_budget(tmp_path):
    """``pytest --mpgrade-budget`` runs a suite as under PrairieLearn's timeout: an author sees
    which calls the budget cuts before the question goes live."""
    import os
    import subprocess
    import sys

    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "work.py").write_text("import time\n\ndef hang():\n    time.sleep(60)\n")
    (tmp_path / "test_work.py").write_text(
        "def test_hang(student):\n    student.module('work', timeout=30).hang()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MPGRADE_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--mpgrade-budget", "2"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "share of the run's time budget; its own limit is 30 s" in done.stdout, done.stdout
    bad = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mpgrade-budget", "0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 4 and "--mpgrade-budget" in bad.stderr, bad.stdout + bad.stderr


def test_the_calls_of_one_test_share_its_share():
    share = TimeShare(end=time.monotonic() + 20, tests_after=4)
    first, _ = share.limit(5.0)
    assert first == 5.0  # 10 s for this test: the first call keeps its own limit
    time.sleep(0.2)
    later, note = share.limit(25.0)  # what is left of the test's 10 s, not a new half of 20
    assert 9.0 < later < 9.85 and "its own limit is 25 s" in note
