"""LMS exports: Gradescope, the Gradescope autograder zip, LTI AGS, Canvas, scores.csv, PrairieLearn.

The documents are built here, realistic and validated by ``grader.protocol.results.validate``; every
export is also checked against its target schema in ``grader/schema/targets/``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from grader import export
from grader.cli.export import export as export_cli
from grader.protocol import results

START = "2026-01-20T10:00:00.000Z"


def graded_doc(course, sid: str, outcomes: dict[str, str] | None = None, *,
             student: dict[str, Any] | None = None, finished_at: str = "2026-01-20T10:01:30.250Z") -> dict:
    """A graded document: per exercise a visible (5), a hidden (15) and an after_due_date (5) test.

    ``outcomes`` maps "<exercise>/<kind>" (kind: public, hidden, late) to an outcome; the
    rest pass.
    """
    outcomes = outcomes or {}
    tests, exercises = [], []
    for ex in course.exercises:
        mine = []
        for kind, visibility, points in (("public", "visible", 5.0), ("hidden", "hidden", 15.0),
                                         ("late", "after_due_date", 5.0)):
            outcome = outcomes.get(f"{ex.id}/{kind}", "passed")
            failed = outcome != "passed"
            mine.append({
                "id": f"{ex.id}/test_{'public' if kind == 'public' else 'hidden'}.py::test_{kind}",
                "name": f"{kind} behaviour of {ex.files[0]}",
                "exercise": ex.id,
                "score": 0.0 if failed else points,
                "max_score": points,
                "outcome": outcome,
                "visibility": visibility,
                "message": f"expected 3 items, got 2 ({kind})" if failed else "",
                "hint": f"join every process ({kind})" if failed else None,
                "output": "worker 1 started\n" if kind == "public" else "",
                "duration": 0.5,
                "telemetry": None,
            })
        tests += mine
        exercises.append({
            "name": ex.id, "title": ex.title, "score": sum(t["score"] for t in mine), "max_score": 25.0,
            "points": ex.points, "tests_passed": sum(t["outcome"] == "passed" for t in mine),
            "tests_total": 3, "message": None,
        })
    doc = {
        "schema_version": "1.0",
        "submission": {"id": sid, "hash": "sha256:" + "a" * 64, "files": list(course.submitted_files),
                       "missing": [], "ignored": [], "source": f"/srv/in/{sid}.zip", "student": student},
        "assignment": {"name": course.name, "version": course.version, "fingerprint": course.fingerprint()},
        "scope": "all",
        "score": sum(e["score"] for e in exercises),
        "max_score": course.max_score,
        "status": "graded",
        "message": "",
        "exercises": exercises,
        "tests": tests,
        "grader": results.grader_info("docker", "fork"),
        "started_at": START,
        "finished_at": finished_at,
        "duration": 90.25,
    }
    return results.validate(doc)


def error_doc(course, sid: str, *, status: str, message: str, files: bool, student=None) -> dict:
    submission = {"id": sid, "hash": "sha256:" + "b" * 64,
                  "files": list(course.submitted_files) if files else [], "missing": [], "ignored": [],
                  "source": f"/srv/in/{sid}.zip", "student": student}
    return results.validate(results.error_document(
        course, submission, status=status, message=message, sandbox="docker", start_method="fork",
        started_at=START))


def canvas_student(user_id: str, name: str, *, late: bool = False) -> dict:
    return {"lms": "canvas", "user_id": user_id, "name": name, "submission_id": "sub-" + user_id,
            "late": late, "email": None}


@pytest.fixture
def docs(course) -> dict[str, dict]:
    return {
        # Canvas student 1001; loses the hidden test of 03 (timeout) and the public one of 04
        "alice": graded_doc(course, "alice", {"03_prodcons/hidden": "timeout", "04_locks/public": "failed"},
                          student=canvas_student("1001", "Alice Liddell", late=True)),
        # no LMS identity: the submission id is the student id; everything passes
        "bob": graded_doc(course, "bob"),
        "carol": error_doc(course, "carol", status="error", files=False,
                           message="carol.zip was rejected: member '../x' points outside the archive"),
        "dave": error_doc(course, "dave", status="timeout", files=True,
                          message="the submission ran past the limit of 600 s for a whole submission and was stopped",
                          student=canvas_student("1004", "Dave Bowman")),
        "erin": error_doc(course, "erin", status="error", files=True,
                          message="no valid result came out of the sandbox (exit status 1): not JSON"),
    }


@pytest.fixture
def results_dir(tmp_path, docs) -> Path:
    """A folder as mpgrade grade --out leaves it: <id>.json, summary.json, scores.csv."""
    out = tmp_path / "results"
    out.mkdir()
    for sid, doc in docs.items():
        (out / f"{sid}.json").write_text(json.dumps(doc, indent=2))
    (out / "summary.json").write_text(json.dumps({"submissions": list(docs)}))
    (out / "scores.csv").write_text("id,score\n")
    return out


def check_schema(target: str, data: Any) -> None:
    schema = json.loads((export.TARGETS / export.TARGET_SCHEMAS[target]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


# --------------------------------------------------------------------------- loading


def test_load_results_reads_every_document_and_skips_the_summary(results_dir):
    loaded = export.load_results(results_dir)
    assert [export.submission_id(d) for d in loaded] == ["alice", "bob", "carol", "dave", "erin"]
    assert loaded[0]["score"] == 100 - 15 - 5


def test_load_results_names_every_invalid_file(results_dir, docs):
    (results_dir / "mallory.json").write_text('{"score": 100')
    forged = dict(docs["bob"], submission={**docs["bob"]["submission"], "id": "trudy"}, score=101.0)
    (results_dir / "trudy.json").write_text(json.dumps(forged))
    with pytest.raises(export.ExportError) as info:
        export.load_results(results_dir)
    text = str(info.value)
    assert "2 invalid result file(s)" in text
    assert "mallory.json: result is not JSON" in text and "trudy.json" in text


def test_load_results_refuses_make_check_results_and_empty_folders(tmp_path, course):
    with pytest.raises(export.ExportError, match="no result documents"):
        export.load_results(tmp_path)
    doc = graded_doc(course, "me")
    (tmp_path / "check.json").write_text(json.dumps(dict(doc, scope="public")))
    with pytest.raises(export.ExportError, match="check.json: a 'public' result"):
        export.load_results(tmp_path)
    with pytest.raises(export.ExportError, match="is not a folder"):
        export.load_results(tmp_path / "missing")


# --------------------------------------------------------------------------- Gradescope


def test_gradescope_results_scores_visibility_status_and_feedback(docs):
    gs = export.gradescope_results(docs["alice"])
    check_schema("gradescope", gs)
    assert gs["score"] == 80.0
    assert gs["execution_time"] == 90.25
    assert gs["stdout_visibility"] == "hidden"
    assert len(gs["tests"]) == 12
    assert sum(t["max_score"] for t in gs["tests"]) == 100.0
    by_id = {t["extra_data"]["id"]: t for t in gs["tests"]}
    timed_out = by_id["03_prodcons/test_hidden.py::test_hidden"]
    assert timed_out["status"] == "failed" and timed_out["score"] == 0.0 and timed_out["max_score"] == 15.0
    assert timed_out["visibility"] == "hidden"
    assert timed_out["tags"] == ["03_prodcons", "timeout"]
    assert "expected 3 items, got 2 (hidden)" in timed_out["output"]
    assert "Hint: join every process (hidden)" in timed_out["output"]
    late = by_id["01_spawn/test_hidden.py::test_late"]
    assert (late["visibility"], late["status"], late["score"]) == ("after_due_date", "passed", 5.0)
    public = by_id["04_locks/test_public.py::test_public"]
    assert public["visibility"] == "visible" and public["number"] == "4.1"
    assert "worker 1 started" in public["output"]
    assert "04_locks: 20/25 (2/3 tests)" in gs["output"]


def test_gradescope_never_gets_a_score_for_an_error_or_timeout(docs):
    """The one policy (docs/lms-exports.md): a failed grading is no grade. A results.json of 0
    would be the student's active submission's score; without one Gradescope says the
    autograder failed, and staff can rerun it or activate an earlier submission."""
    for sid in ("carol", "dave", "erin"):
        with pytest.raises(export.Withheld, match=docs[sid]["status"]):
            export.gradescope_results(docs[sid])


def test_gradescope_schema_rejects_what_gradescope_does_not_know(docs):
    gs = export.gradescope_results(docs["bob"])
    gs["tests"][0]["visibility"] = "secret"
    with pytest.raises(jsonschema.ValidationError):
        check_schema("gradescope", gs)
    with pytest.raises(export.ExportError, match="visibility"):
        export.validate_target("gradescope", gs)


def test_write_gradescope_one_folder_per_submission(tmp_path, docs):
    written = export.write_gradescope(docs.values(), tmp_path / "gs")
    assert sorted(p.parent.name for p in written) == ["alice", "bob"]  # the others: withheld
    assert not (tmp_path / "gs" / "dave").exists()
    assert json.loads((tmp_path / "gs" / "bob" / "results.json").read_text())["score"] == 100.0


# --------------------------------------------------------------------------- the autograder zip


def test_gradescope_autograder_zip_holds_scripts_grader_and_tests_only(tmp_path, course):
    out = tmp_path / "ag.zip"
    members = export.gradescope_autograder(course.root, out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        infos = {i.filename: i for i in zf.infolist()}
        run = zf.read("run_autograder").decode()
        setup = zf.read("setup.sh").decode()
    assert names == members == sorted(names)
    course_files = [n for n in names if n.startswith("course/")]
    assert course_files == ["course/assignment.toml"] + [
        f"course/exercises/{ex.id}/test_public.py" for ex in course.exercises
    ] + [f"course/solutions/{ex.id}/test_hidden.py" for ex in course.exercises]
    assert {"setup.sh", "run_autograder", "mpgrade/pyproject.toml", "mpgrade/README.md",
            "mpgrade/grader/__init__.py", "mpgrade/grader/__main__.py", "mpgrade/grader/cli/__init__.py",
            "mpgrade/grader/export.py", "mpgrade/grader/schema/result.schema.json",
            "mpgrade/grader/schema/targets/gradescope-results.schema.json"} <= set(names)
    # no reference solutions, no mutants, no caches
    assert not [n for n in names if "mutants" in n or "__pycache__" in n or n.endswith(".pyc")]
    for ex in course.exercises:
        for module in ex.files:
            assert not [n for n in names if n.endswith("/" + module)]
    for name in ("run_autograder", "setup.sh"):
        mode = infos[name].external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, name
        assert infos[name].date_time == (1980, 1, 1, 0, 0, 0)
    assert infos["course/assignment.toml"].external_attr >> 16 & 0o111 == 0
    # every path the scripts use under /autograder/source is in the zip
    used = set(re.findall(r"/autograder/source/([\w./-]+)", run + setup))
    assert used == {"course", "mpgrade"}
    for rel in used:
        assert any(n == rel or n.startswith(rel + "/") for n in names), rel
    assert "python3 -m grader export gradescope-run" in run
    assert "--assignment /autograder/source/course" in run
    assert "--results /autograder/results/results.json" in run
    assert "--submission /autograder/submission" in run
    # student code as an unprivileged user; the sources and the results root's only
    assert f"--student-user {export.STUDENT_USER}" in run and "useradd" in setup
    assert "chmod -R go-rwx /autograder/source" in setup and "chmod 0700 /autograder/results" in run
    assert run.startswith("#!/usr/bin/env bash\n") and setup.startswith("#!/usr/bin/env bash\n")


def test_gradescope_autograder_zip_is_deterministic_and_unpacks_executable(tmp_path, course_copy):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    export.gradescope_autograder(course_copy, a)
    (course_copy / "assignment.toml").touch()  # a newer mtime must not change the bytes
    export.gradescope_autograder(course_copy, b)
    assert a.read_bytes() == b.read_bytes()
    target = tmp_path / "unpacked"
    with zipfile.ZipFile(a) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, target))
            path.chmod(info.external_attr >> 16 & 0o777)
    assert (target / "run_autograder").stat().st_mode & 0o111
    from grader import assignment as assignment_mod

    bundled = assignment_mod.load(target / "course")  # the course the autograder grades with
    assert bundled.fingerprint() == assignment_mod.load(course_copy).fingerprint()


def test_gradescope_autograder_leaves_out_reference_solutions(tmp_path, course_copy):
    shutil.copy(course_copy / "solutions" / "01_spawn" / "spawn.py",
                course_copy / "solutions" / "01_spawn" / "test_helpers_notes.txt")
    members = export.gradescope_autograder(course_copy, tmp_path / "ag.zip")
    assert "course/solutions/01_spawn/test_hidden.py" in members
    assert not [m for m in members if m.endswith(("spawn.py", ".txt"))]


# --------------------------------------------------------------------------- LTI


def test_lti_scores_follow_the_ags_score_format(docs):
    scores = export.lti_scores(docs.values())
    for s in scores:
        check_schema("lti", s)
    by_user = {s["userId"]: s for s in scores}
    assert sorted(by_user) == ["1001", "bob"]  # error and timeout: no Score at all (one policy)
    alice = by_user["1001"]
    assert (alice["scoreGiven"], alice["scoreMaximum"]) == (80.0, 100.0)
    assert alice["gradingProgress"] == "FullyGraded" and alice["activityProgress"] == "Completed"
    assert alice["timestamp"] == "2026-01-20T10:01:30.250+00:00"
    assert alice["comment"] == ("graded 80/100: 01_spawn 25/25, 02_pingpong 25/25, "
                                "03_prodcons 10/25, 04_locks 20/25")
    assert all(s["gradingProgress"] == "FullyGraded" for s in scores)


def test_lti_refuses_two_results_for_one_student(course, docs):
    again = graded_doc(course, "alice-2", student=canvas_student("1001", "Alice Liddell"))
    with pytest.raises(export.ExportError, match="1001"):
        export.lti_scores([docs["alice"], again])


def test_lti_schema_requires_a_time_zone(docs):
    score = export.lti_score(docs["bob"])
    score["timestamp"] = "2026-01-20T10:01:30"
    with pytest.raises(jsonschema.ValidationError):
        check_schema("lti", score)


# --------------------------------------------------------------------------- scores.csv


def test_scores_csv_for_any_lms(docs):
    rows = list(csv.reader(io.StringIO(export.scores_csv(docs.values()))))
    assert rows[0] == ["id", "name", "user_id", "score", "max_score", "status", "late"]
    assert rows[1] == ["alice", "Alice Liddell", "1001", "80", "100", "graded", "true"]
    assert rows[2] == ["bob", "", "bob", "100", "100", "graded", ""]
    assert rows[4] == ["dave", "Dave Bowman", "1004", "", "100", "timeout", "false"]  # no 0
    assert len(rows) == 6


# --------------------------------------------------------------------------- Canvas

GRADEBOOK = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 0 (4800)",
     "Multiprocessing Basics (4821)", "Current Score", "Final Score"],
    ["", "", "", "", "", "Manual Posting", "Manual Posting", "", ""],
    ["    Points Possible", "", "", "", "", "10", "100", "(read only)", "(read only)"],
    ["Liddell, Alice", "1001", "S-1", "alice@uni.example", "A", "9", "", "90", "90"],
    ["Builder, Bob", "1002", "S-2", "bob", "A", "8", "55", "80", "80"],
    ["Chen, Carol", "1003", "S-3", "carol@uni.example", "B", "7", "", "70", "70"],
    ["Zed, Zoe", "1005", "S-5", "zoe@uni.example", "B", "", "", "0", "0"],
]


def write_gradebook(path: Path, rows=GRADEBOOK, bom: bool = True) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    return path


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def test_canvas_fills_only_the_assignment_column(tmp_path, docs):
    gradebook = write_gradebook(tmp_path / "grades.csv")
    out = tmp_path / "import.csv"
    report = export.canvas_gradebook(gradebook, list(docs.values()), None, out)
    assert report.column == "Multiprocessing Basics (4821)"
    rows = read_rows(out)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in out.read_bytes()
    assert rows[:3] == GRADEBOOK[:3]  # header, Manual Posting and Points Possible rows kept
    col = GRADEBOOK[0].index("Multiprocessing Basics (4821)")
    # alice by ID (student.user_id 1001); bob by SIS Login ID (submission id, no LMS identity)
    assert rows[3][col] == "80" and rows[4][col] == "100"
    assert rows[5][col] == "" and rows[6][col] == ""  # no result: untouched
    for got, orig in zip(rows[3:], GRADEBOOK[3:], strict=True):
        assert got[:col] + got[col + 1:] == orig[:col] + orig[col + 1:]
    assert sorted(report.matched) == ["alice", "bob"]
    assert report.students_without_results == ["Chen, Carol (1003)", "Zed, Zoe (1005)"]
    # error and timeout results are never written (one policy), so never matched either
    assert report.unmatched_results == []
    assert [u.split(":")[0] for u in report.withheld] == ["carol", "dave", "erin"]


def test_canvas_matches_sis_user_id_and_reports_conflicts(tmp_path, course):
    gradebook = write_gradebook(tmp_path / "grades.csv", bom=False)
    def sis(user_id: str, name: str) -> dict:  # an institution's id (a Gradescope SID, say)
        return {**canvas_student(user_id, name), "lms": "gradescope"}

    by_sis = graded_doc(course, "s3", student=sis("s-3", "Carol Chen"))  # case-insensitive
    twin_a = graded_doc(course, "zoe-a", student=canvas_student("1005", "Zoe"))
    twin_b = graded_doc(course, "zoe-b", {"01_spawn/public": "failed"}, student=sis("S-5", "Zoe"))
    out = tmp_path / "import.csv"
    report = export.canvas_gradebook(gradebook, [by_sis, twin_a, twin_b], "Multiprocessing Basics (4821)", out)
    rows = read_rows(out)
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert rows[5][6] == "100"       # carol via SIS User ID
    assert rows[6][6] == ""          # zoe has two results: nothing written, both reported
    assert report.matched == ["s3"]
    assert sorted(u.split(":")[0] for u in report.unmatched_results) == ["zoe-a", "zoe-b"]
    assert "several results" in report.unmatched_results[0]


def test_canvas_column_must_be_unambiguous(tmp_path, docs):
    rows = [list(r) for r in GRADEBOOK]
    rows[0][5] = "multiprocessing_basics retake (4830)"
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    with pytest.raises(export.ExportError, match="several columns") as info:
        export.canvas_gradebook(gradebook, list(docs.values()), None, tmp_path / "o.csv")
    assert "Multiprocessing Basics (4821)" in str(info.value)
    rows[0][5], rows[0][6] = "Homework 0 (4800)", "Threads (4821)"
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    with pytest.raises(export.ExportError, match="no column names") as info:
        export.canvas_gradebook(gradebook, list(docs.values()), None, tmp_path / "o.csv")
    assert "'Homework 0 (4800)', 'Threads (4821)'" in str(info.value)
    with pytest.raises(export.ExportError, match="no column 'Nope'"):
        export.canvas_gradebook(gradebook, list(docs.values()), "Nope", tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


def test_canvas_warns_when_points_possible_differ(tmp_path, docs):
    rows = [list(r) for r in GRADEBOOK]
    rows[2][6] = "20"
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    report = export.canvas_gradebook(gradebook, [docs["bob"]], None, tmp_path / "o.csv")
    assert any("worth 20 points" in w for w in report.warnings)


# --------------------------------------------------------------------------- PrairieLearn


def test_prairielearn_results(docs):
    pl = export.prairielearn_results(docs["alice"])
    check_schema("prairielearn", pl)
    assert pl["gradable"] is True and pl["score"] == 0.8
    names = [t["name"] for t in pl["tests"]]
    # visible tests one by one, hidden and after-due-date ones only as a total per exercise
    assert names[:4] == [f"{ex}: public behaviour of {m}" for ex, m in (
        ("01_spawn", "spawn.py"), ("02_pingpong", "pingpong.py"), ("03_prodcons", "prodcons.py"),
        ("04_locks", "locks.py"))]
    hidden = {t["name"]: t for t in pl["tests"][4:]}
    assert hidden["03_prodcons: hidden tests"]["points"] == 5.0
    assert hidden["03_prodcons: hidden tests"]["max_points"] == 20.0
    assert hidden["03_prodcons: hidden tests"]["message"] == "1 of 2 hidden tests passed"
    assert not any("(hidden)" in t["message"] for t in pl["tests"])
    locks = pl["tests"][3]
    assert (locks["points"], locks["max_points"]) == (0.0, 5.0)
    assert "Hint: join every process (public)" in locks["message"]
    assert sum(t["points"] for t in pl["tests"]) == 80.0


def test_prairielearn_is_not_gradable_for_an_error_or_a_timeout(docs):
    carol = export.prairielearn_results(docs["carol"])
    check_schema("prairielearn", carol)
    assert carol["gradable"] is False and "score" not in carol
    assert "rejected" in carol["format_errors"][0]
    for sid in ("dave", "erin"):  # a timeout and a grader problem: no score either (one policy)
        pl = export.prairielearn_results(docs[sid])
        check_schema("prairielearn", pl)
        assert pl["gradable"] is False and "score" not in pl
        assert docs[sid]["message"][:50] in pl["message"]


# --------------------------------------------------------------------------- the CLI


def run(*args: str):
    return CliRunner().invoke(export_cli, list(args), catch_exceptions=False)


def test_cli_help_has_examples():
    for cmd in ("gradescope", "gradescope-autograder", "gradescope-run", "lti", "canvas", "scores",
                "prairielearn"):
        result = run(cmd, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output and f"mpgrade export {cmd}" in result.output


def test_cli_gradescope_folder_and_single(tmp_path, results_dir, course):
    result = run("gradescope", str(results_dir), "--out", str(tmp_path / "gs"))
    assert result.exit_code == 1, result.output  # three results withheld, and listed
    assert "not sent: dave: timeout" in result.output
    assert json.loads((tmp_path / "gs" / "alice" / "results.json").read_text())["score"] == 80.0
    result = run("gradescope", str(results_dir), "--single", str(tmp_path / "one.json"))
    assert result.exit_code == 2
    assert "exactly one result document, found 5" in result.output
    assert "Traceback" not in result.output
    single = tmp_path / "single"
    single.mkdir()
    (single / "submission.json").write_text(json.dumps(graded_doc(course, "submission")))
    target = tmp_path / "autograder" / "results" / "results.json"
    result = run("gradescope", str(single), "--single", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["score"] == 100.0


def test_cli_gradescope_autograder(tmp_path, course_copy, monkeypatch):
    monkeypatch.chdir(course_copy / "exercises")  # the nearest assignment.toml is one above
    result = run("gradescope-autograder", "--out", str(tmp_path / "ag.zip"))
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "ag.zip") as zf:
        assert "course/solutions/04_locks/test_hidden.py" in zf.namelist()
    result = run("gradescope-autograder", "--out", str(tmp_path / "x.zip"), "--assignment", str(tmp_path))
    assert result.exit_code == 2 and "no assignment.toml in" in result.output


def test_cli_lti_scores_and_prairielearn(tmp_path, results_dir):
    result = run("lti", str(results_dir))
    assert result.exit_code == 1, result.output  # error and timeout results: not sent, listed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["userId"] for s in lines] == ["1001", "bob"]
    assert "not sent: erin: error" in result.stderr
    result = run("scores", str(results_dir), "--out", str(tmp_path / "s.csv"))
    assert result.exit_code == 1
    assert (tmp_path / "s.csv").read_text().splitlines()[2] == "bob,,bob,100,100,graded,"
    result = run("prairielearn", str(results_dir), "--out", str(tmp_path / "pl"))
    assert result.exit_code == 1 and "not sent: carol: error" in result.output
    assert json.loads((tmp_path / "pl" / "carol" / "results.json").read_text())["gradable"] is False


def test_cli_canvas_exit_code_says_whether_every_result_was_placed(tmp_path, results_dir, docs):
    gradebook = write_gradebook(tmp_path / "grades.csv")
    result = run("canvas", str(results_dir), "--gradebook", str(gradebook), "--out", str(tmp_path / "i.csv"))
    assert result.exit_code == 1
    assert "not sent: carol: error" in result.output and "no result for Zed, Zoe (1005)" in result.output
    assert read_rows(tmp_path / "i.csv")[3][6] == "80"
    only_bob = tmp_path / "bob-only"
    only_bob.mkdir()
    (only_bob / "bob.json").write_text(json.dumps(docs["bob"]))
    result = run("canvas", str(only_bob), "--gradebook", str(gradebook), "--out", str(tmp_path / "j.csv"))
    assert result.exit_code == 0, result.output


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, results_dir):
    for args in (("lti", str(tmp_path / "nope")),
                 ("canvas", str(results_dir), "--gradebook", str(tmp_path / "missing.csv"), "--out", "x.csv"),
                 ("gradescope", str(results_dir), "--out", "a", "--single", "b")):
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output


# --------------------------------------------------------------------------- one policy for error and timeout


def test_no_export_ever_turns_an_error_or_timeout_into_a_grade(tmp_path, course):
    """A student graded 100 whose regrade hit a grader error keeps 100 everywhere: no export
    sends a 0, a ``gradingProgress: Failed`` (Canvas then sets the score to nil) or a score."""
    student = canvas_student("1001", "Alice Liddell")
    failed = {status: error_doc(course, f"alice-{status}", status=status, files=True, student=student,
                                message="no valid result came out of the sandbox")
              for status in ("error", "timeout")}
    for doc in failed.values():
        assert export.withheld_reason(doc)
        assert export.lti_scores([doc]) == []
        with pytest.raises(export.Withheld):
            export.lti_score(doc)
        with pytest.raises(export.Withheld):
            export.gradescope_results(doc)
        assert export.write_gradescope([doc], tmp_path / "gs") == []
        with pytest.raises(export.ExportError, match="not written"):
            export.write_gradescope_single([doc], tmp_path / "gs1.json")
        pl = export.prairielearn_results(doc)
        assert pl["gradable"] is False and "score" not in pl
        row = list(csv.reader(io.StringIO(export.scores_csv([doc]))))[1]
        assert row[3] == "" and row[5] == doc["status"]
        rows = [list(r) for r in GRADEBOOK]
        rows[3][6] = "100"  # alice's earlier grade in Canvas
        gradebook = write_gradebook(tmp_path / "grades.csv", rows)
        report = export.canvas_gradebook(gradebook, [doc], None, tmp_path / "import.csv")
        assert read_rows(tmp_path / "import.csv")[3][6] == "100"
        assert report.matched == [] and report.withheld and report.unmatched_results == []
    # a good result next to the failed one for the same student is the one that is sent
    good = graded_doc(course, "alice", student=student)
    assert [s["userId"] for s in export.lti_scores([good, failed["error"]])] == ["1001"]


# --------------------------------------------------------------------------- Canvas gradebook, locales and ids


def test_a_semicolon_separated_gradebook_with_decimal_commas_is_read_and_written_alike(tmp_path, docs):
    """Canvas exports with ``;`` (and decimal commas) for comma-decimal locales."""
    rows = [list(r) for r in GRADEBOOK]
    rows[2][5], rows[2][6] = "10,0", "100,0"
    rows[3][5] = "9,5"
    buf = io.StringIO()
    csv.writer(buf, delimiter=";", lineterminator="\r\n").writerows(rows)
    gradebook = tmp_path / "grades.csv"
    gradebook.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode())
    out = tmp_path / "import.csv"
    report = export.canvas_gradebook(gradebook, list(docs.values()), None, out)
    assert report.column == "Multiprocessing Basics (4821)"
    assert report.warnings == []  # 100,0 points possible is the results' 100
    text = out.read_bytes().decode("utf-8-sig")
    got = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert got[3][6] == "80" and got[4][6] == "100" and got[3][5] == "9,5"
    assert sorted(report.matched) == ["alice", "bob"]
    assert export.canvas_number(62.5, decimal_comma=True) == "62,5"
    assert export.canvas_number(62.5, decimal_comma=False) == "62.5"


def test_a_numeric_sis_id_equal_to_another_students_canvas_id_does_not_block_the_import(tmp_path, course):
    """Canvas user ids match the ``ID`` column, SIS ids (Gradescope's SID) ``SIS User ID``: an
    SIS id 1002 of one student and the Canvas id 1002 of another are two students, not one
    ambiguous key."""
    rows = [GRADEBOOK[0], GRADEBOOK[2],
            ["Liddell, Alice", "1001", "1002", "alice@uni.example", "A", "9", "", "90", "90"],
            ["Builder, Bob", "1002", "S-2", "bob", "A", "8", "", "80", "80"]]
    gradebook = write_gradebook(tmp_path / "grades.csv", rows)
    bob = graded_doc(course, "canvas-1002", {"01_spawn/public": "failed"},
                     student=canvas_student("1002", "Builder, Bob"))
    alice = graded_doc(course, "gradescope-7", student={"lms": "gradescope", "user_id": "1002",
                                                        "name": "Alice Liddell", "submission_id": "7",
                                                        "late": False, "email": None})
    out = tmp_path / "import.csv"
    report = export.canvas_gradebook(gradebook, [bob, alice], None, out)
    assert report.unmatched_results == [], report.unmatched_results
    got = read_rows(out)
    assert got[2][6] == "100" and got[3][6] == "95"
    assert sorted(report.matched) == ["canvas-1002", "gradescope-7"]
