"""Issue #18 finding 10: a student's set-up, on Linux, macOS and Windows.

``make check`` installs only what a check needs and never silently reuses a venv of another
Python; ``python -m grader check`` (the path without make) says what is missing instead of a
traceback, runs under spawn through psutil where there is no /proc (how macOS and Windows
behave), and refuses clearly where processes cannot be seen at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import check, processes

REPO = Path(__file__).resolve().parent.parent


def make(*args: str, env_extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True,
                          text=True, timeout=timeout, env={**env, **(env_extra or {})})


def fake_venv(folder: Path, version: str) -> None:
    """A venv whose python says it is ``version`` (and does nothing else)."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)


needs_make = pytest.mark.skipif(shutil.which("make") is None and os.environ.get("CI") != "true",
                                reason="no make on this machine")


@needs_make
def test_the_student_install_is_the_base_package_only(tmp_path):
    venv = tmp_path / "v"
    out = make("student-venv", f"VENV={venv}", "PIP_INSTALL=echo PIP-INSTALL")
    assert out.returncode == 0, out.stderr
    installs = [line for line in out.stdout.splitlines() if line.startswith("PIP-INSTALL")]
    assert installs == ["PIP-INSTALL -e ."], out.stdout  # no [dev,service,report]
    assert (venv / "bin" / "python").exists()


@needs_make
def test_a_venv_of_another_python_is_made_again_and_said_so(tmp_path):
    venv = tmp_path / "v"
    fake_venv(venv, "3.9")
    out = make("student-venv", f"VENV={venv}", f"PYTHON={sys.executable}", "PIP_INSTALL=true")
    assert out.returncode == 0, out.stderr
    assert "is for Python 3.9, not" in out.stdout and "making it again" in out.stdout
    real = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    assert real.stdout.strip() == str(tuple(sys.version_info[:2]))


@needs_make
def test_without_python_given_the_existing_venv_is_kept(tmp_path):
    venv = tmp_path / "v"
    fake_venv(venv, "3.13")
    out = make("student-venv", f"VENV={venv}", "PIP_INSTALL=true")
    assert out.returncode == 0, out.stderr
    assert "making it again" not in out.stdout
    assert (venv / "bin" / "python").read_text().startswith("#!/bin/sh")


def test_python_m_grader_without_its_packages_says_what_to_install():
    # -S: no site-packages at all, as a Python without mpgrade's packages.
    out = subprocess.run([sys.executable, "-S", "-m", "grader", "check"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "mpgrade needs the package" in out.stderr and "pip install" in out.stderr


def test_without_proc_children_are_found_and_killed_through_psutil(monkeypatch):
    """macOS and Windows have no /proc: the host's process code goes through psutil."""
    monkeypatch.setattr(processes, "HAVE_PROC", False)
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                              "time.sleep(60)"], start_new_session=True)
    try:
        assert processes.can_see_children()
        deadline = time.monotonic() + 30
        while not processes.children(child.pid):
            assert time.monotonic() < deadline, "the grandchild never showed"
            time.sleep(0.05)
        grandchild = processes.children(child.pid)[0]
        assert set(processes.session_members(child.pid)) == {child.pid, grandchild}
        processes.kill_session(child.pid)
        child.wait(timeout=30)
        deadline = time.monotonic() + 10
        while processes.alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes.alive(grandchild)
    finally:
        child.kill()
        child.wait(timeout=30)


NO_PROC = ("import grader.processes as p; p.HAVE_PROC = False; import runpy, sys; "
           "sys.argv = ['mpgrade', *sys.argv[1:]]; runpy.run_module('grader', run_name='__main__')")


def test_python_m_grader_check_under_spawn_without_proc_on_the_host(course_copy):
    """The documented path for Windows and macOS: no make, ``python -m grader check`` with the
    spawn start method, the host seeing processes only through psutil (the harness's watching
    of student processes still reads /proc here: it cannot be taken away from it in a test)."""
    spawn_py = course_copy / "exercises" / "01_spawn" / "spawn.py"
    spawn_py.write_text((REPO / "solutions" / "01_spawn" / "spawn.py").read_text())
    out = subprocess.run([sys.executable, "-c", NO_PROC, "check", "01_spawn", "--start-method", "spawn"],
                         cwd=course_copy, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "160"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Start method: spawn" in out.stdout and "3/3 passed" in out.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="hiding /proc needs root and unshare (CI runs as root)")
def test_where_no_process_can_be_seen_the_check_refuses_in_one_line(course_copy):
    """A Linux without /proc (psutil reads it too): graded blind, a correct solution "started no
    process". The check says why it does not run instead (seen before: wrong hints, 0 points)."""
    spawn_py = course_copy / "exercises" / "01_spawn" / "spawn.py"
    spawn_py.write_text((REPO / "solutions" / "01_spawn" / "spawn.py").read_text())
    script = f"mount -t tmpfs none /proc && exec {sys.executable} -m grader check 01_spawn --start-method spawn"
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         cwd=course_copy, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert check.NO_PROCESSES.split(":")[0] in out.stderr
    assert "Traceback" not in out.stderr and "started no process" not in out.stdout


@needs_make
def test_make_check_watch_runs_the_watch(tmp_path):
    out = make("-n", "check", "WATCH=1", "EX=01_spawn", f"VENV={tmp_path / 'v'}")
    assert out.returncode == 0, out.stderr
    assert "-m grader check --watch 01_spawn" in out.stdout


def test_the_check_runs_the_start_methods_the_system_has(course, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as Windows
    assert check.start_methods(course) == ("spawn",)
    with pytest.raises(check.CheckCannotRun, match="no 'fork' start method"):
        check.start_methods(course, "fork")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["fork", "spawn", "forkserver"])
    assert check.start_methods(course) == ("fork", "spawn", "forkserver")


def test_on_windows_the_check_says_to_use_wsl_instead_of_crashing(course, monkeypatch):
    monkeypatch.setattr(check, "POSIX", False)
    with pytest.raises(check.CheckCannotRun, match="WSL"):
        check.run_check(course, ("01_spawn",))


# What only the extras install (pyproject: dev, service, report, bench): a student has none.
EXTRAS_ONLY = ("fastapi", "uvicorn", "multipart", "python_multipart", "celery", "redis", "httpx",
               "psycopg", "prometheus_client", "matplotlib", "copydetect", "ruff", "importlinter",
               "playwright")
WITHOUT_EXTRAS = f"""
import importlib.abc, runpy, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
sys.argv = ["mpgrade", *sys.argv[1:]]
runpy.run_module("grader", run_name="__main__")
"""


def test_a_check_needs_none_of_the_extras(course_copy):
    """The student install is the base package: a check (and --help of every command a student
    sees) must run with none of the service, report or development packages importable."""
    spawn_py = course_copy / "exercises" / "01_spawn" / "spawn.py"
    spawn_py.write_text((REPO / "solutions" / "01_spawn" / "spawn.py").read_text())
    out = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "check", "01_spawn", "--start-method", "fork"],
                         cwd=course_copy, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3/3 passed" in out.stdout
    helped = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "--help"], cwd=course_copy,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
