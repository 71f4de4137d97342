"""Hidden tests for exercise 04 (a Process subclass and a Barrier)."""

import os
import random

import pytest

from grader.testing import Mistake, check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

RUN_HINT = ("Override run(), never start(): start() makes the new process and calls run() "
            "there. Calling the work from start() (or from __init__) runs it in the parent.")
BARRIER_HINT = ("Create ONE multiprocessing.Barrier(n) in the parent and pass it to every "
                "process; each waits at it after counting itself and reads the counter after.")


@pytest.mark.points(3)
@pytest.mark.hint(RUN_HINT)
@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_task_runs_in_its_own_process(student, start_method):
    """a Task runs its function in a new process, under every start method"""
    value = rng.randint(2, 99)
    with student.session(start_method=start_method, timeout=10) as s:
        task = s.module("rendezvous").Task(s.helper("probes.square_and_pid"), value)
        task.start()
        pid = task.pid
        got = task.result()
        task.join(5)
        code, alive = task.exitcode, task.is_alive()
    record = student.last
    what = f"Task(square_and_pid, {value}) under {start_method}"
    if not record.workers or not isinstance(got, list | tuple) or got[1] == record.pid:
        raise Mistake(f"{what}: expected the work in a new process, got it done in the calling process",
                      hint=RUN_HINT)
    assert got[0] == value * value, f"{what}: expected result() {value * value}, got {got[0]!r}"
    assert got[1] == pid and pid in record.workers, f"{what}: expected the result from the Task's own process {pid}"
    assert (code, alive) == (0, False), f"{what}: expected it ended with exit code 0, got {code!r} (alive: {alive})"
    check_clean(record, what, hint="join() the task.")


@pytest.mark.points(3)
@pytest.mark.hint("Do not catch the exception in run(): a process whose run() raises ends with "
                  "exitcode 1, which is how the parent learns it failed.")
def test_a_failing_task_has_a_nonzero_exitcode(student):
    """a Task whose function raises ends with a non-zero exitcode, and result() raises RuntimeError"""
    with student.session(timeout=10) as s:
        task = s.module("rendezvous").Task(s.helper("probes.fail"), 1)
        task.start()
        task.join(5)
        code = task.exitcode
        try:
            got = task.result(1)
        except RuntimeError:
            got = RuntimeError
    assert code not in (0, None), f"Task(fail, 1): expected a non-zero exit code, got {code!r}"
    assert got is RuntimeError, f"Task(fail, 1): expected result() to raise RuntimeError, got {got!r}"


@pytest.mark.points(3)
@pytest.mark.hint(BARRIER_HINT)
def test_rendezvous_waits_for_everyone(student):
    """rendezvous(n, stagger): every process passes the barrier only after all have arrived"""
    n = rng.randint(3, 5)
    mod = student.module("rendezvous", timeout=6)
    got = mod.rendezvous(n, student.helper("probes.stagger"))
    call = student.last
    what = f"rendezvous({n}, stagger)"
    if got != [n] * n:
        raise Mistake(f"{what}: expected every process to see {n} arrived, got {got!r}", hint=BARRIER_HINT)
    assert len(call.workers) == n, f"{what}: expected {n} processes, got {len(call.workers)}"
    check_clean(call, what, hint="join() every process before returning.")


@pytest.mark.points(3)
@pytest.mark.hint(BARRIER_HINT)
def test_rendezvous_under_spawn(student):
    """rendezvous works under spawn"""
    n = rng.randint(2, 4)
    mod = student.module("rendezvous", start_method="spawn", timeout=10)
    got = mod.rendezvous(n, student.helper("probes.stagger"))
    assert got == [n] * n, f"rendezvous({n}, stagger) under spawn: expected {[n] * n}, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check n first: raise ValueError when it is below 1.")
def test_rendezvous_rejects_no_processes(student):
    """rendezvous(0, stagger) raises ValueError"""
    mod = student.module("rendezvous")
    with pytest.raises(ValueError):
        mod.rendezvous(0, student.helper("probes.stagger"))
