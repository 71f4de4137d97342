"""``make check``: a student's working copy against the public tests, on their own machine.

Runs through the same job / harness / sandbox path as real grading (the local sandbox), so a
student sees exactly the feedback format graders use. It never claims more than it knows: the
document is a public one, and the table ``mpgrade check`` shows (``grader.cli.render``) says
how many points are still to be decided by hidden tests.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import grading, processes
from grader.assignment import Assignment, AssignmentError
from grader.atomic import write_atomic
from grader.intake.submission import Submission
from grader.protocol import results
from grader.sandbox.local import LocalSandbox

DEFAULT_JSON = Path(".mpgrade") / "check.json"


def working_copy(assignment: Assignment, exercises: tuple[str, ...] = ()) -> Submission:
    """The student's files as they are in ``exercises/NN_name/``."""
    sub = Submission(id="working-copy", source=str(assignment.root / "exercises"))
    for ex in assignment.exercises:
        if exercises and ex.id not in exercises:
            continue
        for name in ex.files:
            path = ex.public_dir / name
            if path.is_file() and not path.is_symlink():
                sub.files[name] = path.read_bytes()
            else:
                sub.missing.append(f"exercises/{ex.id}/{name}")
        for path in ex.other_tests():
            # Students write tests too: theirs are not the assignment's, and collected with the
            # public ones they broke the whole exercise's check (importing the module directly).
            sub.ignored.append({"path": f"exercises/{ex.id}/{path.name}",
                                "reason": "your own test file: make check runs only the assignment's "
                                          "public tests (run yours with: python -m pytest "
                                          f"exercises/{ex.id}/{path.name})"})
    return sub


def run_check(assignment: Assignment, exercises: tuple[str, ...] = (),
              start_method: str | None = None) -> dict[str, Any]:
    """The public tests of ``exercises`` (all: empty) against the working copy, under
    ``start_method`` or, by default, every start method the assignment declares
    (:attr:`Assignment.check_start_methods`), each in its own run at the same time: a bug that
    shows only under ``spawn`` (a lambda target, work at import time) fails the check."""
    for ex_id in exercises:
        assignment.exercise(ex_id)  # unknown ids fail early with the list of known ones
    sub = working_copy(assignment, exercises)
    return _run(assignment, exercises, sub, start_methods(assignment, start_method))


def start_methods(assignment: Assignment, start_method: str | None = None) -> tuple[str, ...]:
    """``start_method``, or every start method of the assignment this system has (the default
    first): macOS has all three; a method the system lacks is left out, and said in the
    output's "Start methods" line, rather than failing every test."""
    import multiprocessing

    have = multiprocessing.get_all_start_methods()
    if start_method:
        if start_method not in have:
            raise CheckCannotRun(f"this system has no {start_method!r} start method (it has "
                                 f"{', '.join(have)})")
        return (start_method,)
    methods = tuple(m for m in assignment.check_start_methods if m in have)
    if not methods:
        raise CheckCannotRun(f"this system has none of the assignment's start methods "
                             f"({', '.join(assignment.check_start_methods)}; it has {', '.join(have)})")
    return methods


def run_notebook_check(assignment: Assignment, path: Path, exercises: tuple[str, ...] = (),
                       start_method: str | None = None) -> dict[str, Any]:
    """The public tests of the exercise a notebook stands for, against the notebook's code.

    The notebook is read as ``mpgrade grade`` reads a handed-in one
    (:func:`grader.intake.submission.from_notebook`: its ``mpgrade`` metadata or its name
    says which module it is; magics dropped, each drop listed under "not run"), so a check
    from Jupyter tests exactly what will be graded: the saved file, not the kernel's state.
    """
    from grader.intake.submission import NotASubmission, from_notebook

    try:
        sub = from_notebook(path, assignment)
    except NotASubmission as exc:
        raise AssignmentError(f"{exc} (a released notebook names its module in its metadata)") from None
    if sub.error:
        raise AssignmentError(f"{path}: {sub.error}")
    own = tuple(dict.fromkeys(ex.id for name in sub.files
                              if (ex := assignment.exercise_of_file(name)) is not None))
    for ex_id in exercises:
        if ex_id not in own:
            raise AssignmentError(f"{path.name} is the code of {', '.join(own)}, not of {ex_id}")
    sub.id, sub.missing = "notebook", []
    return _run(assignment, own, sub, start_methods(assignment, start_method))


class CheckCannotRun(RuntimeError):
    """This machine cannot run a check that means anything; the message says why, in a line."""


NO_PROCESSES = ("this system lets mpgrade see no processes (no /proc, and psutil cannot list "
                "them): it could not tell your processes from threads nor stop what they leave "
                "running, so the check does not run (on Linux, mount /proc; elsewhere reinstall "
                "psutil: python -m pip install --force-reinstall psutil)")


POSIX = os.name == "posix"
NOT_POSIX = ("mpgrade check needs a POSIX system (Linux, macOS): it stops your processes "
             "through process sessions and signals Windows does not have. On Windows, use WSL "
             "(wsl --install, then run the check inside it)")


def _run(assignment: Assignment, exercises: tuple[str, ...], sub: Submission,
         methods: tuple[str, ...]) -> dict[str, Any]:
    if not POSIX:
        raise CheckCannotRun(NOT_POSIX)
    if not processes.can_see_children():
        # Graded blind, a correct solution "started no process": refusing is the honest answer.
        raise CheckCannotRun(NO_PROCESSES)
    sandbox = LocalSandbox()
    pool = ThreadPoolExecutor(len(methods))
    try:
        futures = [pool.submit(grading.grade, sandbox, assignment, sub, grading.Options(
            scope="public", exercises=exercises, start_method=method)) for method in methods]
        docs = [f.result() for f in futures]
    finally:
        # First the sandbox: on Ctrl-C it kills the runs still going, so the pool's threads
        # end at once instead of grading to the end.
        sandbox.close()
        pool.shutdown(wait=True, cancel_futures=True)
    assert all(doc is not None for doc in docs)  # only a cancelled run gives None: check never cancels
    return merge_start_methods(list(zip(methods, docs, strict=True)))  # type: ignore[arg-type]


PR_SET_CHILD_SUBREAPER = 36


@contextmanager
def nothing_survives() -> Iterator[None]:
    """Nothing the check started outlives it, however it ends (a result, an error, Ctrl-C).

    The sandbox kills the harness's session, and each call's processes die with the harness,
    but a student's workers live in their call's session and would be re-parented to init,
    spinning, when the harness is killed mid-call. As a child subreaper (Linux), this process
    inherits every orphan of its tree instead, and kills and reaps all that is left of its
    descendants at the end. Elsewhere (macOS) only the harness's own clean-up applies.

    It kills *every* descendant of the calling process, so only a process that exists for the
    check uses it: the ``mpgrade check`` command, not ``run_check`` (a library call inside a
    test run or a service would kill its caller's other children and stay a subreaper).
    """
    _become_subreaper()
    try:
        yield
    finally:
        kill_descendants()


def _become_subreaper() -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:  # not Linux
        return False


def _descendants() -> list[int]:
    found, todo = [], [os.getpid()]
    while todo and len(found) < 100_000:
        for pid in processes.children(todo.pop()):
            found.append(pid)
            todo.append(pid)
    return found


def kill_descendants(settle: float = 0.1, limit: float = 3.0) -> None:
    """Kill and reap every descendant of this process, until none has appeared for ``settle``
    seconds (an orphan is re-parented here a moment after its parent dies)."""
    deadline = time.monotonic() + limit
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        pids = _descendants()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in processes.children(os.getpid()):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if pids:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        time.sleep(0.01)


def merge_start_methods(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One document from the runs of the same check under several start methods.

    A test passes only when it passed under every method; a failing test is the first failure
    in the order of ``runs`` (the default method first) and names its start method, and says
    so when it passed under the default one. A run that could not grade decides the document.
    """
    method, doc = runs[0]
    doc = copy.deepcopy(doc)
    doc["grader"]["start_methods"] = [m for m, _ in runs]
    broken = next((d for _, d in runs if d["status"] != "graded"), None)
    if broken is not None or len(runs) == 1:
        if broken is not None and broken is not runs[0][1]:
            doc = {**copy.deepcopy(broken), "grader": {**broken["grader"], "start_methods": [m for m, _ in runs]}}
        for t in doc["tests"]:
            t.setdefault("start_method", method)
        return results.validate(doc)
    by_id = [(m, {t["id"]: t for t in d["tests"]}) for m, d in runs]
    tests = []
    for t in doc["tests"]:
        failing = [(m, tests_of[t["id"]]) for m, tests_of in by_id
                   if t["id"] in tests_of and tests_of[t["id"]]["outcome"] != "passed"]
        if not failing:
            tests.append(t)
            continue
        first_method, chosen = failing[0]
        chosen = {**chosen, "start_method": chosen.get("start_method") or first_method}
        under = [m for m, _ in failing]
        if first_method != method:
            chosen["message"] = (f"passes under {method}, fails under {', '.join(under)}: "
                                 + chosen["message"])
        elif len(under) < len(runs):
            passed = [m for m, _ in runs if m not in under]
            chosen["message"] = f"fails under {', '.join(under)} (passes under {', '.join(passed)}): " \
                + chosen["message"]
        tests.append(results.capped_test(chosen))
    doc["tests"] = tests
    for ex in doc["exercises"]:
        mine = [t for t in tests if t["exercise"] == ex["name"]]
        ex["score"] = round(sum(t["score"] for t in mine), 6)
        ex["tests_passed"] = sum(t["outcome"] == "passed" for t in mine)
        ex["message"] = results.common_message(mine)
    doc["score"] = round(sum(ex["score"] for ex in doc["exercises"]), 6)
    doc["duration"] = max(float(d.get("duration", 0.0)) for _, d in runs)
    return results.validate(doc)


# --------------------------------------------------------------------------- --watch
#
# ``mpgrade check --watch`` re-runs an exercise's public tests when one of its files is saved.
# Modification times are polled (a few stat calls a second): the standard library on every
# system, no watcher package, and an editor's save (write a temp file, rename it over) is seen
# like any other write.

Stamp = tuple[int, int] | None  # (mtime in ns, size), None for a missing file
# Between a save and the run: half a poll on average, plus the settle (bench/course.py measures
# save-to-result). An editor's save (temp file, rename) takes milliseconds; 20 stat calls a second
# per file cost nothing.
WATCH_POLL = 0.05  # seconds between looks
WATCH_SETTLE = 0.1  # a change counts once the files have stayed the same this long


def watched_files(assignment: Assignment, exercises: tuple[str, ...] = ()) -> dict[Path, str]:
    """The student's files of ``exercises`` (all: empty), each with its exercise's id."""
    return {ex.public_dir / name: ex.id for ex in assignment.exercises
            if not exercises or ex.id in exercises for name in ex.files}


def stamps(files: dict[Path, str] | list[Path]) -> dict[Path, Stamp]:
    out: dict[Path, Stamp] = {}
    for path in files:
        try:
            st = path.stat()
            out[path] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[path] = None
    return out


def wait_for_change(files: dict[Path, str], before: dict[Path, Stamp], *,
                    poll: float = WATCH_POLL, settle: float = WATCH_SETTLE) -> list[Path]:
    """Block until some of ``files`` differ from ``before`` and have then stayed the same for
    ``settle`` seconds (an editor may write a file in several steps); the changed files, in
    the order of ``files``. Ctrl-C (KeyboardInterrupt) is the way out."""
    while True:
        now = stamps(files)
        if now != before:
            while True:
                time.sleep(settle)
                later = stamps(files)
                if later == now:
                    return [path for path in files if now[path] != before.get(path)]
                now = later
        time.sleep(poll)


def write_json(doc: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")


def all_public_passed(doc: dict[str, Any]) -> bool:
    return doc["status"] == "graded" and bool(doc["tests"]) and all(
        t["outcome"] == "passed" for t in doc["tests"])


# --------------------------------------------------------------------------- what the student sees
#
# A failing test's message and output come from the student's processes (``tests[].output``:
# what they printed, the tracebacks of workers that crashed). They are turned into what a
# student can act on: paths as the student knows them, each distinct traceback once with how
# many processes raised it, the first lines printed, and ``file:line: message`` lines an
# editor jumps to. Only text is read here, never executed; the renderer escapes all of it.

MAX_PRINTED_LINES = 10
MAX_LINE = 300
MAX_CRASHES = 3
TRACEBACK_TAIL = 6

_TRACEBACK = "Traceback (most recent call last):"
_FRAME = re.compile(r'File "(?P<file>[^"\n]{1,300})", line (?P<line>\d{1,7})')
_HANG = re.compile(r"^\s+(?P<who>caller|worker) (?P<pid>\d{1,10}): (?P<what>.*?)(?P<file>[\w./-]{1,160}\.py)"
                   r":(?P<line>\d{1,7}) in (?P<rest>.*)$")
_STDLIB = re.compile(r'File "/[^"\n]{0,300}?/lib/python3\.\d+/')  # File ".../multiprocessing/process.py"
_PROCESS_HEADER = re.compile(r"^Process [\w.:-]{1,80}:$")


@dataclass(frozen=True)
class Crash:
    """One distinct traceback found in what the processes wrote, and how often it was seen."""

    where: str | None  # "exercises/01_spawn/spawn.py:12", the innermost frame in a student file
    error: str  # the last line: "NameError: name 'getpid' is not defined"
    tail: tuple[str, ...]  # the last lines of the traceback
    count: int


def student_paths(text: str, assignment: Assignment, exercise: str | None) -> str:
    """``spawn.py`` (as the harness reports it: relative to the submission) as the student knows
    it, ``exercises/01_spawn/spawn.py``."""
    names = {name: f"exercises/{ex.id}/{name}" for ex in assignment.exercises for name in ex.files
             if exercise is None or ex.id == exercise}
    if not names:
        return text
    pattern = re.compile(r'(?<![\w/.-])(' + "|".join(map(re.escape, names)) + r')(?=[":,)]|$)', re.M)
    return pattern.sub(lambda m: names[m.group(1)], text)


def shorter_paths(text: str) -> str:
    """Paths of the standard library from ``multiprocessing/...`` on, as a traceback's reader
    needs them (``File "multiprocessing/process.py"``)."""
    return _STDLIB.sub('File "', text)


def _is_student_file(path: str) -> bool:
    """A path :func:`student_paths` made: one of the student's own files."""
    return path.startswith("exercises/") and ".." not in path


def split_output(text: str) -> tuple[list[Crash], list[str]]:
    """The distinct tracebacks in ``text`` (in the order first seen) and the other lines.

    Workers that crash together write their tracebacks into one pipe at once, a frame at a
    time, so several tracebacks of the same bug arrive interleaved: a traceback region absorbs
    the lines it has already seen, and counts its ``Traceback`` lines as the processes that
    raised it. Lines are capped; nothing is interpreted but by these patterns.
    """
    found: dict[tuple[str, ...], list[Any]] = {}
    other: list[str] = []
    block: list[str] | None = None
    seen: set[str] = set()
    count = 0
    error_seen = False

    def close() -> None:
        if block:
            key = tuple(block)
            if key in found:
                found[key][1] += count
            elif len(found) < 50:
                found[key] = [block, count]

    for raw in text.splitlines():
        line = raw[:MAX_LINE]
        if line.strip() == _TRACEBACK:
            if block is not None and error_seen:
                close()
                block, seen, count, error_seen = None, set(), 0, False
            if block is None:
                block, seen, count = [line], {line}, 0
            count += 1
            continue
        if _PROCESS_HEADER.match(line) or line.startswith("[... more output cut]"):
            continue
        if block is not None:
            indented = line.startswith((" ", "\t")) or not line.strip()
            if line in seen:
                continue
            if indented or not error_seen:
                block.append(line)
                seen.add(line)
                error_seen = error_seen or not indented
                continue
            close()
            block, seen, count, error_seen = None, set(), 0, False
        other.append(line)
    close()
    result = []
    for lines, n in found.values():
        error = lines[-1].strip() if len(lines) > 1 and not lines[-1].startswith(" ") else ""
        where = None
        for line in lines:
            m = _FRAME.search(line)
            if m and _is_student_file(m["file"]):
                where = f"{m['file']}:{m['line']}"
        tail = tuple(_STDLIB.sub('File "', line) for line in lines[-TRACEBACK_TAIL:])
        result.append(Crash(where, error, tail, max(n, 1)))
    return result, other


def crashes(text: str) -> list[Crash]:
    """The distinct tracebacks in ``text`` (see :func:`split_output`)."""
    return split_output(text)[0]


def printed_lines(output: str, limit: int = MAX_PRINTED_LINES) -> tuple[list[str], int]:
    """The first ``limit`` lines the processes printed that are not part of a traceback, each
    capped; and how many more there were."""
    other = [line for line in split_output(output)[1]]
    while other and not other[-1].strip():
        other.pop()
    kept = [line + (" [...]" if len(line) >= MAX_LINE else "") for line in other[:limit]]
    return kept, max(len(other) - limit, 0)


def editor_lines(test: dict[str, Any]) -> list[str]:
    """``exercises/01_spawn/spawn.py:12: message`` for every place in the student's files a
    failure points to (tracebacks in the message and the output, each process of a hang):
    the form editors and IDEs read to jump to the line. ``test`` has student paths already."""
    tag = f"{test['outcome']}" + (f", {test['start_method']}" if test.get("start_method") else "")
    out: list[str] = []
    for crash in crashes(test.get("message", "")) + crashes(test.get("output", "")):
        if crash.where:
            line = f"{crash.where}: {crash.error} ({tag})"
            if line not in out:
                out.append(line)
    for text in test.get("message", "").splitlines():
        m = _HANG.match(text)
        if m and _is_student_file(m["file"]):
            out.append(f"{m['file']}:{m['line']}: {m['who']} {m['pid']} {m['what']}in {m['rest']} ({tag})")
    return out[:12]
