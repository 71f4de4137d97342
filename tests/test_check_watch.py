"""``mpgrade check --watch`` (issue #18, "Also"): the public tests again on every save.

The real command runs on a copy of the course; the test saves a file as an editor would and
reads the re-run's output. Every wait has a limit, and nothing is timed.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from grader import check

from .test_student_loop import _alive

REPO = Path(__file__).resolve().parent.parent


class Lines:
    """A process's stdout read line by line in a thread, so the test can wait with a limit."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def until(self, text: str, timeout: float = 120) -> str:
        """Everything read up to the first line holding ``text`` (from where the last call
        stopped); fails after ``timeout`` seconds or at the end of the output."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; read: {''.join(got)}") from None
            if line is None:
                raise AssertionError(f"the output ended before {text!r}; read: {''.join(got)}")
            got.append(line)
            self.seen.append(line)
            if text in line:
                return "".join(got)


def test_watch_reruns_the_saved_exercise_and_ctrl_c_leaves_nothing(course_copy, tmp_path):
    pidfile = tmp_path / "pids"
    spawn_py = course_copy / "exercises" / "01_spawn" / "spawn.py"
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "check", "--watch", "--start-method", "fork"],
        cwd=course_copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "160"}, start_new_session=True,
        # As a terminal starts it: a test run started in the background (`pytest &`) ignores
        # SIGINT, and the watch would inherit that and rightly go on.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out = Lines(proc)
    try:
        first = out.until("Watching")
        assert "01_spawn" in first and "02_pingpong" in first and "not implemented" in first
        assert "Watching 4 files" in first

        # Saved as editors do: a new file renamed over the old one. The reference passes.
        reference = (REPO / "solutions" / "01_spawn" / "spawn.py").read_text()
        tmp = spawn_py.with_suffix(".py.swp")
        tmp.write_text(reference)
        os.replace(tmp, spawn_py)
        second = out.until("Watching")
        assert "exercises/01_spawn/spawn.py changed: 01_spawn" in second
        assert "02_pingpong" not in second, "only the saved file's exercise runs again"
        assert "Public tests: 3/3 passed, 5/5 points" in second, second

        # Saved again with workers that spin forever; Ctrl-C while they run.
        spinning = reference.replace('def _exit_with(code: int) -> None:\n',
                                     'def _exit_with(code: int) -> None:\n'
                                     f'    open({str(pidfile)!r}, "a").write(f"{{os.getpid()}}\\n")\n'
                                     '    while True:\n        pass\n', 1)
        assert spinning != reference and "import os" in reference
        spawn_py.write_text(spinning)
        out.until("changed: 01_spawn")
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and len(pidfile.read_text().split()) >= 3):
            assert time.monotonic() < deadline and proc.poll() is None, "the spinning workers never started"
            time.sleep(0.05)
        pids = [int(p) for p in pidfile.read_text().split()]
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        rest = out.until("Stopped watching", timeout=10)
        assert "Traceback" not in rest and "Aborted" not in rest
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "student processes survived the watch"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for p in pidfile.read_text().split() if pidfile.exists() else []:
            try:
                os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass


def test_a_change_is_reported_once_the_files_are_quiet(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("1")
    b.write_text("2")
    files = {a: "01", b: "02"}
    before = check.stamps(files)
    got: list[list[Path]] = []
    waiter = threading.Thread(target=lambda: got.append(check.wait_for_change(files, before, poll=0.01,
                                                                             settle=0.05)))
    waiter.start()
    b.write_text("22")
    b.unlink()  # deleted, as some editors do before writing the new version
    b.write_text("222")
    waiter.join(timeout=30)
    assert got == [[b]]
