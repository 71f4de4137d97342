"""One batch, one copy of each thing: one test fingerprint, one summary.json and scores.csv.

A batch grades every submission against one snapshot of the tests, so the fingerprint its
documents carry and its resume check compare against is computed once, at the start. The
summary and the CSV are written once, when the batch ends (interrupted or not), so what the
command prints is what is in the files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grader import batch
from grader.assignment import Assignment


class Breaks:
    name = "local"

    def run(self, job):
        raise RuntimeError("the sandbox went away")

    def close(self):
        pass


def submissions(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "subs"
    for i in range(n):
        (folder / f"s{i}").mkdir(parents=True)
        (folder / f"s{i}" / "spawn.py").write_text(f"X = {i}\n")
    return folder


@pytest.fixture
def counted(monkeypatch):
    """Counts of Assignment.fingerprint() calls and of writes of summary.json and scores.csv."""
    counts = {"fingerprint": 0, batch.SUMMARY: 0, batch.SCORES: 0}
    real_fingerprint, real_write = Assignment.fingerprint, batch.write_atomic

    def fingerprint(self):
        counts["fingerprint"] += 1
        return real_fingerprint(self)

    def write_atomic(path, data):
        if Path(path).name in counts:
            counts[Path(path).name] += 1
        return real_write(path, data)

    monkeypatch.setattr(Assignment, "fingerprint", fingerprint)
    monkeypatch.setattr(batch, "write_atomic", write_atomic)
    return counts


def test_a_batch_computes_the_fingerprint_once_and_writes_its_outputs_once(course, tmp_path, counted):
    subs = submissions(tmp_path)
    first = batch.run([subs], tmp_path / "out", course, Breaks(), jobs=2)
    assert len(first.documents) == 3
    fingerprints = {d["assignment"]["fingerprint"] for d in first.documents.values()}
    assert len(fingerprints) == 1
    assert counted == {"fingerprint": 1, batch.SUMMARY: 1, batch.SCORES: 1}
    again = batch.run([subs], tmp_path / "out", course, Breaks(), jobs=2)  # resumes: all reused
    assert again.reused == {"s0", "s1", "s2"}
    assert counted == {"fingerprint": 2, batch.SUMMARY: 2, batch.SCORES: 2}
    assert again.written is not None and again.written["totals"]["reused"] == 3


def test_an_interrupted_batch_still_writes_its_outputs_once(course, tmp_path, counted):
    def interrupt(sub):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.run([submissions(tmp_path, 1)], tmp_path / "out", course, None, grade_one=interrupt)
    assert counted[batch.SUMMARY] == 1 and counted[batch.SCORES] == 1
    assert (tmp_path / "out" / batch.SUMMARY).is_file()


def test_the_grade_command_writes_the_summary_once(course, tmp_path, counted, monkeypatch):
    from click.testing import CliRunner

    from grader.cli import main

    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "notes.txt").write_text("not a submission")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["grade", str(subs), "--out", str(tmp_path / "out"), "--sandbox", "local",
                                    "--warm", "0", "--assignment", str(course.root)])
    assert out.exit_code == 2 and "no submissions found" in out.output
    assert counted[batch.SUMMARY] == 1 and counted[batch.SCORES] == 1


def test_export_does_not_import_batch_grading():
    """grader.export reads a results folder; it needs the folder's layout, not the batch."""
    code = "import sys, grader.export; print('grader.batch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
