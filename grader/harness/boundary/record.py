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

    def telemetry(self) -> dict[str, Any]:
        return {
            "processes": len(self.workers),
            "peak_processes": self.peak_processes,
            "cpu_time": round(self.cpu_time, 4),
            "wall_time": round(self.duration, 4),
            "peak_rss": self.peak_rss,
        }


# --- watching processes from outside ----------------------------------------------------------
