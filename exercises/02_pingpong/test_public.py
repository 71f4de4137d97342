"""Public tests for exercise 02 (pipes). Run them while you work."""

import pytest


@pytest.mark.points(2)
@pytest.mark.hint("Send \"ping i\", receive the child's \"pong i\"; after the last round send None "
                  "so the child stops, then join it.")
def test_ping_pong_three_rounds(student):
    """ping_pong(3) returns the six messages in order"""
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ping_pong(3)
    expected = ["ping 0", "pong 0", "ping 1", "pong 1", "ping 2", "pong 2"]
    assert got == expected, f"expected {expected}, got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("n children, n + 1 one-way pipes: parent -> P0 -> P1 -> P2 -> parent; each child "
                  "forwards every token plus 1 until recv() raises EOFError. If it hangs: every "
                  "process must close the pipe ends it does not use.")
def test_ring_of_three(student):
    """ring(3, [10, 20, 30]) returns [13, 23, 33]"""
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ring(3, [10, 20, 30])
    assert got == [13, 23, 33], f"expected [13, 23, 33], got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check the argument first: a ring needs n >= 1, otherwise raise ValueError.")
def test_ring_needs_a_process(student):
    """ring(0, [5]) raises ValueError"""
    pingpong = student.module("pingpong", timeout=5)
    with pytest.raises(ValueError):
        pingpong.ring(0, [5])
