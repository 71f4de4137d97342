"""Attacks on a test's ``tmp_path``, now that student code of another uid may write in it (#17).

The plugin opens each test's ``tmp_path`` to the student user as ``/tmp`` is open to everyone
(``grader.harness.plugin.share_tmp_path``): root's, world-writable and sticky, under folders
that can be traversed but not listed. Student code must not be able to use that to change
what the test itself put there, to take the folder over, to find the other tests' folders by
listing, or to pass state from one test to a later one through them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader.processes import kill_user
from tests.attacks.test_review_attacks import UID, _python_for_another_user
from tests.conftest import REPO

HOSTILE = '''
import os


def tamper(folder):
    """Leave state for a later test, then try to take over what the test owns."""
    done = {}
    with open(os.path.join(folder, "state"), "w") as f:
        f.write("left by an earlier test")
    for what, attempt in (
        ("removed", lambda: os.remove(os.path.join(folder, "given.txt"))),
        ("replaced", lambda: os.rename(os.path.join(folder, "state"), os.path.join(folder, "given.txt"))),
        ("chmod", lambda: os.chmod(folder, 0o777)),
        ("chmod_parent", lambda: os.chmod(os.path.dirname(folder), 0o777)),
    ):
        try:
            attempt()
            done[what] = True
        except OSError:
            done[what] = False
    return done


def find(path):
    return os.path.exists(path)


def listing(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return None
'''

TESTS = '''
def test_first(student, tmp_path):
    (tmp_path / "given.txt").write_text("the test's own")
    done = student.module("hostile").tamper(str(tmp_path))
    assert done == {"removed": False, "replaced": False, "chmod": False, "chmod_parent": False}, done
    assert (tmp_path / "given.txt").read_text() == "the test's own"
    assert (tmp_path / "state").read_text() == "left by an earlier test"  # it could write there


def test_second(student, tmp_path):
    hostile = student.module("hostile")
    assert hostile.listing(str(tmp_path.parent)) is None  # the other tests' folders: not listed
    assert hostile.find(str(tmp_path.parent / "test_first0" / "state")) is False
    assert hostile.find(str(tmp_path.parent / "test_first0" / "given.txt")) is True
'''


@pytest.fixture
def as_another_user():
    if os.geteuid() != 0:
        pytest.skip("needs root: student code runs as another uid")
    python = _python_for_another_user()
    if python is None:
        pytest.skip("no Python 3.11+ another uid can run")
    boot = REPO / "grader" / "_boot"
    if (boot.stat().st_mode & 0o005) != 0o005:
        pytest.skip("the boot folder is not readable by other users here")
    folder = Path(tempfile.mkdtemp(prefix="mpgrade-tmp-path-attack-"))
    os.chmod(folder, 0o755)
    for name, text in (("hostile.py", HOSTILE), ("test_hostile.py", TESTS)):
        (folder / name).write_text(text)
        os.chmod(folder / name, 0o644)
    yield folder, python
    kill_user(UID)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_student_code_cannot_take_over_tmp_path_nor_pass_state_through_it(as_another_user):
    folder, python = as_another_user
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_hostile.py"),
         "--mpgrade-student-user", f"{UID}:{UID}", "--mpgrade-student-python", python,
         "--mpgrade-submission", str(folder), "--basetemp", str(folder / "base")],
        capture_output=True, text=True, timeout=120, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout


PLANTER = '''
import os


def plant(folder, kind, secret):
    """Put something other than a plain file where the test will read out.txt."""
    target = os.path.join(folder, "out.txt")
    if kind == "link":
        os.symlink(secret, target)
    elif kind == "linked_folder":
        os.symlink(os.path.dirname(secret), os.path.join(folder, "sub"))
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "huge":
        with open(target, "wb") as f:
            f.truncate(10 * 1024 * 1024)
    return kind
'''

READER_TESTS = '''
import pytest

from grader.testing import Mistake, read_student_text

SECRET = {secret!r}


@pytest.mark.parametrize("kind", ["link", "linked_folder", "fifo", "huge"])
def test_read(student, tmp_path, kind):
    student.module("planter").plant(str(tmp_path), kind, SECRET)
    where = tmp_path / ("sub/secret.txt" if kind == "linked_folder" else "out.txt")
    with pytest.raises(Mistake) as caught:
        read_student_text(where)
    assert "the hidden tests" not in str(caught.value)
    print("refused", kind, caught.value)
'''


def test_a_test_reading_back_a_students_file_never_reads_the_hidden_tests_through_it(as_another_user):
    """What the test reads as root, student code chose: a link to a file only root may read (a
    hidden test's stand-in), a linked folder on the way, a FIFO that would block, a huge file.
    ``grader.testing.read_student_text`` refuses each, quoting nothing of the file."""
    folder, python = as_another_user
    secret = folder / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the hidden tests")
    os.chmod(secret.parent, 0o700)
    os.chmod(secret, 0o600)
    (folder / "planter.py").write_text(PLANTER)
    (folder / "test_reader.py").write_text(READER_TESTS.format(secret=str(secret)))
    for name in ("planter.py", "test_reader.py"):
        os.chmod(folder / name, 0o644)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(folder / "test_reader.py"),
         "--mpgrade-student-user", f"{UID}:{UID}", "--mpgrade-student-python", python,
         "--mpgrade-submission", str(folder), "--basetemp", str(folder / "base")],
        capture_output=True, text=True, timeout=120, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout and run.stdout.count("refused ") == 4
