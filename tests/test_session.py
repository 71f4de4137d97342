"""Every shape of exercise through the call boundary, used the way hidden tests use it:
objects in a session, coroutines, generators, callables from the assignment's helpers, threads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grader import processes
from grader.harness.boundary import (
    BoundaryError,
    CallTimeout,
    NotImplementedByStudent,
    SessionClosed,
    StudentError,
    StudentImportError,
    StudentRunner,
)
from grader.harness.boundary.runner import TimeShare

SHOP = '''
import asyncio, multiprocessing as mp, os, threading, time

class BoundedBuffer:
    def __init__(self, capacity):
        self.capacity = capacity
        self._items = []
        self._cond = threading.Condition()

    def put(self, item):
        with self._cond:
            while len(self._items) >= self.capacity:
                self._cond.wait()
            self._items.append(item)
            self._cond.notify_all()

    def get(self):
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.pop(0)
            self._cond.notify_all()
            return item

    def __len__(self):
        return len(self._items)

    def __contains__(self, item):
        return item in self._items

    @property
    def broken(self):
        raise ValueError("this property always fails")

def fill(buffer, n):
    for i in range(n):
        buffer.put(i)
    return len(buffer)

def numbers(start=0):
    n = start
    while True:
        yield n
        n += 1

def countdown(n):
    while n > 0:
        yield n
        n -= 1

async def doubled(xs, limit):
    sem = asyncio.Semaphore(limit)
    async def one(x):
        async with sem:
            await asyncio.sleep(0.05)
            return 2 * x
    return await asyncio.gather(*(one(x) for x in xs))

async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i

async def never_awaits():
    while True:
        pass

def parallel_map(f, xs):
    with mp.Pool(2) as pool:
        return pool.map(f, xs)

def call_back(f, x):
    return f(x)

def run_threads(n, seconds):
    ts = [threading.Thread(target=time.sleep, args=(seconds,)) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n

def leave_thread():
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    return 1

class Worker(mp.Process):
    def __init__(self, q, n):
        super().__init__()
        self.q, self.n = q, n

    def run(self):
        self.q.put(self.n * self.n)

def make_queue():
    return mp.Queue()

def square_in_worker(n):
    q = make_queue()
    w = Worker(q, n)
    return w, q

def leave_running():
    p = mp.Process(target=time.sleep, args=(60,))
    p.start()
    return p.pid

def _chatter(i):
    for k in range(20):
        print("worker", i, "line", k)

def chatter(n, method):
    ctx = mp.get_context(method)
    ps = [ctx.Process(target=_chatter, args=(i,)) for i in range(n)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("caller done")
    return [p.pid for p in ps]

def stub():
    raise NotImplementedError

def calls_the_stub():
    return stub()
'''

PROBES = '''
def square(x):
    return x * x

def describe(buffer):
    return type(buffer).__name__

calls = []

def record(x):
    calls.append(x)
    return len(calls)
'''


@pytest.fixture
def runner(tmp_path: Path) -> StudentRunner:
    (tmp_path / "shop.py").write_text(SHOP)
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "probes.py").write_text(PROBES)
    return StudentRunner(path=tmp_path, start_method="fork", call_timeout=5, helpers=helpers)


# -- objects -------------------------------------------------------------------------------------


def test_an_object_lives_in_the_student_process_across_operations(runner):
    with runner.session() as s:
        shop = s.module("shop")
        buf = shop.BoundedBuffer(3)
        buf.put("a")
        buf.put("b")
        assert buf.capacity == 3
        assert len(buf) == 2 and "a" in buf and "z" not in buf
        assert buf.get() == "a"
        assert shop.fill(buf, 2) == 3, "a handle passed back to student code is the object again"
        pid = runner.last.pid
    record = runner.last
    # BoundedBuffer(3); put: looked up, called; put again: called (methods are remembered);
    # capacity; len; in, not in; get: looked up, called; fill.
    assert record.operations == 11
    assert record.pid == pid and not _alive(pid), "the session's process is gone after the block"
    assert repr(buf).startswith("<student object shop.BoundedBuffer #")


def test_a_missing_method_or_class_is_a_missing_name_not_an_error_of_ours(runner):
    with runner.session() as s:
        buf = s.module("shop").BoundedBuffer(1)
        with pytest.raises(StudentImportError, match=r"BoundedBuffer \(shop.py\) has no function push\(\)") as info:
            buf.push(1)
        assert "mpgrade_ops" not in str(info.value)
        with pytest.raises(StudentImportError, match=r"shop.py has no class or function Stack\(\)"):
            s.module("shop").Stack()
        assert buf.capacity == 1, "the session goes on"


def test_an_attribute_that_raises_is_the_students_exception(runner):
    with runner.session() as s:
        buf = s.module("shop").BoundedBuffer(1)
        with pytest.raises(ValueError, match="always fails") as info:
            _ = buf.broken
        assert isinstance(info.value, StudentError)
        assert buf.capacity == 1, "a student exception does not end the session"


def test_a_method_call_that_hangs_costs_its_limit_and_ends_the_session(runner):
    with runner.session(timeout=1) as s:
        buf = s.module("shop").BoundedBuffer(1)
        started = time.monotonic()
        with pytest.raises(CallTimeout) as info:
            buf.get()  # empty: waits forever
        assert time.monotonic() - started < 30
        assert "BoundedBuffer#" in str(info.value) and "get()" in str(info.value)
        assert "shop.py" in str(info.value), "the hang is located in the student's file"
        with pytest.raises(SessionClosed):
            buf.put(1)
    assert not _alive(runner.last.pid)


def test_a_sessions_operations_keep_to_the_runs_time_budget(runner):
    """Under a time budget (PrairieLearn's whole-job limit) a session's hang costs its share."""
    runner.budget = TimeShare(end=time.monotonic() + 3, tests_after=0)
    with runner.session(timeout=60) as s:
        buf = s.module("shop").BoundedBuffer(1)
        with pytest.raises(CallTimeout, match="share of the run's time budget"):
            buf.get()


def test_a_process_subclass_is_started_and_joined_through_its_handle(runner):
    with runner.session(start_method="spawn") as s:
        shop = s.module("shop")
        worker, q = shop.square_in_worker(7)
        worker.start()
        assert q.get(timeout=5) == 49
        worker.join(5)
        assert worker.exitcode == 0
    assert len(runner.last.workers) >= 1, "the worker was seen as a process"
    assert runner.last.leftover == []


def test_what_a_session_leaves_running_is_recorded_then_killed(runner):
    with runner.session() as s:
        pid = s.module("shop").leave_running()
    assert runner.last.leftover == [pid]
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


# -- generators ----------------------------------------------------------------------------------


def test_items_of_an_endless_generator_are_taken_up_to_a_limit(runner):
    with runner.session() as s:
        shop = s.module("shop")
        gen = shop.numbers(10)
        assert s.take(gen, 3) == [10, 11, 12]
        assert next(gen) == 13, "the generator goes on where it stopped"
        assert s.take(shop.countdown(3), 10) == [3, 2, 1], "a finite one ends before the limit"
        assert list(shop.countdown(2)) == [2, 1]
        assert s.take(shop.ticks(5), 3) == [0, 1, 2], "async generators too"
        with pytest.raises(ValueError):
            s.take(gen, 10**9)


# -- coroutines ------------------------------------------------------------------------------------


def test_an_async_def_is_awaited_with_task_telemetry(runner):
    assert runner.module("shop").doubled([1, 2, 3, 4], 2) == [2, 4, 6, 8]
    call = runner.last
    assert call.tasks == 4 and call.peak_tasks == 4
    assert call.elapsed is not None and call.elapsed >= 0.1, "two rounds of 0.05 s under a limit of 2"


def test_a_coroutine_that_never_awaits_costs_its_limit(runner):
    with pytest.raises(CallTimeout) as info:
        runner.module("shop", timeout=1).never_awaits()
    assert "never_awaits" in str(info.value)
    assert not _alive(runner.last.pid)


# -- callables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_helper_is_a_pool_target_under_every_start_method(runner, method):
    square = runner.helper("probes.square")
    assert runner.module("shop", start_method=method).parallel_map(square, [1, 2, 3]) == [1, 4, 9]
    assert len(runner.last.workers) >= 2


def test_helpers_are_called_in_the_session_and_see_its_objects(runner):
    with runner.session() as s:
        shop = s.module("shop")
        record = s.helper("probes.record")
        assert shop.call_back(record, "x") == 1
        assert record("y") == 2, "the helper module's state is the session's"
        assert s.helper("probes.describe")(shop.BoundedBuffer(1)) == "BoundedBuffer"


def test_a_helper_outside_the_helpers_folder_is_refused(runner, tmp_path):
    (tmp_path / "os_helpers.py").write_text("def f(x):\n    return x\n")
    with pytest.raises(BoundaryError, match="not the assignment.s"):
        runner.module("shop").call_back(runner.helper("os_helpers.f"), 1)
    with pytest.raises(ValueError):
        runner.helper("square")
    with pytest.raises(ValueError):
        runner.helper("probes._private")


# -- threads -----------------------------------------------------------------------------------------


def test_threads_are_counted_like_processes(runner):
    assert runner.module("shop").run_threads(3, 0.5) == 3
    call = runner.last
    assert len(call.threads) >= 3 and call.peak_threads >= 3
    assert call.threads_left == 0 and call.workers == set(), "threads are never workers"
    runner.module("shop").leave_thread()
    assert runner.last.threads_left == 1


# -- output ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_what_each_process_printed_in_order_and_whole(runner, method):
    pids = runner.module("shop").chatter(3, method)
    call = runner.last
    assert "\x00" not in call.stdout and "\x1e" not in call.stdout, "no frame reaches the text"
    for i, pid in enumerate(pids):
        assert call.printed_by(pid) == [f"worker {i} line {k}" for k in range(20)]
    assert call.printed_by(call.pid) == ["caller done"]
    assert sorted(call.stdout.splitlines()) == sorted(line.text for line in call.printed)


# -- stubs -------------------------------------------------------------------------------------------


def test_not_implemented_names_the_stub_that_raised(runner):
    with pytest.raises(NotImplementedByStudent, match=r"stub\(\) still raises NotImplementedError"):
        runner.module("shop").calls_the_stub()


def _alive(pid: int) -> bool:
    return processes.alive(pid)  # a zombie is not alive
