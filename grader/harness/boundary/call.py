"""One call, from start to the last reaped process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import processes
from grader._boot import mpgrade_plain as plain
from grader.harness.boundary.child import (
    KEEP_OUTPUT,
    MAX_RESULT,
    MAX_RESULT_DEPTH,
    MAX_RESULT_VALUES,
    Child,
)
from grader.harness.boundary.failures import (
    BoundaryError,
    CallCrashed,
    CallTimeout,
    NotImplementedByStudent,
    OutputLimit,
    ProcessLimit,
    StudentFailure,
    StudentImportError,
    error_class,
)
from grader.harness.boundary.hangs import dump_sizes, summarize_dump, wait_for_dumps
from grader.harness.boundary.helper import Helper
from grader.harness.boundary.output import unframe
from grader.harness.boundary.record import CallRecord

if TYPE_CHECKING:
    from grader.harness.boundary.runner import StudentRunner
from grader.protocol import boundedjson

CPU_WINDOW = 0.2  # seconds a hung call's processes are watched for CPU use, dumps included


class _GoneBeforeRequest(Exception):
    """A pre-started child died between being taken and being sent its request."""


def _count(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value < 1 << 31 else None


class CallExecution:
    """One call, from start to the last reaped process. Kept apart so the steps read in order."""

    def __init__(self, runner: StudentRunner, record: CallRecord, args: tuple, kwargs: dict, timeout: float,
                 limit_note: str = ""):
        self.runner, self.record, self.timeout = runner, record, timeout
        self.limit_note = limit_note  # why the limit is shorter than the call's own (a time budget)
        self.args, self.kwargs = args, kwargs
        self.root = str(Path(runner.path).resolve())
        self.seen: dict[int, tuple[float, int]] = {}
        self.live_workers = 0
        self.pid_floor: int | None = None
        self.child: Child  # set when the call starts
        self.threads: set[int] = set()  # thread IDs seen in the tree: never workers
        # Each worker's first and last look (poll number) at it alive: the peak is counted from
        # these once helpers are told apart (one seen between its fork and exec looked like a
        # worker, alive all call long, and made one worker look like two at the same time).
        self.polls = 0
        self.alive_in: dict[int, list[int]] = {}
        # A session's state (``open_session`` .. ``close_session``): one process, many operations.
        self.session = False
        self.what = ""  # the operation under way, as the messages name it
        self.module = ""  # the module it imports, for import errors
        self.seq = 0
        self.answer: dict[str, Any] = {}
        self.resolve: Any = None  # turns a handle in an answer into the test's object for it
        self.ended = ""  # why the session can take no more operations
        self.closed = False

    def _request(self) -> dict[str, Any]:
        record = self.record
        base = {"start_method": record.start_method, "path": self.root,
                "helpers": str(self.runner.helpers) if self.runner.helpers else None}
        if self.session:
            return {**base, "session": True}
        def other(value: Any) -> dict[str, str]:
            if isinstance(value, Helper):
                return value.reference()
            raise plain.NotPlainData(f"a {type(value).__name__} cannot be passed to student code: pass "
                                     "plain data or student.helper('module.function')")

        try:
            return {**base, "module": record.module, "function": record.function,
                    "args": plain.encode(tuple(self.args), other=other)["v"],
                    "kwargs": plain.encode(dict(self.kwargs), other=other)}
        except plain.NotPlainData as exc:
            raise TypeError(f"test bug: arguments must be plain data ({exc})") from None

    def _acquire(self) -> Child:
        runner = self.runner
        key = (runner.python, runner.user, runner.scratch, runner.max_processes if runner.user else None,
               self.root)
        spares = runner.spares
        child = spares.take(key) if spares is not None else None
        if child is not None and not child.waiting():
            child.discard()
            child = None
        if child is not None:
            child.spare = True
        if child is None:
            child = Child(*key)
        if spares is not None:
            try:
                spares.prepare(key)  # the next call's child, before this call's PID window opens
            except BaseException:
                child.discard()
                raise
        return child

    def run(self) -> StudentFailure | None:
        """A call: start, watch, look at what is left, tear down, say what it meant."""
        request = self._request()
        child = self._acquire()
        try:
            try:
                return self._run(child, request)
            except _GoneBeforeRequest:
                child.remove()
                child = Child(*child.key)
                return self._run(child, request)
        except BaseException:
            child.stop()  # a failure of ours (or Ctrl-C) before the call was under way
            raise
        finally:
            self._finish(child)

    def _finish(self, child: Child) -> None:
        try:  # first, so that no escaped process can meddle with what is removed next
            self.record.escaped = self.runner.clear_user()
        finally:
            child.remove()

    def _run(self, child: Child, request: dict[str, Any]) -> StudentFailure | None:
        record = self.record
        self.child = child
        record.pid = child.pid
        self.pid_floor = processes.last_pid()
        started = time.monotonic()
        failure: StudentFailure | None = None
        try:
            if not child.send({**request, "cwd": str(child.home)}) and child.spare:
                raise _GoneBeforeRequest  # a spare that died after all: start a fresh child
            outcome = self._watch(child.proc, started)
            record.duration = record.wall = time.monotonic() - started
            if outcome in ("result", "exited"):
                # Only a call that ended by itself has a process tree worth describing; after a
                # fork bomb or a flood, every millisecond spent looking lets it do more harm.
                self._take_claims()
                self._snapshot(child.pid)
            if outcome == "timeout":
                failure = CallTimeout(self._timeout_message(child.pid, child.dumps), record)
        finally:
            self._torn_down(child)
        if failure is not None:
            return failure
        return self._limit_failure(outcome) or self._interpret(bytes(child.result).split(b"\n", 1)[0])

    def _torn_down(self, child: Child) -> None:
        """Kill and reap every process of the call, then fill in what the record still lacks."""
        record = self.record
        try:
            child.stop(also=set(self.seen))
        finally:
            record.exit_status = child.proc.returncode
            record.peak_processes = self._peak()
            self._take_claims()  # again: workers that started while the call was torn down
            # A frame naming a process the grader never saw in the call counts as nobody's.
            known = {record.pid, *record.workers, *record.helpers, *self.seen}
            record.stdout, out_lines = unframe(bytes(child.out), "stdout", known)
            record.stderr, err_lines = unframe(bytes(child.err), "stderr", known)
            record.stdout, record.stderr = record.stdout[:KEEP_OUTPUT], record.stderr[:KEEP_OUTPUT]
            record.printed = out_lines + err_lines
            record.output_bytes = child.output_total
            record.cpu_time = sum(cpu for cpu, _ in self.seen.values())

    def _limit_failure(self, outcome: str) -> StudentFailure | None:
        if outcome == "processes":
            return ProcessLimit(f"{self._what()} started more than {self.runner.max_processes - 8} "
                                "processes at once and was stopped (a fork bomb?)", self.record)
        if outcome == "output":
            return OutputLimit(
                f"{self._what()} printed more than {self.runner.output_limit // (1024 * 1024)} MiB "
                "and was stopped", self.record)
        return None

    # -- a session: several operations, one process tree ------------------------------------------

    def open_session(self) -> None:
        """Start the session's process and wait for it to be ready for operations."""
        request = self._request()
        child = self._acquire()
        child.session = True
        self.child = child
        self.record.pid = child.pid
        self.pid_floor = processes.last_pid()
        try:
            if not child.send({**request, "cwd": str(child.home), "seq": 0}) and child.spare:
                child.discard()
                child = self.child = Child(*child.key)
                child.session = True
                self.record.pid = child.pid
                child.send({**request, "cwd": str(child.home), "seq": 0})
            self._opened = time.monotonic()
            failure, _ = self.operate(None, "the session's start", 10.0)
            if failure is not None:
                raise failure
        except BaseException:
            self.close_session()
            raise

    def operate(self, op: dict[str, Any] | None, what: str, timeout: float) -> tuple[StudentFailure | None, dict]:
        """One operation of the session: its failure (the session is over then) or its answer."""
        child, record = self.child, self.record
        self.what, self.timeout = what, timeout
        self.seq += op is not None
        # What the record says of the last operation is this one's, whatever the earlier said.
        record.value, record.ok, record.elapsed, record.tasks, record.peak_tasks = None, False, None, None, None
        if op is not None and not child.send_more({**op, "seq": self.seq}):
            self.ended = f"the session's process stopped reading requests before {what}"
            return CallCrashed(self.ended, record), {}
        started = time.monotonic()
        outcome = self._watch(child.proc, started, arrived=child.answered)
        record.wall = time.monotonic() - started
        record.duration += record.wall
        if outcome == "timeout":
            failure: StudentFailure | None = CallTimeout(self._timeout_message(child.pid, child.dumps), record)
        else:
            failure = self._limit_failure(outcome)
        if failure is None:
            line = child.next_answer()
            if line is None:
                self._take_claims()
                self._snapshot(child.pid)
                if child.flooded and not child.overflow:
                    failure = BoundaryError(f"{self._what()} was answered more often than asked (something in "
                                            "the student's process wrote on the grader's result pipe)", record)
                else:
                    failure = self._interpret(child.overflow)
            else:
                failure, answer = self._answer(line)
                if failure is None or self.answer.get("seq") == self.seq:
                    # Answered, in order: the student's exception (or a value that is not plain
                    # data) fails this operation only; the session goes on.
                    return failure, answer
        self.ended = f"the session ended when {what} failed"
        self._torn_down(child)
        return failure, {}

    def _answer(self, line: bytes) -> tuple[StudentFailure | None, dict]:
        self.answer = {}
        failure = self._interpret(line)
        if failure is not None:
            return failure, {}
        answer = self.answer
        if answer.get("seq") != self.seq:
            return BoundaryError(f"the answer to {self._what()} was not the session's (something in "
                                 "the student's process wrote on the grader's result pipe)", self.record), {}
        return None, answer

    def close_session(self) -> None:
        """Look at what the session left running, then tear it all down (once)."""
        if self.closed:
            return
        self.closed = True
        child = self.child
        try:
            if not self.ended and child.proc.poll() is None:
                child.close_requests()
                self._take_claims()
                self._snapshot(child.pid)
            self._torn_down(child)
        finally:
            self._finish(child)

    # -- watching ----------------------------------------------------------------------------

    def _watch(self, proc: subprocess.Popen, started: float, arrived: Any = None) -> str:
        """Poll the tree until the result arrives, the caller dies, time runs out or output floods."""
        deadline = started + self.timeout
        interval = 0.002
        while True:
            if arrived is None:
                if self.child.result_done.wait(interval):
                    return "result"
            else:  # a session's next answer: the event is set once per line
                self.child.line_ready.wait(interval)
                self.child.line_ready.clear()
                if arrived():
                    return "result"
            self._observe(proc.pid)
            if proc.poll() is not None:
                if arrived is None:
                    self.child.result_done.wait(0.2)  # the last bytes may still be in the pipe
                    return "result" if self.child.result_done.is_set() else "exited"
                self.child.line_ready.wait(0.2)
                return "result" if arrived() else "exited"
            if self.child.output_total > self.runner.output_limit:
                return "output"
            cap = self.runner.max_processes if self.runner.user else None
            if cap and self.live_workers >= cap - 8:
                return "processes"  # a fork bomb: no need to wait for the timeout
            if time.monotonic() > deadline:
                return "timeout"
            interval = min(interval * 1.25, 0.02)

    def _observe(self, caller: int) -> None:
        stack, workers, rss = [caller], 0, 0
        threads: set[int] = set()
        while stack:
            pid = stack.pop()
            st = processes.proc_stat(pid)
            if st is None:
                continue
            self.seen[pid] = (st[1], st[2])
            if pid != caller:
                if pid in self.record.helpers or pid in self.record.workers:
                    pass
                elif processes.is_helper(processes.cmdline(pid)) and self._parent_is(pid, caller):
                    self.record.helpers.add(pid)
                else:
                    self.record.workers.add(pid)
                if pid in self.record.workers and st[0] not in ("Z", "X"):
                    workers += 1
                    self.alive_in.setdefault(pid, [self.polls, self.polls])[1] = self.polls
            rss += st[2]
            if st[0] not in ("Z", "X"):
                stack.extend(processes.children(pid, threads))
        self.threads |= threads
        self.record.threads |= threads
        self.record.peak_threads = max(self.record.peak_threads, len(threads))
        self.polls += 1
        self.live_workers = workers
        self.record.peak_processes = max(self.record.peak_processes, workers)
        self.record.peak_rss = max(self.record.peak_rss, rss)

    def _peak(self) -> int:
        """The most workers (helpers excluded, as finally told apart) alive at one look."""
        changes: dict[int, int] = {}
        for pid, (first, last) in self.alive_in.items():
            if pid in self.record.workers and pid not in self.record.helpers:
                changes[first] = changes.get(first, 0) + 1
                changes[last + 1] = changes.get(last + 1, 0) - 1
        peak = live = 0
        for poll in sorted(changes):
            live += changes[poll]
            peak = max(peak, live)
        return peak

    @staticmethod
    def _parent_is(pid: int, parent: int) -> bool:
        return processes.parent_of(pid) == parent

    def _recheck_helpers(self, caller: int) -> None:
        """A helper seen between its fork and its exec looked like a worker; look again."""
        for pid in list(self.record.workers):
            if self._parent_is(pid, caller) and processes.is_helper(processes.cmdline(pid)):
                self.record.workers.discard(pid)
                self.record.helpers.add(pid)

    def _snapshot(self, caller: int) -> None:
        """After the function returned: which workers are still running, which were never reaped."""
        self._observe(caller)
        self._recheck_helpers(caller)
        stack, leftover, zombies = [caller], [], []
        threads: set[int] = set()
        while stack:
            pid = stack.pop()
            st = processes.proc_stat(pid)
            if st is None:
                continue
            if pid in self.record.workers:
                (zombies if st[0] == "Z" else leftover).append(pid)
            stack.extend(processes.children(pid, threads if st[0] not in ("Z", "X") else None))
        if threads:
            # A thread just joined is still listed for a moment: only one listed twice is left.
            time.sleep(0.02)
            again: set[int] = set()
            for pid in {caller, *self.record.workers}:
                processes.children(pid, again)
            threads &= again
        self.record.threads |= threads
        self.record.threads_left = len(threads)
        # Workers that escaped the tree (orphans re-parented to init) but stayed in the session.
        for pid in processes.session_members(caller):
            if pid not in leftover and pid != caller and pid in self.record.workers and processes.alive(pid):
                leftover.append(pid)
        # And those that left the session too (setsid): the student user's own processes.
        user, spares = self.runner.user, self.runner.spares
        if user is not None and user[0] != 0:
            keep = {caller, *self.record.helpers, *(c.pid for c in spares.held())} if spares else {caller}
            leftover.extend(pid for pid in processes.user_processes(user[0], keep) if pid not in leftover)
        self.record.leftover = sorted(leftover)
        self.record.zombies = sorted(zombies)

    def _take_claims(self) -> None:
        """Workers that polling may have missed: claims the kernel backed (see ``Claims``) for
        processes that were seen in the tree or got their PID during this call (PIDs are handed
        out in order; in a container's PID namespace nothing else takes them then), so a process
        left by an earlier call or our own threads never count. It never removes a worker:
        helpers are told apart by their command line, from outside."""
        claims = self.child.claims
        self.threads |= claims.threads
        ceiling = processes.last_pid()
        spares = self.runner.spares
        others = {c.pid for c in spares.held()} if spares is not None else set()
        for pid in list(claims.granted):
            if pid == self.record.pid or pid in self.record.helpers or pid in self.child.own_tids:
                continue
            if pid in others:  # a spare's PID, should the counter have wrapped since the floor
                continue
            if pid in self.seen or processes.allocated_between(pid, self.pid_floor, ceiling):
                self.record.workers.add(pid)

    # -- turning what happened into a value or an exception --------------------------------------

    def _what(self) -> str:
        return self.what or f"{self.record.module}.{self.record.function}()"

    def _interpret(self, line: bytes) -> StudentFailure | None:
        """The answer line as a value (None: it is in ``record.value``) or a failure."""
        record = self.record
        if not line:
            status = record.exit_status if record.exit_status is not None else self.child.proc.poll()
            how = f"was killed by signal {-status}" if status and status < 0 else f"exited with status {status}"
            if status is None:
                how = "stopped answering (its channel to the grader was closed or taken over)"
            return CallCrashed(f"the process running {self._what()} {how} before returning a value "
                               "(os._exit(), a crash, or a signal)", record)
        if len(line) > MAX_RESULT:
            return BoundaryError(f"{self._what()} returned a value larger than {MAX_RESULT} bytes", record)
        try:
            msg = boundedjson.loads(line, max_values=MAX_RESULT_VALUES, max_depth=MAX_RESULT_DEPTH)
        except boundedjson.TooComplex as exc:  # refused before anything was built: this call only
            return BoundaryError(f"the result of {self._what()} was too {exc.kind} to decode: {exc} "
                                 "(return less data, or a summary of it)", record)
        except (ValueError, RecursionError) as exc:
            return BoundaryError(f"the result of {self._what()} was malformed ({exc})", record)
        try:
            if not isinstance(msg, dict):
                raise ValueError("not an object")
            if msg.get("ok") is True:
                record.value = plain.decode(msg.get("value"), resolve=self.resolve)
                record.ok = True
                elapsed = msg.get("elapsed")
                record.elapsed = float(elapsed) if type(elapsed) in (int, float) else None
                tasks = msg.get("async")
                if isinstance(tasks, dict):
                    record.tasks = _count(tasks.get("tasks"))
                    record.peak_tasks = _count(tasks.get("peak_tasks"))
                self.answer = msg
                return None
            self.answer = msg
        except (ValueError, TypeError, RecursionError) as exc:
            return BoundaryError(f"the result of {self._what()} was malformed ({exc})", record)
        phase = str(msg.get("phase"))
        type_name = str(msg.get("type", "Exception"))[:100]
        message = str(msg.get("message", ""))[:2000]
        tb = str(msg.get("traceback", ""))[:8000]
        if phase == "import":
            return StudentImportError(
                f"could not import {self.module or record.module}.py: {type_name}: {message}\n{tb}".rstrip(),
                record)
        if phase == "refused":
            return BoundaryError(f"test bug: {self._what()} was refused in the student's process: {message}",
                                 record)
        if phase == "return":
            return BoundaryError(f"{self._what()} returned something that is not plain data: {message}", record)
        if phase == "lookup":
            return StudentImportError(message, record)
        cls = error_class(type_name, bool(msg.get("builtin")))
        if cls is NotImplementedByStudent:
            stub = str(msg.get("raised_in", ""))[:200]
            called = self._what().rsplit(".", 1)[-1].removesuffix("()")
            inner = f": {stub}() still raises NotImplementedError" if stub.isidentifier() and stub != called else \
                " (it raises NotImplementedError)"
            text = f"{self._what()} is not implemented yet{inner}"
        else:
            text = f"{self._what()} raised {type_name}: {message}\n{tb}".rstrip()
        try:
            err = cls(text, record)
        except TypeError:  # builtins with other signatures (UnicodeDecodeError, ExceptionGroup)
            err = error_class("Exception", False)(text, record)
        err.traceback = tb
        return err

    @staticmethod
    def _cpu(pids: list[int]) -> dict[int, float]:
        """CPU seconds each live process has used so far."""
        out = {}
        for pid in pids:
            st = processes.proc_stat(pid)
            if st is not None and st.state not in ("Z", "X"):
                out[pid] = st.cpu
        return out

    def _timeout_message(self, caller: int, dumps: Path) -> str:
        """Ask every process where it is (SIGUSR1 -> faulthandler), then say it in one block."""
        self._recheck_helpers(caller)
        pids = [p for p in [caller, *sorted(self.record.workers)] if processes.in_session(p, caller)]
        files = [dumps / f"{pid}.txt" for pid in pids[:12]]
        sizes = dump_sizes(files)
        before, t0 = self._cpu(pids[:12]), time.monotonic()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
        wait_for_dumps(files, limit=0.3, before=sizes)
        # Whether each process was running: CPU time it used while the dumps were taken (a
        # blocked process uses none; one in a busy loop, any time the scheduler gives it).
        time.sleep(max(0.0, CPU_WINDOW - (time.monotonic() - t0)))
        after, elapsed = self._cpu(pids[:12]), time.monotonic() - t0
        running = {pid for pid in before if pid in after
                   and after[pid] - before[pid] >= max(0.02, 0.1 * elapsed)}
        note = f"; {self.limit_note}" if self.limit_note else ""
        lines = [f"{self._what()} did not return within {self.timeout:g} s "
                 f"(start method {self.record.start_method}{note}). Where each process was, as its "
                 "own stack dump says:"]
        for pid in pids[:12]:
            text = processes.read_capped(dumps / f"{pid}.txt", 20_000)
            who = "caller" if pid == caller else "worker"
            lines.append(f"  {who} {pid}: {summarize_dump(text, self.root, running=pid in running)}")
        if len(pids) > 12:
            lines.append(f"  ... and {len(pids) - 12} more processes")
        return "\n".join(lines)
