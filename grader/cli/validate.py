"""``mpgrade validate``: prove the tests before release (``grader.validate``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from grader import assignment as assignment_mod
from grader.cli import render
from grader.cli.common import (
    assignment_option,
    load_assignment,
    make_sandbox,
    require_points_agree,
    sandbox_kind,
)


@click.command()
@click.option("--repeat", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Runs of the reference solutions per start method, and of each mutant.")
@click.option("--start-methods", default="fork,spawn,forkserver", show_default=True,
              help="Comma-separated start methods the references must pass under.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None,
              help="Gradings at once (default: the number of CPUs, so the machine is loaded).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("validate.json"), show_default=True, help="Where to write the JSON report.")
@click.option("--sandbox", type=click.Choice(["docker", "local"]), default=None,
              help="Where to grade: docker (one container per grading, as `mpgrade grade` does) or "
                   "local. Default: docker when a Docker engine answers, else local with a warning.")
@click.option("--image", default=None, help="Grading image (default: the one `mpgrade image build` makes).")
@assignment_option
def validate(repeat: int, start_methods: str, jobs: int | None, json_path: Path,
             sandbox: str | None, image: str | None, assignment_dir: str | None) -> None:
    """Prove the tests before release: references 100%, stubs 0, every mutant caught.

    The references are graded REPEAT times under each start method, concurrently, and any
    test that ever fails is reported as flaky with its failure rate. Each mutant in
    solutions/mutants/, in each of its REPEAT runs, must lose points in its own exercise (exactly the tests its
    mutant.toml lists, if it lists them), with a hint, and nowhere else; for each mutant
    that does not, the tests it failed (with their messages) and passed are shown.
    Everything is graded in the sandbox the grading uses (Docker when an engine answers):
    a proof made with the local sandbox does not hold in Docker, where student code runs
    as another user. Exit code 0 only when all of that holds.

    \b
    Examples:
      mpgrade validate                       # 5 runs x 3 start methods, stubs, mutants
      mpgrade validate --repeat 2 --start-methods spawn
      mpgrade validate --sandbox local       # no Docker here (trusted code only)
      make validate
    """
    from grader import check as check_mod
    from grader import validate as validate_mod
    from grader.sandbox.base import SandboxUnavailable

    assignment = load_assignment(assignment_dir)
    require_points_agree(assignment)
    methods = tuple(m.strip() for m in start_methods.split(",") if m.strip())
    unknown = set(methods) - set(validate_mod.START_METHODS)
    if unknown or not methods:
        render.fail(f"--start-methods: unknown {sorted(unknown)}; choose from fork, spawn, forkserver")
    try:
        mutants = validate_mod.load_mutants(assignment)
    except (ValueError, KeyError, OSError, assignment_mod.AssignmentError) as exc:
        render.fail(f"cannot read the mutants: {exc}")
    kind, why_not_docker = sandbox_kind(sandbox)
    if why_not_docker:
        render.note("warning:", "yellow", f"validating with the LOCAL sandbox: {why_not_docker}. "
                    "What it proves may not hold in Docker (student code runs as another user "
                    "there); validate where you grade.")
    jobs = jobs or os.cpu_count() or 2
    try:
        box = make_sandbox(kind, assignment, image, warm=jobs)  # as `mpgrade grade --jobs N`
    except SandboxUnavailable as exc:
        render.fail(str(exc))
    console = Console()
    total = repeat * len(methods) + 1 + len(mutants)
    with render.counting_progress(f"validating ({kind} sandbox)", total, console) as advance:
        report = validate_mod.run(assignment, repeat=repeat, start_methods=methods,
                                  jobs=jobs, mutants=mutants, progress=advance,
                                  sandbox=box)
    check_mod.write_json(report.to_dict(), json_path)
    render.validation_report(report, console, json_path)
    sys.exit(0 if report.ok else 1)
