"""Hidden tests for exercise 01 (spawning processes)."""

import os
import random

import pytest

from grader.testing import check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

JOIN_HINT = ("did you join every process? A process that was never joined stays a zombie, and "
             "one still running when your function returns was not waited for.")




# --- worker_pids ----------------------------------------------------------------------------


@pytest.mark.points(2)
@pytest.mark.hint("Start n multiprocessing.Process objects (not threads, not a direct call); "
                  "each must call os.getpid() itself and send the value to the parent.")
def test_worker_pids_are_real_children(student):
    """worker_pids(n) returns the PIDs of n distinct child processes"""
    n = rng.randint(3, 6)
    spawn = student.module("spawn", timeout=5)
    pids = spawn.worker_pids(n)
    call = student.last
    assert isinstance(pids, list) and len(pids) == n, f"worker_pids({n}): expected {n} PIDs, got {pids!r}"
    assert len(set(pids)) == n, f"worker_pids({n}): expected {n} distinct PIDs, got {pids}"
    assert call.pid not in pids, (f"worker_pids({n}): expected PIDs of child processes, got the "
                                  f"calling process's own PID {call.pid} in {pids}")
    assert set(pids) <= call.workers, (f"worker_pids({n}): expected PIDs of processes your "
                                       f"function started, got {sorted(set(pids) - call.workers)} "
                                       "which are not among them")
    assert len(call.workers) == n, (f"worker_pids({n}): expected exactly {n} processes started, "
                                    f"got {len(call.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint("Start every worker first, then join them all: started and joined in the same "
                  "loop, each worker has ended before the next one starts, so none runs at the "
                  "same time as another.")
def test_worker_pids_run_at_the_same_time(student):
    """worker_pids runs its workers at the same time"""
    # Under spawn each worker takes tens of milliseconds to boot, so workers started one after
    # the other are alive together, every run; started and joined in one loop, never.
    n = rng.randint(3, 4)
    spawn = student.module("spawn", start_method="spawn", timeout=5)
    pids = spawn.worker_pids(n)
    call = student.last
    assert isinstance(pids, list) and len(set(pids)) == n, (
        f"worker_pids({n}) under spawn: expected {n} distinct PIDs, got {pids!r}")
    assert call.peak_processes >= 2, (
        f"worker_pids({n}): expected the workers to run at the same time, but never two of them "
        f"were alive at once ({len(call.workers)} processes, one after the other)")


@pytest.mark.points(1)
@pytest.mark.hint("n == 0 is valid: no worker, an empty list.")
def test_worker_pids_zero(student):
    """worker_pids(0) returns an empty list"""
    spawn = student.module("spawn", timeout=5)
    got = spawn.worker_pids(0)
    assert got == [], f"worker_pids(0): expected [], got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check the argument first: raise ValueError when n < 0.")
def test_worker_pids_negative_raises(student):
    """worker_pids with a negative n raises ValueError"""
    spawn = student.module("spawn", timeout=5)
    n = -rng.randint(1, 5)
    with pytest.raises(ValueError):
        spawn.worker_pids(n)


@pytest.mark.points(2)
@pytest.mark.hint(JOIN_HINT)
def test_worker_pids_joins_workers(student):
    """worker_pids joins every worker before returning"""
    n = rng.randint(3, 5)
    # Under fork (or spawn) the student's process is its workers' parent, so a worker never
    # joined stays its zombie; under forkserver the server reaps it and nothing shows.
    spawn = student.module("spawn", start_method="fork", timeout=5)
    spawn.worker_pids(n)
    assert len(student.last.workers) >= n, (
        f"worker_pids({n}): expected {n} child processes, saw {len(student.last.workers)}")
    check_clean(student.last, f"worker_pids({n})", hint=JOIN_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Under the spawn start method the target must be a module-level function (no "
                  "lambda, no nested function) and nothing may start processes at import time: "
                  "put demo code under `if __name__ == \"__main__\":`.")
def test_worker_pids_under_spawn(student):
    """worker_pids works under the spawn start method"""
    n = rng.randint(2, 3)
    spawn = student.module("spawn", start_method="spawn", timeout=3)
    pids = spawn.worker_pids(n)
    call = student.last
    assert isinstance(pids, list) and len(set(pids)) == n, (
        f"worker_pids({n}) under spawn: expected {n} distinct PIDs, got {pids!r}")
    assert set(pids) <= call.workers, (f"worker_pids({n}) under spawn: expected PIDs of the "
                                       f"started processes, got {pids}")


# --- exit_codes ----------------------------------------------------------------------------


@pytest.mark.points(2)
@pytest.mark.hint("Join each process before reading Process.exitcode: before join() it is None "
                  "while the process still runs.")
def test_exit_codes_random(student):
    """exit_codes returns every child's exit code, in order"""
    codes = [rng.randint(0, 255) for _ in range(rng.randint(4, 7))]
    codes[rng.randrange(len(codes))] = 0
    spawn = student.module("spawn", timeout=5)
    got = spawn.exit_codes(codes)
    call = student.last
    assert got == codes, f"exit_codes({codes}): expected {codes}, got {got!r}"
    assert len(call.workers) == len(codes), (f"exit_codes({codes}): expected {len(codes)} "
                                             f"processes started, got {len(call.workers)}")
    check_clean(call, f"exit_codes({codes})", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("An empty list of codes needs no process: return [].")
def test_exit_codes_empty(student):
    """exit_codes([]) returns []"""
    spawn = student.module("spawn", timeout=5)
    got = spawn.exit_codes([])
    assert got == [], f"exit_codes([]): expected [], got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("An exit status is one byte: check every code is an int in 0..255 and raise "
                  "ValueError before starting any process.")
@pytest.mark.parametrize("bad", [256, -1])
def test_exit_codes_out_of_range(student, bad):
    """exit_codes rejects a code outside 0..255 with ValueError"""
    spawn = student.module("spawn", timeout=5)
    with pytest.raises(ValueError):
        spawn.exit_codes([0, bad])


@pytest.mark.points(1)
@pytest.mark.hint("Under forkserver (like spawn) the target is pickled: use a module-level "
                  "function, not a lambda or a nested function, and pass the code in args=.")
def test_exit_codes_under_forkserver(student):
    """exit_codes works under the forkserver start method"""
    codes = [rng.randint(1, 9) for _ in range(3)]
    spawn = student.module("spawn", start_method="forkserver", timeout=3)
    got = spawn.exit_codes(codes)
    assert got == codes, f"exit_codes({codes}) under forkserver: expected {codes}, got {got!r}"
    assert len(student.last.workers) >= len(codes), (
        f"exit_codes({codes}) under forkserver: expected {len(codes)} child processes, "
        f"saw {len(student.last.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint("Join each process before reading Process.exitcode: before join() it is None "
                  "while the process still runs.")
def test_exit_codes_under_spawn(student):
    """exit_codes joins before it reads the exit codes (under spawn)"""
    # Under spawn a child takes tens of milliseconds to start: exitcode read right after
    # start() is None every run, where under fork a child may already have ended.
    codes = [rng.randint(1, 9) for _ in range(3)]
    spawn = student.module("spawn", start_method="spawn", timeout=5)
    got = spawn.exit_codes(codes)
    assert got == codes, f"exit_codes({codes}) under spawn: expected {codes}, got {got!r}"
    assert len(student.last.workers) >= len(codes), (
        f"exit_codes({codes}) under spawn: expected {len(codes)} child processes, "
        f"saw {len(student.last.workers)}")
    check_clean(student.last, f"exit_codes({codes}) under spawn", hint=JOIN_HINT)


# --- run_with_timeout -----------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.hint("join(timeout) returns early when the child ends; its exit code is then 0.")
def test_run_with_timeout_child_finishes(student):
    """run_with_timeout returns 0 when the child ends before the timeout"""
    spawn = student.module("spawn", timeout=8)
    got = spawn.run_with_timeout(0.2, 5)
    call = student.last
    assert got == 0, f"run_with_timeout(0.2, 5): expected 0, got {got!r}"
    assert call.duration < 3.5, (f"run_with_timeout(0.2, 5): expected to return after about "
                                 f"0.2 s, got {call.duration:.1f} s")
    assert len(call.workers) == 1, (f"run_with_timeout(0.2, 5): expected 1 child process, got "
                                    f"{len(call.workers)}")
    check_clean(call, "run_with_timeout(0.2, 5)", hint=JOIN_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Wait with join(timeout); if is_alive() is still true, terminate() it and join() "
                  "it again: exitcode stays None until the terminated process has been joined.")
def test_run_with_timeout_terminates(student):
    """run_with_timeout stops a child that outlives the timeout: exit code -15"""
    spawn = student.module("spawn", timeout=8)
    # Five times: without the join after terminate(), exitcode is None only when the parent
    # reads it before the child has died, a race a single call loses up to a third of the time
    # on a busy machine, whatever the timeout (measured: 0.05-0.1 s and 0.2-0.4 s alike). So
    # short timeouts and more tries: 0.3**5 is about 1 in 400 in the worst case seen.
    for _ in range(5):
        seconds, timeout = 2.0, round(rng.uniform(0.05, 0.1), 2)
        got = spawn.run_with_timeout(seconds, timeout)
        call = student.last
        what = f"run_with_timeout({seconds}, {timeout})"
        assert got == -15, f"{what}: expected -15 (terminated by SIGTERM), got {got!r}"
        assert call.duration < 1.5, (f"{what}: expected to return after about {timeout} s, got "
                                     f"{call.duration:.1f} s")
        assert len(call.workers) >= 1, f"{what}: expected a child process, saw none"
        check_clean(call, what, hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("Check the arguments first: raise ValueError when seconds or timeout is negative.")
def test_run_with_timeout_negative_raises(student):
    """run_with_timeout rejects negative times with ValueError"""
    spawn = student.module("spawn", timeout=5)
    for args in [(-1.0, 1.0), (0.1, -1.0)]:
        with pytest.raises(ValueError):
            spawn.run_with_timeout(*args)
