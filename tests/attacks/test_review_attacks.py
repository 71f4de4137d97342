"""Attacks found in review of the two-user local sandbox (``mpgrade export gradescope-run``).

In the Docker sandbox the student uid's scratch folder *is* ``/tmp`` (a tmpfs), so emptying the
scratch folder between calls empties every place the uid can write but ``/dev/shm`` and
``/dev/mqueue``, which are emptied too. In Gradescope's container (the local sandbox with
``student_user``) the scratch folder is ``/tmp/mpgrade-job-*/scratch``, and ``/tmp`` and
``/var/tmp`` themselves stay world-writable: whatever one call leaves there, the next call of
the same grading finds, although "between two calls nothing of the student uid is left".
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from grader.harness.boundary import StudentRunner
from grader.processes import kill_user

# A uid nothing on this machine uses: every process of it is killed between calls.
UID = 64_000 + os.getpid() % 1000

PERSIST = '''
import os

def leave(path):
    with open(path, "w") as f:
        f.write("from an earlier call")
    return os.getuid()

def find(path):
    return os.path.exists(path)
'''


def _python_for_another_user() -> str | None:
    """An interpreter (3.11+) another uid can run: a venv under /root is not one."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                user=UID, group=UID, extra_groups=[], capture_output=True, text=True, timeout=20,
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture
def two_users(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("needs root: student code runs as another uid")
    python = _python_for_another_user()
    if python is None:
        pytest.skip("no Python 3.11+ another uid can run")
    boot = Path(__file__).resolve().parents[2] / "grader" / "_boot"
    if not os.access(boot, os.R_OK | os.X_OK) or (boot.stat().st_mode & 0o005) != 0o005:
        pytest.skip("the boot folder is not readable by other users here")
    sub = Path(tempfile.mkdtemp(prefix="mpgrade-review-sub-"))
    scratch = Path(tempfile.mkdtemp(prefix="mpgrade-review-scratch-"))
    os.chmod(sub, 0o755)
    os.chmod(scratch, 0o1777)
    (sub / "persist.py").write_text(PERSIST)
    os.chmod(sub / "persist.py", 0o644)
    yield sub, scratch, python
    kill_user(UID)
    subprocess.run(["rm", "-rf", str(sub), str(scratch)], check=False)


@pytest.mark.parametrize("shared", ["/tmp", "/var/tmp"])
def test_a_file_left_in_a_world_writable_folder_is_gone_before_the_next_call(two_users, shared):
    sub, scratch, python = two_users
    if not os.path.isdir(shared) or (os.stat(shared).st_mode & 0o002) == 0:
        pytest.skip(f"{shared} is not world-writable here")
    runner = StudentRunner(sub, start_method="fork", user=(UID, UID), scratch=scratch, python=python)
    left = os.path.join(shared, "mpgrade-review-" + uuid.uuid4().hex)
    try:
        assert runner.call("persist", "leave", (left,)).value == UID
        # The next call of the same grading must not find what the previous one left.
        assert runner.call("persist", "find", (left,)).value is False
    finally:
        if os.path.lexists(left):
            os.unlink(left)


def test_run_autograder_closes_gradescopes_submission_metadata_to_student_code():
    """/autograder is 0755 (student code traverses it to its scratch folder), and Gradescope's
    /autograder/submission_metadata.json (the team's names and emails, earlier submissions and
    their results) is readable by everyone unless run_autograder closes it."""
    from grader import export

    run = export.RUN_AUTOGRADER
    assert "chmod 0600 /autograder/submission_metadata.json" in run
    assert run.index("submission_metadata.json") < run.index("python3 -m grader export gradescope-run")
