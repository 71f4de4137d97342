"""Attacks on the session surface (``student.session()``, handles, helpers, coroutines).

Student code shares its process with the session's request loop, so it can reach everything
there: the result pipe, the request channel, the helper modules. None of that may give it more
than a failure of its own operations, bounded by their limits; nothing it makes may reach the
grader as anything but checked plain data; and nothing of it may outlive the session.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from grader import processes
from grader.harness.boundary import (
    BoundaryError,
    CallCrashed,
    CallTimeout,
    SessionClosed,
    StudentRunner,
)

HOSTILE = r'''
import json, os, subprocess, sys, time

def _result_fds():
    """The grader's result pipe (and request channel) as the student's code can find them."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("pipe:") and int(name) > 2:
            out.append(int(name))
    return out

class Forger:
    def answer_ahead(self, seq):
        """Write answers for this and the next operation on every pipe it can find."""
        for fd in _result_fds():
            for n in (seq, seq + 1):
                try:
                    os.write(fd, json.dumps({"ok": True, "value": "FORGED", "seq": n}).encode() + b"\n")
                except OSError:
                    pass
        return "honest"

    def flood(self):
        for fd in _result_fds():
            try:
                for _ in range(50):
                    os.write(fd, b'{"ok": true, "value": 1, "seq": 99}\n')
            except OSError:
                pass
        return 1

    def steal_requests(self):
        """Read every request meant for the session's loop, from a thread of its own."""
        import threading

        def steal(fd):
            try:
                os.set_blocking(fd, False)
                while True:
                    try:
                        os.read(fd, 65536)
                    except BlockingIOError:
                        time.sleep(0.001)
            except OSError:
                pass

        for fd in _result_fds():
            threading.Thread(target=steal, args=(fd,), daemon=True).start()
        return 1

    def __len__(self):
        return "not an int"

    def huge(self):
        return "x" * (40 * 1024 * 1024)

    def daemon(self):
        pid = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(120)"]).pid
        return pid

def callback_that_forks():
    def f():
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]).pid
    return f

def never_ends():
    while True:
        yield 1

def blocks_forever():
    yield 1
    time.sleep(3600)
    yield 2

def shadow_the_helper():
    import probes
    probes.square = lambda x: "cheated"
    return 1

class Lingering:
    def __del__(self):
        time.sleep(3600)

def lingering():
    global keep
    keep = Lingering()
    return 1
'''


@pytest.fixture
def runner(tmp_path: Path) -> StudentRunner:
    (tmp_path / "hostile.py").write_text(HOSTILE)
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "probes.py").write_text("def square(x):\n    return x * x\n")
    return StudentRunner(path=tmp_path, start_method="fork", call_timeout=3, helpers=helpers)


def _alive(pid: int) -> bool:
    return processes.alive(pid)  # a zombie is not alive


def _gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def test_a_handle_of_another_session_is_refused_before_anything_is_sent(runner):
    with runner.session() as first:
        theirs = first.module("hostile").Forger()
        with pytest.raises(RuntimeError, match="while a session is open"):
            runner.session()
        with pytest.raises(RuntimeError, match="while a session is open"):
            runner.module("hostile").lingering()
    with pytest.raises(SessionClosed):
        theirs.flood()
    with runner.session() as second:
        with pytest.raises(ValueError, match="another session"):
            second.module("hostile").lingering(theirs)
        with pytest.raises(ValueError, match="another session"):
            second.take(theirs, 1)
        assert second.module("hostile").lingering() == 1


@pytest.mark.parametrize("name", ["__class__", "__reduce__", "__dict__", "__globals__", "__getattribute__",
                                  "_result_fds"])
def test_names_that_walk_out_of_an_object_are_refused_on_both_sides(runner, name):
    with runner.session() as s:
        forger = s.module("hostile").Forger()
        with pytest.raises(AttributeError):
            forger.__getattr__(name)
        # And if a test sent it anyway, the student's process refuses it too.
        execution = s._execution
        failure, _ = execution.operate({"op": "getattr", "handle": forger._id, "attr": name}, "raw", 3)
        assert isinstance(failure, BoundaryError) and "refused" in str(failure)
        failure, _ = execution.operate({"op": "call", "handle": forger._id, "attr": name}, "raw", 3)
        assert isinstance(failure, BoundaryError) and "refused" in str(failure)
        assert s.module("hostile").lingering() == 1, "a refusal does not end the session"


def test_answers_forged_on_the_result_pipe_fail_only_the_forger(runner):
    with runner.session() as s:
        forger = s.module("hostile").Forger()
        seq = s._execution.seq
        got = forger.answer_ahead(seq + 2)  # looked up (seq+1), then called (seq+2)
        assert got in ("FORGED", "honest"), "at most the student's own word for its own call"
        with pytest.raises((BoundaryError, SessionClosed)):
            s.helper("probes.square")(3)
            s.helper("probes.square")(4)
    assert not _alive(runner.last.pid)


def test_a_flood_of_answers_ends_the_session_not_the_grader(runner):
    with runner.session() as s:
        forger = s.module("hostile").Forger()
        with pytest.raises((BoundaryError, SessionClosed)):
            forger.flood()
            forger.flood()
    assert not _alive(runner.last.pid)


def test_stolen_requests_cost_one_operations_limit(runner):
    with runner.session(timeout=2) as s:
        forger = s.module("hostile").Forger()
        forger.steal_requests()
        started = time.monotonic()
        with pytest.raises((CallTimeout, CallCrashed)):
            for _ in range(50):
                s.helper("probes.square")(2)
        assert time.monotonic() - started < 30


def test_bad_answers_of_student_objects_fail_that_operation(runner):
    with runner.session(timeout=30) as s:  # 40 MB through a pipe on a loaded machine
        forger = s.module("hostile").Forger()
        with pytest.raises(TypeError):
            len(forger)
        with pytest.raises(BoundaryError, match="larger than|too"):
            forger.huge()


def test_what_student_callables_and_objects_start_dies_with_the_session(runner):
    with runner.session() as s:
        spawn_daemon = s.module("hostile").callback_that_forks()
        child = spawn_daemon()
        daemon = s.module("hostile").Forger().daemon()
        assert _alive(child)
    assert child in runner.last.leftover
    assert _gone(child) and _gone(daemon), "nothing the session started survives it"


def test_generators_that_never_end_or_block_are_bounded(runner):
    with runner.session(timeout=2) as s:
        assert s.take(s.module("hostile").never_ends(), 1000) == [1] * 1000
        stuck = s.module("hostile").blocks_forever()
        assert next(stuck) == 1
        with pytest.raises(CallTimeout):
            next(stuck)


def test_a_shadowed_helper_is_the_students_word_only_in_the_students_process(runner):
    """Student code can rewrite a helper inside its own process (documented: helpers are its
    word there), but never the test's own values: the test still compares in the grader."""
    with runner.session() as s:
        s.module("hostile").shadow_the_helper()
        assert s.helper("probes.square")(3) == "cheated"
    assert runner.module("hostile").shadow_the_helper() == 1
    with pytest.raises(BoundaryError, match="not plain data"):
        runner.module("hostile").never_ends()  # a generator is not plain data outside a session


def test_a_finaliser_that_hangs_does_not_hold_the_session_open(runner):
    started = time.monotonic()
    with runner.session() as s:
        assert s.module("hostile").lingering() == 1
    assert time.monotonic() - started < 30
    assert not _alive(runner.last.pid)
    assert os.path.exists(runner.path / "hostile.py")
