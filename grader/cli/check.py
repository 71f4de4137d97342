"""``mpgrade check``: a student's files against the public tests (``grader.check``)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from grader import assignment as assignment_mod
from grader.assignment import START_METHODS
from grader.cli import render
from grader.cli.common import assignment_option, load_assignment, require_points_agree
from grader.escaping import terminal

EXIT_INTERRUPTED = 130


@click.command()
@click.argument("exercises", nargs=-1)
@assignment_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the JSON result (default: .mpgrade/check.json in the assignment folder).")
@click.option("--start-method", type=click.Choice(START_METHODS), default=None,
              help="Run your code under this multiprocessing start method (default: the assignment's).")
@click.option("--watch", is_flag=True,
              help="Stay running: each time you save an exercise's file, run its public tests again. "
                   "Ctrl-C ends it.")
@click.option("--notebook", "notebook_path", metavar="FILE.ipynb", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check a notebook's code (its code cells, as the grader takes them) instead of "
                   "the exercise's module file.")
def check(exercises: tuple[str, ...], assignment_dir: str | None, json_path: Path | None,
          start_method: str | None, watch: bool, notebook_path: Path | None) -> None:
    """Run the public tests against your files in exercises/ and show points and hints.

    Your code runs in separate processes with time limits; nothing you write can hang this
    command. Exit code 0 only when every public test passed. Hidden tests run when your
    work is graded, so a full public score is not yet a full grade. A failure's place in your
    file is also printed as `file:line: message`, the form editors jump to.

    \b
    Examples:
      mpgrade check                      # every exercise
      mpgrade check 02_pingpong          # one exercise
      mpgrade check 01_spawn --watch     # again each time you save spawn.py (Ctrl-C ends it)
      mpgrade check --start-method spawn # the way macOS and Windows start processes
      mpgrade check --notebook 01_spawn.ipynb   # a released notebook (save it first)
      python -m grader check             # the same without make (macOS; Windows: in WSL)
      make check EX=03_prodcons          # the same through make (WATCH=1 for --watch)
    """
    from grader import check as check_mod

    assignment = load_assignment(assignment_dir)
    require_points_agree(assignment)
    if notebook_path is not None and watch:
        render.fail("--watch reads exercise files; for a notebook run the check again after saving it")
    # A closed terminal or a `kill` ends the check as Ctrl-C does: through its clean-up, which
    # leaves no process of the student's running (grader.check.nothing_survives).
    for name in ("SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    out = json_path or assignment.root / check_mod.DEFAULT_JSON
    try:
        with check_mod.nothing_survives():  # this process exists for the check: it may reap all
            if watch:
                _watch(assignment, exercises, start_method, out)
            if notebook_path is not None:
                doc = check_mod.run_notebook_check(assignment, notebook_path, exercises, start_method)
            else:
                doc = check_mod.run_check(assignment, exercises, start_method)
    except (assignment_mod.AssignmentError, check_mod.CheckCannotRun) as exc:
        render.fail(str(exc))
    except KeyboardInterrupt:
        if not watch:
            raise
        render.err.print("Stopped watching: nothing of yours is left running.", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    check_mod.write_json(doc, out)
    render.check_result(doc, assignment, Console(), out, notebook=notebook_path)
    sys.exit(0 if check_mod.all_public_passed(doc) else 1)


def _watch(assignment: Any, exercises: tuple[str, ...], start_method: str | None, out: Path) -> None:
    """Check, then wait for a save and check the exercises whose files changed, until Ctrl-C.

    Each run's processes are killed before the next one begins (this process is the check's
    subreaper), so a hang that outlived its call limit never piles up across saves."""
    from grader import check as check_mod

    for ex_id in exercises:
        assignment.exercise(ex_id)  # an unknown id fails before the first run
    files = check_mod.watched_files(assignment, exercises)
    console = Console()
    selection = exercises
    while True:
        before = check_mod.stamps(files)
        doc = check_mod.run_check(assignment, selection, start_method)
        check_mod.kill_descendants()
        check_mod.write_json(doc, out)
        render.check_result(doc, assignment, console, out)
        console.print(f"Watching {len(files)} file{'s' if len(files) != 1 else ''}: save one to run "
                      "its exercise's public tests again (Ctrl-C ends).", style="dim", highlight=False)
        changed = check_mod.wait_for_change(files, before)
        selection = tuple(dict.fromkeys(files[path] for path in changed))
        names = ", ".join(terminal(str(path.relative_to(assignment.root))) for path in changed)
        console.rule(Text(f"{time.strftime('%H:%M:%S')} {names} changed: {', '.join(selection)}"),
                     style="dim")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
