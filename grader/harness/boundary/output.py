"""What a call's processes printed: the text, and which process printed which line.

Every student process writes its stdout and stderr through ``sitecustomize``'s framed,
line-buffered streams: each write starts with ``mpgrade_wire.OUTPUT_FRAME`` (the writer's PID).
Here the frames are taken out again: ``text`` is what was printed, ``lines`` says by whom.
Frames are advisory (student code can write around them, or forge one), so they only ever
decide whose output a line is, never a score on their own; bytes written without a frame
(``os.write(1, ...)``, a program that is not Python) belong to the frame before them, or to PID 0.
Given the PIDs the grader saw in the call from outside (``known``), a frame naming any other PID
counts as PID 0 too: a student can still say one of its own processes printed a line, but never
invent processes (``printed_by(4000000)`` for workers that never ran).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NamedTuple

_FRAME = re.compile(rb"\x00\x1e(\d{1,10})\x1f")
_CUT = re.compile(rb"\x00(?:\x1e\d{0,10})?\Z")


class Printed(NamedTuple):
    """One line a process printed (without its newline)."""

    pid: int
    stream: str  # "stdout" or "stderr"
    text: str


def frame_overhead(chunk: bytes) -> int:
    """Bytes of ``chunk`` that are frames, less one byte per frame: what the output limit and
    the capture's cap should not count (a frame per line is ~10 bytes, so 1 MB of short lines is
    8 MB framed), while a flood of bare frames still costs a byte each. A frame cut between two
    chunks is counted in full (a few bytes)."""
    return sum(len(match.group(0)) - 1 for match in _FRAME.finditer(chunk))


def unframe(raw: bytes, stream: str, known: Collection[int] | None = None) -> tuple[str, list[Printed]]:
    """The text ``raw`` holds without frames, and its lines with the PID that wrote each
    (0: unframed bytes before any frame, or a frame naming a PID not in ``known`` when given)."""
    raw = _CUT.sub(b"", raw)  # a frame cut by the capture's cap, at the very end
    pieces: list[tuple[int, bytes]] = []
    pid, start = 0, 0
    for match in _FRAME.finditer(raw):
        if match.start() > start:
            pieces.append((pid, raw[start:match.start()]))
        pid, start = int(match.group(1)), match.end()
        if known is not None and pid not in known:
            pid = 0
    if start < len(raw):
        pieces.append((pid, raw[start:]))
    text = b"".join(chunk for _, chunk in pieces).decode(errors="replace")
    # Each process's unfinished line, as the pieces it came in: joined (and decoded, so that a
    # character split between two writes stays whole) once, when its newline comes. Adding to
    # a string each time would be quadratic in a line written a byte at a time.
    lines: list[Printed] = []
    pending: dict[int, list[bytes]] = {}
    for who, chunk in pieces:
        parts = pending.pop(who, [])
        *whole, rest = chunk.split(b"\n")
        if whole:
            parts.append(whole[0])
            lines.append(Printed(who, stream, b"".join(parts).decode(errors="replace")))
            lines.extend(Printed(who, stream, line.decode(errors="replace")) for line in whole[1:])
            parts = []
        if rest:
            parts.append(rest)
        if parts:
            pending[who] = parts
    lines.extend(Printed(who, stream, b"".join(parts).decode(errors="replace")) for who, parts in pending.items())
    return text, lines
