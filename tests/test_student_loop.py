"""Issue #18, the student loop: what ``make check`` shows a student evening after evening.

Each test stands for one finding of the issue and failed before its fix. The checks run the
real ``mpgrade check`` on a copy of the course with a student's realistic mistake in it.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from .test_cli import mpgrade

SPAWN_STUB_BODY = "def exit_codes(codes: list[int]) -> list[int]:"


def write_exit_codes(course: Path, body: str, header: str = "") -> None:
    """The student's ``exit_codes`` (the other functions stay stubs, which fail at once)."""
    path = course / "exercises" / "01_spawn" / "spawn.py"
    source = path.read_text()
    start = source.index(SPAWN_STUB_BODY)
    end = source.index("def run_with_timeout")
    path.write_text(header + source[:start] + body + "\n\n" + source[end:])


CRASHING_WORKERS = '''
def _exit_with(code):
    print("worker", code, "starting")
    sys.exit(getpid() and code)


def exit_codes(codes: list[int]) -> list[int]:
    procs = [multiprocessing.Process(target=_exit_with, args=(c,)) for c in codes]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]
'''


def test_check_shows_what_each_process_raised_and_printed_in_the_students_own_file(course_copy):
    """Finding 1: a NameError in every worker and the worker's debug print reach the terminal,
    under the failing test, with the student's path, plus an editor's ``file:line: message``."""
    write_exit_codes(course_copy, CRASHING_WORKERS)
    line = next(i for i, text in enumerate((course_copy / "exercises/01_spawn/spawn.py").read_text()
                                           .splitlines(), 1) if "getpid() and code" in text)
    out = mpgrade("check", "01_spawn", "--start-method", "fork", cwd=course_copy)
    assert out.returncode == 1, out.stderr
    text = out.stdout
    block = text[text.index("exit_codes([0, 1, 3])"):]
    assert "your processes raised:" in block
    assert "NameError: name 'getpid' is not defined (3 processes)" in block
    assert "worker 0 starting" in block and "worker 3 starting" in block
    assert f'File "exercises/01_spawn/spawn.py", line {line}, in _exit_with' in block
    assert re.search(rf"^exercises/01_spawn/spawn\.py:{line}: NameError: name 'getpid' is not defined",
                     text, re.M), text
    assert "mpgrade-job" not in text and "/scratch/" not in text and "student-" not in text
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    test = next(t for t in doc["tests"] if t["name"].startswith("exit_codes"))
    assert 'File "spawn.py"' in test["output"] and "/tmp/" not in test["output"]


INTERLEAVED = """Process Process-1:
Process Process-2:
Traceback (most recent call last):
Traceback (most recent call last):
  File "spawn.py", line 12, in work
  File "spawn.py", line 12, in work
    getpid()
    getpid()
NameError: name 'getpid' is not defined
NameError: name 'getpid' is not defined
hello \x1b]52;c;cGF3bmVk\x07 from a worker
"""


def test_interleaved_tracebacks_of_one_bug_are_shown_once_with_their_count(course):
    from grader import check

    text = check.student_paths(INTERLEAVED, course, "01_spawn")
    crashes, other = check.split_output(text)
    assert [(c.where, c.error, c.count) for c in crashes] == [
        ("exercises/01_spawn/spawn.py:12", "NameError: name 'getpid' is not defined", 2)]
    assert other == ["hello \x1b]52;c;cGF3bmVk\x07 from a worker"]
    assert check.editor_lines({"outcome": "failed", "start_method": "spawn", "message": "", "output": text}) == [
        "exercises/01_spawn/spawn.py:12: NameError: name 'getpid' is not defined (failed, spawn)"]


def test_what_processes_printed_is_escaped_on_the_terminal(course):
    import io

    from rich.console import Console

    from grader.cli import render

    buf = io.StringIO()
    test = {"exercise": "01_spawn", "name": "t", "outcome": "failed", "message": "m", "hint": None,
            "output": INTERLEAVED, "start_method": "fork"}
    render.failed_test(test, course, Console(file=buf, width=200, force_terminal=True))
    assert "\x1b]52" not in buf.getvalue() and "\\x1b]52" in buf.getvalue()


LAMBDA_TARGET = '''
def exit_codes(codes: list[int]) -> list[int]:
    procs = [multiprocessing.Process(target=lambda c=c: sys.exit(c)) for c in codes]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]
'''


def test_the_default_check_catches_a_spawn_only_bug_and_names_the_start_method(course_copy):
    """Finding 2: a lambda target works under fork only; the default check runs every start
    method the assignment declares, says which ran and names the one each failure is under."""
    write_exit_codes(course_copy, LAMBDA_TARGET)
    out = mpgrade("check", "01_spawn", cwd=course_copy)
    text = out.stdout
    assert "Start methods: fork, spawn, forkserver" in text, text
    block = text[text.index("exit_codes([0, 1, 3])"):]
    assert "under spawn]" in block.split("\n", 1)[0], block
    assert "passes under fork, fails under spawn, forkserver" in block
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    assert doc["grader"]["start_methods"] == ["fork", "spawn", "forkserver"]
    test = next(t for t in doc["tests"] if t["name"].startswith("exit_codes"))
    assert test["outcome"] == "failed" and test["start_method"] == "spawn"
    assert all(t.get("start_method") for t in doc["tests"] if t["outcome"] != "passed")


def test_a_syntax_error_gets_the_syntax_hint_never_the_tests_own(course_copy):
    """Finding 3: the hint comes from the diagnosis; a syntax error is told about syntax."""
    path = course_copy / "exercises" / "02_pingpong" / "pingpong.py"
    path.write_text(path.read_text() + "\ndef broken(:\n")
    out = mpgrade("check", "02_pingpong", "--start-method", "fork", cwd=course_copy)
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    assert doc["tests"] and all(t["outcome"] == "error" for t in doc["tests"])
    for t in doc["tests"]:
        assert t["diagnosis"][0] == "syntax_error"
        assert t["hint"].startswith("Python could not read your file"), t["hint"]
    assert "ping" not in " ".join(t["hint"] for t in doc["tests"]).lower()
    assert "hint: Python could not read your file" in out.stdout


THREADS = '''
def exit_codes(codes: list[int]) -> list[int]:
    import threading
    out = []
    threads = [threading.Thread(target=out.append, args=(c,)) for c in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
'''


def test_threads_instead_of_processes_get_the_no_process_hint(course_copy):
    write_exit_codes(course_copy, THREADS)
    mpgrade("check", "01_spawn", "--start-method", "fork", cwd=course_copy)
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    test = next(t for t in doc["tests"] if t["name"].startswith("exit_codes"))
    assert test["outcome"] == "failed" and "no_process_started" in test["diagnosis"]
    assert test["hint"].startswith("Your code started no process"), test["hint"]


def test_authors_attach_hints_to_diagnoses_as_data(tmp_path):
    from grader.harness import diagnosis

    assert diagnosis.choose_hint(["syntax_error"], test_hint="ping pong", runtime_hint=None, per_test={},
                                 per_exercise={}, per_assignment={}) is None
    assert diagnosis.choose_hint(["blocked_in_get", "timeout"], test_hint="t", runtime_hint=None,
                                 per_test={"timeout": "T"}, per_exercise={"blocked_in_get": "E"},
                                 per_assignment={}) == "E"
    assert diagnosis.choose_hint(["timeout"], test_hint="t", runtime_hint="now", per_test={},
                                 per_exercise={}, per_assignment={"timeout": "A"}) == "now"
    with pytest.raises(ValueError, match="unknown diagnoses"):
        diagnosis.check_hints({"blocked_in_aquire": "typo"}, "x")


HANGS = '''
import multiprocessing as mp
import time

def get_hang():
    q = mp.Queue()
    q.put(1)  # starts the queue's feeder thread, which then waits in threading.py
    time.sleep(0.2)
    return mp.Queue().get()

def busy():
    n = 0
    while True:
        n += 1
'''


def test_hang_locations_name_the_main_thread_a_busy_loop_and_an_import(make_module):
    """Finding 4: the main thread's frame (not the feeder thread's), "running (using CPU)" for a
    busy loop, "while importing" for an import-time hang."""
    from grader.harness.boundary import CallTimeout, StudentRunner

    folder = make_module("hangs", HANGS)
    (folder / "at_import.py").write_text("import time\nwhile True:\n    time.sleep(0.01)\n\ndef f():\n    pass\n")
    runner = StudentRunner(path=folder, start_method="fork", call_timeout=1)
    with pytest.raises(CallTimeout) as info:
        runner.module("hangs").get_hang()
    caller = next(line for line in str(info.value).splitlines() if "caller" in line)
    assert "hangs.py:9 in get_hang()" in caller and "threading.py" not in caller, caller
    assert "running" not in caller
    with pytest.raises(CallTimeout) as info:
        runner.module("hangs").busy()
    caller = next(line for line in str(info.value).splitlines() if "caller" in line)
    assert "running (using CPU) at hangs.py:" in caller and "in busy()" in caller, caller
    with pytest.raises(CallTimeout) as info:
        runner.module("at_import").f()
    caller = next(line for line in str(info.value).splitlines() if "caller" in line)
    assert "while importing at_import.py: at_import.py:3 in <module>()" in caller, caller


def test_the_main_thread_is_found_in_a_dump_without_its_name():
    from grader.harness.boundary import summarize_dump

    dump = (
        "Thread 0x00007f0000000002 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n'
        '  File "/usr/lib/python3.11/threading.py", line 995 in _bootstrap\n'
        "\nCurrent thread 0x00007f0000000001 (most recent call first):\n"
        '  File "/usr/lib/python3.11/multiprocessing/connection.py", line 395 in _recv\n'
        '  File "/sub/prodcons.py", line 12 in consumer\n'
    )
    assert summarize_dump(dump, "/sub") == "prodcons.py:12 in consumer(), waiting in connection.py:395 in _recv()"


def test_a_students_own_test_file_is_ignored_and_said_so(course_copy):
    """Finding 6: a test file of the student's next to the public tests used to be collected
    (importing the module directly: "could not be collected", 0/0 points)."""
    (course_copy / "exercises" / "01_spawn" / "test_mine.py").write_text(
        "from spawn import worker_pids\n\ndef test_mine():\n    assert worker_pids(1)\n")
    out = mpgrade("check", "01_spawn", "--start-method", "fork", cwd=course_copy)
    doc = json.loads((course_copy / ".mpgrade" / "check.json").read_text())
    assert doc["status"] == "graded", doc["message"]
    assert doc["max_score"] == 5 and len(doc["tests"]) == 3
    assert [i["path"] for i in doc["submission"]["ignored"]] == ["exercises/01_spawn/test_mine.py"]
    assert "not run: exercises/01_spawn/test_mine.py" in out.stdout


def test_subclasses_of_plain_types_cross_as_the_plain_type_and_refusals_say_what_to_return(make_module):
    """Finding 7: ``collections.Counter`` (a dict subclass the stub imports) was refused."""
    from grader._boot import mpgrade_plain as plain
    from grader.harness.boundary import StudentRunner

    folder = make_module("counts", (
        "import collections, enum\n"
        "class Colour(enum.IntEnum):\n    RED = 1\n"
        "Point = collections.namedtuple('Point', 'x y')\n"
        "def counts():\n    return collections.Counter('abracadabra')\n"
        "def mixed():\n    return [Point(1, 2), Colour.RED, collections.OrderedDict(a=1)]\n"
        "def keys():\n    return {'a': 1}.keys()\n"))
    runner = StudentRunner(path=folder, start_method="fork", call_timeout=5)
    value = runner.module("counts").counts()
    assert value == {"a": 5, "b": 2, "r": 2, "c": 1, "d": 1} and type(value) is dict
    mixed = runner.module("counts").mixed()
    assert mixed == [(1, 2), 1, {"a": 1}] and [type(v) for v in mixed] == [tuple, int, dict]
    with pytest.raises(Exception, match=r"return list\(value\) instead"):
        runner.module("counts").keys()

    class Liar(list):
        def __eq__(self, other):
            return False

    with pytest.raises(plain.NotPlainData, match="does not compare equal"):
        plain.encode(Liar([1]))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_nothing_of_the_students_survives_ctrl_c_during_a_check(course_copy, tmp_path, signame):
    """Finding 9: Ctrl-C while workers spin left them running, re-parented to init."""
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "pids"
    write_exit_codes(course_copy, f'''
def _spin(code):
    with open({str(pidfile)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    while True:
        pass


def exit_codes(codes: list[int]) -> list[int]:
    procs = [multiprocessing.Process(target=_spin, args=(c,)) for c in codes]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.exitcode for p in procs]
''')
    # Its own session, as a terminal's foreground job: Ctrl-C signals the whole process group.
    proc = subprocess.Popen([sys.executable, "-m", "grader", "check", "01_spawn", "--start-method", "fork"],
                            cwd=course_copy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and len(pidfile.read_text().split()) >= 3):
            assert time.monotonic() < deadline and proc.poll() is None, "the workers never started"
            time.sleep(0.05)
        pids = [int(p) for p in pidfile.read_text().split()]
        assert all(_alive(p) for p in pids)
        os.killpg(proc.pid, getattr(signal, signame))
        # What finding 9 asks: nothing survives, however the check ends. (How soon Ctrl-C ends
        # it is not asserted: on a loaded CI machine it took up to the call's 5 s limit.)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "student processes survived the check"
    finally:
        proc.kill()
        for p in pidfile.read_text().split() if pidfile.exists() else []:
            try:
                os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass


def test_a_narrow_terminal_keeps_every_wrapped_line_under_its_indentation(course_copy):
    """Finding 11: at 80 columns hint lines wrapped back to column 0."""
    write_exit_codes(course_copy, CRASHING_WORKERS)
    out = mpgrade("check", "01_spawn", "--start-method", "fork", cwd=course_copy, env={"COLUMNS": "80"})
    lines = out.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("✗"))
    last = next(i for i, line in enumerate(lines) if line.startswith("Public tests:"))
    assert any("hint:" in line for line in lines[first:last])
    for line in lines[:first]:
        assert len(line) <= 80, line
    for line in lines[first:last]:
        assert line.startswith(("✗", " ")) or re.match(r"exercises/01_spawn/spawn\.py:\d+: ", line), line
        assert len(line) <= 80 or re.match(r"exercises/", line), line


ONE_AT_A_TIME = '''
import multiprocessing as mp

def _work(q):
    q.put(1)

def one_at_a_time(n):
    q = mp.Queue()
    for _ in range(n):
        p = mp.Process(target=_work, args=(q,))
        p.start()
        p.join()
    return [q.get() for _ in range(n)]

def together(n):
    q = mp.Queue()
    procs = [mp.Process(target=_work, args=(q,)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [q.get() for _ in range(n)]
    for p in procs:
        p.join()
    return out
'''


def test_workers_started_and_joined_in_one_loop_never_count_as_running_together(make_module):
    """Finding 5: the peak counted the resource tracker, seen between its fork and its exec,
    as a worker alive all call long, so workers run one at a time sometimes looked concurrent."""
    from grader.harness.boundary import SparePool, StudentRunner

    pool = SparePool()
    runner = StudentRunner(path=make_module("loop", ONE_AT_A_TIME), start_method="spawn", call_timeout=10,
                           spares=pool)
    try:
        for _ in range(3):
            runner.module("loop").one_at_a_time(3)
            assert runner.last.peak_processes == 1 and len(runner.last.workers) == 3
        runner.module("loop").together(3)
        assert runner.last.peak_processes >= 2
    finally:
        pool.close()
