"""What went wrong in a failing test, named from what the grader saw, so a hint can be chosen.

A test's own hint (``@pytest.mark.hint``) is written for the mistake its author expected; a
student who made another one (a syntax error, threads instead of processes, a deadlock) is
better served by a hint about *that*. The grader already knows which it was: the outcome, the
call records (workers seen, peak concurrency, zombies, leftovers) and where each process was
when a call hung. :func:`diagnose` turns those into names, most specific first; authors map
names to hints as data (``[hints]`` in ``assignment.toml``, ``hints`` of one exercise, or
``@pytest.mark.hint_when(name, text)`` on a test), and :func:`choose_hint` picks one.

Every input may come from student code (messages, output, dump lines): it is only matched
against fixed patterns here, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Every name :func:`diagnose` can give, in the order a hint is chosen (most specific first),
# with what it means: the catalogue docs/authoring.md lists.
DIAGNOSES: dict[str, str] = {
    "syntax_error": "the module could not be imported: a SyntaxError or IndentationError",
    "import_error": "the module could not be imported: it raised while being imported",
    "import_time_processes": "the module starts processes (or hangs) while it is being imported "
                             "(no `if __name__ == '__main__':` guard)",
    "missing_function": "the module has no function of that name",
    "not_implemented": "the function still raises NotImplementedError",
    "unpicklable_target": "a lambda, nested function or other unpicklable object was given to a "
                          "process under spawn/forkserver",
    "output_limit": "the call printed more than the output limit",
    "memory_limit": "the call ran out of memory",
    "process_limit": "the call started too many processes (a fork bomb?)",
    "no_process_started": "the calls started no process at all (threads, or the work done in the caller)",
    "blocked_in_get": "a process was blocked receiving (Queue.get, Connection.recv) a message that never came",
    # After blocked_in_get: a second reader of a Queue waits on the queue's own read lock
    # (synchronize.py __enter__) while the first waits for the message.
    "blocked_in_acquire": "a process was blocked acquiring a Lock or Semaphore nobody released",
    "blocked_in_put": "a process was blocked putting into a full Queue",
    # Before blocked_in_join: a caller joining workers that wait at a Barrier is about the Barrier.
    "blocked_in_wait": "a thread or process waited forever in wait() of a Condition, Event or Barrier "
                       "(threading or multiprocessing)",
    "blocked_in_join": "a process was blocked in join() of a process (or thread) that did not end",
    "busy_loop": "a process was running (using CPU) when the call's time ran out: a loop that never ends",
    "worker_crashed": "a worker process raised an exception (its traceback is in the output)",
    "workers_never_overlapped": "several workers were started but never two ran at the same time "
                                "(each started and joined in the same loop)",
    "workers_not_joined": "workers ended but were never joined (zombies)",
    "workers_left_running": "workers were still running when the function returned",
    "timeout": "a call did not return within its time limit",
    "crashed": "the calling process died (os._exit, a signal)",
}

# A failure that says nothing about the test's subject: the test's own hint would mislead.
NOT_ABOUT_THE_TEST = frozenset({
    "syntax_error", "import_error", "import_time_processes", "missing_function", "not_implemented",
})

_BLOCKED = (
    ("blocked_in_acquire", re.compile(r"waiting in (synchronize\.py:\d+ in (__enter__|acquire)|"
                                      r"[\w.]+:\d+ in acquire)\(\)")),
    ("blocked_in_put", re.compile(r"waiting in queues\.py:\d+ in put\(\)")),
    ("blocked_in_get", re.compile(r"waiting in (queues\.py:\d+ in get|connection\.py:\d+ in "
                                  r"(_recv|recv|_recv_bytes|recv_bytes|_poll|poll|wait))\(\)")),
    ("blocked_in_wait", re.compile(r"waiting in (threading|synchronize)\.py:\d+ in (wait|wait_for|_wait)\(\)")),
    # A thread's join() waits in threading.py's _wait_for_tstate_lock (a threading exercise).
    ("blocked_in_join", re.compile(r"waiting in (popen_fork\.py:\d+ in (wait|poll)|process\.py:\d+ in join|"
                                   r"popen_spawn_posix\.py:\d+ in wait|popen_forkserver\.py:\d+ in wait|"
                                   r"threading\.py:\d+ in (join|_wait_for_tstate_lock))\(\)")),
)
_IMPORT_FAILED = re.compile(r"could not import [\w.]+: (?P<type>\w+):")
_UNPICKLABLE = re.compile(r"(Can't pickle|cannot pickle|Can't get local object|PicklingError|"
                          r"pickle local object)")
_IMPORT_TIME = re.compile(r"(while importing [\w.]+\.py|before the current process has finished its "
                          r"bootstrapping phase)")


def diagnose(outcome: str, message: str, output: str, records: Sequence[Any]) -> list[str]:
    """The names of what went wrong (see :data:`DIAGNOSES`), most specific first; [] for a pass."""
    if outcome == "passed":
        return []
    found: set[str] = set()
    m = _IMPORT_FAILED.search(message)
    if m:
        found.add("syntax_error" if m["type"] in ("SyntaxError", "IndentationError", "TabError")
                  else "import_error")
    if " has no function " in message:
        found.add("missing_function")
    if outcome == "not_implemented":
        found.add("not_implemented")
    if _IMPORT_TIME.search(message) or _IMPORT_TIME.search(output):
        found.add("import_time_processes")
    if _UNPICKLABLE.search(message) or _UNPICKLABLE.search(output):
        found.add("unpicklable_target")
    if outcome in ("output_limit", "memory_limit", "process_limit", "timeout", "crashed"):
        found.add(outcome)
    if outcome == "timeout":
        for name, pattern in _BLOCKED:
            if pattern.search(message):
                found.add(name)
        if "running (using CPU)" in message:
            found.add("busy_loop")
    if "Traceback (most recent call last):" in output:
        found.add("worker_crashed")
    if records and not found & NOT_ABOUT_THE_TEST:
        if not any(r.workers for r in records):
            found.add("no_process_started")
        if any(len(r.workers) >= 2 and r.peak_processes <= 1 for r in records):
            found.add("workers_never_overlapped")
        if any(r.zombies for r in records):
            found.add("workers_not_joined")
        if any(r.leftover for r in records):
            found.add("workers_left_running")
    return [name for name in DIAGNOSES if name in found]


def choose_hint(diagnoses: Sequence[str], *, test_hint: str | None, runtime_hint: str | None,
                per_test: Mapping[str, str], per_exercise: Mapping[str, str],
                per_assignment: Mapping[str, str]) -> str | None:
    """The hint a failing test shows.

    A failure that is not about the test's subject (a syntax error, a stub) never shows the
    test's hint: the hint for its diagnosis, or none. Otherwise a hint the test raised at run
    time (``Mistake(hint=...)``) comes first, then the hint for the first diagnosis that has one
    (the test's ``hint_when``, then the exercise's, then the assignment's), then the test's own.
    """
    def for_diagnosis() -> str | None:
        for name in diagnoses:
            for table in (per_test, per_exercise, per_assignment):
                if table.get(name):
                    return table[name]
        return None

    if any(name in NOT_ABOUT_THE_TEST for name in diagnoses):
        return for_diagnosis()
    return runtime_hint or for_diagnosis() or test_hint


def check_hints(table: Any, where: str) -> dict[str, str]:
    """A ``{diagnosis: hint}`` table as authors write it; a ValueError names an unknown name."""
    if table is None:
        return {}
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{where}: hints must be a table of diagnosis = \"hint\"")
    unknown = sorted(set(table) - set(DIAGNOSES))
    if unknown:
        raise ValueError(f"{where}: unknown diagnoses {unknown} (known: {', '.join(DIAGNOSES)})")
    return dict(table)
