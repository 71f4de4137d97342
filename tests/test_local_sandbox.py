"""The local sandbox, with and without processes started ahead of their jobs (``warm``)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from grader.sandbox.base import PYTHON, Job, Limits
from grader.sandbox.local import LocalSandbox

# A job module: says which process ran it, what secret it got, and whether the files were there.
# Like the harness, it does its work only as __main__: warmstart imports it early to prewarm.
WHO = b'''
import json, os, sys, time
if __name__ == "__main__":
    time.sleep(float(open("nap.txt").read()))
    print(json.dumps({"pid": os.getpid(), "secret": os.environ.get("SECRET"),
                      "data": open("data.txt").read()}))
'''


def job(data: str = "one", *, nap: float = 0.0, env: dict | None = None, wall: float = 60.0) -> Job:
    return Job(
        files={"who.py": WHO, "data.txt": data.encode(), "nap.txt": str(nap).encode()},
        command=(PYTHON, "-m", "who"),
        env=dict(env or {}),
        secret_env={"SECRET": f"s-{data}"},
        limits=Limits(wall_timeout=wall),
    )


def said(outcome) -> dict:
    assert outcome.exit_status == 0, outcome
    return json.loads(outcome.stdout)


def waiting_pids(box: LocalSandbox) -> list[int]:
    return [b.proc.pid for b in box._pool.waiting()]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture
def warm_box():
    with LocalSandbox(warm=1) as box:
        yield box


def test_without_warm_every_job_starts_its_own_process():
    box = LocalSandbox()
    first, second = box.run(job("one")), box.run(job("two"))
    assert said(first)["data"] == "one" and said(second)["secret"] == "s-two"
    assert box._pool.waiting() == [] and "warm" not in second.stats


def test_a_warm_process_started_during_one_job_runs_the_next_with_its_own_files_and_secrets(warm_box):
    first = warm_box.run(job("one"))
    assert said(first) == {"pid": said(first)["pid"], "secret": "s-one", "data": "one"}
    [waiting] = waiting_pids(warm_box)
    second = warm_box.run(job("two"))
    assert said(second) == {"pid": waiting, "secret": "s-two", "data": "two"}
    assert second.stats.get("warm") == 1.0
    assert gone(waiting), "a warm process serves one job and is killed with it"


def test_the_wall_limit_counts_from_the_hand_over(warm_box):
    warm_box.run(job("one", wall=1.0))
    time.sleep(1.5)  # the warm process has waited longer than the next job's limit
    outcome = warm_box.run(job("two", wall=1.0, nap=0.3))
    assert not outcome.timed_out and said(outcome)["data"] == "two"


def test_the_wall_limit_is_the_jobs_own_not_the_one_that_started_the_warm_process(warm_box):
    warm_box.run(job("one", wall=60.0))  # starts the warm process the next job runs in
    late = warm_box.run(job("two", wall=1.0, nap=3))
    assert late.stats.get("warm") == 1.0
    assert late.timed_out and late.exit_status is None


def test_a_dead_warm_process_is_replaced_by_a_cold_start(warm_box):
    warm_box.run(job("one"))
    [waiting] = waiting_pids(warm_box)
    os.kill(waiting, signal.SIGKILL)
    time.sleep(0.2)
    outcome = warm_box.run(job("two"))
    assert said(outcome)["data"] == "two" and said(outcome)["pid"] != waiting
    assert "warm" not in outcome.stats


def test_a_job_of_another_shape_starts_cold_and_the_pool_follows(warm_box):
    warm_box.run(job("one"))
    [old] = waiting_pids(warm_box)
    other = warm_box.run(job("two", env={"MPGRADE_START_METHOD": "spawn"}))
    assert said(other)["pid"] != old and "warm" not in other.stats
    assert gone(old), "the warm process of the old shape was killed"
    [new] = waiting_pids(warm_box)
    again = warm_box.run(job("three", env={"MPGRADE_START_METHOD": "spawn"}))
    assert said(again)["pid"] == new


def test_a_job_cannot_write_the_go_file_itself(warm_box):
    warm_box.run(job("one"))
    bad = job("two")
    with pytest.raises(ValueError, match="reserved"):
        warm_box.run(Job(files={**bad.files, ".mpgrade-go": b"{}"}, command=bad.command, env=bad.env,
                         limits=bad.limits))


def test_close_kills_the_warm_processes_and_removes_their_folders(warm_box):
    warm_box.run(job("one"))
    [box] = warm_box._pool.waiting()
    warm_box.close()
    assert gone(box.proc.pid) and not box.tmp.exists()
    assert warm_box.run(job("two")).cancelled


def test_a_job_that_fails_to_be_handed_over_leaves_nothing_behind(warm_box):
    warm_box.run(job("one"))
    [box] = warm_box._pool.waiting()
    bad = job("two")
    with pytest.raises(ValueError, match="outside the job folder"):
        warm_box.run(Job(files={"../escape.py": b""}, command=bad.command, env=bad.env, limits=bad.limits))
    assert gone(box.proc.pid) and not box.tmp.exists()
    assert box.proc.pid not in warm_box._running


def test_leaving_a_with_block_closes_the_sandbox_and_its_warm_processes():
    with LocalSandbox(warm=1) as box:
        said(box.run(job("one")))
        [waiting] = box._pool.waiting()
    assert gone(waiting.proc.pid) and not waiting.tmp.exists()
    assert box.run(job("two")).cancelled
