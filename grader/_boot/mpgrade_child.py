"""The process that runs one call of a student function, or one session of several.

Started by ``grader.harness.boundary`` as ``python mpgrade_child.py`` in a new session with the boot
directory on PYTHONPATH. It boots first (the imports every call needs), then reads one request
line on stdin: the grader may start it well before the call, while the previous call runs.
For a call, it imports the student's module, calls the function (awaiting it if it is an
``async def``), and writes exactly one JSON line to the result descriptor: the value (plain
data) or what went wrong. For a session (``student.session()``), it answers request after
request the same way (``mpgrade_ops``), keeping the student's objects between them. Then it
waits to be killed, so the grader can look at the process tree the call left behind (zombies,
leftover workers) before tearing it all down.

Standalone on purpose: it must not import ``grader`` (the student side sees only this folder).
"""

import json
import os
import sys
import time

from mpgrade_wire import NPROC_ENV  # run as a script: the boot folder is sys.path[0]


def _oom_first() -> None:
    """When memory runs out, the kernel must pick a student process, never the grader."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


class _Requests:
    """The request lines on what was stdin. One for a call; one per operation for a session,
    whose channel stays open (moved to a descriptor of its own) until the grader closes it.
    Stdin is /dev/null from the first line on, as the student's code has always found it."""

    def __init__(self) -> None:
        self.fd = 0
        self.buffer = b""

    def first(self) -> dict | None:
        request = self.next()
        if request is not None and request.get("session"):
            self.fd = os.dup(0)  # not inheritable: spawned workers never get it
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        return request

    def next(self) -> dict | None:
        """The next request; None when the channel closes (the grader needs no more)."""
        while b"\n" not in self.buffer:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:  # the student's code made our channel non-blocking
                os.set_blocking(self.fd, True)
                continue
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        if not line.strip():
            return None
        return json.loads(line)

    def close(self) -> None:
        if self.fd != 0:
            os.close(self.fd)


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
    import multiprocessing

    import mpgrade_ops  # noqa: E402 - from the boot folder, after sys.path is set

    requests = _Requests()
    request = requests.first()
    if request is None:
        os._exit(0)
    sitecustomize = sys.modules.get("sitecustomize")
    if hasattr(sitecustomize, "unseal"):
        sitecustomize.unseal()
    result_fd = int(request["result_fd"])
    root = os.path.abspath(request["path"])
    session = bool(request.get("session"))

    def send(obj: dict) -> None:
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(result_fd, view[:1 << 20])
            view = view[n:]

    if request.get("start_method"):
        multiprocessing.set_start_method(request["start_method"], force=True)
    sys.path.insert(0, root)
    mpgrade_ops.on_path(request.get("helpers"))
    os.chdir(request.get("cwd") or root)
    ops = mpgrade_ops.Operations(root, request.get("helpers"), mpgrade_ops.Table() if session else None)
    if not session:
        send(ops.perform(request))
        os.close(result_fd)
        return
    # A session: one answer per request, each tagged with the request's number, until the
    # grader closes the channel; then wait to be looked at and killed, as after a call.
    while request is not None:
        answer = ops.perform(request) if request.get("op") else {"ok": True, "value": None}
        send({**answer, "seq": request.get("seq")})
        request = requests.next()
    requests.close()
    os.close(result_fd)


if __name__ == "__main__":
    try:
        main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # Stay alive until the grader has looked at the process tree and kills the session.
    while True:
        time.sleep(3600)
