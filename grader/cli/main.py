"""``mpgrade``: a thin command line over the library (grader.check, grader.batch, grader.image).

Every command explains itself in ``--help`` with examples, reports problems as one line on
stderr with exit code 2 (usage / environment) rather than a traceback, and leaves its work in
files a script can read.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from grader import __version__
from grader import assignment as assignment_mod
from grader.assignment import START_METHODS
from grader.cli.common import (
    assignment_option,
    err,
    fail,
    load_assignment,
    make_sandbox,
    note,
)
from grader.cli.export import export
from grader.cli.service import serve, token, worker
from grader.escaping import joined, shown, terminal

REMOTE_JOBS = 32  # with --broker: submissions waited for at once (the workers set the real pace)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mpgrade")
def main() -> None:
    """mpgrade: grade Python concurrency exercises safely, with JSON results for LMSs.

    \b
    Students:     mpgrade check                 (public tests of your exercises/)
    Instructors:  mpgrade grade SUBMISSIONS --out results/   (folders, zips, LMS downloads)
                  mpgrade image build --offline (the grading image, no registry needed)
                  mpgrade validate              (prove the tests before release)
                  mpgrade export canvas|lti|gradescope|prairielearn|scores RESULTS
                  mpgrade release --notebooks OUT
    LMSs:         mpgrade serve                 (HTTP API; mpgrade worker on more hosts)
    """


@main.command()
@click.argument("exercises", nargs=-1)
@assignment_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the JSON result (default: .mpgrade/check.json in the assignment folder).")
@click.option("--start-method", type=click.Choice(START_METHODS), default=None,
              help="Run your code under this multiprocessing start method (default: the assignment's).")
def check(exercises: tuple[str, ...], assignment_dir: str | None, json_path: Path | None,
          start_method: str | None) -> None:
    """Run the public tests against your files in exercises/ and show points and hints.

    Your code runs in separate processes with time limits; nothing you write can hang this
    command. Exit code 0 only when every public test passed. Hidden tests run when your
    work is graded, so a full public score is not yet a full grade.

    \b
    Examples:
      mpgrade check                      # every exercise
      mpgrade check 02_pingpong          # one exercise
      mpgrade check --start-method spawn # the way macOS and Windows start processes
      make check EX=03_prodcons          # the same through make
    """
    from grader import check as check_mod

    assignment = load_assignment(assignment_dir)
    try:
        doc = check_mod.run_check(assignment, exercises, start_method)
    except assignment_mod.AssignmentError as exc:
        fail(str(exc))
    out = json_path or assignment.root / check_mod.DEFAULT_JSON
    check_mod.write_json(doc, out)
    console = Console()
    check_mod.render(doc, assignment, console)
    console.print(joined(("JSON result: ", ""), out), highlight=False)
    sys.exit(0 if check_mod.all_public_passed(doc) else 1)


@main.command()
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
@assignment_option
def grade(paths: tuple[Path, ...], out_dir: Path, jobs: int | None, sandbox: str, timeout: float | None,
          force: bool, image: str | None, start_method: str | None, broker: str | None,
          warm: int | None, assignment_dir: str | None) -> None:
    """Grade submissions with the public and hidden tests; write JSON per submission.

    PATHS are submissions (a folder, a .zip, or a module file) or folders of them; the
    grader finds the exercise modules by name, flat or in exercises/NN_name/. Anything else
    is reported and skipped. Running the same command again only grades what changed.

    \b
    Examples:
      mpgrade grade submissions/ --out results/
      mpgrade grade canvas-download.zip --out results/   # Canvas, Moodle, Gradescope as downloaded
      mpgrade grade alice.zip bob/ --out results/ --jobs 4
      mpgrade grade examples/submissions --out /tmp/r --sandbox local   # trusted code only
      mpgrade grade submissions/ --out results/ --force --timeout 300
      mpgrade grade submissions/ --out results/ --jobs 4 --warm 0   # nothing started ahead
      mpgrade grade submissions/ --out results/ --broker redis://queue.example:6379/0   # Celery workers

    \b
    Outputs in --out: <id>.json (README "The JSON result"), summary.json, scores.csv.
    Exit codes: 0 done, 1 some submissions ended in error/timeout, 2 cannot run, 130 Ctrl-C.
    """
    from grader import batch, grading
    from grader.sandbox.base import SandboxUnavailable

    assignment = load_assignment(assignment_dir)
    console = Console()
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
            fail(str(exc))
        if sandbox == "local":
            err.print("[bold yellow]warning:[/] --sandbox local runs submissions as child processes on this "
                      "machine. It is NOT a security boundary: never use it for untrusted code.")
    counts = {"done": 0, "error": 0, "timeout": 0, "reused": 0}
    with Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("eta"),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("grade", total=0, counts="")

        def on_event(kind: str, sub: Any, doc: dict[str, Any] | None) -> None:
            if kind == "found":
                progress.update(task, total=(progress.tasks[0].total or 0) + 1)
            elif kind in ("done", "reused") and doc is not None:
                counts["done"] += 1
                counts["reused"] += kind == "reused"
                counts["error"] += doc["status"] == "error"
                counts["timeout"] += doc["status"] == "timeout"
                text = (f"done {counts['done']} · errors {counts['error']} · timeouts {counts['timeout']}"
                        + (f" · up to date {counts['reused']}" if counts["reused"] else ""))
                progress.update(task, advance=1, counts=text)

        interrupted = False
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            result = batch.run(list(paths), out_dir, assignment, box, jobs=jobs, options=options,
                               force=force, on_event=on_event, stop=stop, grade_one=grade_one)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous)
            stop.set()
            if box is not None:
                box.close()
    if interrupted:
        err.print(joined(("interrupted:", "bold yellow"), " running submissions were stopped; finished "
                         "results are in ", out_dir, " (run the same command to go on)."))
        sys.exit(130)
    for message in result.skipped:
        note("skipped:", "yellow", message)
    summary = batch.write_outputs(result, assignment)
    render_summary(summary, console)
    where = terminal(out_dir)
    console.print(joined(("Results: ", ""), f"{where}/<id>.json, {where}/summary.json, {where}/scores.csv"),
                  highlight=False)
    if not summary["submissions"]:
        fail("no submissions found in " + ", ".join(map(str, paths)))
    sys.exit(1 if summary["totals"]["error"] or summary["totals"]["timeout"] else 0)


def render_summary(summary: dict[str, Any], console: Console) -> None:
    """The final tables of ``mpgrade grade``. Ids and messages are the students' (folder and
    member names, exception texts): every cell is a Text, escaped and never read as markup."""
    table = Table(title="Submissions", title_justify="left")
    for col in ("id", "score", "status", "seconds", "message"):
        table.add_column(col, justify="right" if col in ("score", "seconds") else "left")
    for row in summary["submissions"]:
        style = {"graded": "", "error": "red", "timeout": "yellow"}[row["status"]]
        table.add_row(shown(row["id"]), f"{row['score']:g}/{row['max_score']:g}", shown(row["status"]),
                      f"{row['duration']:.1f}" + (" (cached)" if row["reused"] else ""),
                      shown(row["message"][:70]), style=style)
    console.print(table)
    buckets = [0] * 5
    top = summary["totals"]["max_score"] or 1
    for row in summary["submissions"]:
        buckets[min(int(row["score"] / top * 5), 4)] += 1
    dist = Table(title="Score distribution", title_justify="left")
    dist.add_column("range")
    dist.add_column("n", justify="right")
    dist.add_column("")
    for i, n in enumerate(buckets):
        lo, hi = i * top / 5, (i + 1) * top / 5
        dist.add_row(f"{lo:g}–{hi:g}", str(n), "█" * n)
    console.print(dist)
    t = summary["totals"]
    console.print(f"{t['submissions']} submissions: {t['graded']} graded, {t['error']} errors, "
                  f"{t['timeout']} timeouts; mean {t['mean']}, median {t['median']} of {t['max_score']:g}",
                  highlight=False)


@main.group()
def image() -> None:
    """Build the Docker image that grading containers run."""


@image.command("build")
@click.option("--offline", is_flag=True,
              help="No image registry: make the base image from Debian packages (debootstrap) and "
                   "install wheels downloaded on the host (or from $MPGRADE_WHEELHOUSE).")
@click.option("--base", default=None, help="Base image with python3 3.11 (default python:3.11-slim).")
@click.option("--force", is_flag=True, help="Build even if an image for these inputs exists.")
def image_build(offline: bool, base: str | None, force: bool) -> None:
    """Build the grading image; its tag is a hash of its inputs, so unchanged means no rebuild.

    \b
    Examples:
      mpgrade image build                 # FROM python:3.11-slim (needs a registry)
      mpgrade image build --offline       # air-gapped exam labs: Debian packages + local wheels
      MPGRADE_WHEELHOUSE=/media/wheels mpgrade image build --offline   # no PyPI either
    """
    from grader import image as image_mod

    try:
        tag = image_mod.build_image(image_mod.find_root(), offline=offline, base=base, force=force,
                                    log=lambda m: err.print(shown(m, multiline=True), highlight=False))
    except image_mod.ImageBuildError as exc:
        fail(str(exc))
    click.echo(tag)


@main.command()
@click.option("--repeat", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Runs of the reference solutions per start method.")
@click.option("--start-methods", default="fork,spawn,forkserver", show_default=True,
              help="Comma-separated start methods the references must pass under.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Gradings at once (default: the number of CPUs, so the machine is loaded).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("validate.json"), show_default=True, help="Where to write the JSON report.")
@assignment_option
def validate(repeat: int, start_methods: str, jobs: int | None, json_path: Path,
             assignment_dir: str | None) -> None:
    """Prove the tests before release: references 100%, stubs 0, every mutant caught.

    The references are graded REPEAT times under each start method, concurrently, and any
    test that ever fails is reported as flaky with its failure rate. Each mutant in
    solutions/mutants/ must lose points in its own exercise (exactly the tests its
    mutant.toml lists, if it lists them), with a hint, and nowhere else.
    Exit code 0 only when all of that holds.

    \b
    Examples:
      mpgrade validate                       # 5 runs x 3 start methods, stubs, mutants
      mpgrade validate --repeat 2 --start-methods spawn
      make validate
    """
    from grader import check as check_mod
    from grader import validate as validate_mod

    assignment = load_assignment(assignment_dir)
    methods = tuple(m.strip() for m in start_methods.split(",") if m.strip())
    unknown = set(methods) - set(validate_mod.START_METHODS)
    if unknown or not methods:
        fail(f"--start-methods: unknown {sorted(unknown)}; choose from fork, spawn, forkserver")
    try:
        mutants = validate_mod.load_mutants(assignment)
    except (ValueError, KeyError, OSError, assignment_mod.AssignmentError) as exc:
        fail(f"cannot read the mutants: {exc}")
    console = Console()
    total = repeat * len(methods) + 1 + len(mutants)
    with Progress(TextColumn("[bold]validating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("validate", total=total)
        report = validate_mod.run(assignment, repeat=repeat, start_methods=methods,
                                  jobs=jobs or os.cpu_count() or 2, mutants=mutants,
                                  progress=lambda m: progress.update(task, advance=1))
    render_validation(report, console)
    check_mod.write_json(report.to_dict(), json_path)
    console.print(joined(("Report: ", ""), json_path), highlight=False)
    sys.exit(0 if report.ok else 1)


def render_validation(report: Any, console: Console) -> None:
    table = Table(title="References", title_justify="left")
    for col in ("start method", "runs", "full marks", "status"):
        table.add_column(col)
    methods: dict[str, list[dict[str, Any]]] = {}
    for r in report.references:
        methods.setdefault(r["start_method"], []).append(r)
    for method, rows in methods.items():
        good = sum(r["ok"] for r in rows)
        table.add_row(shown(method), str(len(rows)), f"{good}/{len(rows)}",
                      "[green]ok[/]" if good == len(rows) else "[red]FAILS[/]")
    console.print(table)
    for f in report.flaky:
        console.print(joined(("flaky:", "red"), f" {f['test']} under {f['start_method']}: failed "
                             f"{f['failures']}/{f['runs']} runs ({f['example']})"), highlight=False)
    stubs = report.stubs
    console.print(joined((f"Stubs: {stubs['score']:g}/{stubs['max_score']:g} ", ""),
                         ("ok", "green") if stubs["ok"] else ("should be 0 ", "red"),
                         "" if stubs["ok"] else str(stubs["passing_tests"][:5])))
    mt = Table(title="Mutants", title_justify="left")
    for col in ("mutant", "exercise", "score", "caught", "description / problem"):
        mt.add_column(col)
    for m in report.mutants:
        mt.add_row(shown(m["id"]), shown(m["exercise"]),
                   f"{m['score']:g}/{m['max_score']:g}" if m["score"] is not None else "-",
                   "[green]yes[/]" if m["ok"] else "[red]NO[/]",
                   shown(m["description"] if m["ok"] else "; ".join(m["problems"])))
    console.print(mt)
    console.print("[bold green]All claims hold.[/]" if report.ok else "[bold red]Validation failed.[/]")


@main.command()
@click.option("--notebooks", "notebooks_dir", required=True, metavar="OUT_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Write one student notebook per exercise (<exercise id>.ipynb) into OUT_DIR.")
@assignment_option
def release(notebooks_dir: Path, assignment_dir: str | None) -> None:
    """Make what students get: one Jupyter notebook per exercise.

    Each notebook holds the exercise's statement and its stub module in one code cell, and
    names the module in its metadata, so `mpgrade grade` grades a handed-in notebook as that
    module (IPython magics dropped). Writing twice gives identical files.

    \b
    Example:
      mpgrade release --notebooks release/notebooks/
    """
    from grader.intake import notebook

    assignment = load_assignment(assignment_dir)
    try:
        paths = notebook.release_notebooks(assignment, notebooks_dir)
    except OSError as exc:
        fail(f"cannot write the notebooks to {notebooks_dir}: {exc}")
        raise  # unreachable
    for path in paths:
        click.echo(terminal(path))


@main.command()
def schema() -> None:
    """Print the JSON Schema of result documents (also in grader/schema/result.schema.json).

    \b
    Example:
      mpgrade schema > result.schema.json
    """
    from importlib import resources

    click.echo(resources.files("grader.schema").joinpath("result.schema.json").read_text(), nl=False)


main.add_command(export)
main.add_command(serve)
main.add_command(worker)
main.add_command(token)


if __name__ == "__main__":
    main()
