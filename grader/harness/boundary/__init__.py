"""The student-call boundary: run one call of a student function in its own process tree.

Student code never runs in the grader's process. Each call starts a fresh interpreter
(``_boot/mpgrade_child.py``) in a new session, optionally as another user, passes the
arguments as plain-data JSON, and reads back one JSON line. While the call runs, the process
tree is watched from outside, so tests can check that real worker processes ran, how many at
once, and that none was left behind. Whatever happens, every process of the session is killed
and reaped before the call returns: a hang costs one call, never the grader.

One module per concept, in the order a call meets them:

* ``runner``: the ``student`` fixture's object; ``student.module(name).function(*args)``;
* ``session``: ``with student.session() as s:``, one process for several operations, its
  objects reached through handles (``Remote``); ``helper``: the assignment's functions that
  tests pass to student code;
* ``pool``: spare children, booted while the previous call runs;
* ``child``: one started ``mpgrade_child`` (session, uid, pipes, seal word);
* ``claims``: workers' "I belong to this call" lines, checked against the kernel;
* ``call``: one call from request to the last reaped process, and what its outcome means;
* ``hangs``: stack dumps of a call that did not return, one line per process;
* ``residue``: what the student uid left between calls (files, IPC), removed without trust;
* ``record`` and ``failures``: what a test sees: the call's record, the failure taxonomy.

Process inspection (``/proc``) is ``grader.processes``, shared with the local sandbox.
"""

from grader.assignment import START_METHODS
from grader.harness.boundary.child import (
    MAX_RESULT,
    MAX_RESULT_DEPTH,
    MAX_RESULT_VALUES,
    sealed_from_exec,
)
from grader.harness.boundary.failures import (
    BoundaryError,
    CallCrashed,
    CallTimeout,
    MemoryLimit,
    NotImplementedByStudent,
    OutputLimit,
    ProcessLimit,
    StudentError,
    StudentFailure,
    StudentImportError,
)
from grader.harness.boundary.hangs import summarize_dump
from grader.harness.boundary.helper import Helper
from grader.harness.boundary.pool import SparePool
from grader.harness.boundary.record import CallRecord
from grader.harness.boundary.runner import ModuleProxy, StudentRunner
from grader.harness.boundary.session import Remote, Session, SessionClosed

__all__ = [
    "MAX_RESULT", "MAX_RESULT_DEPTH", "MAX_RESULT_VALUES", "START_METHODS", "BoundaryError",
    "CallCrashed", "CallRecord", "CallTimeout", "Helper", "MemoryLimit", "ModuleProxy", "Remote",
    "Session", "SessionClosed",
    "NotImplementedByStudent", "OutputLimit", "ProcessLimit", "SparePool", "StudentError",
    "StudentFailure", "StudentImportError", "StudentRunner", "sealed_from_exec", "summarize_dump",
]
