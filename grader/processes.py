"""Linux process inspection and killing, read from /proc (psutil elsewhere).

Both sides use it: the call boundary watches and kills student process trees inside the
sandbox, and the local sandbox kills the harness's session on the host. It imports nothing of
mpgrade.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path
from typing import NamedTuple

import psutil

# On Linux, /proc is read directly: it is several times cheaper than psutil's full process-table
# scan, and the watcher polls every few milliseconds while student code runs. Elsewhere (a
# student's macOS laptop running ``make check``) psutil does the same job.

HAVE_PROC = os.path.isdir("/proc/self/task")
# What is weaker without /proc (README "Windows and macOS"): kill_user and user_processes find
# nothing (the two-user sandbox is Linux only), last_pid and is_thread cannot tell, and
# ``mpgrade check`` is no child subreaper, so an orphan of the student's is not stopped.


def children(pid: int, threads: set[int] | None = None) -> list[int]:
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


class ProcStat(NamedTuple):
    """What the watchers read of a process, by name (it is still a tuple for older callers)."""

    state: str  # one letter of /proc/PID/stat: R, S, D, Z (zombie), X (dead), ...
    cpu: float  # user + system seconds
    rss: int  # resident bytes (0 for a zombie)
    session: int  # session id


def proc_stat(pid: int) -> ProcStat | None:
    """The state, CPU seconds, resident bytes and session of a process, or None if it is gone."""
    if not HAVE_PROC:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                zombie = proc.status() == psutil.STATUS_ZOMBIE
                cpu = proc.cpu_times()
                rss = 0 if zombie else proc.memory_info().rss
            return ProcStat("Z" if zombie else "R", cpu.user + cpu.system, rss, os.getsid(pid))
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ProcStat(
        state=fields[0],
        cpu=(int(fields[11]) + int(fields[12])) / tick,
        rss=int(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
        session=int(fields[3]),
    )


def parent_of(pid: int) -> int | None:
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


def cmdline(pid: int) -> str:
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


def last_pid() -> int | None:
    """The last PID handed out in this PID namespace (None where the kernel does not say)."""
    try:
        with open("/proc/sys/kernel/ns_last_pid") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def allocated_between(pid: int, floor: int | None, ceiling: int | None) -> bool:
    if floor is None or ceiling is None:
        return False
    if ceiling >= floor:
        return floor < pid <= ceiling
    return pid > floor or pid <= ceiling  # the counter wrapped around


def is_thread(tid: int) -> bool:
    """A thread of some process, not a process (its thread group is another ID)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1]) != tid
    except (OSError, ValueError):
        pass
    return False


def in_session(pid: int, sid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st.session == sid and not gone(pid, st.state)


def read_capped(path: Path, limit: int) -> str:
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


def is_helper(cmdline: str) -> bool:
    return "resource_tracker" in cmdline or "forkserver" in cmdline


def gone(pid: int, state: str) -> bool:
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


def can_see_children() -> bool:
    """Whether this system lets mpgrade find a process's children: through /proc, else
    psutil (macOS, Windows). Asked by starting a short-lived child and looking for it: where
    neither works (a Linux without /proc, where psutil reads /proc too), the grader could not
    tell a student's processes from threads, nor stop what they leave behind."""
    if HAVE_PROC:
        return True
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if child.pid in children(os.getpid()):
                return True
            time.sleep(0.02)
        return False
    finally:
        child.kill()
        child.wait()


def all_pids() -> list[int]:
    """Every process ID this process can see; [] when neither /proc nor psutil can tell
    (a Linux without /proc: psutil reads it there too, and fails with odd errors)."""
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()] if HAVE_PROC else psutil.pids()
    except Exception:  # noqa: BLE001 - psutil over an empty /proc raises IndexError
        return []


def session_members(sid: int) -> list[int]:
    pids = all_pids()
    members = []
    for pid in pids:
        st = proc_stat(pid)
        if st is not None and st.session == sid and not gone(pid, st.state):
            members.append(pid)
    return members


def kill_session(sid: int, also: set[int] = frozenset(), rounds: int = 50) -> None:
    """Kill every process of a session (and stragglers that left it) until none is left."""
    for _ in range(rounds):
        try:
            os.killpg(sid, signal.SIGKILL)  # first, before looking: the group cannot fork meanwhile
        except OSError:
            pass
        targets = set(session_members(sid)) | {p for p in also if alive(p)}
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


def uids(pid: int) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uid of a live process; () if gone (see ``gone``)."""
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
    return () if gone(pid, state) else uids


def user_processes(uid: int, keep: set[int] = frozenset()) -> list[int]:
    """Every live process of ``uid`` but ``keep``: in a sandbox, the student's."""
    if not HAVE_PROC:
        return []
    return [pid for pid in (int(n) for n in os.listdir("/proc") if n.isdigit())
            if pid not in keep and uid in uids(pid)]


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


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and not gone(pid, st.state)
