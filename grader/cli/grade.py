"""``mpgrade grade``: a batch of submissions into a results folder (``grader.batch``)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from grader.assignment import START_METHODS
from grader.cli import render
from grader.cli.common import (
    assignment_option,
    load_assignment,
    make_sandbox,
    require_points_agree,
    sigterm_as_interrupt,
)

REMOTE_JOBS = 32  # with --broker: submissions waited for at once (the workers set the real pace)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <id>.json per submission, summary.json and scores.csv.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
              help="Submissions graded at once (default: the number of CPUs).")
@click.option("--sandbox", type=click.Choice(["docker", "local"]), default="docker", show_default=True,
              help="docker: one locked-down container per submission. local: child processes on "
                   "this machine, NOT a security boundary (trusted code only).")
@click.option("--timeout", type=click.FloatRange(1, None), default=None,
              help="Seconds one whole submission may take (default: the assignment's submission_timeout).")
@click.option("--force", is_flag=True, help="Grade again even where an up-to-date result exists.")
@click.option("--image", default=None, help="Grading image (default: the one `mpgrade image build` makes).")
@click.option("--start-method", type=click.Choice(START_METHODS), default=None,
              help="Start method for student code (default: the assignment's).")
@click.option("--broker", metavar="URL", default=None,
              help="Send the submissions to Celery workers (`mpgrade worker --broker URL`) instead of "
                   "grading here; results land in --out as usual. --sandbox and --image are then the "
                   "workers' business.")
@click.option("--warm", type=click.IntRange(0, 256), default=None,
              help="Containers (Docker) or processes (local) started ahead of the submissions "
                   "they will grade, one submission each, so start-up overlaps earlier gradings "
                   "(default: as many as --jobs; 0 turns it off).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also write the HTML class report there at the end (mpgrade report).")
@assignment_option
def grade(paths: tuple[Path, ...], out_dir: Path, jobs: int | None, sandbox: str, timeout: float | None,
          force: bool, image: str | None, start_method: str | None, broker: str | None,
          warm: int | None, report_dir: Path | None, assignment_dir: str | None) -> None:
    """Grade submissions with the public and hidden tests; write JSON per submission.

    PATHS are submissions (a folder, a .zip, or a module file) or folders of them; the
    grader finds the exercise modules by name, flat or in exercises/NN_name/. Anything else
    is reported and skipped. A folder laid out as the assignment's references (every
    exercise's modules in NN_name/, as in solutions/) is one submission, its mutants/ left
    out. Running the same command again only grades what changed.

    \b
    Examples:
      mpgrade grade submissions/ --out results/
      mpgrade grade canvas-download.zip --out results/   # Canvas, Moodle, Gradescope as downloaded
      mpgrade grade alice.zip bob/ --out results/ --jobs 4
      mpgrade grade examples/submissions --out /tmp/r --sandbox local   # trusted code only
      mpgrade grade submissions/ --out results/ --force --timeout 300
      mpgrade grade submissions/ --out results/ --jobs 4 --warm 0   # nothing started ahead
      mpgrade grade submissions/ --out results/ --broker redis://queue.example:6379/0   # Celery workers
      mpgrade grade submissions/ --out results/ --report report/   # and the HTML class report
      mpgrade grade solutions/ --out /tmp/refs   # the assignment's own references: one submission

    \b
    Outputs in --out: <id>.json (README "The JSON result"), summary.json, scores.csv.
    Exit codes: 0 done, 1 some submissions ended in error/timeout, 2 cannot run, 130 Ctrl-C.
    """
    from grader import batch, grading
    from grader.sandbox.base import SandboxUnavailable

    assignment = load_assignment(assignment_dir)
    require_points_agree(assignment)
    options = grading.Options(scope="all", start_method=start_method, timeout=timeout)
    stop = threading.Event()
    box: Any = None
    grade_one = None
    if broker:
        from grader.cli.service import remote_grader

        jobs = jobs or REMOTE_JOBS
        grade_one = remote_grader(broker, assignment, options, force=force, sandbox=sandbox, stop=stop)
    else:
        jobs = jobs or os.cpu_count() or 1
        try:
            box = make_sandbox(sandbox, assignment, image, warm=jobs if warm is None else warm)
        except SandboxUnavailable as exc:
            render.fail(str(exc))
        if sandbox == "local":
            render.local_sandbox_warning()
    console = Console()
    result = None
    with render.grading_progress(console) as on_event:
        try:
            with sigterm_as_interrupt():
                result = batch.run(list(paths), out_dir, assignment, box, jobs=jobs, options=options,
                                   force=force, on_event=on_event, stop=stop, grade_one=grade_one)
        except KeyboardInterrupt:
            pass  # batch.run stopped the running submissions and wrote the outputs
        finally:
            stop.set()
            if box is not None:
                box.close()
    if result is None or result.written is None:
        render.interrupted(out_dir)
        sys.exit(130)
    for message in result.skipped:
        render.note("skipped:", "yellow", message)
    summary = result.written
    render.grade_summary(summary, console, out_dir)
    if not summary["submissions"]:
        render.fail("no submissions found in " + ", ".join(map(str, paths)))
    if report_dir is not None:
        from grader.cli.report import write_report

        write_report(out_dir, report_dir, assignment_dir=str(assignment.root), submissions=paths)
    sys.exit(1 if summary["totals"]["error"] or summary["totals"]["timeout"] else 0)
