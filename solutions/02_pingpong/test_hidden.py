"""Hidden tests for exercise 02 (pipes: ping-pong and a ring)."""

import os
import random

import pytest

from grader.testing import check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

JOIN_HINT = ("did you join every child? A child that was never joined stays a zombie, and one "
             "still running when your function returns was not waited for.")
STOP_HINT = ("did the parent send None after the last round, and does the child leave its loop "
             "when it receives None? Otherwise the child waits in recv() forever and join() hangs.")


def transcript(rounds):
    out = []
    for i in range(rounds):
        out += [f"ping {i}", f"pong {i}"]
    return out




# --- ping_pong ------------------------------------------------------------------------------


@pytest.mark.points(3)
@pytest.mark.hint(STOP_HINT)
def test_ping_pong_random_rounds(student):
    """ping_pong(rounds) returns the full transcript, played with one child"""
    rounds = rng.randint(5, 40)
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ping_pong(rounds)
    call = student.last
    expected = transcript(rounds)
    assert got == expected, f"ping_pong({rounds}): expected {expected[:6]}... ({2 * rounds} messages), got {got!r}"
    assert len(call.workers) == 1, (f"ping_pong({rounds}): expected exactly 1 child process, got "
                                    f"{len(call.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint("rounds == 0 plays no round: the transcript is []; the child is still stopped with None.")
def test_ping_pong_zero_rounds(student):
    """ping_pong(0) returns []"""
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ping_pong(0)
    assert got == [], f"ping_pong(0): expected [], got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check the argument first: raise ValueError when rounds < 0.")
def test_ping_pong_negative_raises(student):
    """ping_pong with negative rounds raises ValueError"""
    pingpong = student.module("pingpong", timeout=5)
    with pytest.raises(ValueError):
        pingpong.ping_pong(-rng.randint(1, 9))


@pytest.mark.points(2)
@pytest.mark.hint(JOIN_HINT)
def test_ping_pong_joins_child(student):
    """ping_pong joins its child before returning"""
    rounds = rng.randint(1, 4)
    # Under fork (or spawn) the student's process is its child's parent, so a child never
    # joined stays its zombie; under forkserver the server reaps it and nothing shows.
    pingpong = student.module("pingpong", start_method="fork", timeout=5)
    got = pingpong.ping_pong(rounds)
    assert isinstance(got, list) and len(got) == 2 * rounds, (
        f"ping_pong({rounds}): expected a transcript of {2 * rounds} messages, got {got!r}")
    assert student.last.workers, f"ping_pong({rounds}): expected a child process, saw none"
    check_clean(student.last, f"ping_pong({rounds})", hint=JOIN_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Under spawn the child's target must be a module-level function (no lambda, no "
                  "nested function) receiving its pipe end through args=.")
def test_ping_pong_under_spawn(student):
    """ping_pong works under the spawn start method"""
    rounds = rng.randint(2, 6)
    pingpong = student.module("pingpong", start_method="spawn", timeout=8)
    got = pingpong.ping_pong(rounds)
    expected = transcript(rounds)
    assert got == expected, f"ping_pong({rounds}) under spawn: expected {expected}, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Each round is one send and one recv on each side; the pongs must be the "
                  "messages the child actually sent.")
def test_ping_pong_many_rounds(student):
    """ping_pong handles a few thousand rounds"""
    rounds = rng.randint(1500, 2500)
    pingpong = student.module("pingpong", timeout=10)
    got = pingpong.ping_pong(rounds)
    expected = transcript(rounds)
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), min(len(got), len(expected)))
        raise AssertionError(f"ping_pong({rounds}): expected {2 * rounds} messages, got {len(got)}; "
                             f"first difference at message {first}")


# --- ring -----------------------------------------------------------------------------------

RING_HINT = ("Start n children (the parent is not one of them) and n + 1 one-way pipes: "
             "parent -> P0 -> ... -> P(n-1) -> parent; each child forwards every token plus 1.")
CLOSE_HINT = ("recv() raises EOFError only when EVERY copy of the pipe's sending end is closed, in "
              "every process. Did each child close the pipe ends it does not use (under fork it "
              "inherited them all), did the parent close its copies after starting the children, "
              "and did it close pipe 0 after the last token? One forgotten end and the ring hangs.")


def ring_tokens(count):
    return [rng.randint(-10**6, 10**6) for _ in range(count)]


def check_ring(got, n, tokens, what):
    expected = [t + n for t in tokens]
    if got == expected:
        return
    if not isinstance(got, list) or len(got) != len(expected):
        size = len(got) if isinstance(got, list) else got
        raise AssertionError(f"{what}: expected {len(expected)} tokens back, each plus {n}; got "
                             f"{size!r}" + ("" if isinstance(got, list) else " (not a list)"))
    first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    raise AssertionError(f"{what}: token {first} should come back as {expected[first]} "
                         f"(sent {tokens[first]}, plus 1 per process), got {got[first]!r}")


@pytest.mark.points(3)
@pytest.mark.hint(CLOSE_HINT)
def test_ring_random(student):
    """ring(n, tokens) returns every token plus n, in order, with n child processes"""
    n, tokens = rng.randint(2, 8), ring_tokens(rng.randint(2, 40))
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ring(n, tokens)
    call = student.last
    check_ring(got, n, tokens, f"ring({n}, <{len(tokens)} tokens>)")
    assert len(call.workers) == n, (f"ring({n}, ...): expected {n} child processes, got "
                                    f"{len(call.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint(CLOSE_HINT)
def test_ring_single_process(student):
    """ring(1, tokens) adds 1 to each token with one child"""
    tokens = ring_tokens(rng.randint(1, 5))
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ring(1, tokens)
    call = student.last
    check_ring(got, 1, tokens, f"ring(1, {tokens})")
    assert len(call.workers) == 1, f"ring(1, ...): expected 1 child process, got {len(call.workers)}"


@pytest.mark.points(1)
@pytest.mark.hint("With no tokens the parent closes pipe 0 at once; every child sees EOFError, closes "
                  "its right pipe and ends; the parent gets EOFError and returns []. " + CLOSE_HINT)
def test_ring_no_tokens(student):
    """ring(n, []) returns [] and still stops every child"""
    n = rng.randint(2, 5)
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ring(n, [])
    assert got == [], f"ring({n}, []): expected [], got {got!r}"
    check_clean(student.last, f"ring({n}, [])", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("Check the argument first: raise ValueError when n < 1.")
def test_ring_bad_sizes(student):
    """ring with n < 1 raises ValueError"""
    pingpong = student.module("pingpong", timeout=5)
    for n in (0, -rng.randint(1, 9)):
        with pytest.raises(ValueError):
            pingpong.ring(n, [1])


@pytest.mark.points(1)
@pytest.mark.hint(JOIN_HINT)
def test_ring_joins_children(student):
    """ring joins every child before returning"""
    n, tokens = rng.randint(3, 5), ring_tokens(3)
    pingpong = student.module("pingpong", timeout=5)
    got = pingpong.ring(n, tokens)
    check_ring(got, n, tokens, f"ring({n}, {tokens})")
    assert len(student.last.workers) >= n, (
        f"ring({n}, ...): expected {n} child processes, saw {len(student.last.workers)}")
    check_clean(student.last, f"ring({n}, ...)", hint=JOIN_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Under forkserver (like spawn) the targets are pickled: use a module-level "
                  "function and pass the pipe ends through args=. " + CLOSE_HINT)
def test_ring_under_forkserver(student):
    """ring works under the forkserver start method"""
    n, tokens = rng.randint(2, 4), ring_tokens(rng.randint(1, 10))
    pingpong = student.module("pingpong", start_method="forkserver", timeout=8)
    got = pingpong.ring(n, tokens)
    check_ring(got, n, tokens, f"ring({n}, <{len(tokens)} tokens>) under forkserver")


@pytest.mark.points(1)
@pytest.mark.hint(RING_HINT + " " + CLOSE_HINT)
def test_ring_large(student):
    """ring streams a thousand tokens through a couple of dozen processes"""
    n, tokens = rng.randint(20, 28), ring_tokens(1000)
    pingpong = student.module("pingpong", timeout=15)
    got = pingpong.ring(n, tokens)
    call = student.last
    check_ring(got, n, tokens, f"ring({n}, <1000 tokens>)")
    assert len(call.workers) == n, (f"ring({n}, ...): expected {n} child processes, got "
                                    f"{len(call.workers)}")
