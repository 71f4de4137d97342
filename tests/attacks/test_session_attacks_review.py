"""A second look at the session surface (#17), as a hostile student: output frames, telemetry
that outlives its operation, what a session keeps of its answers, and (in Docker) what a
session can leave behind for the next test.

Each test shows one hole. Those marked ``xfail(strict=True)`` need a fix in code this file's
author may not change (``call.py``, ``child.py``): the reason says which; strict, so the fix
makes them pass and the marker must go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from grader.harness.boundary import StudentRunner
from grader.harness.boundary.output import frame_overhead, unframe

REPO = Path(__file__).resolve().parents[2]

HOSTILE = r'''
import asyncio, os, sys

def invented_workers(n):
    """Lines "printed by" workers that never ran: frames forged by the calling process."""
    fake = [4_000_000 + i for i in range(n)]
    for i, pid in enumerate(fake):
        os.write(1, b"\x00\x1e%d\x1fworker %d ready\n" % (pid, i))
        os.write(1, b"\x00\x1e%d\x1fworker %d done\n" % (pid, i))
    return fake

def count_to(n):
    for i in range(n):
        print(i)
    return n

def blank_lines(n):
    for _ in range(n):
        sys.stdout.write("\n")
    return n

async def overlapping(n):
    async def one(x):
        await asyncio.sleep(0.01)
        return x
    return await asyncio.gather(*(one(x) for x in range(n)))

def sequential(n):
    return list(range(n))

class Bag:
    def __init__(self, *items):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

class Big:
    def blob(self, mib):
        return "x" * (mib * 1024 * 1024)
'''


@pytest.fixture
def runner(tmp_path: Path) -> StudentRunner:
    (tmp_path / "hostile.py").write_text(HOSTILE)
    return StudentRunner(path=tmp_path, start_method="fork", call_timeout=20)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- output frames ------------------------------------------------------------------------------


def test_a_frame_naming_a_process_that_never_ran_is_nobodys():
    raw = b"\x00\x1e7\x1fmine\n\x00\x1e4000000\x1fforged\n\x00\x1e7\x1fmine again\n"
    text, lines = unframe(raw, "stdout", known={7})
    assert text == "mine\nforged\nmine again\n"
    assert [(line.pid, line.text) for line in lines] == [(7, "mine"), (0, "forged"), (7, "mine again")]
    # Without what the grader saw, the frame is taken at its word (the documented advisory use).
    assert [line.pid for line in unframe(raw, "stdout")[1]] == [7, 4000000, 7]


def test_a_line_written_in_pieces_between_other_processes_lines_is_whole():
    """One process's line in many writes (a byte at a time: ``print(c, end="")``), another
    process's lines between them, a character split between two writes: one line, decoded once
    (and put together in linear time: a line of 16 KiB written a byte at a time was quadratic)."""
    e_acute = "\u00e9".encode()
    raw = (b"\x00\x1e7\x1f" + e_acute[:1] + b"\x00\x1e8\x1fother\n" + b"\x00\x1e7\x1f" + e_acute[1:]
           + b"".join(b"\x00\x1e7\x1f" + bytes([c]) for c in b"ab") + b"\x00\x1e7\x1f\n\x00\x1e7\x1ftail")
    _, lines = unframe(raw, "stdout")
    assert [(line.pid, line.text) for line in lines] == [(8, "other"), (7, "\u00e9ab"), (7, "tail")]


LONG_LINES = r'''
import os, sys
kids = []
for ch in "ab":
    pid = os.fork()
    if pid == 0:
        print(ch * 200_000)  # 200 KB in one line: more than the pipe holds
        os._exit(0)
    kids.append(pid)
with open(sys.argv[1], "w") as f:
    f.write(" ".join(map(str, kids)))
for k in kids:
    os.waitpid(k, 0)
'''


def _blocked_on_a_pipe(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "pipe_write" in f.read()  # pipe_write, anon_pipe_write: the kernel's names
    except OSError:
        return False


def test_long_lines_of_processes_printing_at_once_stay_theirs(tmp_path):
    """A line longer than PIPE_BUF is not one atomic write: once the pipe is full another
    process's write lands in its middle, and the rest of the line read as the other process's
    (b's line ended with a's last 69 KB). Every PIPE_BUF bytes now carry their own frame."""
    from grader.harness.boundary.child import BOOT_DIR
    from grader.protocol import wire

    pids_file = tmp_path / "pids"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(BOOT_DIR),
           wire.DUMP_DIR_ENV: str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", LONG_LINES, str(pids_file)], stdout=subprocess.PIPE, env=env)
    try:
        for _ in range(500):  # nothing is read until both writers wait on the full pipe
            if pids_file.exists() and pids_file.read_text() and \
                    all(_blocked_on_a_pipe(int(p)) for p in pids_file.read_text().split()):
                break
            time.sleep(0.01)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    kids = [int(p) for p in pids_file.read_text().split()]
    _, lines = unframe(out, "stdout")
    for pid, ch in zip(kids, "ab", strict=True):
        assert [line.text for line in lines if line.pid == pid] == [ch * 200_000], \
            f"{ch}: {[(len(line.text), sorted(set(line.text))) for line in lines if line.pid == pid]}"


def test_printed_by_never_vouches_for_a_process_that_never_ran(runner):
    """The authoring docs' own example (``printed_by(pid) == [...]`` for the PIDs the function
    returns) passes for a function that starts no process at all and forges their lines."""
    pids = runner.module("hostile").invented_workers(3)
    call = runner.last
    assert not call.workers
    assert all(call.printed_by(pid) == [] for pid in pids), [call.printed_by(pid) for pid in pids]


def test_what_frames_add_can_be_told_from_what_was_printed():
    chunk = b"\x00\x1e123\x1fab\n\x00\x1e7\x1f\n\x00\x1e\x1fnot a frame"
    assert frame_overhead(chunk) == (6 - 1) + (4 - 1)
    assert len(chunk) - frame_overhead(chunk) == len(b"ab\n\n\x00\x1e\x1fnot a frame") + 2


def test_frames_do_not_shrink_what_is_kept_of_the_output(runner):
    """2000 short lines (under 9 KB of text) fitted in the 16 KiB kept before frames."""
    runner.module("hostile").count_to(2000)
    assert runner.last.stdout.split() == [str(i) for i in range(2000)]


def test_frames_do_not_count_against_the_output_limit(tmp_path):
    (tmp_path / "hostile.py").write_text(HOSTILE)
    small = StudentRunner(path=tmp_path, start_method="fork", call_timeout=20, output_limit=1024 * 1024)
    assert small.module("hostile").blank_lines(200_000) == 200_000  # 200 KB printed, limit 1 MiB


# -- telemetry ---------------------------------------------------------------------------------


def test_async_telemetry_is_the_last_operations(runner):
    """A session: an honest overlapping coroutine first, then the graded work done plainly:
    ``s.last.peak_tasks`` must not still say the first operation's 5."""
    with runner.session() as s:
        mod = s.module("hostile")
        mod.overlapping(5)
        assert s.last.peak_tasks == 5
        assert mod.sequential(5) == [0, 1, 2, 3, 4]
        assert s.last.tasks is None and s.last.peak_tasks is None, (s.last.tasks, s.last.peak_tasks)


def test_a_container_can_be_iterated_twice(runner):
    """``list(bag)`` twice, as Python does it: the second pass is empty, so an honest solution
    fails a test that looks at a container twice (and a wrong one passes ``list(bag) == []``)."""
    with runner.session() as s:
        bag = s.module("hostile").Bag(1, 2, 3)
        assert list(bag) == [1, 2, 3]
        assert list(bag) == [1, 2, 3]
        assert sorted(bag) == [1, 2, 3]


FORGED_AIO = r'''
import asyncio
import sys
import time


async def gather_limited(func, items, limit):
    """One call after another (no overlap, no semaphore), then the measurements forged."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    started = time.perf_counter()
    out = [await func(x) for x in items]
    sys.modules[func.__module__]._peak = limit          # the probe's count is ours to set
    asyncio.ensure_future(asyncio.sleep(0))              # record.tasks: one task "created"
    said = started + -(-len(items) // limit) * 0.1 * 1.2
    time.perf_counter = lambda: said                     # record.elapsed: what we say it took
    return out


async def first_result(func, items, timeout):
    raise NotImplementedError
'''


EXAMPLE = REPO / "examples" / "assignments" / "threads-asyncio"
PROBES_FORGED = '''

# The probes run in this process: what they report is ours to say.
import probes  # noqa: E402

# The thread probes the buffer tests use: no thread started, every one "got its item". (This
# attack first replaced the report probes racing_consumers and blocked_producer, since gone.)
_said: list = []
probes.start_consumers = lambda buf, consumers, timeout=5.0: _said.extend(("item", i) for i in range(consumers)) or True
probes.start_producer = lambda buf, item: _said.append(("item", True)) or True
probes.join_started = lambda timeout=5.0: sorted(_said, key=repr)
'''


def _forged_buffer() -> str:
    """The reference buffer with both bugs its two probe tests are there to catch (``if`` for
    ``while`` in get, no notify after get: the mutants buffer_if_not_while and
    buffer_get_no_notify), and the probes replaced."""
    text = (EXAMPLE / "solutions" / "02_buffer" / "buffer.py").read_text()
    for name in ("buffer_if_not_while", "buffer_get_no_notify"):
        for change in tomllib.loads((EXAMPLE / "solutions" / "mutants" / name / "mutant.toml").read_text())["change"]:
            assert change["old"] in text, name
            text = text.replace(change["old"], change["new"])
    return text + PROBES_FORGED


@pytest.mark.parametrize("module, attacked", [
    ("aio.py", ("test_limit_is_reached_and_never_passed", "test_calls_overlap_in_tasks")),
    ("buffer.py", ("test_woken_consumers_wait_again", "test_get_wakes_a_waiting_producer")),
])
def test_forged_in_process_measurements_score_nothing(tmp_path, module, attacked):
    """The documented rule (docs/authoring.md: what a helper or the student's process reports is
    the student's word, never the only line of defence) broken by the shipped example: calls
    awaited one after another plus three lines (set the probe's peak, make one task, patch
    ``time.perf_counter``) passed the overlap and limit tests (9 points); a buffer with the two
    bugs its probe tests target, plus lines replacing the probes, passed them (8 points). The
    tests now pass only on what the grader sees: the wall time, the probe's threads, the buffer."""
    sub = tmp_path / "mallory"
    sub.mkdir()
    (sub / module).write_text(FORGED_AIO if module == "aio.py" else _forged_buffer())
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "grader", "grade", str(sub), "--assignment", str(EXAMPLE),
                          "--out", str(out), "--sandbox", "local", "--jobs", "1"],
                         capture_output=True, timeout=600, cwd=REPO)
    assert run.returncode in (0, 1), run.stderr.decode(errors="replace")[-3000:]
    doc = json.loads(next(p for p in out.glob("*.json") if p.name != "summary.json").read_text())
    outcomes = {t["id"].rpartition("::")[2]: t["outcome"] for t in doc["tests"]}
    ran = "test_gather_limited_results" if module == "aio.py" else "test_put_then_get_in_order"
    assert outcomes[ran] == "passed", outcomes  # the submission was graded at all
    assert all(outcomes[name] != "passed" for name in attacked), {name: outcomes[name] for name in attacked}


# -- what a session keeps ----------------------------------------------------------------------


def test_a_session_does_not_keep_every_answer(tmp_path):
    """Each answer may be 32 MB; a session of many operations held them all in the grader
    (8 answers of 16 MiB: 128 MiB more, for as long as the session lasts)."""
    (tmp_path / "hostile.py").write_text(HOSTILE)
    runner = StudentRunner(path=tmp_path, start_method="fork", call_timeout=60)
    with runner.session() as s:
        big = s.module("hostile").Big()
        big.blob(1)
        before = _rss()
        for _ in range(8):
            big.blob(16)
        grown = _rss() - before
    assert grown < 64 * 1024 * 1024, f"the grader holds {grown // (1024 * 1024)} MiB more after 8 answers"


# -- in Docker: nothing of a session survives it -------------------------------------------------

ESCAPE = r'''
import os, sys, time

MARK = "mpgrade-review-daemon"
DAEMON = """
import os, sys, time
# mpgrade-review-daemon
end = time.time() + 120
while time.time() < end:
    for fd in (1, 2):
        try:
            os.write(fd, b"\\x00\\x1e1\\x1fforged by a daemon\\n")
        except OSError:
            pass
    time.sleep(0.01)
"""

def plant():
    """A double-forked, setsid daemon holding the session's output pipes; and writes to the
    helpers folder, the modules' folder and a __pycache__ beside the helpers, for later tests."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", DAEMON])
        os._exit(0)
    os.waitpid(pid, 0)
    end = time.time() + 5
    while not survivors() and time.time() < end:
        time.sleep(0.01)
    wrote = [] if survivors() else ["the daemon did not start"]
    import probes
    helpers = os.path.dirname(probes.__file__)
    here = os.path.dirname(os.path.abspath(__file__))
    for path, text in ((os.path.join(helpers, "probes.py"), "def square(x):\n    return 'cheated'\n"),
                       (os.path.join(helpers, "extra.py"), "x = 1\n"),
                       (os.path.join(here, "probes.py"), "def square(x):\n    return 'cheated'\n")):
        try:
            with open(path, "w") as f:
                f.write(text)
            wrote.append(path)
        except OSError:
            pass
    try:
        os.mkdir(os.path.join(helpers, "__pycache__"))
        wrote.append("__pycache__")
    except OSError:
        pass
    return wrote

def survivors():
    me, found = os.getuid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if MARK.encode() in f.read():
                    found.append(int(name))
        except OSError:
            pass
    return found

def use(f, x):
    return f(x)
'''

ESCAPE_TESTS = r'''
import pytest


@pytest.mark.points(1)
def test_a_plant(student):
    """a session leaves a daemon and tries to change the helpers"""
    with student.session(timeout=5) as s:
        wrote = s.module("escape").plant()
    assert wrote == [], f"wrote {wrote}"


@pytest.mark.points(1)
def test_b_nothing_survived(student):
    """no process of the session is left"""
    assert student.module("escape").survivors() == []


@pytest.mark.points(1)
def test_c_the_helper_is_the_instructors(student):
    """the helper is the instructor's in the next call"""
    assert student.module("escape").use(student.helper("probes.square"), 3) == 9
    assert not any("forged by a daemon" in line.text for line in student.last.printed)
'''


def _course(root: Path) -> Path:
    course = root / "course"
    (course / "exercises" / "01_escape").mkdir(parents=True)
    (course / "helpers").mkdir()
    (course / "helpers" / "probes.py").write_text("def square(x):\n    return x * x\n")
    (course / "assignment.toml").write_text(
        '[assignment]\nname = "session-review"\nversion = "1"\nstart_method = "fork"\nhelpers = "helpers"\n\n'
        '[limits]\ncall_timeout = 8.0\ntest_timeout = 60.0\nsubmission_timeout = 300.0\n\n'
        '[[exercise]]\nid = "01_escape"\ntitle = "escape"\nfiles = ["escape.py"]\npoints = 3\n')
    (course / "exercises" / "01_escape" / "escape.py").write_text("def plant():\n    return []\n")
    (course / "exercises" / "01_escape" / "test_public.py").write_text(ESCAPE_TESTS)
    return course


@pytest.mark.docker
def test_a_session_leaves_nothing_for_the_next_test_in_docker(grading_image, tmp_path):
    course = _course(tmp_path)
    sub = tmp_path / "subs" / "mallory"
    sub.mkdir(parents=True)
    (sub / "escape.py").write_text(ESCAPE)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "grader", "grade", str(sub), "--assignment", str(course),
                          "--out", str(out), "--sandbox", "docker", "--image", grading_image, "--jobs", "1"],
                         capture_output=True, timeout=600, cwd=REPO)
    assert run.returncode in (0, 1), run.stderr.decode(errors="replace")[-3000:]
    doc = json.loads(next(p for p in out.glob("*.json") if p.name not in ("summary.json",)).read_text())
    assert doc["status"] == "graded", doc.get("message")
    assert len(doc["tests"]) == 3
    failed = {t["id"]: (t["outcome"], t["message"][:300]) for t in doc["tests"] if t["outcome"] != "passed"}
    assert not failed, failed
