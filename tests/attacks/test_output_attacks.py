"""Attacks on what the grader shows and writes, not on the sandbox.

Submission names, archive member names, exception messages and LMS names are the students'.
Shown raw, they drive the instructor's terminal (``ESC ]52`` writes the clipboard, ``ESC [2J``
clears the screen, ``ESC ]0`` sets the window title), rich reads ``[link=...]`` in them as a
link and crashes on ``[/]``; written raw into a CSV they are formulas a spreadsheet runs
(``=HYPERLINK(...)``, ``+cmd|' -C calc'!A0``); and a lone surrogate cannot be encoded at all.
Each test runs the grader as its users do (``mpgrade grade``, ``mpgrade check``, ``mpgrade
export``) on such text and checks what comes out.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli.export import export as export_cli
from tests.conftest import REPO
from tests.test_export import GRADEBOOK, canvas_student, error_doc, graded_doc, write_gradebook

CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: put "evil" on the clipboard
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
LINK = "[link=http://x]click[/link]"
CRASH = "../[/]notes.txt"  # "[/]" closes a tag nobody opened: rich's MarkupError
FORMULA = '=HYPERLINK("http://x","y")'
DDE = "+cmd|' -C calc'!A0"
SURROGATE = "\ud800"  # json.loads returns it; str.encode refuses it
BIDI = "\u202e"
HOSTILE = f"{CLIPBOARD} {CLEAR} {TITLE} {LINK} {CRASH} {BIDI}"

# OWASP CSV Injection: a cell beginning with one of these is a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def mpgrade(*args: str, cwd: Path = REPO, colour: bool = False, timeout: float = 300):
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    if colour:  # what an instructor's terminal gets: rich styles, and links if it makes any
        env.update(FORCE_COLOR="1", TERM="xterm-256color")
    else:
        env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, errors="backslashreplace", timeout=timeout, env=env)


def assert_plain_and_whole(out: str, err: str = "") -> None:
    """Output to a pipe: no escape sequence of any kind, no crash (a student's own traceback
    may be quoted in a message on stdout; the grader's would be on stderr)."""
    text = out + err
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, text
    assert BIDI not in text
    assert "Traceback" not in err and "MarkupError" not in text, text


def assert_no_student_sequences(out: str, err: str = "") -> None:
    """Output to a colour terminal: rich's own colours (CSI ... m) only; no OSC (links, clipboard,
    title), no clear screen, no bell, no crash."""
    text = out + err
    assert "\x1b]" not in text, text   # OSC 8 link, OSC 52 clipboard, OSC 0 title
    assert CLEAR not in text and "\x07" not in text and BIDI not in text
    assert "Traceback" not in err and "MarkupError" not in text, text


def formula_cells(rows: list[list[str]]) -> list[str]:
    return [cell for row in rows for cell in row
            if cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell)]


# --------------------------------------------------------------------------- mpgrade grade


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory) -> Path:
    """Submissions whose names and members are attacks (all rejected archives: no grading)."""
    subs = tmp_path_factory.mktemp("hostile") / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / f"mallory-{CLIPBOARD}.zip", "w") as zf:
        zf.writestr(CRASH, "x")
        zf.writestr("spawn.py", "x = 1\n")
    with zipfile.ZipFile(subs / f"{DDE}.zip", "w") as zf:
        zf.writestr(f"{CLEAR}{LINK}/../spawn.py", "x = 1\n")
    for name in ("@SUM(1+1).zip", "-2+3.zip"):
        with zipfile.ZipFile(subs / name, "w") as zf:
            zf.writestr("../spawn.py", "x = 1\n")
    (subs / f"{CLEAR}{TITLE}[link=mailto:x]click.txt").write_text("not a submission")
    return subs


@pytest.fixture(scope="module")
def graded(hostile_batch) -> tuple[Path, subprocess.CompletedProcess]:
    out = hostile_batch.parent / "out"
    return out, mpgrade("grade", str(hostile_batch), "--out", str(out), "--sandbox", "local", "--jobs", "2")


def test_grade_prints_hostile_names_and_members_as_text(graded):
    out, run = graded
    assert run.returncode == 1, run.stdout + run.stderr  # every submission is an error result
    assert_plain_and_whole(run.stdout, run.stderr)
    assert "Score distribution" in run.stdout and "4 submissions" in run.stdout
    assert "[/]notes.txt" in run.stdout              # the member name, as written
    assert "[link=mailto:x]click" in run.stderr      # skipped: the file name, markup and all
    assert "\\x1b[2J" in run.stderr                  # the escape shown, not obeyed


def test_grade_on_a_colour_terminal_gets_no_student_sequences(graded):
    out, _ = graded
    again = mpgrade("grade", str(out.parent / "subs"), "--out", str(out), "--sandbox", "local", colour=True)
    assert again.returncode == 1
    assert "(cached)" in again.stdout
    assert_no_student_sequences(again.stdout, again.stderr)


def test_scores_csv_holds_no_formula(graded):
    out, _ = graded
    rows = list(csv.reader(io.StringIO((out / "scores.csv").read_text())))
    assert len(rows) == 1 + 4
    assert formula_cells(rows) == []
    assert all(NUMBER.fullmatch(row[1]) and NUMBER.fullmatch(row[2]) for row in rows[1:])  # still numbers
    assert {row[0].lstrip("'")[:1] for row in rows[1:]} >= {"+", "@", "-"}  # the ids, neutralised


# --------------------------------------------------------------------------- mpgrade check


def test_check_prints_a_hostile_exception_message_as_text(course_copy):
    (course_copy / "exercises" / "01_spawn" / "spawn.py").write_text(
        f"raise RuntimeError({HOSTILE + ' ' + SURROGATE!r})\n")
    plain = mpgrade("check", "01_spawn", cwd=course_copy)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert_plain_and_whole(plain.stdout, plain.stderr)
    assert "click[/link]" in plain.stdout and "\\x1b]52" in plain.stdout
    colour = mpgrade("check", "01_spawn", cwd=course_copy, colour=True)
    assert colour.returncode == 1
    assert_no_student_sequences(colour.stdout, colour.stderr)


# --------------------------------------------------------------------------- mpgrade export


@pytest.fixture
def hostile_results(tmp_path, course) -> tuple[Path, dict[str, dict]]:
    """A results folder whose documents carry every attack in ids, names, messages and output."""
    mallory = graded_doc(course, "mallory", {"01_spawn/public": "failed", "02_pingpong/hidden": "failed"},
                         student=canvas_student("1001", FORMULA))
    for t in mallory["tests"]:
        if t["outcome"] != "passed":
            t["message"] = f"{HOSTILE} {SURROGATE} got 2"
            t["hint"] = f"{SURROGATE}{LINK}"
            t["output"] = f"{CLIPBOARD}{SURROGATE}\n"
    docs = {
        "mallory": mallory,
        "../escape": error_doc(course, "../escape", status="error", files=False,
                               message=f"{CRASH} was rejected {SURROGATE}",
                               student=canvas_student(DDE, "@SUM(1+1)*cmd|' /C calc'!A0")),
        f"{CLEAR}eve": error_doc(course, f"{CLEAR}eve", status="timeout", files=True,
                                 message=f"{TITLE}{LINK}"),
        "-2+3": graded_doc(course, "-2+3"),
        "bob": graded_doc(course, "bob"),
    }
    folder = tmp_path / "results"
    folder.mkdir()
    for n, doc in enumerate(docs.values()):
        (folder / f"{n}.json").write_text(json.dumps(doc, indent=2))  # as mpgrade grade writes them
    return folder, docs


def run(*args: str):
    return CliRunner().invoke(export_cli, list(args), catch_exceptions=False)


def test_gradescope_and_prairielearn_exports_hold_every_student(tmp_path, hostile_results):
    results, docs = hostile_results
    graded = {sid for sid, doc in docs.items() if doc["status"] == "graded"}
    for target in ("gradescope", "prairielearn"):
        out = tmp_path / "exports" / target
        result = run(target, str(results), "--out", str(out))
        assert result.exit_code == 1, result.output  # the error and the timeout: not sent, listed
        assert_plain_and_whole(result.output)
        assert "not sent: \\x1b[2Jeve: timeout" in result.output
        files = sorted(out.rglob("results.json"))
        # Gradescope gets no results.json for them (never a 0), PrairieLearn "gradable": false
        assert len(files) == (len(graded) if target == "gradescope" else len(docs))
        assert all(f.parent.parent == out for f in files)  # "../escape" is a folder name, not a path
        for f in files:
            text = f.read_bytes().decode("utf-8")  # valid UTF-8
            assert SURROGATE not in json.dumps(json.loads(text), ensure_ascii=False)  # nor escaped
            assert BIDI not in text  # written as \u202e inside the JSON strings
        mallory = (out / "mallory" / "results.json").read_text()
        assert "\ufffd got 2" in mallory  # the message is kept, its surrogate replaced
        if target == "gradescope":
            ids = {json.loads(f.read_text())["extra_data"]["submission_id"] for f in files}
            assert ids == graded
    assert not (tmp_path / "exports" / "escape").exists()


def test_lti_and_scores_exports_hold_every_student(tmp_path, hostile_results):
    results, docs = hostile_results
    result = run("lti", str(results), "--out", str(tmp_path / "lti.jsonl"))
    assert result.exit_code == 1, result.output  # the error and the timeout: no Score, listed
    assert_plain_and_whole(result.output)
    lines = (tmp_path / "lti.jsonl").read_bytes().decode("utf-8").splitlines()
    graded = [d for d in docs.values() if d["status"] == "graded"]
    assert len(lines) == len(graded) and all(json.loads(line)["userId"] for line in lines)
    result = run("scores", str(results), "--out", str(tmp_path / "scores.csv"))
    assert result.exit_code == 1, result.output
    rows = list(csv.reader(io.StringIO((tmp_path / "scores.csv").read_bytes().decode("utf-8"))))
    assert len(rows) == 1 + len(docs)
    assert formula_cells(rows) == []
    by_id = {row[0].lstrip("'"): row for row in rows[1:]}
    assert by_id["mallory"][1] == "'" + FORMULA       # the name, shown as text by a spreadsheet
    assert by_id["../escape"][2] == "'" + DDE         # the user id
    assert by_id["-2+3"][3] == "100"                  # scores stay numbers


def test_canvas_gradebook_holds_no_formula_and_reports_as_text(tmp_path, hostile_results):
    results, _ = hostile_results
    rows = [list(r) for r in GRADEBOOK]
    rows[3][0] = FORMULA  # the student 1001 (mallory) chose a display name
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    result = run("canvas", str(results), "--gradebook", str(gradebook), "--out", str(tmp_path / "import.csv"))
    assert result.exit_code == 1  # the others are not in the gradebook, and say so
    assert_plain_and_whole(result.output)
    assert "not sent: \\x1b[2Jeve" in result.output  # a timeout: never written (one policy)
    written = list(csv.reader(io.StringIO((tmp_path / "import.csv").read_bytes().decode("utf-8-sig"))))
    assert formula_cells(written) == []
    assert written[3][0] == "'" + FORMULA
    assert written[3][6] == "80"  # mallory's score, a number


def test_export_errors_show_ids_as_text(tmp_path, course):
    results = tmp_path / "results"
    results.mkdir()
    for n, sid in enumerate((f"{CLIPBOARD}a", f"{CLIPBOARD}b")):  # one LMS user, two results
        doc = graded_doc(course, sid, student=canvas_student(f"{TITLE}{LINK}", "x"))
        (results / f"{n}.json").write_text(json.dumps(doc))
    result = run("lti", str(results))
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert_plain_and_whole(result.output)
    assert LINK in result.output


def test_scores_on_stdout_of_a_terminal_are_escaped(hostile_results):
    results, _ = hostile_results
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "grader", "export", "scores", str(results)],
                                cwd=REPO, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 1, proc.stderr.read() if proc.stderr else ""  # 2 not sent
    finally:
        os.close(master)
    shown = b"".join(chunks).decode("utf-8")
    assert "\x1b" not in shown and "\\x1b[2Jeve" in shown
    assert "'=HYPERLINK(" in shown  # neutralised, and escaped only for the terminal


# --------------------------------------------------------------------------- the mechanism


def test_printable_text_is_unchanged_and_controls_are_shown():
    from grader.escaping import terminal

    assert terminal("José Núñez 日本 alice-2.zip") == "José Núñez 日本 alice-2.zip"
    assert terminal(HOSTILE + SURROGATE) == (
        "\\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J \\x1b]0;pwned\\x07 " + LINK + " " + CRASH + " \\u202e\\ud800")
    assert terminal("line 1\nline 2\r", multiline=True) == "line 1\nline 2\\r"


def test_spreadsheet_cells_follow_owasp_and_numbers_stay_numbers():
    from grader.escaping import spreadsheet_cell

    for cell in (FORMULA, DDE, "-2+3", "@SUM(1)", "\tx", "＝1+1"):
        assert spreadsheet_cell(cell) == "'" + cell
    assert spreadsheet_cell("\rx") == "\\rx"  # shown as an escape: no longer a formula start
    # `cat scores.csv` on a terminal: no live sequence in a cell either
    assert spreadsheet_cell("\x1b[2J\x1b]0;owned\x07Mallory") == "\\x1b[2J\\x1b]0;owned\\x07Mallory"
    assert spreadsheet_cell("two\nlines") == "two\nlines"
    assert spreadsheet_cell("a;=1+1") == "a;'=1+1"  # a cell of its own where ; separates
    assert spreadsheet_cell("'=already") == "'=already"
    assert spreadsheet_cell("-2.5") == "-2.5" and spreadsheet_cell(-1.0) == -1.0
    assert spreadsheet_cell(SURROGATE + "x") == "\ufffdx"


def test_a_gradebook_with_a_huge_field_is_a_one_line_error(tmp_path, hostile_results):
    """A student's display name of 140,000 characters is over the csv module's field limit:
    a clear error, exit 2, not a traceback."""
    results, _ = hostile_results
    rows = [list(r) for r in GRADEBOOK]
    rows[3][0] = "x" * 140_000
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    result = run("canvas", str(results), "--gradebook", str(gradebook), "--out", str(tmp_path / "import.csv"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not (tmp_path / "import.csv").exists()
