"""``mpgrade export``: result documents -> LMS formats, a thin CLI over ``grader.export``.

Like the rest of the CLI: examples in every ``--help``, one-line errors on stderr with exit
code 2, and files a script can read. Registered on the main CLI with ``main.add_command(export)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grader import export as export_mod
from grader.cli.render import done, fail, note, warn
from grader.escaping import terminal, valid_unicode

results_dir_arg = click.argument("results_dir", type=click.Path(path_type=Path), metavar="RESULTS_DIR")


def load(results_dir: Path) -> list[dict]:
    """The validated documents of a results folder, or one line and exit code 2."""
    try:
        return export_mod.load_results(results_dir)
    except export_mod.ExportError as exc:
        fail(str(exc))


def report_withheld(docs: list[dict]) -> bool:
    """List the error and timeout results no export sends as a grade; True if there were any.

    The one policy of ``grader.export``: a failed grading is never sent as a score, so the
    platform keeps what it has; the export then exits with status 1 so that a TA looks.
    """
    reasons = export_mod.withheld(docs)
    for reason in reasons:
        note("not sent:", "bold red", reason)
    if reasons:
        warn(f"{len(reasons)} error/timeout result(s) not sent as a grade (the platform keeps "
             "its grade): regrade them or grade them by hand")
    return bool(reasons)


def write_text(text: str, out: Path | None) -> None:
    """To ``out`` (atomically) or to stdout; a terminal gets it escaped (``grader.escaping``),
    since a CSV cell holds a student's name as it is, escape sequences included."""
    if out is None:
        shown_on_terminal = sys.stdout.isatty()
        click.echo(terminal(text, multiline=True) if shown_on_terminal else valid_unicode(text), nl=False)
        return
    from grader.atomic import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text.encode())
    done("wrote ", out)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def export() -> None:
    """Turn a results folder (mpgrade grade --out DIR) into what an LMS imports.

    \b
    Examples:
      mpgrade export gradescope results/ --out gradescope/
      mpgrade export gradescope-autograder --out autograder.zip
      mpgrade export lti results/ --out scores.jsonl
      mpgrade export canvas results/ --gradebook canvas.csv --out canvas-import.csv
      mpgrade export scores results/ --out lms-scores.csv
      mpgrade export prairielearn results/ --out pl/
      mpgrade export prairielearn-run        # PrairieLearn's external grader (docs/prairielearn.md)

    Formats and rules: docs/lms-exports.md.
    """


@export.command()
@results_dir_arg
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for <id>/results.json (default: RESULTS_DIR/gradescope).")
@click.option("--single", "single", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results.json of the only document in RESULTS_DIR to this file.")
def gradescope(results_dir: Path, out_dir: Path | None, single: Path | None) -> None:
    """Gradescope results.json per submission (autograder "Output format").

    Hidden tests stay hidden, after_due_date tests appear after the due date; messages and
    hints are in each test's output. Error and timeout results get no results.json (never a
    0): they are listed and the exit code is 1.

    \b
    Examples:
      mpgrade export gradescope results/                      # results/gradescope/<id>/results.json
      mpgrade export gradescope results/ --out gs/
      mpgrade export gradescope /tmp/mpgrade-out --single /autograder/results/results.json
    """
    if out_dir is not None and single is not None:
        fail("--out and --single exclude each other")
    docs = load(results_dir)
    try:
        if single is not None:
            export_mod.write_gradescope_single(docs, single)
            done("wrote ", single)
            return
        target = out_dir or results_dir / "gradescope"
        written = export_mod.write_gradescope(docs, target)
    except (export_mod.ExportError, OSError) as exc:
        fail(str(exc))
    done(f"wrote {len(written)} results.json files under ", target)
    sys.exit(1 if report_withheld(docs) else 0)


@export.command("gradescope-autograder")
@click.option("--out", "out_zip", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to upload to Gradescope.")
@click.option("--assignment", "assignment_dir", metavar="DIR", default=None,
              help="Folder with assignment.toml (default: the nearest one at or above the current folder).")
def gradescope_autograder(out_zip: Path, assignment_dir: str | None) -> None:
    """The zip to upload as a Gradescope programming assignment's autograder.

    It holds setup.sh (Python 3.11+ and mpgrade in a venv, the unprivileged user student
    code runs as, the sources closed to it), run_autograder (mpgrade export gradescope-run:
    grades /autograder/submission with student code as that user, root writes results.json),
    the grader source and the course's manifest and test files: no reference solutions, no
    mutants.
    The same sources always give the same bytes.

    \b
    Examples:
      mpgrade export gradescope-autograder --out autograder.zip
      mpgrade export gradescope-autograder --out build/ag.zip --assignment courses/mp-2026
    """
    from grader import assignment as assignment_mod

    try:
        root = assignment_mod.locate(assignment_dir)
    except assignment_mod.AssignmentError as exc:
        fail(str(exc))
    try:
        members = export_mod.gradescope_autograder(root, out_zip)
    except (export_mod.ExportError, OSError) as exc:
        fail(str(exc))
    tests = sum(m.startswith("course/") and m.endswith(".py") for m in members)
    done("wrote ", out_zip, f": {len(members)} files, {tests} test files of ", root)


@export.command("gradescope-run")
@click.option("--submission", "submission_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/autograder/submission"), show_default=True,
              help="The student's files, as Gradescope puts them.")
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("/autograder/results/results.json"), show_default=True,
              help="Where results.json goes (written by root, after grading).")
@click.option("--assignment", "assignment_dir", metavar="DIR", default=f"{export_mod.SOURCE}/course",
              show_default=True, help="Folder with assignment.toml and the tests.")
@click.option("--student-user", default=export_mod.STUDENT_USER, show_default=True,
              help="The unprivileged user student code runs as (setup.sh creates it).")
def gradescope_run(submission_dir: Path, results_file: Path, assignment_dir: str, student_user: str) -> None:
    """Grade one Gradescope submission inside Gradescope's container (run_autograder runs it).

    It runs as root, and student code does not: every student process runs as
    --student-user, which cannot read the tests or write the results folder. The
    results.json is written by root once grading is over; an error or timeout result gets
    none (never a 0: Gradescope then shows the autograder as failed) and exits with 1.

    \b
    Examples:
      mpgrade export gradescope-run    # in run_autograder, with the defaults above
      mpgrade export gradescope-run --submission /tmp/sub --results /tmp/results.json
    """
    from grader import autograder, grading

    try:
        user = autograder.student_account(student_user)
        assignment = autograder.load_assignment(assignment_dir)
        doc = autograder.grade_folder(submission_dir, assignment, user, grading.Options(scope="all"))
    except autograder.AutograderError as exc:
        fail(str(exc))
    done(f"{doc['status']}: {doc['score']:g}/{doc['max_score']:g} ", doc["message"][:2000])
    try:
        data = export_mod.gradescope_results(doc)
    except export_mod.Withheld as exc:
        note("not sent:", "bold red", str(exc))
        sys.exit(1)
    autograder.write_results(results_file, data)
    done("wrote ", results_file)


@export.command("prairielearn-run")
@click.option("--grade", "grade_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/grade"), show_default=True,
              help="PrairieLearn's job folder: student/ in, results/results.json out.")
@click.option("--assignment", "assignment_dir", metavar="DIR", default="/opt/mpgrade-course",
              show_default=True,
              help="Folder with assignment.toml and the tests: the course baked into the image, or "
                   "one under /grade/serverFilesCourse/.")
@click.option("--exercise", "exercises", multiple=True, metavar="ID",
              help="The exercise(s) this question grades (repeatable; default: those whose files "
                   "were submitted).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="The question's externalGradingOptions.timeout: grading is planned to end "
                   "within it.")
@click.option("--student-user", default="student", show_default=True,
              help="The unprivileged user student code runs as (uid 10001 of the grading image).")
def prairielearn_run(grade_dir: Path, assignment_dir: str, exercises: tuple[str, ...], timeout: float,
                     student_user: str) -> None:
    """Grade one PrairieLearn submission in the external grader's container (its entrypoint).

    Runs as root; every student process runs as --student-user, which can read nothing of
    /grade (the tests, data.json) and cannot write results/. The calls share a time budget
    inside --timeout (each test an equal share of what is left), so a deadlocking submission
    still ends in time with the tests it passes scored. results.json is always written, by
    root, after grading: a submission that could not be graded (nothing submitted, a grader
    failure, past the time) is "gradable": false, never a 0, and the attempt is not counted.
    Exit code 0 whenever results.json was written: PrairieLearn reads it only then.

    \b
    Examples:
      mpgrade export prairielearn-run                          # the image's default entrypoint
      mpgrade export prairielearn-run --exercise 03_prodcons --timeout 60
      mpgrade export prairielearn-run --assignment /grade/serverFilesCourse/mpgrade-course
    """
    from grader import autograder

    results = autograder.prairielearn_grade(grade_dir, assignment_dir, exercises=exercises,
                                            timeout=timeout, student_user=student_user,
                                            log=lambda line: note("mpgrade:", "bold", line))
    target = grade_dir / "results" / "results.json"
    try:
        autograder.write_results(target, results)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    done("wrote ", target)


@export.command()
@results_dir_arg
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON lines file (default: stdout).")
def lti(results_dir: Path, out: Path | None) -> None:
    """LTI 1.3 AGS Score objects, one JSON line per student.

    Each line is the body to POST to the line item's /scores endpoint with Content-Type
    application/vnd.ims.lis.v1.score+json. userId is the student's LMS user id (from LMS
    ingestion), else the submission id. Error and timeout results get no line at all (a
    Score that is not FullyGraded makes Canvas drop the grade it has): they are listed on
    stderr and the exit code is 1.

    \b
    Examples:
      mpgrade export lti results/ --out scores.jsonl
      mpgrade export lti results/ | jq -c 'select(.scoreGiven < .scoreMaximum)'
    """
    docs = load(results_dir)
    try:
        text = export_mod.json_lines(export_mod.lti_scores(docs))
    except export_mod.ExportError as exc:
        fail(str(exc))
    write_text(text, out)
    sys.exit(1 if report_withheld(docs) else 0)


@export.command()
@results_dir_arg
@click.option("--gradebook", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The gradebook CSV exported from Canvas (Grades > Export).")
@click.option("--column", default=None,
              help="The assignment's column header (default: the one that names the assignment).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV to import into Canvas (Grades > Import).")
def canvas(results_dir: Path, gradebook: Path, column: str | None, out: Path) -> None:
    """Fill the assignment's column of a Canvas gradebook export, for re-import.

    Students are matched by SIS User ID, ID or SIS Login ID against the student's LMS user
    id (else the submission id): a Canvas user id in the ID column only. Header rows, all
    other columns and the separator (, or ;) are kept. Results that match no student, and
    error and timeout results (never written: the cell keeps Canvas's grade), are listed and
    make the exit code 1; students without a result keep their cell and are listed.

    \b
    Examples:
      mpgrade export canvas results/ --gradebook 2026-01-20-Grades.csv --out import.csv
      mpgrade export canvas results/ --gradebook grades.csv --column "Multiprocessing (4821)" --out import.csv
    """
    docs = load(results_dir)
    try:
        report = export_mod.canvas_gradebook(gradebook, docs, column, out)
    except (export_mod.ExportError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))
    for line in report.warnings:
        warn(line)
    for line in report.students_without_results:
        warn(f"no result for {line}")
    for line in report.unmatched_results:
        note("not imported:", "bold red", line)
    for line in report.withheld:
        note("not sent:", "bold red", line)
    done("wrote ", out, f": column {report.column!r}, {len(report.matched)} scores, "
         f"{len(report.unmatched_results)} results unmatched, {len(report.withheld)} "
         f"error/timeout results not sent, "
         f"{len(report.students_without_results)} students without a result")
    sys.exit(1 if report.unmatched_results or report.withheld else 0)


@export.command()
@results_dir_arg
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV file (default: stdout).")
def scores(results_dir: Path, out: Path | None) -> None:
    """A plain CSV for any LMS: id, name, user_id, score, max_score, status, late.

    Error and timeout results have an empty score (never 0), are listed, and make the exit
    code 1.

    \b
    Examples:
      mpgrade export scores results/ --out lms-scores.csv
      mpgrade export scores results/ | column -s, -t
    """
    docs = load(results_dir)
    write_text(export_mod.scores_csv(docs), out)
    sys.exit(1 if report_withheld(docs) else 0)


@export.command()
@results_dir_arg
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <id>/results.json.")
def prairielearn(results_dir: Path, out_dir: Path) -> None:
    """PrairieLearn external grading results.json per submission.

    score is the fraction of the maximum; an error or timeout result is not gradable (no
    score, no attempt counted, the reason shown; listed, exit code 1); hidden tests are shown
    only as a total per exercise.

    \b
    Examples:
      mpgrade export prairielearn results/ --out pl-results/
    """
    docs = load(results_dir)
    try:
        written = export_mod.write_prairielearn(docs, out_dir)
    except (export_mod.ExportError, OSError) as exc:
        fail(str(exc))
    done(f"wrote {len(written)} results.json files under ", out_dir)
    sys.exit(1 if report_withheld(docs) else 0)
