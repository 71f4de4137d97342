"""Issue #18 finding 8: a student working only in Jupyter checks from the notebook itself.

The released folder holds what a check needs (assignment.toml, the public tests, never the
hidden ones, files everyone can read); ``grader.notebook.check`` and ``%mpgrade check`` run
the same isolated ``mpgrade check`` on the saved notebook's code, from the notebook's folder
as a kernel would (IPython is not needed: its magic registry is faked).
"""

from __future__ import annotations

import stat
from pathlib import Path

import nbformat
import pytest

from grader import notebook as nb_check

from .test_cli import mpgrade

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def released(tmp_path) -> Path:
    out = tmp_path / "release"
    done = mpgrade("release", "--notebooks", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr
    return out


def paste(notebook: Path, source: str) -> None:
    """The student's code in the stub's cell, saved (as Jupyter saves it)."""
    book = nbformat.read(notebook, as_version=4)
    cell = next(c for c in book.cells if c.cell_type == "code")
    cell.source = source
    book.cells.append(nbformat.v4.new_code_cell("%load_ext grader.notebook\n%mpgrade check 01_spawn"))
    nbformat.write(book, notebook)


def test_the_release_holds_what_a_check_needs_readable_and_nothing_hidden(released):
    files = sorted(p.relative_to(released).as_posix() for p in released.rglob("*") if p.is_file())
    assert "assignment.toml" in files and "01_spawn.ipynb" in files
    assert "exercises/01_spawn/test_public.py" in files
    assert not [f for f in files if "hidden" in f or f.startswith("solutions")]
    # The stub is the notebook's code cell: a stub file next to it would be what is checked.
    assert "exercises/01_spawn/spawn.py" not in files
    for path in released.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    text = "\n".join(c.source for c in nbformat.read(released / "01_spawn.ipynb", as_version=4).cells
                     if c.cell_type == "markdown")
    assert "%mpgrade check 01_spawn" in text and 'grader.notebook.check("01_spawn")' in text


def test_a_check_from_the_notebook_grades_the_saved_notebook_not_a_stub_beside_it(released, monkeypatch):
    paste(released / "01_spawn.ipynb", (REPO / "solutions/01_spawn/spawn.py").read_text())
    # A stub where a course repository has it: the notebook's code is checked, not this.
    stub = released / "exercises" / "01_spawn" / "spawn.py"
    stub.write_text((REPO / "exercises/01_spawn/spawn.py").read_text())
    monkeypatch.chdir(released)  # a kernel starts in its notebook's folder
    lines: list[str] = []
    code = nb_check.check("01_spawn", start_method="fork", echo=lines.append, timeout=300)
    text = "\n".join(lines)
    assert code == 0, text
    assert "Public tests: 3/3 passed, 5/5 points" in text
    assert "01_spawn.ipynb" in text and "Traceback" not in text
    assert "IPython magic" in text  # the check cell's magics, dropped and said so


def test_the_magic_runs_every_start_method_and_catches_a_spawn_only_bug(released, monkeypatch):
    reference = (REPO / "solutions/01_spawn/spawn.py").read_text()
    buggy = reference.replace("target=_exit_with, args=(code,)", "target=lambda code=code: _exit_with(code)")
    assert buggy != reference
    paste(released / "01_spawn.ipynb", buggy)

    class Shell:  # what IPython hands load_ipython_extension
        magics: dict = {}

        def register_magic_function(self, func, magic_kind, magic_name):
            self.magics[(magic_kind, magic_name)] = func

    shell = Shell()
    nb_check.load_ipython_extension(shell)
    magic = shell.magics[("line", "mpgrade")]
    real_run = nb_check.run
    monkeypatch.chdir(released)
    lines: list[str] = []
    monkeypatch.setattr("builtins.print", lines.append)
    monkeypatch.setattr(nb_check, "run", lambda args, cwd, echo=None: real_run(args, cwd=cwd, timeout=300))
    magic("check 01_spawn")
    text = "\n".join(lines)
    assert "Start methods: fork, spawn, forkserver" in text, text
    assert "passes under fork, fails under spawn" in text
    assert "Can't pickle" in text or "pickle" in text.lower()


def test_which_notebook_is_found_and_a_clear_error_when_it_cannot_be(tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    (tmp_path / "01_spawn.ipynb").write_text("{}")
    (tmp_path / "02_pingpong.ipynb").write_text("{}")
    assert nb_check.this_notebook("01_spawn", cwd=tmp_path) == (tmp_path / "01_spawn.ipynb").resolve()
    with pytest.raises(nb_check.NotebookCheckError, match="pass it"):
        nb_check.this_notebook(None, cwd=tmp_path)
    elsewhere = tmp_path / "work" / "mine.ipynb"
    elsewhere.parent.mkdir()
    elsewhere.write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", str(elsewhere))  # Jupyter names the kernel's notebook
    assert nb_check.this_notebook("01_spawn", cwd=tmp_path) == elsewhere.resolve()
    lines: list[str] = []
    nb_check.magic("grade everything", echo=lines.append)
    assert lines and lines[0].startswith("usage: %mpgrade check")


KERNEL = """
import sys
import grader.notebook
sys.exit(grader.notebook.check("01_spawn", start_method="fork", timeout=240) == 130 and 7)
"""


def test_interrupting_the_kernel_stops_the_check_and_every_process_of_the_student(released, tmp_path):
    """Jupyter's stop button sends SIGINT to the kernel alone; the check (its own session)
    is stopped by the kernel and its workers with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .test_student_loop import _alive

    pidfile = tmp_path / "pids"
    reference = (REPO / "solutions/01_spawn/spawn.py").read_text()
    spinning = reference.replace("def _exit_with(code: int) -> None:\n",
                                 "def _exit_with(code: int) -> None:\n"
                                 f"    open({str(pidfile)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                                 "    while True:\n        pass\n", 1)
    assert spinning != reference
    paste(released / "01_spawn.ipynb", spinning)
    # As a kernel is started: a test run started in the background (`pytest &`) ignores SIGINT,
    # and the kernel would inherit that and rightly go on.
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL], cwd=released, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and len(pidfile.read_text().split()) >= 3):
            assert time.monotonic() < deadline and kernel.poll() is None, "the workers never started"
            time.sleep(0.05)
        pids = [int(p) for p in pidfile.read_text().split()]
        os.kill(kernel.pid, signal.SIGINT)
        out, _ = kernel.communicate(timeout=120)
        assert kernel.returncode == 7, out
        assert "Check stopped: nothing of yours is left running." in out
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "student processes survived the interrupt"
    finally:
        kernel.kill()
        kernel.wait(timeout=30)
        for p in pidfile.read_text().split() if pidfile.exists() else []:
            try:
                os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass
