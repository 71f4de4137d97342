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


def run_harness(course, folder: Path, tmp_path: Path, exercise: str) -> tuple[dict, Path]:
    """Grade ``folder`` for one exercise with the harness in a job folder of its own; the
    document and the harness's private folder."""
    sub = submission.from_folder(folder, course)
    nonce = "n" * 32
    job = grading.make_job(course, sub, grading.Options(exercises=(exercise,)), nonce)
    jobdir, private, scratch = tmp_path / "job", tmp_path / "private", tmp_path / "scratch"
    jobdir.mkdir()
    scratch.mkdir()
    write_files(jobdir, job.files)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(scratch), "LANG": "C.UTF-8",
           "MPGRADE_PRIVATE": str(private), wire.NONCE_ENV: nonce}
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
