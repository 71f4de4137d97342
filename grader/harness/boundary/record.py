"""What the grader saw of one call, observed from outside the student's processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    threads: set[int] = field(default_factory=set)  # thread IDs seen (every process's main thread excluded)
    peak_threads: int = 0  # the most such threads seen alive at one look
    threads_left: int = 0  # such threads still alive when the call returned (session: when it closed)
    wall: float = 0.0  # the call's (a session: the last operation's) wall time, measured by the grader
    elapsed: float | None = None  # the call's own time, as the student's process says (its word)
    tasks: int | None = None  # an ``async def``: tasks its event loop created (None: not async)
    peak_tasks: int | None = None  # ... and the most of them pending at once (the student's word too)
    printed: list[Any] = field(default_factory=list)  # ``output.Printed`` lines: (pid, stream, text)
    operations: int = 0  # a session's operations (calls, attribute reads, takes)

    def printed_by(self, pid: int, stream: str = "stdout") -> list[str]:
        """The lines process ``pid`` printed on ``stream``, in the order it printed them."""
        return [line.text for line in self.printed if line.pid == pid and line.stream == stream]

    def telemetry(self) -> dict[str, Any]:
        return {
            "processes": len(self.workers),
            "peak_processes": self.peak_processes,
            "cpu_time": round(self.cpu_time, 4),
            "wall_time": round(self.duration, 4),
            "peak_rss": self.peak_rss,
            "threads": len(self.threads),
            "peak_threads": self.peak_threads,
        }


# --- watching processes from outside ----------------------------------------------------------
