"""What every ``mpgrade`` command module shares: one-line errors, finding the assignment, and
making a sandbox from ``--sandbox``/``--image``.

It sits below ``cli``, ``cli_export`` and ``cli_service`` so that they import it and never each
other (no import circle between the command modules).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from grader import assignment as assignment_mod
from grader.escaping import joined
from grader.sandbox.base import Sandbox

EXIT_USAGE = 2
_BLANKS = re.compile(r"[ \t\n\r\f\v]+")
err = Console(stderr=True)

assignment_option = click.option(
    "--assignment", "assignment_dir", metavar="DIR", default=None,
    help="Folder with assignment.toml (default: the current folder or the nearest one above).")


def one_line(message: str) -> str:
    """Line breaks and runs of blanks as one space; every other control stays, to be escaped."""
    return " ".join(_BLANKS.split(message)).strip()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr and exit: a user-facing problem is never a traceback.

    The message often quotes a student's file name, id or error, so it is printed escaped and
    never read as markup (``grader.escaping``).
    """
    err.print(joined(("error:", "bold red"), " ", one_line(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, escaped like :func:`fail`."""
    err.print(joined(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def note(label: str, style: str, message: str) -> None:
    """One ``label message`` line on stderr (``skipped:``, ``not imported:``), escaped like :func:`fail`."""
    err.print(joined((label, style), " ", message), highlight=False, soft_wrap=True)


def load_assignment(path: str | None) -> assignment_mod.Assignment:
    """The assignment at ``path``, or found from the current folder upwards; else a clear exit."""
    start = Path(path) if path else Path.cwd()
    root = assignment_mod.find_root(start) if not (start / assignment_mod.MANIFEST).is_file() else start
    if root is None:
        fail(f"no {assignment_mod.MANIFEST} in {start} or above; pass --assignment DIR")
    try:
        return assignment_mod.load(root)
    except assignment_mod.AssignmentError as exc:
        fail(str(exc))


def make_sandbox(kind: str, assignment: assignment_mod.Assignment, image: str | None, *,
                 warm: int = 0) -> Sandbox:
    """A LocalSandbox, or a DockerSandbox on the current image (stale containers swept first),
    keeping ``warm`` processes or containers started ahead of their jobs.

    Raises SandboxUnavailable (the caller turns it into one line) when Docker or the image is
    missing.
    """
    if kind == "local":
        from grader.sandbox.local import LocalSandbox

        return LocalSandbox(warm=warm)
    from grader import image as image_mod
    from grader.sandbox import docker as docker_sandbox

    client = docker_sandbox.connect()
    docker_sandbox.sweep(client)
    return docker_sandbox.DockerSandbox(image or _default_image(image_mod), client=client, warm=warm)


def _default_image(image_mod: Any) -> str:
    from grader.sandbox.base import SandboxUnavailable

    try:
        return image_mod.image_tag(image_mod.find_root())
    except image_mod.ImageBuildError as exc:
        raise SandboxUnavailable(f"{exc}; or pass --image NAME") from None
