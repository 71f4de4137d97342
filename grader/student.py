"""The student-call boundary: run one call of a student function in its own process tree.

Student code never runs in the grader's process. Each call starts a fresh interpreter
(``_boot/mpgrade_child.py``) in a new session, optionally as another user, passes the
arguments as plain-data JSON, and reads back one JSON line. While the call runs, the process
tree is watched from outside, so tests can check that real worker processes ran, how many at
once, and that none was left behind. Whatever happens, every process of the session is killed
and reaped before the call returns: a hang costs one call, never the grader.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from grader import boundedjson
from grader._boot import mpgrade_plain as plain

BOOT_DIR = Path(__file__).resolve().parent / "_boot"
CHILD_SCRIPT = BOOT_DIR / "mpgrade_child.py"
KEEP_OUTPUT = 16_384  # bytes of each stream kept for feedback
MAX_RESULT = 32 * 1024 * 1024
# What one result line may decode to, besides its bytes: 30 MB of ``[{},{},...]`` would be ten
# million dicts, over a gigabyte in the supervisor. Two million values (keys included) is 20
# times the largest value the course's tests expect back and stays under ~250 MB decoded;
# a tagged tuple or set (``mpgrade_plain``) is two JSON levels for one of plain.MAX_DEPTH.
MAX_RESULT_VALUES = 2_000_000
MAX_RESULT_DEPTH = 2 * plain.MAX_DEPTH + 8
START_METHODS = ("fork", "spawn", "forkserver")


# --- what a test sees when the call went wrong -------------------------------------------------


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


def _error_class(type_name: str, is_builtin: bool) -> type[StudentError]:
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


# --- what the grader saw of a call ----------------------------------------------------------


@dataclass
class CallRecord:
    """What one call did, observed from outside the student's processes."""

    module: str
    function: str
    start_method: str
    value: Any = None
    ok: bool = False
    duration: float = 0.0
    pid: int = 0
    workers: set[int] = field(default_factory=set)
    helpers: set[int] = field(default_factory=set)
    peak_processes: int = 0
    leftover: list[int] = field(default_factory=list)
    zombies: list[int] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    output_bytes: int = 0
    cpu_time: float = 0.0
    peak_rss: int = 0
    exit_status: int | None = None
    escaped: int = 0  # processes of the student user killed after the call, outside its session

    def telemetry(self) -> dict[str, Any]:
        return {
            "processes": len(self.workers),
            "peak_processes": self.peak_processes,
            "cpu_time": round(self.cpu_time, 4),
            "wall_time": round(self.duration, 4),
            "peak_rss": self.peak_rss,
        }


# --- watching processes from outside ----------------------------------------------------------
# On Linux, /proc is read directly: it is several times cheaper than psutil's full process-table
# scan, and the watcher polls every few milliseconds while student code runs. Elsewhere (a
# student's macOS laptop running ``make check``) psutil does the same job.

HAVE_PROC = os.path.isdir("/proc/self/task")


def _children(pid: int, threads: set[int] | None = None) -> list[int]:
    """Child processes of ``pid``; its other threads' IDs go into ``threads`` when given."""
    if not HAVE_PROC:
        try:
            proc = psutil.Process(pid)
            if threads is not None:
                threads.update(t.id for t in proc.threads() if t.id != pid)
            return [c.pid for c in proc.children()]
        except psutil.Error:
            return []
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        if threads is not None and tid != str(pid) and tid.isdigit():
            threads.add(int(tid))
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _stat(pid: int) -> tuple[str, float, int, int] | None:
    """(state, cpu seconds, rss bytes, session id) of a process, or None if it is gone."""
    if not HAVE_PROC:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                zombie = proc.status() == psutil.STATUS_ZOMBIE
                cpu = proc.cpu_times()
                rss = 0 if zombie else proc.memory_info().rss
            return ("Z" if zombie else "R", cpu.user + cpu.system, rss, os.getsid(pid))
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (
        fields[0],
        (int(fields[11]) + int(fields[12])) / tick,
        int(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
        int(fields[3]),
    )


def _parent(pid: int) -> int | None:
    if not HAVE_PROC:
        try:
            return psutil.Process(pid).ppid()
        except psutil.Error:
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
        return int(data[data.rfind(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    if not HAVE_PROC:
        try:
            return " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            return ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _last_pid() -> int | None:
    """The last PID handed out in this PID namespace (None where the kernel does not say)."""
    try:
        with open("/proc/sys/kernel/ns_last_pid") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _allocated_between(pid: int, floor: int | None, ceiling: int | None) -> bool:
    if floor is None or ceiling is None:
        return False
    if ceiling >= floor:
        return floor < pid <= ceiling
    return pid > floor or pid <= ceiling  # the counter wrapped around


def _is_thread(tid: int) -> bool:
    """A thread of some process, not a process (its thread group is another ID)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1]) != tid
    except (OSError, ValueError):
        pass
    return False


def _in_session(pid: int, sid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[3] == sid and not _gone(pid, st[0])


def _read_capped(path: Path, limit: int) -> str:
    """A file student code could have replaced: no symlinks, no FIFOs, at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, limit).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _is_helper(cmdline: str) -> bool:
    return "resource_tracker" in cmdline or "forkserver" in cmdline


def _gone(pid: int, state: str) -> bool:
    """Dead for good: a zombie (or dying) thread-group leader none of whose threads still runs.

    A process whose main thread ends by itself (``SYS_exit``, not ``exit_group``) shows as a
    zombie while its other threads go on running student code; it must still count as alive.
    """
    if state not in ("Z", "X"):
        return False
    if not HAVE_PROC:
        return True
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
            if data[data.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X"):
                return False
        except (OSError, IndexError):
            pass
    return True


def _session_members(sid: int) -> list[int]:
    pids = [int(n) for n in os.listdir("/proc") if n.isdigit()] if HAVE_PROC else psutil.pids()
    members = []
    for pid in pids:
        st = _stat(pid)
        if st is not None and st[3] == sid and not _gone(pid, st[0]):
            members.append(pid)
    return members


def kill_session(sid: int, also: set[int] = frozenset(), rounds: int = 50) -> None:
    """Kill every process of a session (and stragglers that left it) until none is left."""
    for _ in range(rounds):
        try:
            os.killpg(sid, signal.SIGKILL)  # first, before looking: the group cannot fork meanwhile
        except OSError:
            pass
        targets = set(_session_members(sid)) | {p for p in also if _alive(p)}
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def _uids(pid: int) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uid of a live process; () if gone (see ``_gone``)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return ()
    uids: tuple[int, ...] = ()
    state = ""
    for line in text.splitlines():
        if line.startswith("State:"):
            state = line.split()[1]
        elif line.startswith("Uid:"):
            uids = tuple(int(x) for x in line.split()[1:])
    return () if _gone(pid, state) else uids


def user_processes(uid: int, keep: set[int] = frozenset()) -> list[int]:
    """Every live process of ``uid`` but ``keep``: in a sandbox, the student's."""
    if not HAVE_PROC:
        return []
    return [pid for pid in (int(n) for n in os.listdir("/proc") if n.isdigit())
            if pid not in keep and uid in _uids(pid)]


def kill_user(uid: int, keep: set[int] = frozenset(), rounds: int = 200) -> int:
    """Kill every process of ``uid`` but ``keep`` until a look at /proc finds none; how many.

    A call's session and tree do not hold everything its code started: a process that calls
    ``setsid()`` and double-forks is re-parented to init, out of both, and could outlive the
    call (holding its pipes, the uid's process cap, files in /tmp and /dev/shm, state for later
    calls). Student code runs as a uid of its own, so the uid is what it cannot leave. Killed
    with SIGKILL as found: a process with a fatal signal pending cannot fork, so each round
    can only find what the previous round's processes forked before they were hit.
    """
    killed: set[int] = set()
    for _ in range(rounds):
        found = user_processes(uid, keep)
        if not found:
            return len(killed)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(0.002)
    return len(killed)


# Folders every process may write besides the scratch folder; emptied of the student uid's
# files between calls (see ``StudentRunner.clear_user``): POSIX shared memory and semaphores,
# POSIX message queues.
SHARED_WRITABLE = ("/dev/shm", "/dev/mqueue")


def user_ipc(uid: int) -> list[str]:
    """System V shared memory segments, semaphore sets and message queues of ``uid`` (owner or
    creator), as ``kind:id``. They outlive every process (a segment nobody has attached keeps
    its memory), and are not files: ``remove_entries`` cannot see them."""
    found = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
        except (OSError, ValueError):
            continue
        names = header.split()
        try:
            at_id, at_uid, at_cuid = 1, names.index("uid"), names.index("cuid")
        except ValueError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > max(at_uid, at_cuid) and str(uid) in (cols[at_uid], cols[at_cuid]):
                found.append(f"{kind}:{cols[at_id]}")
    return found


# Removes the System V objects named on its command line; run as their owner, since root
# without CAP_SYS_ADMIN (the supervisor in a container) may not remove another user's.
_IPC_REMOVER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
for kind, ident in (a.split(":") for a in sys.argv[1:]):
    ident = int(ident)
    if kind == "shm":
        libc.shmctl(ident, 0, None)
    elif kind == "sem":
        libc.semctl(ident, 0, 0)
    else:
        libc.msgctl(ident, 0, None)
"""


def clear_user_ipc(user: tuple[int, int], python: str) -> None:
    """Remove ``user``'s System V IPC objects (see ``user_ipc``), by a short process of that
    user running only our code: started only when there is something to remove, so an honest
    call (multiprocessing uses POSIX semaphores and shared memory, files in /dev/shm) pays one
    read of /proc/sysvipc."""
    objects = user_ipc(user[0])
    if not objects:
        return
    try:
        subprocess.run([python, "-I", "-S", "-c", _IPC_REMOVER, *objects[:10_000]], env={},
                       user=user[0], group=user[1], extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def _remove_tree(parent: int, name: str) -> None:
    """Remove the folder ``name`` of the folder open as ``parent``, however deep it goes.

    ``shutil.rmtree`` recurses (a folder 3000 levels deep raises RecursionError) and holds a
    descriptor per level (EMFILE at about a thousand). Here each subfolder is first moved up
    into ``parent`` under a fresh name and removed in its turn: no recursion, two descriptors
    at most. Never follows a link, never opens anything but a folder (O_DIRECTORY: a FIFO put in
    a folder's place cannot block it).
    """
    todo, moved = [name], 0
    while todo:
        current = todo.pop()
        fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        try:
            for entry in os.listdir(fd):
                if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                    moved += 1
                    target = f".mpgrade-removing-{os.getpid()}-{moved}-{os.urandom(4).hex()}"
                    os.rename(entry, target, src_dir_fd=fd, dst_dir_fd=parent)
                    todo.append(target)
                else:
                    os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(current, dir_fd=parent)


def remove_tree(path: Path) -> bool:
    """Remove a folder and everything in it (see ``_remove_tree``); False if it could not."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        _remove_tree(parent, path.name)
        return True
    except OSError:
        return False
    finally:
        os.close(parent)


def remove_entries(folder: Path, keep: set[str] = frozenset(), owner: int | None = None) -> bool:
    """Remove the entries of ``folder`` (those of ``owner`` only, when given) but ``keep``.

    Used on folders the student user can write, once no process of that user but the waiting
    spares is alive, so nothing swaps an entry meanwhile; still every step works on directory
    descriptors and never follows a link (see ``_remove_tree``). False if ``folder`` is not a
    folder, or an entry could not be removed.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    ok = True
    try:
        names = os.listdir(fd)
    except OSError:
        names, ok = [], False
    try:
        for name in names:
            if name in keep:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if owner is not None and st.st_uid != owner:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    _remove_tree(fd, name)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError:
                ok = False
    finally:
        os.close(fd)
    return ok


SUID_DUMPABLE = "/proc/sys/fs/suid_dumpable"


def sealed_from_exec(python: str, user: tuple[int, int] | None) -> bool:
    """Whether ``python`` started as ``user`` is sealed by the kernel from its first instruction.

    A program its user may execute but not read (mode 0711, another owner) makes the process
    non-dumpable at exec: other processes of that user cannot open its memory, descriptors or
    environment, with no window before ``sitecustomize.seal`` runs. The grading image ships
    such a copy of its interpreter for student code (``/opt/mpgrade/bin/python-student``).
    Exec applies the host-wide ``fs.suid_dumpable`` then, which seals only at 0 or 2; and mode
    bits do not show ACLs, so each such process also says whether it was already sealed when
    its own code first ran (``sitecustomize.seal``), and ``SparePool`` checks that.
    """
    if user is None or user[0] == 0:
        return False
    try:
        with open(SUID_DUMPABLE) as f:
            if f.read().strip() not in ("0", "2"):
                return False
    except OSError:
        return False
    try:
        st = os.stat(python)
    except OSError:
        return False
    uid, gid = user  # student code runs with no supplementary groups
    if st.st_uid == uid:
        read, execute = stat.S_IRUSR, stat.S_IXUSR
    elif st.st_gid == gid:
        read, execute = stat.S_IRGRP, stat.S_IXGRP
    else:
        read, execute = stat.S_IROTH, stat.S_IXOTH
    return not st.st_mode & read and bool(st.st_mode & execute)


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and not _gone(pid, st[0])


# --- stack dumps ------------------------------------------------------------------------------

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def summarize_dump(text: str, student_root: str) -> str:
    """One line per process: the innermost frame of the student's own code and where it waits."""
    frames = []
    for line in text.splitlines():
        if line.startswith("Thread ") and frames:
            break  # only the main thread (dumped first as the current thread)
        m = _FRAME.search(line)
        if m:
            frames.append(m)
    if not frames:
        return "no stack available"
    inner = frames[0]
    own = next((f for f in frames if f["file"].startswith(student_root + os.sep)), None)
    where = _frame_text(inner)
    if own is None:
        return f"waiting in {where}"
    mine = _frame_text(own)
    return mine if own is inner else f"{mine}, waiting in {where}"


def _frame_text(frame: re.Match) -> str:
    """``file:line in func()`` from a dump the process wrote itself (student code can write
    anything there): printable characters only, each name capped."""
    def clean(text: str) -> str:
        return "".join(c if c.isprintable() else "?" for c in text)[:80]

    return f"{clean(Path(frame['file']).name)}:{frame['line'][:7]} in {clean(frame['func'])}()"


def _wait_for_dumps(paths: list[Path], limit: float) -> None:
    """Until every dump file has stopped growing (faulthandler writes from its signal handler,
    within milliseconds), or ``limit`` seconds for a process that cannot answer (stopped, dead)."""
    deadline = time.monotonic() + limit
    last: list[int] = []
    while time.monotonic() < deadline:
        time.sleep(0.01)
        sizes = []
        for path in paths:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(0)
        if all(sizes) and sizes == last:
            return
        last = sizes


# --- the runner ---------------------------------------------------------------------------------


@dataclass
class StudentRunner:
    """Runs calls of the student's functions; one per test (the ``student`` fixture)."""

    path: Path
    start_method: str | None = None
    call_timeout: float = 10.0
    output_limit: int = 8 * 1024 * 1024
    python: str = sys.executable
    user: tuple[int, int] | None = None  # (uid, gid) to run student code as, when root
    scratch: Path | None = None
    cgroup: Path | None = None  # cgroup v2 folder: its event counters name memory / process limits
    max_processes: int | None = None  # RLIMIT_NPROC for the student user (only with ``user``)
    spares: SparePool | None = None  # starts each call's successor ahead of time (the plugin's)
    records: list[CallRecord] = field(default_factory=list)

    @property
    def last(self) -> CallRecord:
        if not self.records:
            raise LookupError("no student call has been made yet")
        return self.records[-1]

    def module(self, name: str, *, start_method: str | None = None, timeout: float | None = None) -> ModuleProxy:
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"unknown start method {start_method!r}")
        return ModuleProxy(self, name, start_method, timeout)

    def call(
        self,
        module: str,
        function: str,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        start_method: str | None = None,
        timeout: float | None = None,
    ) -> CallRecord:
        """Run ``module.function(*args, **kwargs)`` in a fresh process tree and return the record.

        Raises a StudentFailure subclass when the call did not return a value; the record is
        appended either way so tests and telemetry can see it.
        """
        method = start_method or self.start_method or "fork"
        record = CallRecord(module=module, function=function, start_method=method)
        self.records.append(record)
        before = self._limit_events()
        error = _CallExecution(self, record, args, kwargs or {}, timeout or self.call_timeout).run()
        if error is not None:
            raise self._explain_limits(error, before)
        return record

    def clear_user(self) -> int:
        """Between two calls nothing of the student user is left: no process but the waiting
        spares (our own code, sealed), no file in the scratch folder, /dev/shm or /dev/mqueue
        but the spares' folders, no System V IPC object. Only with a user of the sandbox's own
        (``user``); returns how many processes had to be killed here, i.e. had escaped the
        call's session (0 without a user)."""
        if self.user is None or self.user[0] == 0:
            return 0
        held = self.spares.held() if self.spares is not None else []
        # Only spares not reaped yet: the PID of one that died (killed by the call's code, same
        # user) is free again and could be taken by a student process.
        killed = kill_user(self.user[0], keep={c.pid for c in held if c.proc.poll() is None})
        scratch = self.scratch or Path(tempfile.gettempdir())
        for folder in (scratch, *map(Path, SHARED_WRITABLE)):
            remove_entries(folder, keep={c.tmp.name for c in held}, owner=self.user[0])
        clear_user_ipc(self.user, self.python)
        return killed

    def _limit_events(self) -> dict[str, int]:
        counters: dict[str, int] = {}
        if self.cgroup is None:
            return counters
        # cgroup v2 keeps the counters in one folder; v1 in one folder per controller.
        sources = (
            ("memory", "memory.events", "oom_kill"), ("memory", "memory/memory.oom_control", "oom_kill"),
            ("pids", "pids.events", "max"), ("pids", "pids/pids.events", "max"),
        )
        for counter, filename, key in sources:
            try:
                for line in (self.cgroup / filename).read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == key:
                        counters[counter] = int(value)
            except (OSError, ValueError):
                pass
        return counters

    def _explain_limits(self, error: StudentFailure, before: dict[str, int]) -> StudentFailure:
        """A call that failed while the container hit its memory or process limit says so."""
        after = self._limit_events()
        what = self.records[-1]
        name = f"{what.module}.{what.function}()"
        out_of_memory = isinstance(error, StudentError) and error.student_type == "MemoryError"
        if after.get("memory", 0) > before.get("memory", 0) or out_of_memory:
            return MemoryLimit(f"{name} ran out of memory: a process was killed at the memory limit "
                               f"({error})", error.record)
        text = str(error)
        forked_out = ("Resource temporarily unavailable" in text or "can't start new thread" in text
                      or (self.max_processes and what.peak_processes >= self.max_processes - 8))
        if after.get("pids", 0) > before.get("pids", 0) or forked_out:
            return ProcessLimit(f"{name} started too many processes or threads and hit the process "
                                f"limit ({error})", error.record)
        return error


class ModuleProxy:
    def __init__(self, runner: StudentRunner, name: str, start_method: str | None, timeout: float | None):
        self._runner, self._name = runner, name
        self._start_method, self._timeout = start_method, timeout

    def __getattr__(self, function: str) -> Callable[..., Any]:
        if function.startswith("_"):
            raise AttributeError(function)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.call(
                self._name, function, args, kwargs,
                start_method=self._start_method, timeout=self._timeout,
            ).value

        call.__name__ = function
        return call

    def __repr__(self) -> str:
        return f"<student module {self._name}>"


# --- worker claims ------------------------------------------------------------------------------

# The signal that tells a claiming worker it was seen (default action: ignore, so one that
# arrives late does nothing), and how long a worker waits for it (see ``sitecustomize``).
CLAIM_ACK = signal.SIGURG
MAX_CLAIMS = 10_000  # claims looked up per call; the rest are drained and dropped


class _Claims:
    """Workers' "I am a worker" lines, on a FIFO, checked against the kernel while they wait.

    Polling from outside misses a worker that lives a millisecond, so each Python process of a
    call says "pid ppid role" on a FIFO as it starts (``sitecustomize``) and waits, a few
    microseconds, for our answer. A line is only a claim: student code can write any line, for
    threads too (their IDs come from the PID counter) or for PIDs it guesses. A claim is
    granted only while the claimed process is alive and the kernel shows it as a process of its
    own (``/proc/PID/status``: its thread group is itself) of the student (its uid in a sandbox,
    the call's session otherwise); the claimant is then sent ``CLAIM_ACK``. So a thread, gone or
    not, is never a worker, and a worker needs evidence no student code can write.
    """

    def __init__(self, path: Path, user: tuple[int, int] | None, session: Callable[[], int],
                 own_tids: set[int]) -> None:
        self.path, self.user, self.session, self.own_tids = path, user, session, own_tids
        self.granted: set[int] = set()
        self.threads: set[int] = set()  # claimed IDs the kernel shows as threads
        self.checked = 0  # claims looked up in /proc since the last ``forget``: at most MAX_CLAIMS
        os.mkfifo(path, 0o600)
        os.chmod(path, 0o622 if user is not None else 0o600)  # others' processes write, only
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO from reading as closed between two workers.
        self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        self.own_tids.add(threading.get_native_id())
        pending = b""
        while True:
            readable, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            *complete, pending = (pending + chunk).split(b"\n")
            pending = pending[-64:]
            for line in complete:
                self._check(line)

    def _check(self, line: bytes) -> None:
        parts = line.split()
        if len(parts) != 3 or parts[2] != b"worker" or not parts[0].isdigit() or len(parts[0]) > 9:
            return
        pid = int(parts[0])
        if pid in self.own_tids or pid in self.granted or pid <= 1 or self.checked >= MAX_CLAIMS:
            return
        self.checked += 1
        if not HAVE_PROC:  # psutil: no thread IDs to mistake for processes there
            if psutil.pid_exists(pid):
                self._grant(pid)
            return
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(row.split(":", 1) for row in f.read().splitlines() if ":" in row)
            tgid, state = int(fields["Tgid"]), fields["State"].split()[0]
            uid = int(fields["Uid"].split()[0])
        except (OSError, ValueError, KeyError, IndexError):
            return  # gone already: no evidence
        if tgid != pid:
            self.threads.add(pid)
            return
        if state in ("Z", "X"):
            return
        if (uid == self.user[0]) if self.user is not None else _in_session(pid, self.session()):
            self._grant(pid)

    def _grant(self, pid: int) -> None:
        self.granted.add(pid)
        try:
            os.kill(pid, CLAIM_ACK)
        except OSError:
            pass

    def forget(self) -> None:
        """Drop what was granted so far, and the count of claims looked up: claims made while
        this child waited as a spare, maybe a flood by the previous call's code (same user)."""
        self.granted.clear()
        self.checked = 0

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            for fd in (self.fd, self._keep, self._stop_r, self._stop_w):
                os.close(fd)


# --- started children ---------------------------------------------------------------------------


class _Child:
    """A started ``mpgrade_child``: its own session, files, pipes and readers, waiting for a request.

    The child boots (a fresh interpreter importing multiprocessing: 40-60 ms, most of a short
    call's cost) before it knows what it will run, then blocks reading one request line on
    stdin. That is what lets a ``SparePool`` start the next call's child while the current call
    runs. A waiting child has loaded no student code: which module, function and arguments it
    runs is only decided by the request, sent when the call starts.
    """

    def __init__(self, python: str, user: tuple[int, int] | None, scratch: Path | None,
                 max_processes: int | None = None, root: str = "") -> None:
        self.key = (python, user, scratch, max_processes, root)
        self.tmp = Path(tempfile.mkdtemp(prefix="mpgrade-call-", dir=scratch))
        self.dumps, self.claims_path, self.home = self.tmp / "dumps", self.tmp / "claims", self.tmp / "home"
        self.out = bytearray()
        self.err = bytearray()
        self.output_total = 0
        self.result = bytearray()
        self.result_done = threading.Event()
        self.own_tids: set[int] = set()  # our reader threads take PIDs from the same counter
        self.readers: list[threading.Thread] = []
        self.spare = False  # set when taken from a SparePool
        self.seal_word = b""  # what it said on the ready pipe (see ``sitecustomize.seal``)
        self.sealed_from_exec = sealed_from_exec(python, user)
        self._stopped = False
        try:
            self._start(python, user, max_processes)
        except BaseException:
            if hasattr(self, "proc"):
                self.stop()
            elif hasattr(self, "claims"):
                self.claims.close()
            remove_tree(self.tmp)
            raise

    def _start(self, python: str, user: tuple[int, int] | None, max_processes: int | None) -> None:
        self.dumps.mkdir()
        self.home.mkdir()
        self.claims = _Claims(self.claims_path, user, lambda: self.proc.pid, self.own_tids)
        if user is not None:
            # Only the entries become the student's (the claims FIFO stays root's: they may
            # only write it); the folder stays root's, so its entries can never be swapped for
            # links (the supervisor reads and removes them later, and student processes may
            # already be running: this child may be a spare). The folder is opened to them
            # (traverse only) once the entries are theirs.
            for p in (self.dumps, self.home):
                os.chown(p, *user, follow_symlinks=False)
            os.chmod(self.tmp, 0o711)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(BOOT_DIR),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "PYTHONNOUSERSITE": "1",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "LANG": "C.UTF-8",
            "MPGRADE_DUMP_DIR": str(self.dumps),
            "MPGRADE_PID_LOG": str(self.claims_path),
            "MPGRADE_GRADER_PID": str(os.getpid()),
        }
        if max_processes and user is not None:
            # Applied at boot, before the child reads anything: a request, even one forged by
            # other processes of the student user, cannot lift it.
            env["MPGRADE_NPROC"] = str(int(max_processes))
        user_kw: dict[str, Any] = {}
        if user is not None:
            user_kw = {"user": user[0], "group": user[1], "extra_groups": []}
        r, w = os.pipe()
        ready_r, ready_w = os.pipe()
        env["MPGRADE_READY_FD"] = str(ready_w)
        try:
            self.proc = subprocess.Popen(
                [python, "-s", "-B", str(CHILD_SCRIPT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(w, ready_w), start_new_session=True, env=env, cwd=str(self.home), **user_kw,
            )
        except BaseException:
            os.close(r)
            os.close(ready_r)
            raise
        finally:
            os.close(w)
            os.close(ready_w)
        self.ready_fd: int | None = ready_r
        self.result_fd, self.result_w = r, w  # w: the descriptor's number in the child
        self.readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err), daemon=True),
            threading.Thread(target=self._read_result, args=(r,), daemon=True),
        ]
        for t in self.readers:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_sealed(self, limit: float = 2.0) -> bool:
        """Until the child says it has sealed itself (``sitecustomize.seal``), on a pipe only it
        and the grader hold. Before that, other processes of the student user can open its
        memory, and a descriptor opened then stays valid; so no student code may run meanwhile."""
        if self.ready_fd is None:
            return False
        try:
            readable, _, _ = select.select([self.ready_fd], [], [], limit)
            if readable:
                self.seal_word = os.read(self.ready_fd, 1)
            return self.seal_word in (b"1", b"2")
        except OSError:
            return False
        finally:
            os.close(self.ready_fd)
            self.ready_fd = None

    def waiting(self) -> bool:
        """Still there, runnable and untouched: the previous call's processes (same user) could
        have killed or stopped a spare, or written to it before it sealed itself (see
        ``mpgrade_child``); then it is thrown away and the call starts a fresh child."""
        if self.proc.poll() is not None:
            return False
        if self.result_done.is_set() or self.result or self.output_total:
            return False
        st = _stat(self.proc.pid)
        return st is not None and st[0] in ("R", "S", "D") and st[3] == self.proc.pid

    def send(self, request: dict[str, Any], timeout: float = 5.0) -> bool:
        """Hand the child its request; False if it did not take it within ``timeout`` (gone, or
        not reading: a write must never block the grader)."""
        data = memoryview((json.dumps({**request, "result_fd": self.result_w}) + "\n").encode())
        deadline = time.monotonic() + timeout
        try:
            fd = self.proc.stdin.fileno()
            os.set_blocking(fd, False)
            while data:
                try:
                    data = data[os.write(fd, data):]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    select.select([], [fd], [], 0.05)
            return True
        except (OSError, ValueError):
            return False
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def stop(self, also: set[int] = frozenset()) -> None:
        """Kill the child's whole session, reap it, and stop reading its pipes (once)."""
        if self._stopped:
            return
        self._stopped = True
        kill_session(self.proc.pid, also=also)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.claims.close()
        for t in self.readers:
            t.join(timeout=2)
        # A process that escaped the session may still hold the pipes' other ends: then the
        # readers are still blocked, and closing under them could hand their descriptor
        # number to the next call. Leak it instead; the escapee dies with the sandbox.
        if not any(t.is_alive() for t in self.readers):
            os.close(self.result_fd)
            self.proc.stdout.close()
            self.proc.stderr.close()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def reset(self) -> bool:
        """Empty what the previous call's code (same user) could write into while this child
        waited: its home (the call's cwd and TMPDIR), its dump folder but its own dump file; and
        forget the claims granted meanwhile. False if a folder is no longer what it was made as
        (then the child is discarded)."""
        self.claims.forget()
        return remove_entries(self.home) and remove_entries(self.dumps, keep={f"{self.pid}.txt"})

    def remove(self) -> None:
        remove_tree(self.tmp)

    def discard(self) -> None:
        self.stop()
        self.remove()

    # -- pipes -------------------------------------------------------------------------------------

    def _drain(self, stream: Any, keep: bytearray) -> None:
        self.own_tids.add(threading.get_native_id())
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            self.output_total += len(chunk)
            room = KEEP_OUTPUT - len(keep)
            if room > 0:
                keep.extend(chunk[:room])

    def _read_result(self, fd: int) -> None:
        self.own_tids.add(threading.get_native_id())
        try:
            while len(self.result) <= MAX_RESULT:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return
                self.result.extend(chunk)
                if b"\n" in chunk:
                    return
        except OSError:
            return
        finally:
            self.result_done.set()


class SparePool:
    """Starts the next call's child while the current call runs, so it is booted when needed.

    Holds at most one waiting child per kind of call (interpreter, user, scratch folder,
    process cap, submission folder); ``close()`` kills it. One pool serves one grading run of one submission (the plugin keeps it for a pytest
    session), never two submissions: a spare is a process of the student user, and the calls
    it will run are that submission's. A spare left behind by a crashed grader exits by itself
    when its stdin closes.

    The spare is started before the current call's PID window opens (see ``_take_claims``),
    so its PID can never be claimed as one of that call's workers. When student code runs as
    another user, the current call's code must never find the spare open: either the kernel
    seals the spare at exec (an execute-only interpreter, see ``sealed_from_exec``), and its own
    "sealed" word is only checked when it is taken, a call later; or the current call is only
    sent its request once the spare has sealed itself, which costs the call the spare's boot
    (10-20 ms).
    """

    def __init__(self) -> None:
        self._spares: dict[tuple, _Child] = {}
        self._lock = threading.Lock()
        self._unsealable = False  # a spare could not seal itself: stop making them
        self._trust_exec = True  # False once a spare said the kernel had not sealed it at exec

    def held(self) -> list[_Child]:
        """The waiting children: the only processes of the student user allowed between calls."""
        with self._lock:
            return list(self._spares.values())

    def take(self, key: tuple) -> _Child | None:
        with self._lock:
            child = self._spares.pop(key, None)
        if child is not None and not child.reset():
            child.discard()
            return None
        if child is None or not (child.sealed_from_exec and child.ready_fd is not None):
            return child
        sealed = child.wait_sealed()
        if sealed and child.seal_word == b"2":
            return child
        # Not sealed at exec after all (an ACL, a capability...): the previous call's code may
        # have reached it while it booted. From now on spares are waited for, or not made.
        child.discard()
        if sealed:
            self._trust_exec = False
        else:
            self._unsealable = True
        return None

    def prepare(self, key: tuple) -> None:
        with self._lock:
            if key in self._spares or self._unsealable:
                return
        try:
            child = _Child(*key)
        except Exception:  # no process or thread to spare: only an optimisation is lost
            return
        user = key[1]
        if not self._trust_exec:
            child.sealed_from_exec = False
        if user is not None and not child.sealed_from_exec and not child.wait_sealed():
            child.discard()  # it never sealed itself: not safe to leave next to student code
            self._unsealable = True  # and the next one would not either: calls start cold
            return
        try:
            with self._lock:
                old = self._spares.pop(key, None)
                self._spares[key] = child
        except BaseException:
            child.discard()
            raise
        if old is not None:
            old.discard()

    def close(self) -> None:
        with self._lock:
            spares, self._spares = list(self._spares.values()), {}
        for child in spares:
            child.discard()


class _GoneBeforeRequest(Exception):
    """A pre-started child died between being taken and being sent its request."""


class _CallExecution:
    """One call, from start to the last reaped process. Kept apart so the steps read in order."""

    def __init__(self, runner: StudentRunner, record: CallRecord, args: tuple, kwargs: dict, timeout: float):
        self.runner, self.record, self.timeout = runner, record, timeout
        self.args, self.kwargs = args, kwargs
        self.root = str(Path(runner.path).resolve())
        self.seen: dict[int, tuple[float, int]] = {}
        self.live_workers = 0
        self.pid_floor: int | None = None
        self.child: _Child  # set when the call starts
        self.threads: set[int] = set()  # thread IDs seen in the tree: never workers

    def run(self) -> StudentFailure | None:
        record = self.record
        try:
            request = {
                "module": record.module, "function": record.function,
                "args": plain.encode(tuple(self.args))["v"], "kwargs": plain.encode(dict(self.kwargs)),
                "start_method": record.start_method, "path": self.root,
            }
        except plain.NotPlainData as exc:
            raise TypeError(f"test bug: arguments must be plain data ({exc})") from None
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
            child = _Child(*key)
        try:
            if spares is not None:
                spares.prepare(key)  # the next call's child, before this call's PID window opens
            try:
                return self._run(child, request)
            except _GoneBeforeRequest:
                child.remove()
                child = _Child(*key)
                return self._run(child, request)
        except BaseException:
            child.stop()  # a failure of ours (or Ctrl-C) before the call was under way
            raise
        finally:
            try:  # first, so that no escaped process can meddle with what is removed next
                record.escaped = runner.clear_user()
            finally:
                child.remove()

    def _run(self, child: _Child, request: dict[str, Any]) -> StudentFailure | None:
        record = self.record
        self.child = child
        record.pid = child.pid
        self.pid_floor = _last_pid()
        started = time.monotonic()
        failure: StudentFailure | None = None
        try:
            if not child.send({**request, "cwd": str(child.home)}) and child.spare:
                raise _GoneBeforeRequest  # a spare that died after all: start a fresh child
            outcome = self._watch(child.proc, started)
            record.duration = time.monotonic() - started
            if outcome in ("result", "exited"):
                # Only a call that ended by itself has a process tree worth describing; after a
                # fork bomb or a flood, every millisecond spent looking lets it do more harm.
                self._take_claims()
                self._snapshot(child.pid)
            if outcome == "timeout":
                failure = CallTimeout(self._timeout_message(child.pid, child.dumps), record)
        finally:
            child.stop(also=set(self.seen))
            record.exit_status = child.proc.returncode
        self._take_claims()  # again: workers that started while the call was torn down
        record.stdout = child.out.decode(errors="replace")
        record.stderr = child.err.decode(errors="replace")
        record.output_bytes = child.output_total
        record.cpu_time = sum(cpu for cpu, _ in self.seen.values())
        if failure is not None:
            return failure
        if outcome == "processes":
            return ProcessLimit(f"{self._what()} started more than {self.runner.max_processes - 8} "
                                "processes at once and was stopped (a fork bomb?)", record)
        if outcome == "output":
            return OutputLimit(
                f"{self._what()} printed more than {self.runner.output_limit // (1024 * 1024)} MiB "
                "and was stopped", record)
        return self._interpret(outcome)

    # -- watching ----------------------------------------------------------------------------

    def _watch(self, proc: subprocess.Popen, started: float) -> str:
        """Poll the tree until the result arrives, the caller dies, time runs out or output floods."""
        deadline = started + self.timeout
        interval = 0.002
        while True:
            if self.child.result_done.wait(interval):
                return "result"
            self._observe(proc.pid)
            if proc.poll() is not None:
                self.child.result_done.wait(0.2)  # the last bytes may still be in the pipe
                return "result" if self.child.result_done.is_set() else "exited"
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
        while stack:
            pid = stack.pop()
            st = _stat(pid)
            if st is None:
                continue
            self.seen[pid] = (st[1], st[2])
            if pid != caller:
                if pid in self.record.helpers or pid in self.record.workers:
                    pass
                elif _is_helper(_cmdline(pid)) and self._parent_is(pid, caller):
                    self.record.helpers.add(pid)
                else:
                    self.record.workers.add(pid)
                if pid in self.record.workers and st[0] not in ("Z", "X"):
                    workers += 1
            rss += st[2]
            stack.extend(_children(pid, self.threads))
        self.live_workers = workers
        self.record.peak_processes = max(self.record.peak_processes, workers)
        self.record.peak_rss = max(self.record.peak_rss, rss)

    @staticmethod
    def _parent_is(pid: int, parent: int) -> bool:
        return _parent(pid) == parent

    def _recheck_helpers(self, caller: int) -> None:
        """A helper seen between its fork and its exec looked like a worker; look again."""
        for pid in list(self.record.workers):
            if self._parent_is(pid, caller) and _is_helper(_cmdline(pid)):
                self.record.workers.discard(pid)
                self.record.helpers.add(pid)

    def _snapshot(self, caller: int) -> None:
        """After the function returned: which workers are still running, which were never reaped."""
        self._observe(caller)
        self._recheck_helpers(caller)
        stack, leftover, zombies = [caller], [], []
        while stack:
            pid = stack.pop()
            st = _stat(pid)
            if st is None:
                continue
            if pid in self.record.workers:
                (zombies if st[0] == "Z" else leftover).append(pid)
            stack.extend(_children(pid))
        # Workers that escaped the tree (orphans re-parented to init) but stayed in the session.
        for pid in _session_members(caller):
            if pid not in leftover and pid != caller and pid in self.record.workers and _alive(pid):
                leftover.append(pid)
        # And those that left the session too (setsid): the student user's own processes.
        user, spares = self.runner.user, self.runner.spares
        if user is not None and user[0] != 0:
            keep = {caller, *self.record.helpers, *(c.pid for c in spares.held())} if spares else {caller}
            leftover.extend(pid for pid in user_processes(user[0], keep) if pid not in leftover)
        self.record.leftover = sorted(leftover)
        self.record.zombies = sorted(zombies)

    def _take_claims(self) -> None:
        """Workers that polling may have missed: claims the kernel backed (see ``_Claims``) for
        processes that were seen in the tree or got their PID during this call (PIDs are handed
        out in order; in a container's PID namespace nothing else takes them then), so a process
        left by an earlier call or our own threads never count. It never removes a worker:
        helpers are told apart by their command line, from outside."""
        claims = self.child.claims
        self.threads |= claims.threads
        ceiling = _last_pid()
        spares = self.runner.spares
        others = {c.pid for c in spares.held()} if spares is not None else set()
        for pid in list(claims.granted):
            if pid == self.record.pid or pid in self.record.helpers or pid in self.child.own_tids:
                continue
            if pid in others:  # a spare's PID, should the counter have wrapped since the floor
                continue
            if pid in self.seen or _allocated_between(pid, self.pid_floor, ceiling):
                self.record.workers.add(pid)

    # -- turning what happened into a value or an exception --------------------------------------

    def _what(self) -> str:
        return f"{self.record.module}.{self.record.function}()"

    def _interpret(self, outcome: str) -> StudentFailure | None:
        record = self.record
        line = bytes(self.child.result).split(b"\n", 1)[0]
        if not line:
            status = record.exit_status
            how = f"was killed by signal {-status}" if status and status < 0 else f"exited with status {status}"
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
                record.value = plain.decode(msg.get("value"))
                record.ok = True
                return None
        except (ValueError, TypeError, RecursionError) as exc:
            return BoundaryError(f"the result of {self._what()} was malformed ({exc})", record)
        phase = str(msg.get("phase"))
        type_name = str(msg.get("type", "Exception"))[:100]
        message = str(msg.get("message", ""))[:2000]
        tb = str(msg.get("traceback", ""))[:8000]
        if phase == "import":
            return StudentImportError(
                f"could not import {record.module}.py: {type_name}: {message}\n{tb}".rstrip(), record)
        if phase == "return":
            return BoundaryError(f"{self._what()} returned something that is not plain data: {message}", record)
        if phase == "lookup":
            return StudentImportError(message, record)
        cls = _error_class(type_name, bool(msg.get("builtin")))
        if cls is NotImplementedByStudent:
            text = f"{self._what()} is not implemented yet (it raises NotImplementedError)"
        else:
            text = f"{self._what()} raised {type_name}: {message}\n{tb}".rstrip()
        try:
            err = cls(text, record)
        except TypeError:  # builtins with other signatures (UnicodeDecodeError, ExceptionGroup)
            err = _error_class("Exception", False)(text, record)
        err.traceback = tb
        return err

    def _timeout_message(self, caller: int, dumps: Path) -> str:
        """Ask every process where it is (SIGUSR1 -> faulthandler), then say it in one block."""
        self._recheck_helpers(caller)
        pids = [p for p in [caller, *sorted(self.record.workers)] if _in_session(p, caller)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
        _wait_for_dumps([dumps / f"{pid}.txt" for pid in pids[:12]], limit=0.3)
        lines = [f"{self._what()} did not return within {self.timeout:g} s "
                 f"(start method {self.record.start_method}). Where each process was, as its own "
                 "stack dump says:"]
        for pid in pids[:12]:
            text = _read_capped(dumps / f"{pid}.txt", 20_000)
            who = "caller" if pid == caller else "worker"
            lines.append(f"  {who} {pid}: {summarize_dump(text, self.root)}")
        if len(pids) > 12:
            lines.append(f"  ... and {len(pids) - 12} more processes")
        return "\n".join(lines)
