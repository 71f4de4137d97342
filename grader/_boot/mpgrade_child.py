"""The process that runs one call of a student function.

Started by ``grader.harness.boundary`` as ``python mpgrade_child.py`` in a new session with the boot
directory on PYTHONPATH. It boots first (the imports every call needs), then reads one request
line on stdin: the grader may start it well before the call, while the previous call runs.
Then it imports the student's module, calls the function, and writes exactly one JSON line to
the result descriptor: the value (plain data) or what went wrong. Then it waits to be killed,
so the grader can look at the process tree the call left behind (zombies, leftover workers)
before tearing it all down.

Standalone on purpose: it must not import ``grader`` (the student side sees only this folder).
"""

import json
import os
import sys
import time
import traceback

from mpgrade_wire import NPROC_ENV  # run as a script: the boot folder is sys.path[0]

MAX_TRACEBACK = 8_000


def _student_traceback(exc: BaseException, root: str) -> str:
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


def _failure(phase: str, exc: BaseException, root: str) -> dict:
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
        "traceback": _student_traceback(exc, root),
    }


def _oom_first() -> None:
    """When memory runs out, the kernel must pick a student process, never the grader."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def _read_request() -> dict | None:
    """The request line on stdin; None when stdin closes first (the grader is gone or needs no
    more calls). Stdin is then /dev/null, as the student's code has always found it."""
    line = sys.stdin.buffer.readline()
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    if not line.strip():
        return None
    return json.loads(line)


def _confine() -> None:
    """Limits the grader asked for, set at boot, before anything is read (nothing can raise them)."""
    nproc = os.environ.pop(NPROC_ENV, "")
    if nproc.isdigit():
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (int(nproc), int(nproc)))
        # In a sandbox (student code runs as a user of its own, with a process cap), also the
        # lowest CPU priority: when student processes spin, as a fork bomb's do on fork() failing,
        # the grader watching the call still gets the CPU and stops them in a fraction of a
        # second instead of several. Without privileges nobody can raise it again. Not done on
        # a student's own machine (no cap there), where it would slow their code down against
        # everything else running.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
        except OSError:
            pass


def main() -> None:
    # Boot: everything that does not depend on the call, done before the request arrives.
    _oom_first()
    _confine()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import importlib
    import multiprocessing

    import mpgrade_plain  # noqa: E402 - from the boot folder, after sys.path is set

    request = _read_request()
    if request is None:
        os._exit(0)
    sitecustomize = sys.modules.get("sitecustomize")
    if hasattr(sitecustomize, "unseal"):
        sitecustomize.unseal()
    result_fd = int(request["result_fd"])
    root = os.path.abspath(request["path"])

    def send(obj: dict) -> None:
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(result_fd, view[:1 << 20])
            view = view[n:]
        os.close(result_fd)

    if request.get("start_method"):
        multiprocessing.set_start_method(request["start_method"], force=True)
    sys.path.insert(0, root)
    os.chdir(request.get("cwd") or root)

    try:
        module = importlib.import_module(request["module"])
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import time is a student error too
        send(_failure("import", exc, root))
        return
    func = getattr(module, request["function"], None)
    if not callable(func):
        send({"ok": False, "phase": "lookup", "type": "AttributeError", "builtin": True,
              "message": f"{request['module']}.py has no function {request['function']}()",
              "traceback": ""})
        return
    try:
        args = mpgrade_plain.decode(request["args"])
        kwargs = mpgrade_plain.decode(request["kwargs"])
        started = time.perf_counter()
        value = func(*args, **kwargs)
        elapsed = time.perf_counter() - started
    except BaseException as exc:  # noqa: BLE001 - sys.exit() inside the function is reported too
        send(_failure("call", exc, root))
        return
    try:
        encoded = mpgrade_plain.encode(value)
    except mpgrade_plain.NotPlainData as exc:
        send(_failure("return", exc, root))
        return
    send({"ok": True, "value": encoded, "elapsed": elapsed})


if __name__ == "__main__":
    try:
        main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # Stay alive until the grader has looked at the process tree and kills the session.
    while True:
        time.sleep(3600)
