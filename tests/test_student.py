"""The student-call boundary, used the way hidden tests use it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import processes
from grader._boot import mpgrade_plain as plain
from grader.harness import boundary as student_mod
from grader.harness.boundary import (
    BoundaryError,
    CallCrashed,
    CallTimeout,
    NotImplementedByStudent,
    OutputLimit,
    SparePool,
    StudentError,
    StudentImportError,
    StudentRunner,
    summarize_dump,
)
from grader.harness.boundary import child as child_mod

WORKERS = '''
import multiprocessing as mp, os, sys, time

def _report(q):
    q.put(os.getpid())

def pids(n):
    q = mp.Queue()
    ps = [mp.Process(target=_report, args=(q,)) for _ in range(n)]
    for p in ps:
        p.start()
    out = [q.get(timeout=10) for _ in ps]
    for p in ps:
        p.join()
    return out

def in_caller(n):
    return [os.getpid()] * n

def _wait_forever(q):
    q.get()

def deadlock():
    q = mp.Queue()
    p = mp.Process(target=_wait_forever, args=(q,))
    p.start()
    p.join()

def leave_running():
    p = mp.Process(target=time.sleep, args=(60,))
    p.start()
    return p.pid

def forget_join():
    p = mp.Process(target=time.sleep, args=(0,))
    p.start()
    time.sleep(0.5)
    return p.pid

def bad_arg(n):
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n

def stub():
    raise NotImplementedError

def custom():
    class Oops(Exception):
        pass
    raise Oops("custom")

def unpicklable():
    return object()

def die():
    os._exit(3)

def flood():
    while True:
        sys.stdout.write("x" * 65536)

def chatty():
    print("hello from the student")
    return 1

def echo(*args, **kwargs):
    return [list(args), kwargs]

def bad_bytes():
    return b"\\xff".decode("utf-8")

def read_stdin():
    return sys.stdin.read()

def claim_other_callers():
    # Claims every other mpgrade_child process (such as the next call's pre-started one) as a worker.
    mine = os.getpid()
    with open(os.environ["MPGRADE_PID_LOG"], "a") as f:
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != mine:
                try:
                    cmd = open(f"/proc/{name}/cmdline", "rb").read()
                except OSError:
                    continue
                if b"mpgrade_child" in cmd:
                    f.write(f"{name} 0 worker\\n")
    return mine

def thread_claims(n):
    # n threads instead of n processes, claimed as workers in the pid log
    import threading
    ready, stop = threading.Barrier(n + 1), threading.Event()
    tids = []
    def run():
        tids.append(threading.get_native_id())
        ready.wait()
        stop.wait()
    for _ in range(n):
        threading.Thread(target=run, daemon=True).start()
    ready.wait()
    with open(os.environ["MPGRADE_PID_LOG"], "a") as f:
        for tid in tids:
            f.write(f"{tid} {os.getpid()} worker\\n")
    return tids

def fleeting_thread_claims(n):
    # n threads that end at once, claimed afterwards: nothing left for the kernel to show.
    # Started once the grader polls slowly (every 20 ms), between two of its looks.
    import threading
    time.sleep(0.3)
    tids = []
    for _ in range(n):
        t = threading.Thread(target=lambda: tids.append(threading.get_native_id()))
        t.start()
        t.join()
    with open(os.environ["MPGRADE_PID_LOG"], "a") as f:
        for tid in tids:
            f.write(f"{tid} {os.getpid()} worker\\n")
    return tids

def _nothing():
    pass

def fleeting_workers(n):
    # n processes that end as soon as they start: polling alone would miss most of them
    procs = [mp.Process(target=_nothing) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return [p.pid for p in procs]

def forge_pid_log(n):
    with open(os.environ["MPGRADE_PID_LOG"], "a") as f:
        for pid in (1, 2, 999_999, 4_000_000):
            f.write(f"{pid} 0 worker\\n")
        f.write(f"{os.getpid()} 0 helper\\n")
    return n
'''


@pytest.fixture(params=["proc", "psutil"])
def runner(request, make_module, monkeypatch):
    """Each test runs twice: watching through /proc (Linux) and through psutil (macOS, others)."""
    if request.param == "psutil":
        monkeypatch.setattr(processes, "HAVE_PROC", False)
    folder = make_module("work", WORKERS)
    return StudentRunner(path=folder, start_method="fork", call_timeout=3, output_limit=1 << 20)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_values_come_back_and_workers_are_seen_from_outside(runner, method):
    work = runner.module("work", start_method=method)
    pids = work.pids(3)
    call = runner.last
    assert len(set(pids)) == 3
    assert call.pid not in pids
    assert set(pids) <= call.workers, "every worker PID was observed outside the student's code"
    assert call.helpers.isdisjoint(call.workers)
    assert call.leftover == [] and call.zombies == []
    assert call.start_method == method


def test_work_done_in_the_caller_shows_no_workers(runner):
    pids = runner.module("work").in_caller(2)
    assert set(pids) == {runner.last.pid}
    assert runner.last.workers == set()


def test_arguments_and_values_are_plain_data_both_ways(runner):
    value = runner.module("work").echo(1, (2, 3), {4: "four"}, key={"a", "b"})
    assert value == [[1, (2, 3), {4: "four"}], {"key": {"a", "b"}}]


def test_a_hang_times_out_and_says_where_each_process_waits(runner):
    started = time.monotonic()
    with pytest.raises(CallTimeout) as info:
        runner.module("work", timeout=1.5).deadlock()
    assert time.monotonic() - started < 1.5 + 3, "the timeout is enforced, not waited out"
    message = str(info.value)
    assert "did not return within 1.5 s" in message
    assert "work.py" in message and "in deadlock()" in message, message
    assert "in _wait_forever()" in message, message
    assert info.value.outcome == "timeout"
    for pid in runner.last.workers | {runner.last.pid}:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_after_a_hang_the_start_methods_helpers_are_not_listed_as_workers(runner, monkeypatch):
    """Under forkserver, the fork server and resource tracker are the library's, not the student's,
    even when first seen between their fork and their exec (simulated: the first look at each
    process finds the parent's command line)."""
    real, looked = processes.cmdline, set()

    def first_look_before_exec(pid: int) -> str:
        if pid not in looked:
            looked.add(pid)
            return "python mpgrade_child.py"
        return real(pid)

    monkeypatch.setattr(processes, "cmdline", first_look_before_exec)
    with pytest.raises(CallTimeout) as info:
        runner.module("work", start_method="forkserver", timeout=1.5).deadlock()
    call = runner.last
    assert call.helpers, "the fork server was seen"
    assert call.helpers.isdisjoint(call.workers)
    assert len(call.workers) == 1, call.workers
    assert str(info.value).count("  worker ") == 1, str(info.value)


def test_processes_left_running_are_reported_then_killed(runner):
    pid = runner.module("work").leave_running()
    assert runner.last.leftover == [pid]
    deadline = time.monotonic() + 2
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}"), "leftover worker was killed after the call"


def test_unjoined_workers_are_reported_as_zombies(runner):
    pid = runner.module("work").forget_join()
    assert runner.last.zombies == [pid]
    assert runner.last.leftover == []


def test_student_exceptions_are_reraised_as_the_builtin_type_with_the_traceback(runner):
    with pytest.raises(ValueError, match="n must be >= 0, got -1") as info:
        runner.module("work").bad_arg(-1)
    assert isinstance(info.value, StudentError)
    assert "work.py" in str(info.value) and "bad_arg" in str(info.value)


def test_student_defined_exceptions_do_not_cross_as_classes(runner):
    with pytest.raises(StudentError, match="raised Oops: custom") as info:
        runner.module("work").custom()
    assert type(info.value).__name__ == "StudentException"


def test_builtins_with_other_constructors_still_cross(runner):
    with pytest.raises(StudentError, match="UnicodeDecodeError"):
        runner.module("work").bad_bytes()


def test_a_forged_pid_log_adds_no_workers(runner):
    """The pid log is written by student processes: claims it cannot back up are dropped."""
    assert runner.module("work").forge_pid_log(3) == 3
    assert runner.last.workers == set()


def test_threads_claimed_as_workers_are_not_counted(runner):
    """Thread IDs come from the same counter as PIDs: a claimed thread is not a worker process."""
    tids = runner.module("work").thread_claims(3)
    assert len(tids) == 3
    assert runner.last.workers == set()


def test_threads_that_ended_before_they_were_claimed_are_not_counted(runner):
    """The cheat of a spawn.py that starts no process: threads living microseconds, claimed once
    gone. A claim counts only with the kernel's word, while the claimed process is alive."""
    tids = runner.module("work").fleeting_thread_claims(5)
    assert len(tids) == 5
    assert runner.last.workers == set()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_that_end_at_once_are_all_counted(runner, method):
    """Every worker waits for the grader to have seen it, so none is too quick to count."""
    for _ in range(3):
        pids = runner.module("work", start_method=method).fleeting_workers(6)
        assert set(pids) <= runner.last.workers, (pids, runner.last.workers)


def test_stubs_are_reported_as_not_implemented(runner):
    with pytest.raises(NotImplementedByStudent, match="not implemented yet"):
        runner.module("work").stub()


def test_values_that_are_not_plain_data_are_refused(runner):
    with pytest.raises(BoundaryError, match="not plain data"):
        runner.module("work").unpicklable()


def test_a_caller_that_exits_early_is_a_crash(runner):
    with pytest.raises(CallCrashed, match="exited with status 3"):
        runner.module("work").die()


def test_output_floods_are_stopped(runner):
    started = time.monotonic()
    with pytest.raises(OutputLimit, match="more than 1 MiB"):
        runner.module("work").flood()
    assert time.monotonic() - started < 3


def test_output_is_captured(runner):
    assert runner.module("work").chatty() == 1
    assert "hello from the student" in runner.last.stdout


def test_import_errors_are_reported_with_the_line(make_module):
    folder = make_module("broken", "def f(:\n    pass\n")
    runner = StudentRunner(path=folder, call_timeout=3)
    with pytest.raises(StudentImportError, match=r"could not import broken.py: SyntaxError"):
        runner.module("broken").f()


def test_missing_functions_are_reported(runner):
    with pytest.raises(StudentImportError, match="has no function nope"):
        runner.module("work").nope()


def test_missing_module_is_reported(runner):
    with pytest.raises(StudentImportError, match="ModuleNotFoundError"):
        runner.module("absent").f()


def test_stack_summary_names_the_student_frame_and_where_it_waits():
    dump = (
        "Current thread 0x01 (most recent call first):\n"
        '  File "/usr/lib/python3.11/multiprocessing/queues.py", line 103 in get\n'
        '  File "/sub/prodcons.py", line 12 in consumer\n'
        '  File "/usr/lib/python3.11/multiprocessing/process.py", line 108 in run\n'
    )
    assert summarize_dump(dump, "/sub") == "prodcons.py:12 in consumer(), waiting in queues.py:103 in get()"
    assert summarize_dump("", "/sub") == "no stack available"


# --- pre-started children ----------------------------------------------------------------------


@pytest.fixture
def pooled(make_module):
    """A runner whose calls take a child started ahead of time, as the plugin's ``student`` does."""
    pool = SparePool()
    folder = make_module("work", WORKERS)
    yield StudentRunner(path=folder, start_method="fork", call_timeout=3, spares=pool), pool
    pool.close()


def _spare_pids(pool: SparePool) -> list[int]:
    return [child.pid for child in pool._spares.values()]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0]
    except OSError:
        return "X"


def _gone(pid: int) -> bool:
    return _state(pid) in ("Z", "X")


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_each_call_starts_the_next_ones_process_and_the_next_call_uses_it(pooled):
    runner, pool = pooled
    work = runner.module("work")
    assert work.pids(2)
    [spare] = _spare_pids(pool)
    assert not _gone(spare)
    assert work.echo(1) == [[1], {}]
    assert runner.last.pid == spare
    assert _spare_pids(pool) != [spare]
    assert work.pids(3) and len(runner.last.workers) == 3


def test_a_pre_started_process_runs_the_module_as_it_is_when_the_call_starts(pooled, make_module):
    runner, pool = pooled
    assert runner.module("work").echo(1) == [[1], {}]
    make_module("late", "def answer():\n    return 42\n")  # written after the spare booted
    assert runner.module("late").answer() == 42


def test_a_spare_that_was_killed_or_stopped_is_replaced(pooled):
    runner, pool = pooled
    work = runner.module("work")
    work.echo(1)
    [killed] = _spare_pids(pool)
    os.kill(killed, signal.SIGKILL)
    _wait_until(lambda: _gone(killed))
    assert work.echo(2) == [[2], {}]
    assert runner.last.pid != killed
    [stopped] = _spare_pids(pool)
    os.kill(stopped, signal.SIGSTOP)
    _wait_until(lambda: _state(stopped) in ("T", "t"))
    assert work.echo(3) == [[3], {}]
    assert runner.last.pid != stopped
    assert _gone(stopped), "a discarded spare is killed, not left stopped"


def test_closing_the_pool_kills_the_spare_and_removes_its_files(pooled):
    runner, pool = pooled
    runner.module("work").echo(1)
    [child] = pool._spares.values()
    assert child.tmp.exists()
    pool.close()
    assert _gone(child.pid)
    assert not child.tmp.exists()


def test_a_spare_whose_grader_is_gone_exits_by_itself():
    """A crashed grader closes the spare's stdin; the spare must not wait forever."""
    child = child_mod.Child(sys.executable, None, None)
    try:
        child.proc.stdin.close()
        assert child.proc.wait(timeout=10) == 0
    finally:
        child.discard()


def test_the_next_calls_process_cannot_be_claimed_as_a_worker(pooled):
    """The spare starts before this call's PID window opens, so a forged claim on it is refused."""
    runner, pool = pooled
    runner.module("work").echo(0)
    [spare_for_this_call] = _spare_pids(pool)
    caller = runner.module("work").claim_other_callers()
    assert caller == spare_for_this_call
    [next_spare] = _spare_pids(pool)
    assert next_spare not in runner.last.workers
    assert runner.last.workers == set()


def test_student_code_still_reads_an_empty_stdin(pooled):
    runner, _ = pooled
    assert runner.module("work").read_stdin() == ""


INNER_TEST = '''
import os

def test_second_call_runs_in_the_process_started_during_the_first(student):
    work = student.module("work")
    work.echo(1)
    spares = [c.pid for c in student.spares._spares.values()] if student.spares else []
    work.echo(2)
    assert (student.last.pid in spares) == (os.environ["EXPECT_PRESTART"] == "yes")
'''


@pytest.mark.parametrize("flag, expect", [([], "yes"), (["--mpgrade-no-prestart"], "no")])
def test_the_student_fixture_pre_starts_calls_unless_told_not_to(make_module, tmp_path, flag, expect):
    folder = make_module("work", WORKERS)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_inner.py"), "-q", "-p", "no:cacheprovider",
         f"--mpgrade-submission={folder}", *flag],
        capture_output=True, text=True, timeout=120, env={**os.environ, "EXPECT_PRESTART": expect},
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- a spare is closed to the previous call's student code ---------------------------------------

TAMPER = '''
import json, os, resource, time

def _spares():
    """Other mpgrade_child processes of the same grader: the next call's pre-started one."""
    mine, out = os.getpid(), []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == mine:
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"mpgrade_child" in cmd and ppid == os.getppid():
            out.append(int(p))
    return out

def forge_next():
    """Try to reach into the spare: its memory, its pipes; returns how many could be opened."""
    opened = 0
    for pid in _spares():
        try:
            os.close(os.open(f"/proc/{pid}/mem", os.O_RDWR))  # what ptrace-style tampering needs
            opened += 1
        except OSError:
            pass
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                w = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY)
            except OSError:
                continue
            opened += 1
            try:
                os.write(w, json.dumps({"ok": True, "value": "FORGED"}).encode() + b"\\n")
            except OSError:
                pass
    return opened

def forge_while_booting(seconds):
    """forge_next, over and over while the next call's process boots; the total it opened."""
    opened, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        opened += forge_next()
    return opened

def _report_dumpable(q):
    import ctypes
    q.put(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE

def worker_dumpable():
    """Whether a worker started by exec (spawn) is an ordinary, dumpable process."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_report_dumpable, args=(q,))
    p.start()
    value = q.get(timeout=20)
    p.join(timeout=20)
    return value

def double(x):
    return 2 * x

def limits():
    return [resource.getrlimit(resource.RLIMIT_NPROC)[0], os.getpriority(os.PRIO_PROCESS, 0)]

def escape(tag):
    """setsid, double fork, wait to be re-parented, fork again: a daemon outside the call's
    tree and session, which leaves a file in /tmp and /dev/shm; its PID."""
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        while os.getppid() == os.getsid(0):
            time.sleep(0.001)
        if os.fork() != 0:
            os._exit(0)
        for folder in ("/tmp", "/dev/shm"):
            with open(f"{folder}/{tag}", "w") as f:
                f.write("state for a later call")
        os.write(w, str(os.getpid()).encode())
        while True:
            time.sleep(3600)
    os.close(w)
    return int(os.read(r, 32))

def alive(pid):
    """Running (a killed process whose parent is gone may stay a zombie where init does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False

def deep_folder(tag, depth):
    """A folder ``depth`` levels deep in /tmp (rmtree recurses: RecursionError past ~1000)."""
    fd = os.open("/tmp", os.O_RDONLY)
    os.mkdir(tag, dir_fd=fd)
    for _ in range(depth):
        new = os.open(tag if _ == 0 else "d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = new
        os.mkdir("d", dir_fd=fd)
    os.close(fd)
    return depth

def sysv_segment(size):
    """A System V shared memory segment left with no process attached: it outlives them all."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ident = libc.shmget(0, size, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    return ident

def sysv_exists(ident):
    with open("/proc/sysvipc/shm") as f:
        return any(line.split()[1] == str(ident) for line in f.read().splitlines()[1:])

def zombie_leader(tag):
    """A daemon whose main thread ends by itself while another thread goes on: the kernel shows
    the process as a zombie, but it runs. Its PID."""
    import ctypes, threading
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        def keep_running():
            while True:
                with open(f"/tmp/{tag}", "w") as f:
                    f.write("still here")
                time.sleep(0.01)
        threading.Thread(target=keep_running).start()
        os.write(w, str(os.getpid()).encode())
        ctypes.CDLL(None).syscall(60, 0)  # SYS_exit on x86_64: this thread only
    os.close(w)
    pid = int(os.read(r, 32))
    time.sleep(0.1)
    return pid

def files(tag):
    return [os.path.exists(f"{folder}/{tag}") for folder in ("/tmp", "/dev/shm")]

def call_folder():
    """Owner and mode of this call's folder (the parent of its cwd), and owners of its entries."""
    parent = os.path.dirname(os.getcwd())
    st = os.stat(parent)
    return [st.st_uid, st.st_mode & 0o777, {n: os.stat(os.path.join(parent, n)).st_uid
                                            for n in ("dumps", "home", "claims")}]
'''

SYSTEM_PYTHON = "/usr/bin/python3"  # one the other user can run (this venv may sit under /root)
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                                reason="runs student code as another user (needs root and /usr/bin/python3)")


@pytest.fixture(scope="module")
def execute_only_python():
    """SYSTEM_PYTHON copied as the grading image copies its own: mode 0711, root's, beside a
    pyvenv.cfg (so it finds the standard library), in folders the other user can enter."""
    import tempfile

    venv = Path(tempfile.mkdtemp(prefix="mpgrade-xpython-"))
    os.chmod(venv, 0o755)
    (venv / "bin").mkdir(mode=0o755)
    python = venv / "bin" / "python-student"
    shutil.copy(os.path.realpath(SYSTEM_PYTHON), python)
    os.chmod(python, 0o711)
    (venv / "pyvenv.cfg").write_text(f"home = {os.path.dirname(os.path.realpath(SYSTEM_PYTHON))}\n")
    os.chmod(venv / "pyvenv.cfg", 0o644)
    yield str(python)
    shutil.rmtree(venv, ignore_errors=True)


@contextlib.contextmanager
def _runner_as_nobody(python: str):
    import tempfile

    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("runs student code as another user (needs root and /usr/bin/python3)")
    folder = Path(tempfile.mkdtemp(prefix="mpgrade-test-"))
    os.chmod(folder, 0o755)
    (folder / "tamper.py").write_text(TAMPER)
    os.chmod(folder / "tamper.py", 0o644)
    pool = SparePool()
    try:
        yield StudentRunner(path=folder, user=(65534, 65534), max_processes=50, call_timeout=10,
                            spares=pool, python=python), pool
    finally:
        pool.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["readable", "execute-only"])
def as_nobody(request):
    """A runner whose student code runs as uid 65534 with a process cap, as in the container:
    with an interpreter the user can read (spares seal themselves, the pool waits for it) and
    with an execute-only one (the kernel seals them at exec, the pool does not wait)."""
    python = SYSTEM_PYTHON if request.param == "readable" else request.getfixturevalue("execute_only_python")
    with _runner_as_nobody(python) as runner_and_pool:
        yield runner_and_pool


@pytest.fixture
def as_nobody_execute_only(execute_only_python):
    with _runner_as_nobody(execute_only_python) as runner_and_pool:
        yield runner_and_pool


@needs_root
def test_the_previous_calls_code_cannot_open_the_next_calls_process(as_nobody):
    runner, pool = as_nobody
    tamper = runner.module("tamper")
    tamper.double(1)  # now a spare is waiting
    assert tamper.forge_next() == 0, "the spare's pipes were open to the student user"
    assert tamper.double(21) == 42


@needs_root
def test_a_booting_spare_is_never_open_to_the_current_calls_code(as_nobody):
    """The spare for the next call starts just before this call's code runs; trying all along
    to open it never succeeds, however early (the race a CI run once caught)."""
    runner, pool = as_nobody
    tamper = runner.module("tamper")
    for _ in range(3):
        assert tamper.forge_while_booting(0.3) == 0, "the booting spare was open to the student user"
    assert tamper.double(21) == 42


@needs_root
def test_the_pool_waits_for_a_seal_only_where_the_kernel_does_not_seal(as_nobody, monkeypatch):
    """A readable interpreter costs each call the spare's boot (the pool waits for its seal before
    the call's code runs); an execute-only one is checked only when its spare is taken."""
    import inspect

    runner, pool = as_nobody
    waits: list[str] = []
    words: list[bytes] = []  # b"2": sealed by the kernel at exec; b"1": by itself, later
    spares: list[int] = []
    original = child_mod.Child.wait_sealed

    def wait_sealed(self, limit: float = 2.0) -> bool:
        waits.append(inspect.stack()[1].function)
        sealed = original(self, limit)
        words.append(self.seal_word)
        spares.append(self.pid)
        return sealed

    monkeypatch.setattr(child_mod.Child, "wait_sealed", wait_sealed)
    tamper = runner.module("tamper")
    assert [tamper.double(i) for i in range(3)] == [0, 2, 4]
    execute_only = runner.python != SYSTEM_PYTHON
    assert waits == (["take", "take"] if execute_only else ["prepare"] * 3), waits
    assert words[:2] == ([b"2", b"2"] if execute_only else [b"1", b"1"]), words
    assert [r.pid for r in runner.records[1:]] == spares[:2]  # the spares were used


@needs_root
def test_nothing_of_the_student_user_outlives_a_call(as_nobody):
    """A daemon that left the call's tree and session is killed before the next call, and what
    it wrote in /tmp and /dev/shm is gone; the call that made it says it was left running."""
    runner, _ = as_nobody
    tamper = runner.module("tamper")
    tag = f"mpgrade-escape-{os.getpid()}"
    daemon = tamper.escape(tag)
    first = runner.last
    assert daemon in first.leftover, (daemon, first.leftover)
    # Killed by the sweep of the user (counted in ``escaped``), or already with the call's own
    # processes when polling saw it before it left the tree: dead either way.
    assert tamper.alive(daemon) is False
    assert tamper.files(tag) == [False, False]
    assert runner.last.escaped == 0


@needs_root
def test_a_process_whose_main_thread_ended_is_still_killed(as_nobody):
    """Its leader shows as a zombie, its other thread runs student code: it is alive."""
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the raw exit syscall number used here is x86_64's")
    runner, _ = as_nobody
    tamper = runner.module("tamper")
    tag = f"mpgrade-zombie-{os.getpid()}"
    daemon = tamper.zombie_leader(tag)
    assert daemon in runner.last.leftover, (daemon, runner.last.leftover)
    time.sleep(0.1)
    assert tamper.files(tag) == [False, False], "the daemon's thread wrote again after the call"
    assert not Path(f"/proc/{daemon}/task").exists() or all(
        (Path(f"/proc/{daemon}/task") / t / "stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
        for t in os.listdir(f"/proc/{daemon}/task"))


@needs_root
def test_what_the_student_leaves_is_removed_however_it_is_made(as_nobody):
    """A folder thousands of levels deep, a System V segment nobody holds: gone before the next
    call, which runs as usual."""
    runner, _ = as_nobody
    tamper = runner.module("tamper")
    tag = f"mpgrade-deep-{os.getpid()}"
    assert tamper.deep_folder(tag, 3000) == 3000
    assert not Path("/tmp", tag).exists()
    segment = tamper.sysv_segment(1 << 20)
    assert segment >= 0
    assert tamper.sysv_exists(segment) is False
    assert tamper.double(21) == 42


@needs_root
def test_a_call_folder_stays_roots(as_nobody):
    """Only the entries of a call's folder are the student's (the claims FIFO not even that): the
    folder itself is root's, so they cannot be swapped for links to what the supervisor must
    keep (the report folder)."""
    runner, _ = as_nobody
    tamper = runner.module("tamper")
    for _ in range(2):  # a cold child, then a spare
        assert tamper.call_folder() == [0, 0o711, {"dumps": 65534, "home": 65534, "claims": 0}]


@needs_root
def test_workers_started_by_exec_are_ordinary_processes(as_nobody):
    """Only the waiting caller is sealed: a spawned worker is dumpable with either interpreter."""
    runner, _ = as_nobody
    assert runner.module("tamper").worker_dumpable() == 1


@needs_root
def test_a_spare_the_kernel_did_not_seal_at_exec_is_not_used(as_nobody_execute_only, monkeypatch):
    """Mode bits can mislead (an ACL, fs.suid_dumpable): a spare that says it was still open when
    its code first ran is thrown away, and the pool waits for the seals of the next ones."""
    runner, pool = as_nobody_execute_only
    original = child_mod.Child.wait_sealed

    def open_at_boot(self, limit: float = 2.0) -> bool:
        sealed = original(self, limit)
        self.seal_word = b"1"  # what a spare sealed only by itself says
        return sealed

    monkeypatch.setattr(child_mod.Child, "wait_sealed", open_at_boot)
    tamper = runner.module("tamper")
    tamper.double(1)
    [spare] = pool._spares.values()
    assert tamper.double(2) == 4 and runner.last.pid != spare.pid
    assert not pool._trust_exec and not pool._unsealable
    [next_spare] = pool._spares.values()
    assert not next_spare.sealed_from_exec  # waited for in prepare
    assert tamper.double(3) == 6 and runner.last.pid == next_spare.pid


@needs_root
def test_an_execute_only_spare_that_never_seals_stops_the_spares(as_nobody_execute_only, monkeypatch):
    runner, pool = as_nobody_execute_only
    monkeypatch.setattr(child_mod.Child, "wait_sealed", lambda self, limit=2.0: False)
    tamper = runner.module("tamper")
    tamper.double(1)
    [spare] = pool._spares.values()
    assert tamper.double(2) == 4 and runner.last.pid != spare.pid
    assert pool._unsealable and pool._spares == {}
    _wait_until(lambda: _gone(spare.pid))


@pytest.mark.parametrize("value, expect", [("0", True), ("2", True), ("1", False), ("", False)])
def test_an_execute_only_interpreter_seals_only_where_the_host_says_so(
        execute_only_python, tmp_path, monkeypatch, value, expect):
    """At fs.suid_dumpable = 1, exec leaves every process dumpable, readable program or not."""
    setting = tmp_path / "suid_dumpable"
    if value:
        setting.write_text(value + "\n")
    monkeypatch.setattr(child_mod, "SUID_DUMPABLE", str(setting))
    assert child_mod.sealed_from_exec(execute_only_python, (65534, 65534)) is expect


@needs_root
def test_a_program_its_user_cannot_read_runs_sealed_from_exec(execute_only_python):
    """The kernel fact the grading image relies on: no other process of the same user can open
    the memory of a process started from an execute-only program (here one that never seals
    itself), while it can with a readable one."""
    assert child_mod.sealed_from_exec(execute_only_python, (65534, 65534))
    assert not child_mod.sealed_from_exec(SYSTEM_PYTHON, (65534, 65534))
    opened = {}
    for python in (SYSTEM_PYTHON, execute_only_python):
        sleeper = subprocess.Popen([python, "-S", "-c", "import time; time.sleep(30)"],
                                   user=65534, group=65534, extra_groups=[])
        try:
            probe = (f"try:\n    open('/proc/{sleeper.pid}/mem', 'rb').close(); print('opened')\n"
                     f"except OSError:\n    print('refused')")
            opened[python] = subprocess.run([SYSTEM_PYTHON, "-S", "-c", probe], user=65534, group=65534,
                                            extra_groups=[], capture_output=True, text=True, timeout=30).stdout
        finally:
            sleeper.kill()
            sleeper.wait()
    assert opened == {SYSTEM_PYTHON: "opened\n", execute_only_python: "refused\n"}


@pytest.mark.parametrize("mode, owner, user, expect", [
    (0o711, "other", (1234, 1234), True),
    (0o755, "other", (1234, 1234), False),   # anyone may read it
    (0o751, "group", (1234, 1234), False),   # the user's group may read it
    (0o711, "user", (1234, 1234), False),    # its own owner may read it
    (0o711, "other", None, False),           # student code runs as the grader
    (0o711, "other", (0, 0), False),         # root reads everything
    (0o700, "other", (1234, 1234), False),   # nor may it be run
])
def test_which_interpreters_seal_from_exec(tmp_path, monkeypatch, mode, owner, user, expect):
    program = tmp_path / "python"
    program.write_bytes(b"")
    program.chmod(mode)
    real_stat = os.stat
    uid, gid = {"other": (4321, 4321), "group": (4321, 1234), "user": (1234, 4321)}[owner]

    def fake_stat(path, *a, **kw):
        st = real_stat(path, *a, **kw)
        if str(path) != str(program):
            return st
        fields = list(st)
        fields[4], fields[5] = uid, gid
        return os.stat_result(fields)

    monkeypatch.setattr(child_mod.os, "stat", fake_stat)
    assert child_mod.sealed_from_exec(str(program), user) is expect


@needs_root
def test_a_spare_that_was_written_to_is_not_used(as_nobody):
    """Whatever reached a spare's pipes before its call (here written by root, who can) voids it."""
    runner, pool = as_nobody
    tamper = runner.module("tamper")
    tamper.double(1)
    [child] = pool._spares.values()
    fd = os.open(f"/proc/{child.pid}/fd/{child.result_w}", os.O_WRONLY)
    os.write(fd, b'{"ok": true, "value": "FORGED"}\n')
    os.close(fd)
    time.sleep(0.1)
    assert tamper.double(21) == 42
    assert runner.last.pid != child.pid


@needs_root
def test_a_spare_is_confined_before_it_reads_anything(as_nobody, tmp_path):
    """A request injected into a spare's stdin still runs under the process cap and at nice 19."""
    runner, pool = as_nobody
    tamper = runner.module("tamper")
    tamper.double(1)
    [child] = pool._spares.values()
    injected = {"module": "tamper", "function": "limits", "args": plain.encode(())["v"], "kwargs": plain.encode({}),
                "path": str(runner.path), "cwd": "/tmp", "result_fd": 1, "start_method": None}
    fd = os.open(f"/proc/{child.pid}/fd/0", os.O_WRONLY)
    os.write(fd, json.dumps(injected).encode() + b"\n")
    os.close(fd)
    deadline = time.monotonic() + 10
    while not child.out and time.monotonic() < deadline:
        time.sleep(0.02)
    said = json.loads(bytes(child.out).splitlines()[0])
    assert said["ok"] and said["value"] == [50, 19], said
    assert tamper.double(21) == 42 and runner.last.pid != child.pid


def test_a_call_dies_with_its_grader(make_module, tmp_path):
    """A grader killed mid-call (SIGKILL, no clean-up) does not leave the call's process behind."""
    folder = make_module("work", WORKERS)
    script = tmp_path / "crash.py"
    script.write_text(f"""
import os, signal, threading, time
from pathlib import Path
from grader.harness.boundary import StudentRunner
runner = StudentRunner(path=Path({str(folder)!r}), call_timeout=60)
threading.Thread(target=lambda: runner.call("work", "deadlock"), daemon=True).start()
while not runner.records or not runner.records[-1].pid:
    time.sleep(0.01)
time.sleep(0.3)
print(runner.records[-1].pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip(), done.stderr
    caller = int(done.stdout.split()[0])
    _wait_until(lambda: _gone(caller), timeout=10)


def test_a_pool_whose_spares_cannot_seal_stops_making_them(make_module, monkeypatch):
    """Where a spare never says it sealed itself, calls start cold, without waiting each time."""
    asked = []

    def never(self, limit: float = 2.0) -> bool:
        asked.append(self.pid)
        return False

    monkeypatch.setattr(child_mod.Child, "wait_sealed", never)
    pool = SparePool()
    folder = make_module("work", WORKERS)
    runner = StudentRunner(path=folder, user=(os.getuid(), os.getgid()), spares=pool)
    try:
        work = runner.module("work")
        assert [work.echo(i) for i in range(3)] == [[[i], {}] for i in range(3)]
        assert len(asked) == 1 and pool._spares == {}
        assert all(_gone(pid) for pid in asked)
    finally:
        pool.close()


def test_a_forged_stack_dump_shows_no_control_characters():
    """A dump is written by the student's own process: what is taken from it is printable only,
    and capped, so it cannot drive the terminal or pass for pages of grader text."""
    forged = ('Current thread 0x1 (most recent call first):\n'
              '  File "/sub/\x1b]52;c;cHduZWQ=\x07spawn.py", line 12 in \x1b[2J' + "x" * 500 + '\n')
    text = student_mod.summarize_dump(forged, "/sub")
    assert "\x1b" not in text and "\x07" not in text
    assert len(text) < 200, text
