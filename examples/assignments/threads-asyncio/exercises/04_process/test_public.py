"""Public tests for exercise 04 (a Process subclass and a Barrier)."""

import pytest


@pytest.mark.points(3)
@pytest.mark.hint("Call super().__init__() first in __init__, send func(*args) through the "
                  "Pipe in run(), and recv() it in result().")
def test_task_returns_its_result(student):
    """Task(square, 7): start(), result() is 49, join(), exitcode 0"""
    with student.session() as s:
        task = s.module("rendezvous").Task(s.helper("probes.square"), 7)
        task.start()
        got = task.result()
        task.join(5)
        code = task.exitcode
    assert got == 49, f"expected 49, got {got!r}"
    assert code == 0, f"expected exit code 0, got {code!r}"


@pytest.mark.points(3)
@pytest.mark.hint("One multiprocessing.Barrier(n) for all processes: each waits at it after "
                  "counting itself, and reads the counter only then.")
def test_rendezvous_small(student):
    """rendezvous(3, stagger) returns [3, 3, 3]"""
    mod = student.module("rendezvous", timeout=5)
    got = mod.rendezvous(3, student.helper("probes.stagger"))
    assert got == [3, 3, 3], f"expected [3, 3, 3], got {got!r}"
