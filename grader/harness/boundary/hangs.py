"""Stack dumps of a call that did not return, turned into one line per process."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def summarize_dump(text: str, student_root: str) -> str:
    """One line per process: the innermost frame of the student's own code and where it waits."""
    frames = []
    for line in text.splitlines():
        if line.startswith("Thread ") and frames:
            break  # only the main thread (dumped first as the current thread)
        m = FRAME.search(line)
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


def wait_for_dumps(paths: list[Path], limit: float) -> None:
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
