"""The student-call boundary: run one call of a student function in its own process tree.

Student code never runs in the grader's process. Each call starts a fresh interpreter
(``_boot/mpgrade_child.py``) in a new session, optionally as another user, passes the
arguments as plain-data JSON, and reads back one JSON line. While the call runs, the process
tree is watched from outside, so tests can check that real worker processes ran, how many at
once, and that none was left behind. Whatever happens, every process of the session is killed
and reaped before the call returns: a hang costs one call, never the grader.
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
from grader.harness.boundary.pool import SparePool
from grader.harness.boundary.record import CallRecord
from grader.harness.boundary.runner import ModuleProxy, StudentRunner

__all__ = [
    "MAX_RESULT", "MAX_RESULT_DEPTH", "MAX_RESULT_VALUES", "START_METHODS", "BoundaryError",
    "CallCrashed", "CallRecord", "CallTimeout", "MemoryLimit", "ModuleProxy",
    "NotImplementedByStudent", "OutputLimit", "ProcessLimit", "SparePool", "StudentError",
    "StudentFailure", "StudentImportError", "StudentRunner", "sealed_from_exec", "summarize_dump",
]
