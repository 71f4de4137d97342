"""Item analysis: for every test, how the class did on it and how it failed.

What PrairieLearn shows per question, for a test: the pass rate, the mean points, and the
**discrimination**, the Pearson correlation of the test's points with the students' total
score. A test that strong students pass and weak ones fail discriminates well (near 1); one
that everybody passes, or that fails at random (a flaky timing test), is near 0 or undefined;
a negative one is worth a look (it may punish good solutions). Beside them the outcome mix and
the most common failure messages grouped by their *shape*: numbers, addresses and PIDs
collapsed, so "got 3 of 4 items" and "got 7 of 8 items" are one line with its count and hint.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from grader.report.model import ClassResults

_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_RUN = re.compile(r"N(?:, N){2,}")
_SPACES = re.compile(r"\s+")
MAX_SHAPE = 300


def message_shape(message: str) -> str:
    """The shape of a failure message: its first line with every number (PIDs, counts, times)
    as ``N``, addresses as ``0x…`` and a run of numbers as ``N, N, …``; so messages that differ
    only in the values of one run are one group."""
    line = message.strip().split("\n", 1)[0] if message.strip() else "(no message)"
    line = _HEX.sub("\ue000", line)  # kept from the number rule by a private-use mark
    line = _NUMBER.sub("N", line).replace("\ue000", "0x…")
    line = _RUN.sub("N, N, …", line)
    return _SPACES.sub(" ", line).strip()[:MAX_SHAPE]


def correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r, or None when it is undefined (fewer than two students, or a constant)."""
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return None


@dataclass
class MessageGroup:
    """Failures of one test with the same message shape."""

    shape: str
    count: int
    example: str
    hint: str | None
    outcomes: Counter[str] = field(default_factory=Counter)
    students: list[str] = field(default_factory=list)


@dataclass
class Item:
    """One test across the class."""

    id: str
    name: str
    exercise: str
    max_score: float
    visibility: str
    students: int
    pass_rate: float
    mean_points: float
    discrimination: float | None
    outcomes: Counter[str]
    messages: list[MessageGroup]


def analyse(klass: ClassResults, *, top_messages: int = 5) -> list[Item]:
    """Every test that any student's document holds, in the documents' order.

    Only students whose document holds the test count for it (a submission that errored
    before any test ran says nothing about a single test); ``top_messages`` failure groups
    are kept per test, the most common first.
    """
    order: list[str] = []
    rows: dict[str, list[tuple[str, dict[str, Any], float]]] = defaultdict(list)
    for st in klass.students:
        for test in st.tests:
            if test["id"] not in rows:
                order.append(test["id"])
            rows[test["id"]].append((st.id, test, st.score))
    items = []
    for test_id in order:
        entries = rows[test_id]
        first = entries[0][1]
        points = [float(t["score"]) for _, t, _ in entries]
        totals = [total for _, _, total in entries]
        outcomes = Counter(t["outcome"] for _, t, _ in entries)
        groups: dict[str, MessageGroup] = {}
        hints: dict[str, Counter[str]] = defaultdict(Counter)
        for sid, t, _ in entries:
            if t["outcome"] in ("passed", "skipped"):
                continue
            shape = message_shape(t["message"])
            group = groups.get(shape)
            if group is None:
                example = t["message"].strip().split("\n", 1)[0][:1000]
                group = groups[shape] = MessageGroup(shape, 0, example, None)
            group.count += 1
            group.outcomes[t["outcome"]] += 1
            group.students.append(sid)
            if t.get("hint"):
                hints[shape][t["hint"]] += 1
        for shape, group in groups.items():
            if hints[shape]:
                group.hint = hints[shape].most_common(1)[0][0]
        messages = sorted(groups.values(), key=lambda g: (-g.count, g.shape))[:top_messages]
        items.append(Item(
            id=test_id, name=str(first.get("name") or test_id), exercise=str(first.get("exercise") or ""),
            max_score=max(float(t["max_score"]) for _, t, _ in entries),
            visibility=str(first.get("visibility") or "hidden"), students=len(entries),
            pass_rate=outcomes["passed"] / len(entries),
            mean_points=statistics.fmean(points),
            discrimination=correlation(points, totals),
            outcomes=outcomes, messages=messages,
        ))
    return items
