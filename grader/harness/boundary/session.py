"""A session: several operations in one student process, sharing its objects.

``with student.session() as s:`` starts one watched process tree; ``s.module("buffer")`` reaches
the student's module in it. What comes back is plain data, or, for anything else (an instance,
a generator, a bound method), a :class:`Remote`: a numbered handle to an object that stays in
the student's process. The test never holds the object itself, so nothing of the student's
is ever unpickled or run in the grader; a handle is only a number the session's process looks
up in its own table. Every operation has the call's limit, is watched like a call (workers,
threads, CPU, output), and a failure (a hang, a crash) ends the session: its processes are
killed and later operations raise. When the block ends, what is still running is recorded
(``record.leftover``, ``threads_left``) and everything is killed and reaped, as after a call.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from grader._boot import mpgrade_plain as plain
from grader.harness.boundary.call import CallExecution
from grader.harness.boundary.helper import Helper
from grader.harness.boundary.record import CallRecord

if TYPE_CHECKING:
    from grader.harness.boundary.runner import StudentRunner

_sessions = itertools.count(1)


class SessionClosed(RuntimeError):
    """An operation on a session that has ended (its block is over, or an operation failed)."""


class Remote:
    """A handle to an object in the session's student process (an instance, a generator...).

    Reads like the object: ``obj.method(1)`` calls it there, ``obj.size`` reads an attribute,
    ``len(obj)``, ``x in obj``, ``obj[k]``, ``next(obj)`` and ``for x in obj`` work; values
    come back as plain data or as further handles. Names starting with ``_`` are refused
    (no walking to ``__class__`` or ``__reduce__``). Passed to a call of the same session, it
    crosses as its number and is the object again there.
    """

    __slots__ = ("_session", "_id", "_type", "_kind", "_attr")

    def __init__(self, session: Session, number: int, type_name: str, kind: str, attr: str = "") -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_id", number)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_attr", attr)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"{name!r}: names starting with _ are not reachable on a student object")
        return self._session._getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("student objects are changed through their methods, not from the test")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = {"handle": self._id, "attr": self._attr} if self._kind == "method" else {"handle": self._id}
        return self._session._call(target, args, kwargs, f"{self._name()}()")

    def __len__(self) -> int:
        if self._kind in ("generator", "iterator"):
            raise TypeError(f"a student {self._kind} has no len()")
        value = self._special("__len__")
        if type(value) is not int:
            raise TypeError(f"len() of {self._name()} gave {value!r}")
        return value

    def __contains__(self, item: Any) -> bool:
        return bool(self._special("__contains__", item))

    def __getitem__(self, key: Any) -> Any:
        return self._special("__getitem__", key)

    def __iter__(self) -> Remote:
        if self._kind in ("generator", "iterator"):
            return self
        return self._session._iter(self)  # a container: a new iterator each time, as in Python

    def __next__(self) -> Any:
        if self._kind not in ("generator", "iterator"):
            raise TypeError(f"{self!r} is not an iterator")
        items, done = self._session._take(self, 1)
        if not items:
            raise StopIteration
        return items[0]

    def _special(self, name: str, *args: Any) -> Any:
        return self._session._call({"handle": self._id, "attr": name}, args, {}, f"{self._name()}.{name}()")

    def _name(self) -> str:
        name = f"{self._type.rpartition('.')[2]}#{self._id}"
        return f"{name}.{self._attr}" if self._attr else name

    def __repr__(self) -> str:
        return f"<student {self._kind} {self._type} #{self._id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Remote) and other._session is self._session and other._id == self._id

    def __hash__(self) -> int:
        return hash((id(self._session), self._id))

    def __bool__(self) -> bool:
        return True


class SessionModule:
    """The student's module in a session: ``mod.Class(...)``, ``mod.function(...)``."""

    def __init__(self, session: Session, name: str) -> None:
        self._session, self._name = session, name

    def __getattr__(self, function: str) -> Any:
        if function.startswith("_"):
            raise AttributeError(function)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._session._call({"module": self._name, "function": function}, args, kwargs,
                                       f"{self._name}.{function}()", module=self._name)

        call.__name__ = function
        return call

    def __repr__(self) -> str:
        return f"<student module {self._name} in a session>"


class Session:
    """One student process for several operations (``student.session()``).

    ``s.module(name)``, ``s.helper("module.function")``, ``s.take(obj, n)``; ``s.last`` is the
    last operation's value and timing; ``s.record`` (also ``student.last`` once the session
    started) is what the whole session did, observed from outside.
    """

    def __init__(self, runner: StudentRunner, record: CallRecord, timeout: float) -> None:
        self._runner, self.record, self._timeout = runner, record, timeout
        self.number = next(_sessions)
        self._execution = CallExecution(runner, record, (), {}, timeout)
        self._execution.session = True
        self._execution.resolve = self._resolve
        self._open = False
        self._methods: dict[tuple[int, str], Remote] = {}

    # -- lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> Session:
        if self._runner.active is not None:
            raise RuntimeError("test bug: a session while another is open: one student process tree at a time")
        self._execution.open_session()
        self._open = True
        self._runner.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the session: record what is still running, kill and reap it all (once)."""
        if self._runner.active is self:
            self._runner.active = None
        if not self._execution.closed:
            self._open = False
            self._execution.close_session()

    # -- what tests use -------------------------------------------------------------------------

    def module(self, name: str) -> SessionModule:
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a module name")
        return SessionModule(self, name)

    def helper(self, name: str) -> Helper:
        return Helper(name, self)

    def call_helper(self, helper: Helper, args: tuple, kwargs: dict) -> Any:
        """Run one of the assignment's helpers in the session's process (``s.helper(name)(...)``)."""
        return self._call({"helper": helper.name}, args, kwargs, f"{helper.name}()")

    def take(self, obj: Remote, limit: int) -> list[Any]:
        """Up to ``limit`` items of a student generator or iterator (or iterable), in one step."""
        items, _done = self._take(obj, limit)
        return items

    @property
    def last(self) -> CallRecord:
        """The session's record, whose ``value`` and ``elapsed`` are the last operation's."""
        return self.record

    # -- operations ---------------------------------------------------------------------------------

    def _check(self, *values: Any) -> None:
        if not self._open or self._execution.ended:
            raise SessionClosed(self._execution.ended or "the session is closed")
        for value in values:
            if isinstance(value, Remote) and value._session is not self:
                raise ValueError(f"{value!r} belongs to another session: objects stay in the "
                                 "process they were made in")

    def _operate(self, op: dict[str, Any], what: str, module: str = "", timeout: float | None = None) -> Any:
        execution = self._execution
        execution.module = module
        self.record.operations += 1
        before = self._runner._limit_events()
        own = timeout or self._timeout
        budget = self._runner.budget  # a run with a time budget (PrairieLearn): its share
        limit, execution.limit_note = budget.limit(own) if budget is not None else (own, "")
        failure, answer = execution.operate(op, what, limit)
        if failure is not None:
            if execution.ended:  # a hang, a crash, a limit: the session's processes are gone
                self._open = False
            raise self._runner._explain_limits(failure, before)
        return answer

    def _encode_args(self, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        def other(value: Any) -> dict:
            if isinstance(value, Remote):
                self._check(value)
                return {plain.TAG: "handle", "id": value._id}
            if isinstance(value, Helper):
                return value.reference()
            raise plain.NotPlainData(f"a {type(value).__name__} cannot be passed to student code: pass plain "
                                     "data, a handle of this session, or s.helper('module.function')")

        try:
            return plain.encode(tuple(args), other=other)["v"], plain.encode(dict(kwargs), other=other)
        except plain.NotPlainData as exc:
            raise TypeError(f"test bug: {exc}") from None

    def _call(self, target: dict[str, Any], args: tuple, kwargs: dict, what: str, module: str = "") -> Any:
        self._check()
        encoded_args, encoded_kwargs = self._encode_args(args, kwargs)
        self._operate({"op": "call", **target, "args": encoded_args, "kwargs": encoded_kwargs}, what, module)
        return self.record.value

    def _getattr(self, obj: Remote, name: str) -> Any:
        """An attribute's value; for a method, a handle that calls it by name on the object.

        Methods are remembered: ``obj.put(1)`` is then one operation, not two. That is safe
        because calling one looks the name up on the object again, in the student's process.
        """
        self._check(obj)
        method = self._methods.get((obj._id, name))
        if method is not None:
            return method
        self._operate({"op": "getattr", "handle": obj._id, "attr": name}, f"{obj._name()}.{name}")
        value = self.record.value
        if isinstance(value, Remote) and value._kind == "method":
            if value._id != obj._id or value._attr != name:
                raise TypeError("the session's process answered with another object's method")
            self._methods[(obj._id, name)] = value
        return value

    def _iter(self, obj: Remote) -> Remote:
        self._check(obj)
        self._operate({"op": "iter", "handle": obj._id}, f"iter({obj._name()})")
        value = self.record.value
        if not isinstance(value, Remote):
            raise TypeError("the session's process answered iter() with something else than an iterator")
        return value

    def _take(self, obj: Remote, limit: int) -> tuple[list[Any], bool]:
        self._check(obj)
        if type(limit) is not int or not 0 <= limit <= plain.MAX_TAKE:
            raise ValueError(f"take() needs a limit from 0 to {plain.MAX_TAKE}")
        answer = self._operate({"op": "take", "handle": obj._id, "limit": limit}, f"taking from {obj._name()}")
        value = self.record.value
        if not isinstance(value, list):
            raise TypeError("the session's process answered take() with something else than a list")
        return value, answer.get("done") is True

    def _resolve(self, tag: str, data: dict) -> Any:
        """A handle in an answer: checked, as a :class:`Remote` of this session."""
        if tag != "handle":
            raise ValueError(f"a {tag} reference in an answer")
        number, type_name, kind = data.get("id"), data.get("type"), data.get("kind")
        attr = data.get("attr", "")
        if type(number) is not int or number < 1 or not isinstance(type_name, str) \
                or kind not in ("object", "callable", "generator", "iterator", "method") \
                or not isinstance(attr, str) or (kind == "method") != plain.reachable(attr):
            raise ValueError("malformed handle")
        return Remote(self, number, type_name[:200], kind, attr)

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<student session #{self.number} ({state})>"
