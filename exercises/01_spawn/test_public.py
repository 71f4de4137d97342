"""Public tests for exercise 01 (spawning processes). Run them while you work."""

import pytest


@pytest.mark.points(2)
@pytest.mark.hint("Start n multiprocessing.Process workers; each one sends os.getpid() back "
                  "through a multiprocessing.Queue; collect the messages, then join the workers.")
def test_worker_pids_returns_child_pids(student):
    """worker_pids(3) returns 3 distinct PIDs of child processes"""
    spawn = student.module("spawn", timeout=5)
    pids = spawn.worker_pids(3)
    caller = student.last.pid
    assert isinstance(pids, list) and len(pids) == 3, f"expected a list of 3 PIDs, got {pids!r}"
    assert len(set(pids)) == 3, f"expected 3 distinct PIDs, got {pids}"
    assert caller not in pids, (
        f"expected PIDs of child processes, got the PID of the calling process {caller} in {pids}")
    assert set(pids) <= student.last.workers, (
        f"expected PIDs of processes your function started, got {sorted(set(pids) - student.last.workers)} "
        "which are not among them (threads are not processes)")


@pytest.mark.points(2)
@pytest.mark.hint("Each child ends with sys.exit(code); read Process.exitcode after join().")
def test_exit_codes_small(student):
    """exit_codes([0, 1, 3]) returns [0, 1, 3]"""
    spawn = student.module("spawn", timeout=5)
    got = spawn.exit_codes([0, 1, 3])
    assert got == [0, 1, 3], f"expected [0, 1, 3], got {got!r}"
    assert len(student.last.workers) >= 3, (
        f"expected 3 child processes, one per code, saw {len(student.last.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint("When the child ends on its own before the timeout, its exit code is 0.")
def test_run_with_timeout_finishes(student):
    """run_with_timeout(0.1, 5) returns 0: the child ends on its own"""
    spawn = student.module("spawn", timeout=8)
    got = spawn.run_with_timeout(0.1, 5)
    assert got == 0, f"expected exit code 0, got {got!r}"
    assert len(student.last.workers) >= 1, "expected a child process, saw none"
