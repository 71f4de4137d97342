"""Checking from a Jupyter notebook: ``%mpgrade check 01_spawn``, or the same as a call.

In a notebook cell::

    %load_ext grader.notebook
    %mpgrade check 01_spawn

or, without IPython's magics::

    import grader.notebook
    grader.notebook.check("01_spawn")

Both run ``python -m grader check --notebook THIS.ipynb`` in a child process of the kernel
and show its output. That child is what a terminal's ``mpgrade check`` is: the student's code
runs in its own watched, time-limited processes, under every start method, and the child,
a process that exists only for the check, kills whatever is left of them at the end (as a
child subreaper on Linux). Doing it in the kernel instead would make the kernel kill its own
other children, and a hung or crashing exercise could take the kernel down. Interrupting the
kernel (the stop button) stops the check the way Ctrl-C does in a terminal.

The check reads the saved notebook file, exactly what ``mpgrade grade`` will read when it is
handed in, not the kernel's state: save before checking.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

STOP_WAIT = 30.0  # seconds an interrupted check has to clean up before it is killed


class NotebookCheckError(Exception):
    """A check that cannot start (which notebook?); the message says what to pass."""


def check(exercise: str | None = None, notebook: str | os.PathLike[str] | None = None, *,
          start_method: str | None = None, assignment: str | os.PathLike[str] | None = None,
          echo: Callable[[str], Any] | None = None, timeout: float | None = None) -> int:
    """Run the public tests of ``exercise`` on the code of ``notebook`` (default: the notebook
    this kernel runs, found as :func:`this_notebook` says), show the result, and return the
    check's exit code (0: every public test passed).

    ``assignment`` is the folder with ``assignment.toml`` (default: the notebook's folder or
    the nearest one above); ``start_method`` limits the check to one start method; after
    ``timeout`` seconds (default: none, each call has its own limit) the check is stopped.
    """
    echo = echo or print
    path = this_notebook(exercise, notebook)
    args = ["--notebook", str(path)] + ([exercise] if exercise else [])
    if start_method:
        args += ["--start-method", start_method]
    if assignment:
        args += ["--assignment", str(assignment)]
    return run(args, cwd=path.parent, echo=echo, timeout=timeout)


def run(args: list[str], *, cwd: Path, echo: Callable[[str], Any] | None = None,
        timeout: float | None = None) -> int:
    """``python -m grader check ARGS`` in a child process, its output passed to ``echo`` line
    by line as it comes; its exit code. An interrupt, or ``timeout`` seconds, stops the child
    as Ctrl-C would."""
    echo = echo or print
    command = [sys.executable, "-m", "grader", "check", *args]
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "100"), "TERM": "dumb"}
    posix = os.name == "posix"
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace", start_new_session=posix)
    timer = threading.Timer(timeout, _stop, (proc, posix)) if timeout is not None else None
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            echo(line.rstrip("\n"))
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc, posix)
        echo("Check stopped: nothing of yours is left running.")
        return 130
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stop(proc: subprocess.Popen[str], posix: bool) -> None:
    """Ctrl-C for a check in its own session: the check's clean-up kills the student's
    processes; a check that does not end within :data:`STOP_WAIT` is killed."""
    try:
        if posix:
            os.kill(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        proc.wait(timeout=STOP_WAIT)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def this_notebook(exercise: str | None = None, notebook: str | os.PathLike[str] | None = None,
                  cwd: Path | None = None) -> Path:
    """The notebook to check: ``notebook`` when given; else the one the kernel runs, as
    Jupyter (``JPY_SESSION_NAME``) or VS Code (``__vsc_ipynb_file__``) names it; else, in the
    kernel's folder (Jupyter starts it in the notebook's), the released ``<exercise>.ipynb``,
    one notebook whose name holds the exercise id, or the folder's only notebook."""
    if notebook is not None:
        path = Path(notebook).expanduser()
        if not path.is_file():
            raise NotebookCheckError(f"no notebook {path}")
        return path.resolve()
    for named in (os.environ.get("JPY_SESSION_NAME"), _user_ns().get("__vsc_ipynb_file__")):
        if isinstance(named, str) and named.endswith(".ipynb") and Path(named).is_file():
            return Path(named).resolve()
    folder = cwd or Path.cwd()
    books = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if exercise:
        exact = folder / f"{exercise}.ipynb"
        if exact.is_file():
            return exact.resolve()
        books = [p for p in books if exercise.lower() in p.name.lower()]
    if len(books) == 1:
        return books[0].resolve()
    which = f" for {exercise}" if exercise else ""
    found = f" ({len(books)} found: {', '.join(p.name for p in books[:5])})" if books else ""
    raise NotebookCheckError(f"which notebook{which}? None could be told apart in {folder}{found}: "
                             f'pass it, e.g. check("{exercise or "01_spawn"}", notebook="my.ipynb")')


def _user_ns() -> dict[str, Any]:
    shell = _ipython()
    return getattr(shell, "user_ns", None) or {}


def _ipython() -> Any:
    """The running IPython shell, or None (IPython need not be installed)."""
    module = sys.modules.get("IPython")
    get = getattr(module, "get_ipython", None)
    return get() if callable(get) else None


# --------------------------------------------------------------------------- %mpgrade

USAGE = "usage: %mpgrade check [EXERCISE] [--start-method M] [--notebook FILE.ipynb] [--assignment DIR]"


def magic(line: str, echo: Callable[[str], Any] | None = None) -> None:
    """``%mpgrade check 01_spawn [options]``: :func:`check` with ``mpgrade check``'s options.
    Only ``check`` is offered from a notebook; the notebook is this one unless named."""
    echo = echo or print
    try:
        words = shlex.split(line)
    except ValueError as exc:
        echo(f"%mpgrade: {exc}\n{USAGE}")
        return
    if not words or words[0] != "check":
        echo(USAGE)
        return
    words = words[1:]
    exercise = next(iter(_positional(words)), None)
    try:
        if "--notebook" in words:
            here = Path.cwd()
        else:
            path = this_notebook(exercise)
            words = ["--notebook", str(path), *words]
            here = path.parent
    except NotebookCheckError as exc:
        echo(f"%mpgrade: {exc}")
        return
    run(words, cwd=here, echo=echo)


_WITH_VALUE = ("--start-method", "--notebook", "--assignment", "--json")


def _positional(words: list[str]) -> list[str]:
    """The exercise ids among ``mpgrade check``'s arguments (not options, not their values)."""
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in _WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext grader.notebook`` registers the ``%mpgrade`` line magic."""
    ipython.register_magic_function(magic, magic_kind="line", magic_name="mpgrade")
