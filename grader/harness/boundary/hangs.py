"""Stack dumps of a call that did not return, turned into one line per process."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')
THREAD = re.compile(r"^(Current thread|Thread) (?P<ident>0x[0-9a-fA-F]{1,16})")
# Written by ``sitecustomize`` first in each process's dump file: which thread is the main one.
MAIN = re.compile(r"^mpgrade main thread (?P<ident>0x[0-9a-fA-F]{1,16})$", re.M)


def _threads(text: str) -> list[tuple[int | None, list[re.Match]]]:
    """(thread ident, frames innermost first) of each thread of a faulthandler dump."""
    threads: list[tuple[int | None, list[re.Match]]] = []
    for line in text.splitlines()[:2000]:
        t = THREAD.match(line)
        if t:
            threads.append((int(t["ident"], 16), []))
            continue
        m = FRAME.search(line)
        if m:
            if not threads:
                threads.append((None, []))
            threads[-1][1].append(m)
    return threads


def _main_thread(text: str) -> list[re.Match]:
    """The frames of the process's main thread: the one the student's function runs in.

    faulthandler dumps the thread the signal happened to interrupt first, often a helper
    thread (a Queue's feeder, waiting in ``threading.py wait()``). The main thread is the one
    ``sitecustomize`` named in the file's first line; failing that, the first thread that was
    not started by ``threading`` (whose outermost frame is its ``_bootstrap``).
    """
    threads = [t for t in _threads(text) if t[1]]
    if not threads:
        return []
    named = MAIN.search(text)
    if named:
        ident = int(named["ident"], 16)
        for tid, frames in threads:
            if tid == ident:
                return frames
    for _, frames in threads:
        outer = frames[-1]
        if not (Path(outer["file"]).name == "threading.py" and outer["func"].startswith("_bootstrap")):
            return frames
    return threads[0][1]


def summarize_dump(text: str, student_root: str, running: bool = False) -> str:
    """One line per process: the innermost frame of the student's own code and where it waits
    (its main thread's), "running (using CPU)" when it was, and "while importing spawn.py" when
    the student's frame is the module's top level."""
    frames = _main_thread(text)
    if not frames:
        return "running (using CPU), no stack available" if running else "no stack available"
    inner = frames[0]
    own = next((f for f in frames if f["file"].startswith(student_root + os.sep)), None)
    where = _frame_text(inner)
    state = "running (using CPU) in" if running else "waiting in"
    if own is None:
        return f"{state} {where}"
    mine = _frame_text(own)
    if own["func"] == "<module>":
        mine = f"while importing {_clean(Path(own['file']).name)}: {mine}"
    if running:
        return f"running (using CPU) at {mine}" + ("" if own is inner else f", last seen in {where}")
    return mine if own is inner else f"{mine}, waiting in {where}"


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:80]


def _frame_text(frame: re.Match) -> str:
    """``file:line in func()`` from a dump the process wrote itself (student code can write
    anything there): printable characters only, each name capped."""
    return f"{_clean(Path(frame['file']).name)}:{frame['line'][:7]} in {_clean(frame['func'])}()"


def dump_sizes(paths: list[Path]) -> list[int]:
    """The sizes of the dump files now (0 for a missing one): taken before the dumps are asked
    for, since each file already holds its main thread line."""
    sizes = []
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    return sizes


def wait_for_dumps(paths: list[Path], limit: float, before: list[int] | None = None) -> None:
    """Until every dump file has grown past ``before`` and stopped growing (faulthandler writes
    from its signal handler, within milliseconds), or ``limit`` seconds for a process that
    cannot answer (stopped, dead)."""
    deadline = time.monotonic() + limit
    base = before or [0] * len(paths)
    last: list[int] = []
    while time.monotonic() < deadline:
        time.sleep(0.01)
        sizes = dump_sizes(paths)
        if all(size > old for size, old in zip(sizes, base, strict=True)) and sizes == last:
            return
        last = sizes
