"""The command line as students and instructors use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.protocol import results

from .conftest import REPO


def mpgrade(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "COLUMNS": "160", **(env or {})},
    )


def test_help_explains_every_command_with_examples():
    for command in (["check"], ["grade"], ["image", "build"], ["validate"], ["schema"]):
        out = mpgrade(*command, "--help")
        assert out.returncode == 0
        assert "Example" in out.stdout, command


def test_check_on_the_stubs_shows_the_table_hints_and_what_remains(course_copy):
    out = mpgrade("check", "01_spawn", cwd=course_copy)
    assert out.returncode == 1, out.stderr
    assert "01_spawn" in out.stdout and "not implemented" in out.stdout
    assert "Hidden tests worth" in out.stdout and "all tests passed" not in out.stdout.lower()
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    results.validate(doc)
    assert doc["scope"] == "public" and doc["score"] == 0
    assert [e["name"] for e in doc["exercises"]] == ["01_spawn"]
    assert all(t["visibility"] == "visible" for t in doc["tests"])


def test_check_passes_when_the_public_tests_pass(course_copy):
    shutil.copy(course_copy / "solutions" / "02_pingpong" / "pingpong.py",
                course_copy / "exercises" / "02_pingpong" / "pingpong.py")
    out = mpgrade("check", "02_pingpong", "--json", "result.json", cwd=course_copy)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((course_copy / "result.json").read_text())
    assert doc["score"] == doc["max_score"] > 0
    hidden = 25 - doc["max_score"]
    assert f"Hidden tests worth {hidden:g} more points" in out.stdout


@pytest.mark.parametrize("source, expected", [
    ("def worker_pids(n:\n", "SyntaxError"),
    ("raise RuntimeError('boom at import')\n", "boom at import"),
    ("import time\nwhile True:\n    time.sleep(1)\n", "did not return within"),
])
def test_check_survives_broken_student_code(course_copy, source, expected):
    (course_copy / "exercises" / "01_spawn" / "spawn.py").write_text(source)
    out = mpgrade("check", "01_spawn", cwd=course_copy, timeout=300)
    assert out.returncode == 1
    assert expected in out.stdout
    assert "Traceback (most recent call last)" not in out.stderr


def test_check_with_a_missing_file(course_copy):
    (course_copy / "exercises" / "03_prodcons" / "prodcons.py").unlink()
    out = mpgrade("check", "03_prodcons", cwd=course_copy)
    assert out.returncode == 1 and "could not import prodcons.py" in out.stdout


def test_unknown_exercise_is_a_usage_error(course_copy):
    out = mpgrade("check", "99_nope", cwd=course_copy)
    assert out.returncode == 2
    assert "no exercise '99_nope'" in out.stderr and "01_spawn" in out.stderr


def test_outside_an_assignment_is_a_usage_error(tmp_path):
    out = mpgrade("check", cwd=tmp_path)
    assert out.returncode == 2 and "assignment.toml" in out.stderr


def test_grade_locally_writes_results_summary_and_csv_then_resumes(tmp_path):
    out_dir = tmp_path / "out"
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("bob-partial.zip", "erin-syntax-error.zip"):
        shutil.copy(REPO / "examples" / "submissions" / name, subs / name)
    (subs / "readme.txt").write_text("not a submission")
    first = mpgrade("grade", str(subs), "--out", str(out_dir), "--sandbox", "local", "--jobs", "2", cwd=REPO)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "NOT a security boundary" in first.stderr
    assert "readme.txt" in first.stderr and "skipped" in first.stderr
    assert "Score distribution" in first.stdout
    for sid in ("bob-partial", "erin-syntax-error"):
        results.validate(json.loads((out_dir / f"{sid}.json").read_text()))
    summary = json.loads((out_dir / "summary.json").read_text())
    assert {r["id"]: r["score"] for r in summary["submissions"]} == {"bob-partial": 50, "erin-syntax-error": 75}
    csv = (out_dir / "scores.csv").read_text().splitlines()
    assert csv[0].startswith("id,score,max_score,status,01_spawn")
    assert not list(out_dir.glob(".*.tmp")), "no temp files left behind"
    second = mpgrade("grade", str(subs), "--out", str(out_dir), "--sandbox", "local",
                     "--report", str(tmp_path / "report"), cwd=REPO)
    assert second.returncode == 0 and "(cached)" in second.stdout
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["totals"]["reused"] == 2
    # --report: the class report of the same results, the graded code read for similarity
    assert "wrote" in second.stderr and "for 2 submissions" in second.stderr, second.stderr
    index = (tmp_path / "report" / "index.html").read_text()
    assert "bob-partial" in (tmp_path / "report" / "students.html").read_text() and "<svg" in index


def test_grade_without_docker_says_what_to_do(tmp_path):
    out = mpgrade("grade", str(REPO / "examples" / "submissions"), "--out", str(tmp_path),
                  cwd=REPO, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert out.returncode == 2
    assert "no Docker engine answers" in out.stderr and "--sandbox local" in out.stderr
    assert "Traceback" not in out.stderr


def test_grade_with_nothing_to_grade(tmp_path):
    out = mpgrade("grade", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--sandbox", "local", cwd=REPO)
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_schema_command_prints_the_published_schema():
    out = mpgrade("schema")
    assert json.loads(out.stdout) == results.schema()


def test_released_notebooks_with_the_reference_pasted_in_score_full_marks(tmp_path):
    """Notebook round trip: release, paste the reference into the stub cell, grade."""
    import nbformat

    out = mpgrade("release", "--notebooks", str(tmp_path / "nb"), cwd=REPO)
    assert out.returncode == 0, out.stderr
    notebooks = sorted((tmp_path / "nb").glob("*.ipynb"))
    assert [p.stem for p in notebooks] == ["01_spawn", "02_pingpong", "03_prodcons", "04_locks"]
    student = tmp_path / "subs" / "nina"
    student.mkdir(parents=True)
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        module = nb.metadata["mpgrade"]["module"]
        code = [c for c in nb.cells if c.cell_type == "code"]
        code[0].source = "%matplotlib inline\n" + (REPO / "solutions" / path.stem / module).read_text()
        nbformat.write(nb, student / path.name)
    (student / "broken.ipynb").write_text('{"cells": [')
    graded = mpgrade("grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--sandbox", "local", cwd=REPO)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    doc = json.loads((tmp_path / "out" / "nina.json").read_text())
    assert doc["score"] == 100, [t["message"] for t in doc["tests"] if t["outcome"] != "passed"][:3]
    assert sorted(doc["submission"]["files"]) == ["locks.py", "pingpong.py", "prodcons.py", "spawn.py"]
    reasons = " ".join(i["reason"] for i in doc["submission"]["ignored"])
    assert "magic" in reasons.lower() and "broken.ipynb" in str(doc["submission"]["ignored"])
