"""Grading inside an LMS's own grading container: Gradescope's ``run_autograder`` and
PrairieLearn's external grader.

There the LMS's container is the only sandbox, and root in it is ours: it is dropped for student
code as the Docker sandbox does. The harness (pytest, the hidden tests) runs as root in the
local sandbox, every student process as an unprivileged user (``LocalSandbox(student_user=)``,
at most ``[sandbox] pids`` processes of it, all killed after the job), the tests and the results
folder are closed to that user, and root writes the results once grading is over. One module
for both LMSs, so both get the same separation and the same error policy
(``grader.export``: an ``error`` or ``timeout`` result is never sent as a grade).

PrairieLearn kills the whole container after ``externalGradingOptions.timeout`` seconds (30 by
default) and then records no result at all. So :func:`prairielearn_plan` splits that time: the
sandbox's wall clock ends before it, and the tests' calls share a time budget inside it
(``grader.harness.config.HarnessConfig.budget``: each test gets an equal share of what is left),
so a submission that deadlocks in every test still ends in time, with every test it passes
scored. docs/prairielearn.md says the same for instructors.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import assignment as assignment_mod
from grader import export, grading
from grader.atomic import write_atomic
from grader.escaping import json_text
from grader.intake import submission as intake
from grader.sandbox.local import LocalSandbox

SUBMISSION_ID = "submission"  # the one submission of an LMS's container: its id in the document


class AutograderError(RuntimeError):
    """The container is not set up to grade (not root, no student user, no assignment); one line."""


def student_account(name: str) -> tuple[int, int]:
    """(uid, gid) of the unprivileged user student code runs as, checked: we must be root (to
    drop to it), and it must be neither root nor in root's group."""
    if os.geteuid() != 0:
        raise AutograderError(f"the grader must run as root in the LMS's container: it drops to {name} "
                              "for student code")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise AutograderError(f"no user {name!r} in this container (the image or setup.sh creates it)") from None
    if user.pw_uid == 0 or user.pw_gid == 0:
        raise AutograderError(f"{name!r} is root or in root's group: student code must not be")
    return user.pw_uid, user.pw_gid


def load_assignment(folder: str | Path) -> assignment_mod.Assignment:
    """The assignment at exactly ``folder`` (never a parent's)."""
    try:
        return assignment_mod.load(assignment_mod.locate(str(folder)))
    except assignment_mod.AssignmentError as exc:
        raise AutograderError(str(exc)) from None


def grade_folder(folder: Path, assignment: assignment_mod.Assignment, user: tuple[int, int],
                 options: grading.Options, *, student_python: str | None = None) -> dict[str, Any]:
    """Grade the one submission in ``folder`` (the modules wherever they sit in it) with every
    student process running as ``user``; a validated result document, never an exception for
    what the submission does (``grading.grade``)."""
    sub = intake.from_folder(Path(folder), assignment, SUBMISSION_ID)
    with LocalSandbox(student_user=user, student_python=student_python) as box:
        doc = grading.grade(box, assignment, sub, options)
    if doc is None:
        raise AutograderError("grading was cancelled")
    return doc


# --------------------------------------------------------------------------- PrairieLearn

PL_GRADE = Path("/grade")
PL_COURSE = "/opt/mpgrade-course"  # where `mpgrade image build --target prairielearn` bakes the course
PL_STUDENT_USER = "student"  # uid 10001 of the grading image, as in the Docker sandbox
PL_STUDENT_PYTHON = "/opt/mpgrade/bin/python-student"  # execute-only: student processes sealed from exec
PL_DEFAULT_TIMEOUT = 30.0  # externalGradingOptions.timeout when info.json sets none
PL_MAX_TIMEOUT = 600.0  # the most PrairieLearn allows
PL_MAX_RESULTS = 1024 * 1024  # PrairieLearn drops a results.json over 1 MB (and says the grading failed)
# Of PrairieLearn's timeout: what the container needs outside our sandbox (starting, reading
# /grade, writing results.json), and inside it what the harness needs outside student calls
# (Python and pytest starting, collecting the tests, building the document).
PL_CONTAINER_RESERVE = 4.0
PL_HARNESS_RESERVE = 4.0


@dataclass(frozen=True)
class TimePlan:
    """How PrairieLearn's timeout is spent: ``wall`` for the sandbox, ``budget`` for the calls."""

    timeout: float
    wall: float
    budget: float


def prairielearn_plan(timeout: float) -> TimePlan:
    """Split PrairieLearn's ``timeout``: the sandbox ends ``PL_CONTAINER_RESERVE`` s (or 10%)
    before it, the calls share what is left after ``PL_HARNESS_RESERVE`` s (or 10%) more. For the
    default 30 s: a 26 s sandbox, a 22 s budget for the calls."""
    if not 10.0 <= timeout <= PL_MAX_TIMEOUT:
        raise AutograderError(f"--timeout {timeout:g}: PrairieLearn's timeout is at most {PL_MAX_TIMEOUT:g} s, "
                              "and mpgrade needs at least 10 s of it")
    wall = timeout - max(PL_CONTAINER_RESERVE, 0.1 * timeout)
    return TimePlan(timeout=timeout, wall=round(wall, 2), budget=round(wall - max(PL_HARNESS_RESERVE, 0.1 * wall), 2))


def not_gradable(reason: str) -> dict[str, Any]:
    """PrairieLearn's "invalid, not gradable": no points, the attempt not counted, the reason
    shown. For everything that is not the student's grade (the one policy of ``grader.export``)."""
    return export.validate_target("prairielearn", {
        "gradable": False, "message": reason, "format_errors": [reason], "tests": [],
    })


def close_grade_folder(grade: Path, user: tuple[int, int]) -> None:
    """Make ``/grade`` and a new ``/grade/results`` 0700: student processes (``user``) can read
    none of it (the hidden tests in ``tests/`` or ``serverFilesCourse/``, ``data.json`` with the
    correct answers) nor write ``results/``. Both stay the job folder's owner's, so that
    PrairieLearn's grader host, which may not be root, still reads the results and removes the
    folder (unless that owner is the student user: then root's). The harness copies the
    submitted modules to a folder of their own, so student code needs nothing here."""
    st = grade.stat()
    owner = (0, 0) if st.st_uid == user[0] or st.st_gid == user[1] else (st.st_uid, st.st_gid)
    results = grade / "results"
    results.mkdir(parents=True, exist_ok=True)
    for folder in (grade, results):
        if folder.is_symlink():
            raise AutograderError(f"{folder} is a symbolic link")
        os.chown(folder, *owner)
        os.chmod(folder, 0o700)


def submitted_exercises(grade_student: Path, assignment: assignment_mod.Assignment) -> tuple[str, ...]:
    """The exercises of which the student submitted a file: a PrairieLearn question is usually
    one exercise (``spawn.py`` for ``01_spawn``), and it is graded out of that one's points."""
    sub = intake.from_folder(grade_student, assignment, SUBMISSION_ID)
    return tuple(ex.id for ex in assignment.exercises if any(f in sub.files for f in ex.files))


def prairielearn_grade(grade: Path, assignment_dir: str | Path, *, exercises: tuple[str, ...] = (),
                       timeout: float = PL_DEFAULT_TIMEOUT, student_user: str = PL_STUDENT_USER,
                       log: Any = print) -> dict[str, Any]:
    """Grade PrairieLearn's ``/grade/student`` and return the ``results.json`` to write.

    Never raises for what a submission or the container does: a missing or empty
    ``/grade/student``, none of the assignment's files, a broken assignment, a grader failure,
    a run past the time plan: each is ``gradable: false`` with the reason (never a 0 for our
    failure, never an attempt counted against the student).
    """
    try:
        plan = prairielearn_plan(timeout)
        user = student_account(student_user)
        close_grade_folder(grade, user)
        assignment = load_assignment(assignment_dir)
        student = grade / "student"
        if not student.is_dir() or student.is_symlink():
            return not_gradable("No submitted files reached the grader (/grade/student is missing): "
                                "submit your files again.")
        unknown = [e for e in exercises if e not in {ex.id for ex in assignment.exercises}]
        if unknown:
            raise AutograderError(f"--exercise {', '.join(unknown)}: not an exercise of {assignment.name}")
        present = submitted_exercises(student, assignment)
        chosen = exercises or present
        if not set(chosen) & set(present):
            expected = [f for ex in assignment.exercises if ex.id in chosen or not chosen for f in ex.files]
            return not_gradable(f"None of the files this question grades was submitted (expected one of: "
                                f"{', '.join(expected)}). Check the file name and submit again.")
        log(f"grading {', '.join(chosen)} of {assignment.name}: sandbox {plan.wall:g} s, "
            f"calls {plan.budget:g} s of PrairieLearn's {plan.timeout:g} s")
        python = PL_STUDENT_PYTHON if os.access(PL_STUDENT_PYTHON, os.X_OK) else None
        doc = grade_folder(student, assignment, user, grading.Options(
            scope="all", exercises=tuple(chosen), timeout=plan.wall, budget=plan.budget),
            student_python=python)
    except AutograderError as exc:
        log(f"not gradable: {exc}")
        return not_gradable(f"The grader is not set up right ({exc}); this attempt was not counted. "
                            "Please tell course staff.")
    except Exception as exc:  # noqa: BLE001 - our failure, never the student's score
        log(f"not gradable: {type(exc).__name__}: {exc}")
        return not_gradable(f"The grader failed ({type(exc).__name__}: {str(exc)[:300]}); this attempt "
                            "was not counted. Submit again, or tell course staff if it persists.")
    log(f"{doc['status']}: {doc['score']:g}/{doc['max_score']:g} {doc['message'][:500]}")
    return fit(export.prairielearn_results(doc))


def fit(results: dict[str, Any]) -> dict[str, Any]:
    """The results within PrairieLearn's 1 MB: the tests' outputs go first, then their messages."""
    for drop in ("output", "message"):
        if len(json_text(results).encode()) <= PL_MAX_RESULTS - 4096:
            break
        for test in results.get("tests", []):
            test[drop] = "(left out: the results were over PrairieLearn's 1 MB)"
    return results


def write_results(results_file: Path, results: dict[str, Any]) -> Path:
    """Root writes results.json, atomically, once every student process is gone; it belongs to
    whoever owns its folder (PrairieLearn's grader host reads it from outside)."""
    folder = results_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(results_file, json_text(results, indent=2).encode() + b"\n", mode=0o644)
    st = folder.stat()
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.chown(results_file, st.st_uid, st.st_gid)
    return results_file
