"""What the ``mpgrade`` command modules share besides rendering: which assignment a command
means, making a sandbox from ``--sandbox``/``--image``, and SIGTERM as Ctrl-C.

It sits below every command module (with ``render``) so that they import it and never each
other (no import circle between the command modules).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from grader import assignment as assignment_mod
from grader.cli.render import fail
from grader.sandbox.base import Sandbox

assignment_option = click.option(
    "--assignment", "assignment_dir", metavar="DIR", default=None,
    help="Folder with assignment.toml (default: the current folder or the nearest one above).")


def load_assignment(path: str | None) -> assignment_mod.Assignment:
    """The assignment a command means (``grader.assignment.locate``: a named folder as it is,
    else found from the current folder upwards), loaded; every problem is one clear exit."""
    try:
        return assignment_mod.load(assignment_mod.locate(path))
    except assignment_mod.AssignmentError as exc:
        fail(str(exc))


def require_points_agree(assignment: assignment_mod.Assignment) -> None:
    """Exit with one clear line when the tests' points disagree with the manifest's.

    Called by the commands an author runs before students are graded (check, validate,
    release, grade): such an assignment makes every grade an ``error`` worth 0, so it must
    stop there, not in each student's result (``Assignment.points_problems``).
    """
    problems = assignment.points_problems()
    if problems:
        fail(f"assignment.toml and the tests disagree: {'; '.join(problems)} (counted from the tests' "
             "@pytest.mark.points markers). Every grade would be an error worth 0: make the "
             "exercise's points in assignment.toml the sum of its tests' points, or change the tests.")


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


def sandbox_kind(kind: str | None) -> tuple[str, str | None]:
    """The sandbox a command runs in when ``--sandbox`` is not given, and why if not Docker.

    Docker when an engine answers: the sandbox ``mpgrade grade`` grades in by default, so what
    a command proves holds for the grading (student code as another uid, read-only job,
    limits); else local, with the engine's one-line reason for the caller to show.
    """
    if kind is not None:
        return kind, None
    from grader.sandbox import docker as docker_sandbox
    from grader.sandbox.base import SandboxUnavailable

    try:
        docker_sandbox.connect(timeout=3)
    except SandboxUnavailable as exc:
        return "local", str(exc)
    return "docker", None


def _default_image(image_mod: Any) -> str:
    from grader.sandbox.base import SandboxUnavailable

    try:
        return image_mod.image_tag(image_mod.checkout_root())
    except image_mod.ImageBuildError as exc:
        raise SandboxUnavailable(f"{exc}; or pass --image NAME") from None


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the block runs, so ``kill`` stops a batch the way
    Ctrl-C does (containers removed, finished results kept); the old handler comes back after."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
