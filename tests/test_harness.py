"""The supervisor inside a sandbox (``python -m grader.harness``), run as a sandbox runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader import grading
from grader.intake import submission
from grader.protocol import results, wire
from grader.sandbox.base import write_files

from .conftest import REPO


def run_harness(course, folder: Path, tmp_path: Path, exercise: str,
                env: dict[str, str] | None = None, extra: dict[str, bytes] | None = None) -> tuple[dict, Path]:
    """Grade ``folder`` for one exercise with the harness in a job folder of its own; the
    document and the harness's private folder. ``extra``: files written into the job folder
    after the job's own (paths relative to it), as if they had got past the intake."""
    sub = submission.from_folder(folder, course)
    nonce = "n" * 32
    job = grading.make_job(course, sub, grading.Options(exercises=(exercise,)), nonce)
    jobdir, private, scratch = tmp_path / "job", tmp_path / "private", tmp_path / "scratch"
    jobdir.mkdir(parents=True)
    scratch.mkdir()
    write_files(jobdir, job.files)
    for name, data in (extra or {}).items():
        (jobdir / name).parent.mkdir(parents=True, exist_ok=True)
        (jobdir / name).write_bytes(data)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
           "MPGRADE_PRIVATE": str(private), wire.NONCE_ENV: nonce, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "grader.harness"], cwd=jobdir, env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, (private / "harness.log").read_text()[-3000:]
    return results.parse(wire.unframe(proc.stdout, nonce)), private


@pytest.fixture
def short_tmp():
    """A folder with a short path: the fork server's socket path must fit AF_UNIX's 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="mpg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_report_never_touches_a_disk(course, short_tmp):
    """The supervisor keeps pytest's report in memory: a file could be reached by a path, and a
    student process that got hold of the folder could serve a doctored one (the nonce would
    then frame it as ours)."""
    doc, private = run_harness(course, REPO / "solutions" / "01_spawn", short_tmp, "01_spawn")
    assert doc["score"] == doc["max_score"] == 25, [(t["id"], t["message"]) for t in doc["tests"] if t["outcome"] != "passed"]
    assert sorted(p.name for p in private.iterdir()) == ["harness.log", "pytest.ini"]


def test_the_harness_loads_no_pytest_plugin_it_did_not_ask_for(course, short_tmp):
    """A plugin installed beside pytest (a ``pytest11`` entry point, as anyio's) is not loaded
    into a grading run: it would run its hooks over the instructor's tests, and importing
    plugins nobody asked for cost every check and local job about 0.15 s (bench/COURSE_NOTES.md)."""
    plugins = short_tmp / "site"
    (plugins / "intruder-1.0.dist-info").mkdir(parents=True)
    (plugins / "intruder-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: intruder\nVersion: 1.0\n")
    (plugins / "intruder-1.0.dist-info" / "entry_points.txt").write_text("[pytest11]\nintruder = intruder\n")
    (plugins / "intruder.py").write_text(
        "def pytest_runtest_call(item):\n    raise AssertionError('the intruder plugin ran')\n")
    env = {"PYTHONPATH": str(plugins)}
    seen = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                           "print(sorted(e.name for e in m.entry_points(group='pytest11')))"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert "intruder" in seen.stdout  # the environment has it: pytest by default would load it
    doc, _ = run_harness(course, REPO / "solutions" / "01_spawn", short_tmp / "run", "01_spawn", env=env)
    assert doc["score"] == doc["max_score"] == 25, [(t["id"], t["message"]) for t in doc["tests"]
                                                     if t["outcome"] != "passed"]


@pytest.mark.parametrize("before", [None, "0"])
def test_turning_plugin_autoload_off_is_undone_after_the_run_even_when_it_raises(monkeypatch, before):
    from grader.harness import supervisor

    if before is None:
        monkeypatch.delenv(supervisor.AUTOLOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(supervisor.AUTOLOAD_ENV, before)
    with pytest.raises(RuntimeError), supervisor._only_named_plugins():
        assert os.environ[supervisor.AUTOLOAD_ENV] == "1"
        raise RuntimeError("pytest broke")
    assert os.environ.get(supervisor.AUTOLOAD_ENV) == before
