"""Loaded by every Python process of a student call (the boot directory is on PYTHONPATH).

It does two things the grader cannot do from outside:
- registers a faulthandler on SIGUSR1 writing to a per-process file, so that when a call hangs
  the grader can ask every process where it is blocked;
- says "pid ppid role" on the grader's FIFO when a process starts (spawn/forkserver start a
  new interpreter, fork goes through ``os.register_at_fork``), and a worker waits until the
  grader has seen it alive, so short-lived workers that outside polling might miss still count.

Both are advisory: student code can tamper with them, so the grader checks every claim against
the kernel (``grader.harness.boundary._Claims``) and tests never rely on them alone.
"""

import os
import sys

# The names of the wire, from this folder (explicitly: nothing else on sys.path is trusted yet).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
try:
    import mpgrade_wire as _wire
finally:
    sys.path.remove(_HERE)


def _role() -> str:
    argv = " ".join(getattr(sys, "orig_argv", sys.argv))
    if "mpgrade_child" in argv:
        return "caller"
    if "resource_tracker" in argv:
        return "helper"
    if "forkserver" in argv:
        return "helper"
    return "worker"


def _line_buffered() -> None:
    """Whole lines on the call's pipes, each framed with the PID that wrote it.

    The grader starts every process unbuffered (so nothing printed before a hang is lost),
    where each ``print`` argument is its own write and the output of processes printing at
    once interleaves mid-line. Line buffering keeps every line (and every frame of a crashing
    worker's traceback) in one write; the frame (``mpgrade_wire.OUTPUT_FRAME``, with the PID
    of the process writing, so a forked child's lines are its own) lets the grader say what
    each process printed, in order."""
    if globals().get("_framed"):
        return  # a forked child: its parent's streams are framed already, with its own PID
    globals()["_framed"] = True
    import io

    class Framed(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.fd = fd
            # A write of up to PIPE_BUF bytes is atomic on a pipe; a longer one is not when the
            # pipe is full: another process's write lands in its middle, and the rest of this
            # line would read as that process's. So every PIPE_BUF bytes get a frame of their own.
            try:
                self.step = max(64, os.fpathconf(fd, "PC_PIPE_BUF") - 16)
            except (OSError, ValueError):
                self.step = 512 - 16

        def writable(self) -> bool:
            return True

        def fileno(self) -> int:
            return self.fd

        def isatty(self) -> bool:
            return False

        def write(self, data) -> int:
            data = bytes(data)
            frame = _wire.OUTPUT_FRAME % os.getpid()
            for start in range(0, len(data), self.step):  # one write per line up to PIPE_BUF
                out = memoryview(frame + data[start:start + self.step])
                while out:
                    out = out[os.write(self.fd, out):]
            return len(data)

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
            framed = io.TextIOWrapper(io.BufferedWriter(Framed(fd)), encoding=stream.encoding,
                                      errors=stream.errors, line_buffering=True)
            stream.flush()
            setattr(sys, name, framed)
        except Exception:
            try:
                stream.reconfigure(line_buffering=True, write_through=False)
            except Exception:
                pass


def _install(role: str) -> None:
    _line_buffered()
    dump_dir = os.environ.get(_wire.DUMP_DIR_ENV)
    pid_log = os.environ.get(_wire.PID_LOG_ENV)
    pid = os.getpid()
    if dump_dir:
        try:
            import faulthandler
            import signal

            f = open(os.path.join(dump_dir, f"{pid}.txt"), "w")  # noqa: SIM115 - kept open on purpose
            # Which thread is the main one (the student's function runs there): faulthandler
            # dumps the thread the signal interrupted first, often a Queue's feeder thread.
            import _thread

            f.write(f"mpgrade main thread 0x{_thread.get_ident():016x}\n")
            f.flush()
            faulthandler.register(signal.SIGUSR1, file=f, all_threads=True, chain=False)
            globals()["_dump_file"] = f
        except Exception:
            pass
    if pid_log:
        _claim(pid_log, f"{pid} {os.getppid()} {role}\n".encode(), wait=role == "worker")


# How long a worker waits for the grader to have seen it (it answers within microseconds).
CLAIM_WAIT = 2.0


def _claim(path: str, line: bytes, wait: bool) -> None:
    """Say this process's PID on the grader's FIFO and, for a worker, wait until the grader has
    seen it alive (it answers with SIGURG once the kernel shows this PID as a process): a
    worker that ends within a millisecond still counts, and a thread's ID never does."""
    import signal

    wait = wait and hasattr(signal, "sigtimedwait")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGURG}) if wait else None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # a FIFO: never blocks, ENXIO once the call is over
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if wait:
            signal.sigtimedwait({signal.SIGURG}, CLAIM_WAIT)
    except Exception:
        pass
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _after_fork() -> None:
    old = globals().get("_dump_file")
    if old is not None:
        try:
            old.close()
        except Exception:
            pass
    # Helpers (fork server, resource tracker) are started by exec, never by fork, so every
    # forked process is a worker, including those the fork server forks.
    _install("worker")


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except Exception:  # not Linux: nothing to seal with, and nothing to seal against
        return False


PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 3, 4


def _dumpable() -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0
    except Exception:
        return True


def seal() -> None:
    """Close a pre-started caller to other processes of the student user until its request is read.

    The grader may start a call's process while the previous call's student code runs as the
    same user. A dumpable process of that user is open to it: ``/proc/PID/fd`` (its stdin and
    result pipe), ptrace. Not dumpable, only root (the grader) can reach it. Done first thing, so
    the window is the interpreter's own start-up. Also: die with the grader.

    The word for the grader: b"2" when the kernel had already sealed this process at exec (an
    execute-only interpreter: no window at all), b"1" when it seals itself now, b"0" when it
    cannot.
    """
    sealed_at_exec = not _dumpable()
    sealed = _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_PDEATHSIG, 9)
    grader = os.environ.pop(_wire.GRADER_PID_ENV, "")
    if grader.isdigit() and os.getppid() != int(grader):
        os._exit(0)  # the grader was gone before the signal was armed
    ready = os.environ.pop(_wire.READY_FD_ENV, "")
    if ready.isdigit():  # tell the grader, which waits for this before any student code runs
        try:
            os.write(int(ready), _wire.SEAL_NONE if not sealed else _wire.SEAL_AT_EXEC if sealed_at_exec else _wire.SEAL_SELF)
            os.close(int(ready))
        except OSError:
            pass


def _sealed_cheaply_seen() -> bool:
    """Not dumpable, seen without importing ctypes (a few ms for every spawned worker): the
    kernel gives a non-dumpable process's /proc/PID/fd to root."""
    if os.getuid() == 0:
        return False
    try:
        return os.stat("/proc/self/fd").st_uid == 0
    except OSError:
        return False


def unseal() -> None:
    """Back to an ordinary process once the request is in: student code sees what it always saw."""
    _prctl(PR_SET_DUMPABLE, 1)


if "mpgrade_child" in " ".join(getattr(sys, "orig_argv", sys.argv)):
    seal()
elif os.environ.get(_wire.PID_LOG_ENV) and _sealed_cheaply_seen():
    # A worker or helper the call started by exec, sealed by an execute-only interpreter: it is
    # the call's own, so ordinary again, as it would be with any other interpreter.
    unseal()
if os.environ.get(_wire.DUMP_DIR_ENV) or os.environ.get(_wire.PID_LOG_ENV):
    _install(_role())
    os.register_at_fork(after_in_child=_after_fork)
