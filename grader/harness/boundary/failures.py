"""What a test sees when a student call went wrong: the failure taxonomy.

Each failure is an exception the test can catch or let fail; the plugin turns the class into
the result document's outcome (failed, timeout, crashed, output/memory/process limit).
"""

from __future__ import annotations

import builtins

from grader.harness.boundary.record import CallRecord


class StudentFailure(Exception):
    """Base of every way a student call can fail; ``outcome`` names it for the result document."""

    outcome = "failed"

    def __init__(self, message: str, record: CallRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class StudentError(StudentFailure):
    """The student's function raised; subclasses also derive from the builtin of the same name."""

    student_type = "Exception"
    traceback = ""


class StudentImportError(StudentFailure):
    outcome = "error"


class NotImplementedByStudent(StudentError, NotImplementedError):
    outcome = "not_implemented"
    student_type = "NotImplementedError"


class CallTimeout(StudentFailure):
    outcome = "timeout"


class OutputLimit(StudentFailure):
    outcome = "output_limit"


class CallCrashed(StudentFailure):
    """The calling process died (a signal, ``os._exit``) before it returned a value."""

    outcome = "crashed"


class MemoryLimit(StudentFailure):
    outcome = "memory_limit"


class ProcessLimit(StudentFailure):
    outcome = "process_limit"


class BoundaryError(StudentFailure):
    """The value could not cross the boundary (not plain data, too large, malformed)."""

    outcome = "failed"


_error_classes: dict[str, type[StudentError]] = {"NotImplementedError": NotImplementedByStudent}


def error_class(type_name: str, is_builtin: bool) -> type[StudentError]:
    """A StudentError subclass that is also the builtin exception named by the child.

    Only names of builtin exception classes are honoured; nothing of the child's is imported
    or instantiated here, the child only sends a name and strings.
    """
    base = getattr(builtins, type_name, None) if is_builtin else None
    if not (isinstance(base, type) and issubclass(base, Exception)) or base in (
        StopIteration,
        StopAsyncIteration,
    ):
        base = None
    key = type_name if base else "Exception"
    cls = _error_classes.get(key)
    if cls is None:
        bases = (StudentError, base) if base else (StudentError,)
        cls = type(f"Student{key}", bases, {"student_type": key})
        _error_classes[key] = cls
    return cls
