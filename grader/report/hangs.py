"""Hang hot spots: where the class's timed-out calls were blocked, aggregated.

When a call of a student function does not return in time, the harness asks every process of
it for its stack and writes one line per process into the test's message
(``grader.harness.boundary.call``)::

    prodcons.produce_consume() did not return within 25 s (start method fork). Where each ...
      caller 14189: prodcons.py:57 in produce_consume(), waiting in threading.py:327 in wait()
      worker 14241: prodcons.py:51 in produce_consume(), waiting in connection.py:384 in _send()

Here those lines are read back and counted across students with PIDs and line numbers left
out (they differ between students and runs), so the lecture can start from "7 students: the
worker in produce_consume() waiting in connection.py _send()". The message is student-shaped
text (a process writes its own dump), so parsing is strict and anything else is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grader.report.model import ClassResults

_CALLED = re.compile(r"^(?P<func>[A-Za-z_][\w.]{0,200})\(\) did not return within")
_PROCESS = re.compile(r"^\s+(?P<role>caller|worker) \d{1,10}: (?P<place>.{1,400})$")
_FRAME = r"(?P<{0}file>[^:,\n]{{1,80}}):\d{{1,7}} in (?P<{0}func>[^\n,]{{1,80}}?)\(\)"
_PLACE = re.compile(
    "^(?:(?!waiting in )" + _FRAME.format("own") + ")?(?:, )?(?:waiting in " + _FRAME.format("wait") + ")?$")


@dataclass(frozen=True)
class Place:
    """Where one process was: the innermost frame of the student's own code and where it waited."""

    role: str
    own: str | None  # "produce_consume() in prodcons.py"
    waiting: str | None  # "wait() in threading.py"

    def text(self) -> str:
        if self.own and self.waiting:
            return f"{self.own}, waiting in {self.waiting}"
        return self.own or (f"waiting in {self.waiting}" if self.waiting else "no stack available")


def parse_place(role: str, place: str) -> Place:
    """One process line's place, without line numbers; an unknown shape is kept as 'no stack'."""
    m = _PLACE.match(place.strip())
    if not m or not (m["ownfunc"] or m["waitfunc"]):
        return Place(role, None, None)
    own = f"{m['ownfunc']}() in {m['ownfile']}" if m["ownfunc"] else None
    waiting = f"{m['waitfunc']}() in {m['waitfile']}" if m["waitfunc"] else None
    return Place(role, own, waiting)


def places(message: str) -> tuple[str | None, list[Place]]:
    """The called function and every process's place in a timed-out call's message."""
    lines = message.split("\n")
    called = _CALLED.match(lines[0]) if lines else None
    found = []
    for line in lines[1:]:
        m = _PROCESS.match(line)
        if m:
            found.append(parse_place(m["role"], m["place"]))
    return (called["func"] if called else None), found


@dataclass
class HotSpot:
    """One blocking place, and every student (and test) whose call was blocked there."""

    exercise: str
    called: str
    place: Place
    students: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    processes: int = 0


@dataclass
class Hangs:
    spots: list[HotSpot]
    timed_out_calls: int
    whole_submission_timeouts: list[str]


def aggregate(klass: ClassResults) -> Hangs:
    """Hot spots over every ``timeout`` test of the class, the most students first.

    A student counts once per place however many of their tests or processes were blocked
    there; ``processes`` counts them all. Submissions whose whole run timed out (status
    ``timeout``) left no per-call stacks and are listed apart.
    """
    spots: dict[tuple[str, str, Place], HotSpot] = {}
    calls = 0
    for st in klass.students:
        for test in st.tests:
            if test["outcome"] != "timeout":
                continue
            calls += 1
            called, found = places(test["message"])
            for place in found:
                key = (str(test.get("exercise") or ""), called or "?", place)
                spot = spots.get(key)
                if spot is None:
                    spot = spots[key] = HotSpot(key[0], key[1], place)
                spot.processes += 1
                if st.id not in spot.students:
                    spot.students.append(st.id)
                if test["id"] not in spot.tests:
                    spot.tests.append(test["id"])
    ordered = sorted(spots.values(),
                     key=lambda s: (-len(s.students), -s.processes, s.exercise, s.place.text()))
    whole = [st.id for st in klass.students if st.status == "timeout"]
    return Hangs(ordered, calls, whole)
