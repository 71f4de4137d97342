"""``mpgrade report``: a results folder -> a static HTML report, a thin CLI over ``grader.report``."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli import render
from grader.cli.common import assignment_option, load_assignment


def write_report(results_dir: Path, out_dir: Path, *, assignment_dir: str | None = None,
                 submissions: tuple[Path, ...] = (), similarity: bool = True,
                 threshold: float | None = None) -> None:
    """Build the report and say what was written; one line on stderr and exit 2 when it cannot."""
    from grader import report as report_pkg

    try:
        report_pkg.require_extra()
    except report_pkg.ReportUnavailable as exc:
        render.fail(str(exc))
    from grader.report.build import ReportError, build

    assignment = load_assignment(assignment_dir) if similarity else None
    try:
        built = build(results_dir, out_dir, assignment=assignment, submissions=submissions,
                      threshold=threshold)
    except ReportError as exc:
        render.fail(str(exc))
    for line in built.notes:
        render.note("note:", "yellow", line)
    written = built.report
    render.done(f"wrote {len(written.pages)} pages for {written.students} submissions "
                f"({written.flagged_pairs} similar pairs flagged): {out_dir / 'index.html'}")


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
@assignment_option
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
    write_report(results_dir, out_dir, assignment_dir=assignment_dir, submissions=submissions,
                 similarity=not no_similarity, threshold=threshold)
