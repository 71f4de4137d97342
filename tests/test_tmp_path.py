"""A test may hand pytest's ``tmp_path`` to student code, whatever user that code runs as.

Found authoring a second assignment (#17): a reference whose test wrote through student code
into ``tmp_path`` validated at 100% with the local sandbox and scored 97 in Docker, where
student code runs as another uid and pytest's folders are root's and private (0o700):
``PermissionError``. Here the same test runs with student code as another uid, by hand (the
plugin's options) and in the Docker sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader import grading
from grader.intake.submission import Submission
from grader.processes import kill_user

from .attacks.test_review_attacks import UID, _python_for_another_user
from .conftest import REPO

WRITER = '''
import os


def save(path, text):
    with open(path, "w") as f:
        f.write(text)
    return os.getuid()
'''

TEST = '''
from grader.testing import read_student_text


def test_save_writes_the_file(student, tmp_path):
    """save(path, text) writes text to path"""
    target = tmp_path / "out.txt"
    uid = student.module("writer").save(str(target), "hello")
    assert read_student_text(target) == "hello"
    print("student uid", uid)
'''


@pytest.fixture
def by_hand_as_another_user():
    """A folder with writer.py and its test, readable by the other uid, and that uid's python."""
    if os.geteuid() != 0:
        pytest.skip("needs root: student code runs as another uid")
    python = _python_for_another_user()
    if python is None:
        pytest.skip("no Python 3.11+ another uid can run")
    boot = REPO / "grader" / "_boot"
    if (boot.stat().st_mode & 0o005) != 0o005:
        pytest.skip("the boot folder is not readable by other users here")
    folder = Path(tempfile.mkdtemp(prefix="mpgrade-tmp-path-"))
    os.chmod(folder, 0o755)
    (folder / "writer.py").write_text(WRITER)
    (folder / "test_writer.py").write_text(TEST)
    for name in ("writer.py", "test_writer.py"):
        os.chmod(folder / name, 0o644)
    yield folder, python
    kill_user(UID)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_student_code_of_another_user_writes_into_the_tests_tmp_path(by_hand_as_another_user):
    folder, python = by_hand_as_another_user
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(folder / "test_writer.py"),
         "--mpgrade-student-user", f"{UID}:{UID}", "--mpgrade-student-python", python,
         "--mpgrade-submission", str(folder), "--basetemp", str(folder / "base")],
        capture_output=True, text=True, timeout=120, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # this checkout's grader, plugin included
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"student uid {UID}" in run.stdout  # it really ran as the other user


MANIFEST = '''[assignment]
name = "tmp-path"
version = "1"

[[exercise]]
id = "01_writer"
files = ["writer.py"]
points = 1
'''


@pytest.mark.docker
def test_a_test_using_tmp_path_scores_in_docker(docker_client, grading_image, tmp_path):
    """The #17 reproduction: in the container student code is uid 200000+, the test root."""
    from grader.sandbox.docker import DockerSandbox

    (tmp_path / "exercises" / "01_writer").mkdir(parents=True)
    (tmp_path / "assignment.toml").write_text(MANIFEST)
    (tmp_path / "exercises" / "01_writer" / "test_public.py").write_text(TEST)
    course = assignment_mod.load(tmp_path)
    with DockerSandbox(grading_image, client=docker_client) as box:
        doc = grading.grade(box, course, Submission(id="writer", source="test",
                                                    files={"writer.py": WRITER.encode()}))
    assert doc["status"] == "graded", doc["message"]
    assert doc["tests"][0]["outcome"] == "passed", doc["tests"][0]["message"]
    assert doc["score"] == 1
