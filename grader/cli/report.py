"""``mpgrade report``: a results folder -> a static HTML report, a thin CLI over ``grader.report``.

The library never reads submissions (it may import only the shared basics); reading the
code for the similarity page is done here, through the intake that grading used, so a
hostile zip is read with the same caps and refusals as when it was graded, and only code
whose hash is the one that was graded is compared.

Register it with ``main.add_command(report_command)``; the command's name is ``report``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from grader.escaping import terminal

EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    """One escaped line on stderr and exit 2: a user's problem is never a traceback."""
    click.echo(f"error: {terminal(message)}", err=True)
    sys.exit(EXIT_USAGE)


def _note(message: str) -> None:
    click.echo(terminal(message), err=True)


def _assignment(path: str | None) -> Any:
    from grader import assignment as assignment_mod

    try:  # a named folder is that folder, never a parent's assignment (grader.assignment.locate)
        return assignment_mod.load(assignment_mod.locate(path))
    except assignment_mod.AssignmentError as exc:
        _fail(str(exc))


def collect_code(klass: Any, assignment: Any, paths: list[Path]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Each student's code per exercise, read with the grading intake; and notes on what was not.

    ``paths`` are the submissions to read (as given to ``mpgrade grade``); without them each
    document's own ``submission.source`` is read when it still exists (relative to the current
    folder or the assignment's). Code whose hash differs from the graded one is not used.
    """
    from grader.intake.discovery import discover
    from grader.report.similarity import exercise_code

    wanted = {st.id: st.doc["submission"]["hash"] for st in klass.students}
    notes: list[str] = []
    found: dict[str, Any] = {}
    if paths:
        subs, _ = discover(paths, assignment)
        found = {sub.id: sub for sub in subs}
    else:
        sources: dict[Path, None] = {}
        for st in klass.students:
            source = st.doc["submission"].get("source")
            if not source:
                continue
            for base in (Path.cwd(), assignment.root):
                candidate = base / source
                if candidate.exists():
                    sources[candidate] = None
                    break
        for source in sources:
            subs, _ = discover([source], assignment)
            for sub in subs:
                found.setdefault(sub.id, sub)
    code: dict[str, dict[str, str]] = {}
    for sid, graded_hash in wanted.items():
        sub = found.get(sid)
        if sub is None:
            continue
        if sub.hash != graded_hash:
            notes.append(f"{sid}: the files changed since they were graded; not compared")
            continue
        files = {name: data.decode("utf-8", "replace") for name, data in sub.files.items()}
        code[sid] = exercise_code(assignment, files)
    return code, notes


@click.command("report", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("results_dir", type=click.Path(path_type=Path, file_okay=False), metavar="RESULTS_DIR")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              metavar="DIR", help="Folder to write the site into (index.html and the rest).")
@click.option("--submissions", "submissions", multiple=True, type=click.Path(path_type=Path, exists=True),
              metavar="PATH", help="Where the submissions are, as given to `mpgrade grade` (repeatable); "
              "default: each result's own source path, when it still exists.")
@click.option("--no-similarity", is_flag=True, help="Do not read or compare code.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None, metavar="X",
              help="Similarity at or above which a pair is flagged (default 0.75).")
@click.option("--assignment", "assignment_dir", metavar="DIR", default=None,
              help="Folder with assignment.toml (default: the current folder or the nearest one above).")
def report_command(results_dir: Path, out_dir: Path, submissions: tuple[Path, ...], no_similarity: bool,
                   threshold: float | None, assignment_dir: str | None) -> None:
    """Write a static HTML report of a graded class (mpgrade grade --out RESULTS_DIR).

    Pages: the class overview (score histogram, per-exercise mean and median, status counts,
    grading time), item analysis per test (pass rate, mean points, discrimination, failure
    messages by shape with their hints), hang hot spots (where timed-out calls were blocked),
    similarity (pairs of submissions alike, stub code not counted; a lead for a human, not a
    verdict) and one printable page per student. It opens from disk and fetches nothing.

    \b
    Examples:
      mpgrade report results/ --out report/
      mpgrade report results/ --out report/ --submissions submissions/
      mpgrade report results/ --out report/ --no-similarity
      xdg-open report/index.html
    """
    from grader import report as report_pkg

    try:
        report_pkg.require_extra()
    except report_pkg.ReportUnavailable as exc:
        _fail(str(exc))
    from grader.report import model, similarity, site

    if not results_dir.is_dir():
        _fail(f"{results_dir} is not a folder of results (mpgrade grade --out DIR)")
    if out_dir.resolve() == results_dir.resolve():
        _fail("--out must be a folder of its own, not the results folder")
    klass = model.load_class(results_dir)
    if not klass.students:
        _fail(f"no valid result documents in {results_dir}")
    for name, why in klass.problems:
        _note(f"left out: {name}: {why}")
    code: dict[str, dict[str, str]] = {}
    stub_code: dict[str, str] = {}
    if not no_similarity:
        assignment = _assignment(assignment_dir)
        code, notes = collect_code(klass, assignment, list(submissions))
        for line in notes:
            _note(f"similarity: {line}")
        stub_code = similarity.stubs(assignment)
    written = site.write(klass, out_dir, code=code, stub_code=stub_code,
                         threshold=similarity.THRESHOLD if threshold is None else threshold)
    _note(f"wrote {len(written.pages)} pages for {written.students} submissions "
          f"({written.flagged_pairs} similar pairs flagged): {out_dir / 'index.html'}")
