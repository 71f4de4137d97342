"""What a student process does for one request: call something, read an attribute, take items.

Loaded by ``mpgrade_child`` from the boot folder (standard library only: the student side sees
only this folder). A plain call is one ``call`` request. A session (``student.session()``) is
many requests to the same process, sharing its objects: what is not plain data stays here, in
the session's table, and crosses as a numbered reference (a *handle*); the test's side holds
only the number. Nothing here is secret or trusted: it runs in the student's process, so the
student's code could change any of it; it only decides how the student's own objects are
reached, and the grader checks every answer it gets (size, shape) like any other.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
import traceback
from typing import Any

import mpgrade_plain as plain

MAX_TRACEBACK = 8_000
SPECIAL, MAX_TAKE, reachable = plain.SPECIAL, plain.MAX_TAKE, plain.reachable


class Refused(Exception):
    """A request this process will not carry out (the test's mistake, not the student's)."""


def student_traceback(exc: BaseException, root: str) -> str:
    """The traceback limited to frames in the student's files (plus the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if os.path.abspath(f.filename).startswith(root + os.sep)]
    if frames and (not keep or keep[-1] is not frames[-1]):
        keep.append(frames[-1])
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(keep)
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    if len(text) > MAX_TRACEBACK:
        text = text[: MAX_TRACEBACK // 2] + "\n[...]\n" + text[-MAX_TRACEBACK // 2 :]
    return text


def _raised_in(exc: BaseException, root: str) -> str:
    """The student's function the exception was raised in (innermost frame in their files)."""
    name = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename).startswith(root + os.sep):
            name = frame.name
    return name


def failure(phase: str, exc: BaseException, root: str) -> dict:
    try:
        message = str(exc)
    except Exception:
        message = "<str() of the exception failed>"
    return {
        "ok": False,
        "phase": phase,
        "type": type(exc).__name__,
        "builtin": type(exc).__module__ == "builtins",
        "message": message[:2000],
        "traceback": student_traceback(exc, root),
        "raised_in": _raised_in(exc, root)[:200],
    }


def refused(message: str) -> dict:
    return {"ok": False, "phase": "refused", "type": "Refused", "builtin": False,
            "message": message[:2000], "traceback": ""}


def _kind(value: Any) -> str:
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        return "generator"
    if hasattr(type(value), "__next__") or hasattr(type(value), "__anext__"):
        return "iterator"
    if callable(value):
        return "callable"
    return "object"


class Table:
    """The session's objects, by number. Only this process holds them."""

    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self.next_id = 1

    def store(self, value: Any) -> dict:
        number = self.next_id
        self.next_id += 1
        self.objects[number] = value
        t = type(value)
        return {plain.TAG: "handle", "id": number, "type": f"{t.__module__}.{t.__qualname__}"[:200],
                "kind": _kind(value)}

    def get(self, number: Any) -> Any:
        if type(number) is not int or number not in self.objects:
            raise Refused(f"no object #{number} in this session (released, or from another session)")
        return self.objects[number]


class AsyncWatch:
    """How an ``async def`` ran: tasks it created and the most that were pending at once, so a
    test can tell overlapping work from work awaited one after the other."""

    def __init__(self) -> None:
        self.tasks = 0
        self.pending = 0
        self.peak = 0
        self.over = False  # asyncio.run's own clean-up tasks are not the student's

    def factory(self, loop: Any, coro: Any, **kwargs: Any) -> Any:
        import asyncio

        task = asyncio.Task(coro, loop=loop, **kwargs)
        if self.over:
            return task
        self.tasks += 1
        self.pending += 1
        self.peak = max(self.peak, self.pending)
        task.add_done_callback(self._done)
        return task

    def _done(self, _task: Any) -> None:
        self.pending -= 1  # counted only for tasks made while the student's coroutine ran

    def run(self, awaitable: Any) -> Any:
        import asyncio

        async def main() -> Any:
            asyncio.get_running_loop().set_task_factory(self.factory)
            try:
                return await awaitable
            finally:
                self.over = True

        # The task that runs ``main`` itself was made before the factory was set: not counted.
        return asyncio.run(main())

    def report(self) -> dict:
        return {"tasks": self.tasks, "peak_tasks": self.peak}


class Operations:
    """Carries out requests in this process: the student's code, the assignment's helpers."""

    def __init__(self, root: str, helpers: str | None, table: Table | None) -> None:
        self.root, self.helpers, self.table = root, helpers, table

    # -- references in arguments ------------------------------------------------------------

    def _resolve(self, tag: str, data: dict) -> Any:
        if tag == "handle":
            if self.table is None:
                raise Refused("an object of a session passed to a call outside it")
            return self.table.get(data.get("id"))
        return self.helper(str(data.get("name", "")))

    def helper(self, name: str) -> Any:
        """``module.function`` from the assignment's helpers folder, and only from there."""
        module_name, _, attr = name.rpartition(".")
        if not self.helpers or not module_name or not all(p.isidentifier() for p in name.split(".")):
            raise Refused(f"no helper {name!r}: helpers are named module.function from the "
                          "assignment's helpers folder")
        if attr.startswith("_"):
            raise Refused(f"helper {name!r}: names starting with _ are not reachable")
        module = importlib.import_module(module_name)
        origin = os.path.abspath(getattr(module, "__file__", "") or "")
        if not origin.startswith(os.path.abspath(self.helpers) + os.sep):
            raise Refused(f"helper module {module_name} is not the assignment's: {module_name}.py "
                          "elsewhere on the path shadows it")
        return getattr(module, attr)

    def _args(self, request: dict) -> tuple[tuple, dict]:
        args = plain.decode(request.get("args", []), resolve=self._resolve)
        kwargs = plain.decode(request.get("kwargs", {}), resolve=self._resolve)
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise Refused("malformed arguments")
        return tuple(args), kwargs

    def _encode(self, value: Any) -> Any:
        return plain.encode(value, other=self.table.store if self.table is not None else None)

    # -- requests ---------------------------------------------------------------------------

    def perform(self, request: dict) -> dict:
        op = request.get("op", "call")
        try:
            if op == "call":
                return self._call(request)
            if op == "getattr":
                return self._getattr(request)
            if op == "take":
                return self._take(request)
            if op == "iter":
                return self._iter(request)
            if op == "release":
                if self.table is not None:
                    self.table.objects.pop(request.get("id"), None)
                return {"ok": True, "value": None}
            raise Refused(f"unknown operation {op!r}")
        except Refused as exc:
            return refused(str(exc))

    def _target(self, request: dict) -> tuple[Any, str] | dict:
        """What to call, or the failure of finding it (import errors are the student's)."""
        if "handle" in request:
            obj = self.table.get(request["handle"]) if self.table is not None else None
            attr = request.get("attr")
            if attr is None:
                return obj, ""
            if not reachable(attr):
                raise Refused(f"{attr!r} is not reachable: names starting with _ are refused")
            if attr in SPECIAL and getattr(type(obj), attr, None) is None:
                # As Python looks them up (on the type): len() of an object without __len__ is
                # a TypeError, which list() and the like expect to catch.
                return {"ok": False, "phase": "call", "type": "TypeError", "builtin": True,
                        "message": f"a {type(obj).__name__} object has no {attr}", "traceback": ""}
            missing = _missing(obj, attr)
            if missing:
                return missing
            try:
                return getattr(obj, attr), attr
            except BaseException as exc:  # noqa: BLE001 - a property raising is the student's
                return failure("call", exc, self.root)
        if "helper" in request:
            return self.helper(str(request["helper"])), str(request["helper"])
        module_name, function = str(request.get("module")), str(request.get("function"))
        if not reachable(function) or function.startswith("_"):
            raise Refused(f"{function!r} is not reachable: names starting with _ are refused")
        try:
            module = importlib.import_module(module_name)
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import time is a student error too
            return failure("import", exc, self.root)
        func = getattr(module, function, None)
        if not callable(func):
            what = "class or function" if function[:1].isupper() else "function"
            return {"ok": False, "phase": "lookup", "type": "AttributeError", "builtin": True,
                    "message": f"{module_name}.py has no {what} {function}()", "traceback": ""}
        return func, function

    def _call(self, request: dict) -> dict:
        found = self._target(request)
        if isinstance(found, dict):
            return found
        func, _name = found
        if not callable(func):
            raise Refused("that object cannot be called")
        args, kwargs = self._args(request)
        watch = None
        try:
            started = time.perf_counter()
            value = func(*args, **kwargs)
            if inspect.isawaitable(value) and request.get("await", True):
                watch = AsyncWatch()
                value = watch.run(value)
            elapsed = time.perf_counter() - started
        except BaseException as exc:  # noqa: BLE001 - sys.exit() inside the function is reported too
            return failure("call", exc, self.root)
        return self._answer(value, elapsed, watch)

    def _answer(self, value: Any, elapsed: float, watch: AsyncWatch | None = None) -> dict:
        try:
            encoded = self._encode(value)
        except plain.NotPlainData as exc:
            return failure("return", exc, self.root)
        except Exception as exc:  # noqa: BLE001 - a value whose own methods raise, or a patched encoder
            return failure("return", exc, self.root)
        answer = {"ok": True, "value": encoded, "elapsed": elapsed}
        if watch is not None:
            answer["async"] = watch.report()
        return answer

    def _getattr(self, request: dict) -> dict:
        if self.table is None:
            raise Refused("attributes are read in a session")
        obj = self.table.get(request.get("handle"))
        attr = request.get("attr")
        if not reachable(attr) or attr in SPECIAL:
            raise Refused(f"{attr!r} is not reachable: names starting with _ are refused")
        missing = _missing(obj, attr)
        if missing:
            return missing
        started = time.perf_counter()
        try:
            value = getattr(obj, attr)
        except BaseException as exc:  # noqa: BLE001 - a property's exception is the student's
            return failure("call", exc, self.root)
        if inspect.ismethod(value) and value.__self__ is obj:
            # Not kept: calling it looks the name up on the object again (``_target``).
            t = type(obj)
            return {"ok": True, "elapsed": time.perf_counter() - started,
                    "value": {plain.TAG: "handle", "id": request["handle"], "kind": "method",
                              "type": f"{t.__module__}.{t.__qualname__}"[:200], "attr": attr}}
        return self._answer(value, time.perf_counter() - started)

    def _iter(self, request: dict) -> dict:
        """A new iterator over a session's object (``for x in obj`` in a test): a handle."""
        if self.table is None:
            raise Refused("objects are iterated in a session")
        obj = self.table.get(request.get("handle"))
        started = time.perf_counter()
        try:
            it = iter(obj)
        except BaseException as exc:  # noqa: BLE001 - not iterable, or its __iter__ raised: the student's
            return failure("call", exc, self.root)
        answer = {"ok": True, "elapsed": time.perf_counter() - started, "value": self.table.store(it)}
        return answer

    def _take(self, request: dict) -> dict:
        """Up to ``limit`` items of an iterator or iterable, as a list, and whether it ended."""
        if self.table is None:
            raise Refused("items are taken in a session")
        obj = self.table.get(request.get("handle"))
        limit = request.get("limit")
        if type(limit) is not int or not 0 <= limit <= MAX_TAKE:
            raise Refused(f"take() needs a limit from 0 to {MAX_TAKE}")
        items: list[Any] = []
        done = False
        started = time.perf_counter()
        watch = None
        try:
            if hasattr(type(obj), "__anext__") or hasattr(type(obj), "__aiter__"):
                watch = AsyncWatch()
                items, done = watch.run(_take_async(obj, limit))
            else:
                it = obj if hasattr(type(obj), "__next__") else iter(obj)  # a container: from its start
                while len(items) < limit:
                    try:
                        items.append(next(it))
                    except StopIteration:
                        done = True
                        break
        except BaseException as exc:  # noqa: BLE001 - the generator's exception is the student's
            return failure("call", exc, self.root)
        answer = self._answer(items, time.perf_counter() - started, watch)
        answer["done"] = done
        return answer


def _missing(obj: Any, attr: str) -> dict | None:
    """A method or attribute the student's class does not have, said as a missing name (the
    stub's names must be kept), not as an AttributeError raised in the grader's own code. Only
    when neither the instance nor its class has it: a ``__getattr__`` of the student's decides."""
    cls = type(obj)
    try:
        if hasattr(cls, "__getattr__") or hasattr(cls, attr) or attr in getattr(obj, "__dict__", {}):
            return None
    except Exception:  # a __dict__ property of the student's that raises: let getattr say it
        return None
    return {"ok": False, "phase": "lookup", "type": "AttributeError", "builtin": True,
            "message": f"{cls.__name__} ({cls.__module__}.py) has no function {attr}() (no method or "
                       "attribute of that name): keep the names of the stub", "traceback": ""}


async def _take_async(obj: Any, limit: int) -> tuple[list, bool]:
    it = obj.__aiter__() if not hasattr(type(obj), "__anext__") else obj
    items: list[Any] = []
    while len(items) < limit:
        try:
            items.append(await it.__anext__())
        except StopAsyncIteration:
            return items, True
    return items, False


def on_path(folder: str | None) -> None:
    """Put the assignment's helpers folder on the path, after the student's folder."""
    if folder and folder not in sys.path:
        sys.path.insert(1, folder)
