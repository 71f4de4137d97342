"""The warm pool on its own (grader.sandbox.warm), with fake workers: no process, no Docker.

The pool is shared by both sandboxes, so its rules are pinned here where they can fail fast:
the oldest live worker of the job's shape is taken, the pool is refilled to its size, workers
of another shape, dead or stale ones are discarded, every worker made is discarded exactly once,
and after close() none of its threads runs and none of its workers is left, also when close()
comes while a worker is still being started (close waits, within its bound).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from grader.protocol.wire import GO_FILE
from grader.sandbox.base import PYTHON, Job, Limits
from grader.sandbox.warm import WarmPool, hand_over, stub_command

NAME = "test-warm-pool"


class Worker:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.alive = True
        self.discarded = 0


class Factory:
    """Starts fake workers, optionally slowly or failing, and keeps a ledger of them."""

    def __init__(self) -> None:
        self.made: list[Worker] = []
        self.delay = 0.0
        self.gate: threading.Event | None = None  # when set: every start waits for it
        self.fail = False
        self.starting = threading.Event()  # set once a start has begun
        self._lock = threading.Lock()

    def start(self, job: Job) -> Worker:
        self.starting.set()
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        if self.fail:
            raise OSError("no worker today")
        worker = Worker(job)
        with self._lock:
            self.made.append(worker)
        return worker

    @staticmethod
    def running(worker: Worker) -> bool:
        return worker.alive

    @staticmethod
    def discard(worker: Worker) -> None:
        worker.discarded += 1


def job(memory: int = 2**30) -> Job:
    return Job(files={"a.py": b""}, command=(PYTHON, "-m", "harness", "--x"),
               secret_env={"SECRET": "s"}, limits=Limits(memory=memory))


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME]


@pytest.fixture
def factory():
    return Factory()


@pytest.fixture
def make_pool(factory):
    pools: list[WarmPool] = []

    def make(size: int = 2, **kw) -> WarmPool[Worker]:
        pool: WarmPool[Worker] = WarmPool(size, factory.start, factory.running, factory.discard,
                                          name=NAME, **kw)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()
    assert pool_threads() == [], "a thread of the pool outlived close()"


def taken_back(pool: WarmPool, worker: Worker) -> None:
    """What a sandbox does with a worker once its job is done."""
    pool.discard(worker)


def test_a_refill_starts_the_pool_up_to_its_size_and_a_take_gets_the_oldest(make_pool, factory):
    pool = make_pool(2)
    a = job()
    assert pool.for_job(a, {}) is None  # the first job finds none, and asks for two
    first, second = pool.waiting()
    assert {id(w) for w in factory.made} == {id(first), id(second)}
    stats: dict[str, float] = {}
    got = pool.for_job(a, stats)
    assert got is first and "warm_wait" in stats
    assert pool.waiting()[0] is second and len(pool.waiting()) == 2, "refilled to its size"
    taken_back(pool, got)
    pool.close()
    assert [w.discarded for w in factory.made] == [1, 1, 1], "each worker discarded exactly once"


def test_a_job_of_another_shape_gets_none_and_the_pool_follows_it(make_pool, factory):
    pool = make_pool(1)
    small, big = job(memory=2**28), job(memory=2**29)
    pool.for_job(small, {})
    [old] = pool.waiting()
    assert pool.for_job(big, {}) is None
    assert old.discarded == 1, "the worker of the old shape was discarded"
    [new] = pool.waiting()
    assert new.job is big and pool.for_job(big, {}) is new
    taken_back(pool, new)


def test_a_job_that_is_not_python_m_never_uses_the_pool(make_pool, factory):
    pool = make_pool(2)
    assert pool.for_job(Job(files={}, command=("sh", "-c", "true")), {}) is None
    assert pool.waiting() == [] and factory.made == []


def test_dead_and_stale_workers_are_discarded_not_handed_out(make_pool, factory):
    pool = make_pool(2)
    pool.for_job(job(), {})
    dead, live = pool.waiting()
    dead.alive = False
    assert pool.take(pool_shape(), {}) is live
    assert dead.discarded == 1
    taken_back(pool, live)

    old = make_pool(1, max_age=0.05)
    old.refill(pool_shape(), job())
    [stale] = old.waiting()
    time.sleep(0.1)
    assert old.take(pool_shape(), {}) is None and stale.discarded == 1


def pool_shape():
    from grader.sandbox.base import warm_shape

    return warm_shape(job())


def test_a_take_waits_for_a_worker_still_starting(make_pool, factory):
    factory.delay = 0.3
    pool = make_pool(1)
    pool.refill(pool_shape(), job())
    stats: dict[str, float] = {}
    worker = pool.take(pool_shape(), stats)
    assert worker is not None and stats["warm_wait"] >= 0.2
    taken_back(pool, worker)


def test_a_take_that_gives_up_waiting_leaves_the_worker_to_its_thread(make_pool, factory):
    factory.gate = threading.Event()
    pool = make_pool(1, take_wait=0.1)
    pool.refill(pool_shape(), job())
    assert pool.take(pool_shape(), {}) is None
    factory.gate.set()
    for thread in pool_threads():
        thread.join(5)
    [late] = factory.made
    assert late.discarded == 1, "the worker nobody waited for was discarded by its own thread"


def test_a_worker_that_cannot_be_started_means_none_not_an_error(make_pool, factory):
    factory.fail = True
    pool = make_pool(2)
    pool.refill(pool_shape(), job())
    assert pool.take(pool_shape(), {}) is None and pool.take(pool_shape(), {}) is None
    assert factory.made == []


def test_an_interrupted_refill_discards_the_worker_just_taken(make_pool, factory, monkeypatch):
    pool = make_pool(1)
    pool.for_job(job(), {})
    [waiting] = pool.waiting()

    def interrupted(shape, job):
        raise KeyboardInterrupt

    monkeypatch.setattr(pool, "refill", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pool.for_job(job(), {})
    assert waiting.discarded == 1


def test_after_close_nothing_of_the_pool_is_left_and_nothing_starts(make_pool, factory):
    pool = make_pool(3)
    pool.refill(pool_shape(), job())
    workers = pool.waiting()
    pool.close()
    assert len(workers) == 3 and all(w.discarded == 1 for w in workers)
    assert pool_threads() == []
    pool.refill(pool_shape(), job())
    assert pool.take(pool_shape(), {}) is None and pool.waiting() == []
    assert pool_threads() == [] and len(factory.made) == 3
    pool.close()  # twice is harmless
    assert all(w.discarded == 1 for w in workers)


def test_close_while_a_worker_is_starting_waits_for_it_and_discards_it(make_pool, factory):
    factory.delay = 0.5
    pool = make_pool(2)
    pool.refill(pool_shape(), job())
    assert factory.starting.wait(5)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started >= 0.3, "close() returned before the starts it interrupted"
    assert pool_threads() == []
    assert len(factory.made) == 2 and all(w.discarded == 1 for w in factory.made)


def test_close_waits_for_a_hanging_start_only_within_its_bound(make_pool, factory):
    factory.gate = threading.Event()
    pool = make_pool(1, close_wait=0.3)
    pool.refill(pool_shape(), job())
    assert factory.starting.wait(5)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 2.0, "close() is bounded"
    factory.gate.set()  # the start comes back after all: its thread discards what it made
    for thread in pool_threads():
        thread.join(5)
    [late] = factory.made
    assert late.discarded == 1


class Slow(dict):
    """Stats whose first write takes a while: holds a take() between its wait and its claim."""

    def __setitem__(self, key, value):
        time.sleep(0.5)
        super().__setitem__(key, value)


@pytest.mark.parametrize("ready_first", [True, False])
def test_close_discards_the_worker_a_take_still_waits_for(make_pool, factory, ready_first):
    """A take() has the slot out of the pool when close() comes: close() still ends its worker
    before it returns (whether the worker was up already or still starting), and the take gets
    none."""
    factory.delay = 0.0 if ready_first else 0.3
    pool = make_pool(1)
    pool.refill(pool_shape(), job())
    if ready_first:
        pool.waiting()
    got: list[Worker | None] = []
    taker = threading.Thread(target=lambda: got.append(pool.take(pool_shape(), Slow())))
    taker.start()
    time.sleep(0.1)  # the taker holds the slot now: waiting for it, or in Slow
    pool.close()
    [worker] = factory.made
    assert worker.discarded == 1, "a worker outlived close()"
    taker.join(5)
    assert got == [None] and worker.discarded == 1


def test_the_hand_over_writes_the_files_then_the_go_file_and_refuses_its_names(tmp_path: Path):
    hand_over(tmp_path, job())
    assert (tmp_path / "a.py").exists() and (tmp_path / GO_FILE).read_text() == '{"SECRET": "s"}'
    assert not (tmp_path / (GO_FILE + ".tmp")).exists()
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="reserved"):
        hand_over(other, Job(files={"a.py": b"", GO_FILE: b"{}"}, command=job().command))
    assert list(other.iterdir()) == [], "nothing written for a job that names the go file"
    assert stub_command("/py", job()) == ["/py", "-m", "grader.harness.warmstart", "harness", "--x"]
