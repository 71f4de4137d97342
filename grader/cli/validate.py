"""``mpgrade validate``: prove the tests before release (``grader.validate``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from grader import assignment as assignment_mod
from grader.cli import render
from grader.cli.common import assignment_option, load_assignment


@click.command()
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
        render.fail(f"--start-methods: unknown {sorted(unknown)}; choose from fork, spawn, forkserver")
    try:
        mutants = validate_mod.load_mutants(assignment)
    except (ValueError, KeyError, OSError, assignment_mod.AssignmentError) as exc:
        render.fail(f"cannot read the mutants: {exc}")
    console = Console()
    total = repeat * len(methods) + 1 + len(mutants)
    with render.counting_progress("validating", total, console) as advance:
        report = validate_mod.run(assignment, repeat=repeat, start_methods=methods,
                                  jobs=jobs or os.cpu_count() or 2, mutants=mutants, progress=advance)
    check_mod.write_json(report.to_dict(), json_path)
    render.validation_report(report, console, json_path)
    sys.exit(0 if report.ok else 1)
