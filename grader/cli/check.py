"""``mpgrade check``: a student's files against the public tests (``grader.check``)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from grader import assignment as assignment_mod
from grader.assignment import START_METHODS
from grader.cli import render
from grader.cli.common import assignment_option, load_assignment


@click.command()
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
    # A closed terminal or a `kill` ends the check as Ctrl-C does: through its clean-up, which
    # leaves no process of the student's running (grader.check.nothing_survives).
    for name in ("SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    try:
        with check_mod.nothing_survives():  # this process exists for the check: it may reap all
            doc = check_mod.run_check(assignment, exercises, start_method)
    except assignment_mod.AssignmentError as exc:
        render.fail(str(exc))
    out = json_path or assignment.root / check_mod.DEFAULT_JSON
    check_mod.write_json(doc, out)
    render.check_result(doc, assignment, Console(), out)
    sys.exit(0 if check_mod.all_public_passed(doc) else 1)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
