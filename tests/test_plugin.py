"""The mpgrade pytest plugin: on only in an mpgrade run, configured by one HarnessConfig."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.harness import supervisor
from grader.harness.config import HarnessConfig, parse_user
from grader.protocol import wire

# A suite of someone else's that happens to use mpgrade's marker names for its own purposes.
UNRELATED_CONFTEST = '''
def pytest_configure(config):
    config.addinivalue_line("markers", "visibility(who): who may read this test's output")
    config.addinivalue_line("markers", "points(kind): which data points this test samples")
'''

UNRELATED_TESTS = '''
import pytest

@pytest.mark.visibility("team-only")
@pytest.mark.points("edges")
def test_own_markers(request):
    assert request.node.get_closest_marker("visibility").args == ("team-only",)

def test_no_student_fixture(request):
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue("student")
'''


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh process, as a user runs it in this environment (entry points loaded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MPGRADE_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=folder, capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.fixture
def unrelated_suite(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(UNRELATED_CONFTEST)
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_TESTS)
    return tmp_path


def test_an_unrelated_suite_runs_as_if_mpgrade_were_not_installed(unrelated_suite):
    """The entry point is loaded into every pytest session: outside an mpgrade run its hooks
    must not read markers (a suite's own ``visibility`` was a usage error), add records to the
    report, register markers or offer a ``student`` fixture."""
    report = unrelated_suite / "report.xml"
    done = run_pytest(unrelated_suite, "-q", f"--junitxml={report}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert '<property name="mpgrade"' not in report.read_text(), "the plugin added its records"
    markers = run_pytest(unrelated_suite, "--markers").stdout
    assert "after_due_date" not in markers and "hint(text)" not in markers


AUTHOR_TEST = '''
def test_answer(student):
    assert student.module("work").answer() == 42
'''


@pytest.mark.parametrize("option", ["--mpgrade", "--mpgrade-no-prestart"])
def test_an_mpgrade_option_turns_the_plugin_on(tmp_path, option):
    """By hand, ``--mpgrade`` (or any ``--mpgrade-*`` option) makes it an mpgrade run: the
    ``student`` fixture runs the modules next to the test file, and each test gets its record."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "work.py").write_text("def answer():\n    return 42\n")
    (tmp_path / "test_author.py").write_text(AUTHOR_TEST)
    report = tmp_path / "report.xml"
    done = run_pytest(tmp_path, "-q", option, f"--junitxml={report}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert '<property name="mpgrade"' in report.read_text()


def test_the_supervisors_config_comes_from_the_sandboxs_environment(tmp_path):
    python = tmp_path / "python-student"
    python.write_text("")
    python.chmod(0o711)
    env = {wire.STUDENT_USER_ENV: "1234:1234", wire.STUDENT_PYTHON_ENV: str(python),
           wire.STUDENT_NPROC_ENV: "200", wire.CGROUP_ENV: "/sys/fs/cgroup"}
    limits = type("Limits", (), {"call_timeout": 3.0, "output_limit": 1000})()
    got = supervisor.harness_config(env, tmp_path / "work", tmp_path, "spawn", limits)
    assert got == HarnessConfig(
        submission=tmp_path / "work", start_method="spawn", call_timeout=3.0, output_limit=1000,
        student_user=(1234, 1234), student_python=python, max_processes=200,
        cgroup=Path("/sys/fs/cgroup"), scratch=tmp_path)
    bare = supervisor.harness_config({wire.STUDENT_PYTHON_ENV: str(python)}, tmp_path, tmp_path,
                                     "fork", limits)
    assert bare.student_user is None and bare.student_python is None, \
        "without a student user, student code runs the supervisor's interpreter"


def test_a_config_refuses_an_unknown_start_method():
    with pytest.raises(ValueError, match="start method"):
        HarnessConfig(start_method="vfork")


def test_student_users_are_uids_or_names():
    assert parse_user(None) is None and parse_user("") is None
    assert parse_user("1000") == (1000, 1000)
    assert parse_user("1000:2000") == (1000, 2000)
    assert parse_user("root") == (0, 0)


def test_a_pytest_raises_that_did_not_raise_is_a_failure_not_a_timeout():
    """``pytest.raises(TimeoutError)`` around student code that returned is an unmet
    expectation (failed, with pytest's message), never the test's time limit because the
    message contains "Timeout", nor a grader error; pytest-timeout's own failure stays a timeout."""
    import pytest_timeout

    from grader.harness import plugin

    with pytest.raises(pytest.fail.Exception) as did_not_raise:
        with pytest.raises(TimeoutError):
            pass
    outcome, message, _ = plugin._classify(did_not_raise)
    assert (outcome, message) == ("failed", "DID NOT RAISE TimeoutError")
    with pytest.raises(pytest.fail.Exception) as timed_out:
        pytest.fail(pytest_timeout.PYTEST_FAILURE_MESSAGE % 60.0)
    assert plugin._classify(timed_out)[0] == "timeout"
