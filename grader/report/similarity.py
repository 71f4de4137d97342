"""Similarity: pairs of submissions whose code is unusually alike, per exercise.

The fingerprints are copydetect's (a maintained implementation of MOSS's winnowing, Schleimer,
Wilkerson and Aiken 2003): the code is tokenized by Pygments, names and strings are replaced
by placeholders (renaming variables changes nothing), every k-gram of tokens is hashed and
winnowing keeps a few of the hashes. The exercise **stub** is boilerplate: its k-grams are
removed from every submission, so the signatures, docstrings and imports every student was
given never count as alike.

Comparing all pairs with copydetect's ``compare_files`` costs a fraction of a millisecond
each, which for 300 students and four exercises is tens of seconds; so every pair is first
ranked by how many winnowed hashes the two share (one set intersection), and only the top of
that list is compared in full, for the score and the matching regions shown side by side.

A similar pair is a lead for a human to read, never a verdict: short exercises have few good
solutions, and students may have worked from the same lecture example.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Any

from grader.assignment import Assignment

NOISE = 25  # copydetect's default k: shorter matches are never reported
GUARANTEE = 30  # copydetect's default: matches this long are always found
WINDOW = GUARANTEE - NOISE + 1
THRESHOLD = 0.75  # flagged at or above: on average, each side shares this much of its own code
MIN_TOKENS = 60  # less of one's own code (stub removed) than this is too little to judge
CANDIDATES = 25  # pairs per exercise compared in full
PREFILTER = 0.15  # a pair sharing fewer of the smaller side's hashes is not a candidate


@dataclass
class Pair:
    """Two submissions' code for one exercise and how much of each the other shares."""

    exercise: str
    a: str
    b: str
    similarity_a: float  # the part of a's own code (stub removed) that b shares
    similarity_b: float
    code_a: str
    code_b: str
    regions_a: list[tuple[int, int]]  # character ranges of the matching code in code_a
    regions_b: list[tuple[int, int]]

    @property
    def score(self) -> float:
        """The mean of both sides (JPlag's "average similarity"): a short file contained in a
        long one is not called a copy of it on the short side's word alone."""
        return (self.similarity_a + self.similarity_b) / 2

    def flagged(self, threshold: float = THRESHOLD) -> bool:
        return self.score >= threshold


@dataclass
class Similarity:
    pairs: dict[str, list[Pair]]  # exercise -> compared pairs, most similar first
    compared: dict[str, int]  # exercise -> submissions with enough code of their own
    too_little: dict[str, list[str]]  # exercise -> ids with too little code of their own
    threshold: float

    def top(self, n: int = 20) -> list[Pair]:
        """The most similar pairs over every exercise."""
        every = [p for pairs in self.pairs.values() for p in pairs]
        return sorted(every, key=lambda p: (-p.score, p.exercise, p.a, p.b))[:n]

    def flagged(self) -> list[Pair]:
        return [p for p in self.top(10_000) if p.flagged(self.threshold)]


def stubs(assignment: Assignment) -> dict[str, str]:
    """Each exercise's given code (``exercises/NN_name/<module>.py``), joined like a submission's."""
    out = {}
    for ex in assignment.exercises:
        parts = []
        for name in ex.files:
            path = ex.public_dir / name
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
        out[ex.id] = "\n".join(parts)
    return out


def exercise_code(assignment: Assignment, files: dict[str, str]) -> dict[str, str]:
    """A submission's files (module file name -> text) as one text per exercise."""
    out = {}
    for ex in assignment.exercises:
        parts = [files[name] for name in ex.files if name in files]
        if parts:
            out[ex.id] = "\n".join(parts)
    return out


def _fingerprint(code: str, boilerplate: Any) -> Any:
    from copydetect import CodeFingerprint

    return CodeFingerprint("submission.py", NOISE, WINDOW, boilerplate=boilerplate,
                           fp=io.StringIO(code))


def _boilerplate(stub: str) -> Any:
    import numpy as np
    from copydetect import CodeFingerprint

    if not stub.strip():
        return []
    every = CodeFingerprint("stub.py", NOISE, 1, fp=io.StringIO(stub)).hashes
    return np.unique(np.array(sorted(every), dtype=np.int64))


def _regions(slices: Any, length: int) -> list[tuple[int, int]]:
    """copydetect's 2xN slice array as sorted, merged, in-range (start, end) pairs."""
    if len(slices) == 0 or len(slices[0]) == 0:
        return []
    spans = sorted((max(0, int(s)), min(length, int(e))) for s, e in zip(slices[0], slices[1], strict=True))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def compare(code: dict[str, dict[str, str]], stub_code: dict[str, str], *,
            threshold: float = THRESHOLD, candidates: int = CANDIDATES) -> Similarity:
    """Pairs per exercise from ``code`` (submission id -> exercise -> text).

    ``stub_code`` (exercise -> the stub's text) is removed from every submission first. A
    submission with fewer than ``MIN_TOKENS`` tokens of its own for an exercise (a stub
    handed back, a one-liner) is listed in ``too_little`` and not compared for it.
    """
    from copydetect import compare_files

    pairs: dict[str, list[Pair]] = {}
    compared: dict[str, int] = {}
    too_little: dict[str, list[str]] = {}
    exercises = sorted({ex for per in code.values() for ex in per})
    for ex in exercises:
        boilerplate = _boilerplate(stub_code.get(ex, ""))
        prints = {}
        little = []
        for sid in sorted(code):
            text = code[sid].get(ex)
            if text is None:
                continue
            fp = _fingerprint(text, boilerplate)
            if fp.token_coverage < MIN_TOKENS or not fp.hashes:
                little.append(sid)
            else:
                prints[sid] = fp
        too_little[ex] = little
        compared[ex] = len(prints)
        ranked = []
        for a, b in itertools.combinations(prints, 2):
            ha, hb = prints[a].hashes, prints[b].hashes
            shared = len(ha & hb)
            if shared:
                ratio = shared / min(len(ha), len(hb))
                if ratio >= PREFILTER:
                    ranked.append((ratio, a, b))
        ranked.sort(key=lambda r: (-r[0], r[1], r[2]))
        found = []
        for _, a, b in ranked[:candidates]:
            fa, fb = prints[a], prints[b]
            _, (sa, sb), (slices_a, slices_b) = compare_files(fa, fb)
            found.append(Pair(ex, a, b, min(1.0, float(sa)), min(1.0, float(sb)),
                              fa.raw_code, fb.raw_code,
                              _regions(slices_a, len(fa.raw_code)), _regions(slices_b, len(fb.raw_code))))
        found.sort(key=lambda p: (-p.score, p.a, p.b))
        pairs[ex] = found
    return Similarity(pairs, compared, too_little, threshold)
